package fsm

import (
	"bufio"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
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
	// through small buffers, whatever the size of the state.
	SnapshotStream SnapshotFormat = 2
)

// snapshotV1 is the gob form of the state. Only the map and the revision
// travel: history is local, and a restored replica tells watchers that
// older revisions are gone.
type snapshotV1 struct {
	Revision int64
	Items    []KeyValue
}

// maxSnapshotField bounds one key or value read from a snapshot, far above
// any --max-value-bytes, so that corrupt input fails instead of allocating
// without bound.
const maxSnapshotField = 64 << 20

// Snapshot captures the state at this instant. The returned function writes
// it in SnapshotStream format, as often as it is called, always the same
// bytes; it may run concurrently with Apply because a KeyValue is never
// changed once stored (Apply replaces it). The capture costs a pointer per
// key and shares the keys and values with the live map, so a retained
// snapshot is not a second copy of the data.
func (s *State) Snapshot() func(io.Writer) error {
	s.mu.RLock()
	revision := s.revision
	items := make([]*KeyValue, 0, len(s.kv))
	for _, kv := range s.kv {
		items = append(items, kv)
	}
	s.mu.RUnlock()
	return func(w io.Writer) error {
		if err := writeStream(w, revision, items); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
		return nil
	}
}

// writeStream writes SnapshotStream: the revision and the item count, then
// per item the key and value (each a uvarint length and the bytes) and the
// create, modify and expiry revisions (varints).
func writeStream(w io.Writer, revision int64, items []*KeyValue) error {
	// bufio.Writer keeps its first error: the writes after it do nothing
	// and Flush returns it, so the writes need no checks of their own.
	bw := bufio.NewWriterSize(w, 64<<10)
	var num [binary.MaxVarintLen64]byte
	varint := func(v int64) { _, _ = bw.Write(num[:binary.PutVarint(num[:], v)]) }
	uvarint := func(v uint64) { _, _ = bw.Write(num[:binary.PutUvarint(num[:], v)]) }
	varint(revision)
	uvarint(uint64(len(items)))
	for _, kv := range items {
		uvarint(uint64(len(kv.Key)))
		_, _ = bw.WriteString(kv.Key)
		uvarint(uint64(len(kv.Value)))
		_, _ = bw.Write(kv.Value)
		varint(kv.CreateRevision)
		varint(kv.ModifyRevision)
		varint(kv.ExpireAt)
	}
	return bw.Flush()
}

// ErrBadSnapshot marks snapshot bytes that do not decode.
var ErrBadSnapshot = errors.New("malformed snapshot")

// Restore replaces the whole state with a snapshot's, written in format.
// On error the state is left as it was.
func (s *State) Restore(r io.Reader, format SnapshotFormat) error {
	var (
		revision int64
		items    []*KeyValue
		err      error
	)
	switch format {
	case SnapshotGob:
		revision, items, err = readGob(r)
	case SnapshotStream:
		revision, items, err = readStream(r)
	default:
		err = fmt.Errorf("%w: unknown format %d", ErrBadSnapshot, format)
	}
	if err != nil {
		return err
	}
	kv := make(map[string]*KeyValue, len(items))
	expiring := make(map[string]int64)
	var bytes int64
	for _, item := range items {
		if prev, ok := kv[item.Key]; ok {
			bytes -= prev.size()
		}
		kv[item.Key] = item
		bytes += item.size()
		if item.ExpireAt != 0 {
			expiring[item.Key] = item.ExpireAt
		} else {
			delete(expiring, item.Key)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv, s.expiring, s.revision, s.bytes = kv, expiring, revision, bytes
	s.hub.reset(revision)
	return nil
}

func readGob(r io.Reader) (int64, []*KeyValue, error) {
	var snap snapshotV1
	if err := gob.NewDecoder(r).Decode(&snap); err != nil {
		return 0, nil, fmt.Errorf("decode snapshot: %w: %w", ErrBadSnapshot, err)
	}
	items := make([]*KeyValue, len(snap.Items))
	for i := range snap.Items {
		items[i] = &snap.Items[i]
	}
	return snap.Revision, items, nil
}

func readStream(r io.Reader) (int64, []*KeyValue, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	fail := func(what string, err error) (int64, []*KeyValue, error) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("decode snapshot: %w: %s: %w", ErrBadSnapshot, what, err)
	}
	revision, err := binary.ReadVarint(br)
	if err != nil {
		return fail("revision", err)
	}
	count, err := binary.ReadUvarint(br)
	if err != nil {
		return fail("item count", err)
	}
	readBytes := func() ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err
		}
		if n > maxSnapshotField {
			return nil, fmt.Errorf("length %d above %d", n, maxSnapshotField)
		}
		b := make([]byte, n)
		_, err = io.ReadFull(br, b)
		return b, err
	}
	// The count is not trusted for the allocation: corrupt input must not
	// reserve memory it does not back with bytes.
	items := make([]*KeyValue, 0, min(count, 1<<16))
	for i := uint64(0); i < count; i++ {
		key, err := readBytes()
		if err != nil {
			return fail(fmt.Sprintf("key of item %d", i), err)
		}
		value, err := readBytes()
		if err != nil {
			return fail(fmt.Sprintf("value of item %d", i), err)
		}
		kv := &KeyValue{Key: string(key), Value: value}
		for _, v := range []*int64{&kv.CreateRevision, &kv.ModifyRevision, &kv.ExpireAt} {
			if *v, err = binary.ReadVarint(br); err != nil {
				return fail(fmt.Sprintf("revisions of item %d", i), err)
			}
		}
		items = append(items, kv)
	}
	switch _, err := br.ReadByte(); {
	case err == nil:
		return fail("end", errors.New("bytes after the last item"))
	case !errors.Is(err, io.EOF):
		return fail("end", err)
	}
	return revision, items, nil
}
