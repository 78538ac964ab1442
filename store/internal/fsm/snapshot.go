package fsm

import (
	"bufio"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/internal/kvtable"
)

// SnapshotFormat names how a snapshot's bytes encode the state. The Raft
// layer records it beside the snapshot, so a node restores what an older
// version sent.
type SnapshotFormat int

const (
	// SnapshotGob is one gob message of the whole state, as the first
	// versions wrote it. Gob encodes a message into memory before writing
	// it, so a snapshot of a million keys allocated hundreds of MiB at once,
	// and the collector's next goal grew with it. Still restored; no longer
	// written.
	SnapshotGob SnapshotFormat = 1
	// SnapshotStream is a stream of length-prefixed items written and read
	// through small buffers, whatever the size of the state, with expiry
	// as wall-clock instants. Still restored; no longer written.
	SnapshotStream SnapshotFormat = 2
	// SnapshotClocked is SnapshotStream with expiry on the cluster clock
	// and the cluster time after the last item. An older node's stream
	// decoder refuses it (bytes after the last item) rather than reading
	// cluster times as wall-clock instants.
	SnapshotClocked SnapshotFormat = 3
)

// snapshotV1 is the gob form of the state. Only the map and the revision
// travel: history is local, and a restored replica tells watchers that
// older revisions are gone.
type snapshotV1 struct {
	Revision int64
	Items    []itemV1
}

// itemV1 is a key as the gob snapshots held it (gob matches fields by
// name): ExpireAt is a wall-clock instant in Unix nanoseconds.
type itemV1 struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModifyRevision int64
	ExpireAt       int64
}

// maxSnapshotField bounds one key or value read from a snapshot, far above
// any --max-value-bytes, so that corrupt input fails instead of allocating
// without bound.
const maxSnapshotField = 64 << 20

// Snapshot captures the state at this instant. The returned function writes
// it in SnapshotClocked format, as often as it is called, always the same
// bytes; it may run concurrently with Apply: the capture pins the table's
// records (kvtable.Pinned), which Apply then never changes or reuses until
// the function is unreachable. The capture costs 8 bytes per key and shares
// the keys and values with the live table, so a retained snapshot is not a
// second copy of the data; what it holds alive is only the records
// rewritten or deleted since.
func (s *State) Snapshot() func(io.Writer) error {
	s.mu.RLock()
	revision, clock := s.revision, s.clock
	pinned := s.table.Pin()
	s.mu.RUnlock()
	return func(w io.Writer) error {
		if err := writeStream(w, revision, clock, pinned); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
		return nil
	}
}

// writeStream writes SnapshotClocked: the revision and the item count,
// then per item the key and value (each a uvarint length and the bytes),
// the create and modify revisions and the cluster expiry time (varints),
// and last the cluster time (a varint).
func writeStream(w io.Writer, revision int64, clock time.Duration, items *kvtable.Pinned) error {
	// bufio.Writer keeps its first error: the writes after it do nothing
	// and Flush returns it, so the writes need no checks of their own.
	bw := bufio.NewWriterSize(w, 64<<10)
	var num [binary.MaxVarintLen64]byte
	varint := func(v int64) { _, _ = bw.Write(num[:binary.PutVarint(num[:], v)]) }
	uvarint := func(v uint64) { _, _ = bw.Write(num[:binary.PutUvarint(num[:], v)]) }
	varint(revision)
	uvarint(uint64(items.Len()))
	_ = items.Each(func(e kvtable.Entry) error {
		key, value, m := e.Key(), e.Value(), e.Meta()
		uvarint(uint64(len(key)))
		_, _ = bw.Write(key)
		uvarint(uint64(len(value)))
		_, _ = bw.Write(value)
		varint(m.Create)
		varint(m.Modify)
		varint(m.ExpireAt)
		return nil
	})
	varint(int64(clock))
	return bw.Flush()
}

// ErrBadSnapshot marks snapshot bytes that do not decode.
var ErrBadSnapshot = errors.New("malformed snapshot")

// Restore replaces the whole state with a snapshot's, written in format.
// On error the state is left as it was.
//
// The formats before SnapshotClocked hold wall-clock expiry instants of a
// leader of an older version, and no cluster time. Each is turned, once,
// into the TTL left by this process's wall clock, pending like a TTL an
// older leader writes (KeyValue.ExpireAt): the one place this package
// reads a wall clock, and only for state an older version wrote.
func (s *State) Restore(r io.Reader, format SnapshotFormat) error {
	// The snapshot is decoded straight into a new table, which replaces
	// the live one only once the whole snapshot has decoded.
	table := kvtable.New()
	var bytes int64
	wallNow := s.now().UnixNano()
	add := func(kv *KeyValue) {
		if format != SnapshotClocked && kv.ExpireAt != 0 {
			// Stored as wall-clock nanoseconds by the decoders.
			kv.ExpireAt = -max(time.Duration(int64(kv.ExpireAt)-wallNow), time.Nanosecond)
		}
		if prev, ok := table.Get(kv.Key); ok {
			bytes -= int64(len(prev.Key()) + len(prev.Value()))
		}
		table.Put(kv.Key, kv.Value, kvtable.Meta{Create: kv.CreateRevision, Modify: kv.ModifyRevision, ExpireAt: int64(kv.ExpireAt)})
		bytes += int64(len(kv.Key) + len(kv.Value))
	}
	var (
		revision int64
		clock    time.Duration
		err      error
	)
	switch format {
	case SnapshotGob:
		revision, err = readGob(r, add)
	case SnapshotStream, SnapshotClocked:
		revision, clock, err = readStream(r, format == SnapshotClocked, add)
	default:
		err = fmt.Errorf("%w: unknown format %d", ErrBadSnapshot, format)
	}
	if err != nil {
		table.Retire()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.highest = max(s.highest, s.revision)
	s.table.Retire()
	s.table, s.revision, s.bytes = table, revision, bytes
	s.expiring, s.pending = make(map[string]time.Duration), make(map[string]struct{})
	table.Range(func(e kvtable.Entry) bool {
		s.indexExpiry(string(e.Key()), time.Duration(e.Meta().ExpireAt))
		return true
	})
	// The snapshot's cluster time is a value its leader stamped before
	// this replica saw it: the estimate runs on from it, never from a
	// larger value of this replica's own (see ClockNow).
	s.clock, s.clockAt = clock, time.Time{}
	if clock > 0 {
		s.clockAt = s.now()
	}
	s.hub.reset(revision)
	return nil
}

func readGob(r io.Reader, add func(*KeyValue)) (int64, error) {
	var snap snapshotV1
	if err := gob.NewDecoder(r).Decode(&snap); err != nil {
		return 0, fmt.Errorf("decode snapshot: %w: %w", ErrBadSnapshot, err)
	}
	for _, it := range snap.Items {
		add(&KeyValue{Key: it.Key, Value: it.Value, CreateRevision: it.CreateRevision,
			ModifyRevision: it.ModifyRevision, ExpireAt: time.Duration(it.ExpireAt)})
	}
	return snap.Revision, nil
}

// readStream reads SnapshotStream, or SnapshotClocked when clocked: the
// same items, then the cluster time. It hands each item to add as it is
// read; the item and its slices are add's until the next call only.
func readStream(r io.Reader, clocked bool, add func(*KeyValue)) (int64, time.Duration, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	fail := func(what string, err error) (int64, time.Duration, error) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, fmt.Errorf("decode snapshot: %w: %s: %w", ErrBadSnapshot, what, err)
	}
	revision, err := binary.ReadVarint(br)
	if err != nil {
		return fail("revision", err)
	}
	count, err := binary.ReadUvarint(br)
	if err != nil {
		return fail("item count", err)
	}
	// One buffer serves every key and value: each item is copied into
	// the table before the next is read.
	var buf []byte
	readBytes := func() ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err
		}
		if n > maxSnapshotField {
			return nil, fmt.Errorf("length %d above %d", n, maxSnapshotField)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		b := buf[:n]
		_, err = io.ReadFull(br, b)
		return b, err
	}
	for i := uint64(0); i < count; i++ {
		key, err := readBytes()
		if err != nil {
			return fail(fmt.Sprintf("key of item %d", i), err)
		}
		kv := &KeyValue{Key: string(key)}
		if kv.Value, err = readBytes(); err != nil {
			return fail(fmt.Sprintf("value of item %d", i), err)
		}
		var expireAt int64
		for _, v := range []*int64{&kv.CreateRevision, &kv.ModifyRevision, &expireAt} {
			if *v, err = binary.ReadVarint(br); err != nil {
				return fail(fmt.Sprintf("revisions of item %d", i), err)
			}
		}
		kv.ExpireAt = time.Duration(expireAt)
		add(kv)
	}
	var clock int64
	if clocked {
		if clock, err = binary.ReadVarint(br); err != nil {
			return fail("cluster time", err)
		}
		if clock < 0 {
			return fail("cluster time", fmt.Errorf("negative: %d", clock))
		}
	}
	switch _, err := br.ReadByte(); {
	case err == nil:
		return fail("end", errors.New("bytes after the last item"))
	case !errors.Is(err, io.EOF):
		return fail("end", err)
	}
	return revision, time.Duration(clock), nil
}
