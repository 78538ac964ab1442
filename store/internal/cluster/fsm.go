package cluster

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
)

// raftFSM adapts fsm.State to Raft. It also tracks the index of the last
// entry the state machine has really applied: raft.AppliedIndex() counts
// entries handed to the FSM goroutine, not entries it has finished, and a
// linearizable read must wait for the latter.
type raftFSM struct {
	state *fsm.State
	// restored is told the index and writer of the state a snapshot from
	// the leader just became, so the store can drop that snapshot's bytes.
	restored func(index uint64, write func(io.Writer) error)
	applied  atomic.Uint64
	// logBytes counts command bytes applied since the last snapshot: the
	// in-memory log holds about that much, whatever the entry count.
	logBytes atomic.Uint64
	// replicas is the replica count the log has recorded (fsm.OpReplicas),
	// 0 before the first; snapshots carry it.
	replicas atomic.Int64

	mu     sync.Mutex
	notify chan struct{} // closed and replaced after every apply
}

func newRaftFSM(state *fsm.State) *raftFSM {
	return &raftFSM{state: state, notify: make(chan struct{})}
}

var (
	_ raft.BatchingFSM        = (*raftFSM)(nil)
	_ raft.ConfigurationStore = (*raftFSM)(nil)
)

// Apply applies a committed command. Its return value reaches the proposer
// through ApplyFuture.Response.
func (f *raftFSM) Apply(l *raft.Log) any {
	defer f.advance(l.Index)
	return f.applyCommand(l)
}

// ApplyBatch applies the commands and configurations Raft committed
// together (hashicorp/raft hands a batching FSM up to MaxAppendEntries at
// once): readers waiting for the applied index are woken once per batch,
// not once per entry.
func (f *raftFSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = f.applyCommand(l)
		}
	}
	if n := len(logs); n > 0 {
		f.advance(logs[n-1].Index)
	}
	return out
}

func (f *raftFSM) applyCommand(l *raft.Log) any {
	f.logBytes.Add(uint64(len(l.Data)))
	cmd, err := fsm.DecodeCommand(l.Data)
	if err != nil {
		// A command that does not decode was written by an incompatible
		// version; every replica skips it the same way.
		return fsm.Result{Revision: f.state.Revision(), Err: err}
	}
	if cmd.Op == fsm.OpReplicas {
		if cmd.Replicas > 0 {
			f.replicas.Store(int64(cmd.Replicas))
		}
		return fsm.Result{Revision: f.state.Revision()}
	}
	return f.state.Apply(cmd)
}

// StoreConfiguration sees configuration entries outside batches (ApplyBatch
// gets them in its batch), so the applied index also moves past membership
// changes.
func (f *raftFSM) StoreConfiguration(index uint64, _ raft.Configuration) { f.advance(index) }

func (f *raftFSM) advance(index uint64) {
	if index > f.applied.Load() {
		f.applied.Store(index)
	}
	f.mu.Lock()
	close(f.notify)
	f.notify = make(chan struct{})
	f.mu.Unlock()
}

// changed is closed at the next apply.
func (f *raftFSM) changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.notify
}

// Snapshot captures the state and the index it reflects.
func (f *raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.logBytes.Store(0)
	return &snapshot{index: f.applied.Load(), replicas: f.replicas.Load(), write: f.state.Snapshot()}, nil
}

// Restore replaces the state with a snapshot's (a node catching up, or a
// node restarted empty).
func (f *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var hdr [8]byte
	if _, err := io.ReadFull(rc, hdr[:]); err != nil {
		return fmt.Errorf("read snapshot header: %w", err)
	}
	index, format := binary.BigEndian.Uint64(hdr[:]), fsm.SnapshotGob
	switch {
	case index&streamFormatBit != 0 && index&clockedFormatBit != 0:
		index, format = index&^(streamFormatBit|clockedFormatBit), fsm.SnapshotClocked
	case index&streamFormatBit != 0:
		index, format = index&^streamFormatBit, fsm.SnapshotStream
	}
	var meta clusterMeta
	if index&clusterMetaBit != 0 {
		index &^= clusterMetaBit
		var err error
		if meta, err = readClusterMeta(rc); err != nil {
			return err
		}
	}
	if err := f.state.Restore(rc, format); err != nil {
		return err
	}
	// A snapshot without the count (an older leader's) leaves it unknown:
	// the node uses its source until the log records one.
	f.replicas.Store(int64(meta.Replicas))
	f.applied.Store(index)
	f.advance(0)
	if f.restored != nil {
		snap := &snapshot{index: index, replicas: int64(meta.Replicas), write: f.state.Snapshot()}
		f.restored(index, snap.writeTo)
	}
	return nil
}

type snapshot struct {
	index    uint64
	replicas int64 // the replicated replica count, 0 if none
	write    func(io.Writer) error
}

// streamFormatBit, set in a snapshot's header, says the state follows in
// fsm.SnapshotStream format; clear, in the gob format of the first
// versions. An older node reads the flagged header as an absurd index,
// then fails to decode the stream as gob: it refuses the snapshot rather
// than restoring part of it. clockedFormatBit, with it, says
// fsm.SnapshotClocked (expiry on the cluster clock): a node of the
// version before reads that as SnapshotStream and refuses it too, at the
// cluster time that follows its last item.
const (
	streamFormatBit  = uint64(1) << 63
	clockedFormatBit = uint64(1) << 62
)

// clusterMetaBit, set in a snapshot's header, says a block of the cluster
// layer's own replicated facts (clusterMeta: the replica count) follows
// the header, before the state. The block opens with clusterMetaMagic, ten
// bytes that no varint decodes: a node that does not know the bit reads
// them as the state's revision and refuses the snapshot at once, rather
// than restoring it under a wrong index.
const clusterMetaBit = uint64(1) << 61

var clusterMetaMagic = [binary.MaxVarintLen64]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// clusterMeta is what the cluster layer replicates besides the state.
type clusterMeta struct {
	Replicas int `json:"replicas,omitempty"`
}

// maxClusterMeta bounds the block a snapshot may carry.
const maxClusterMeta = 64 << 10

func writeClusterMeta(w io.Writer, m clusterMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode snapshot metadata: %w", err)
	}
	var size [binary.MaxVarintLen64]byte
	buf := append(append([]byte(nil), clusterMetaMagic[:]...), size[:binary.PutUvarint(size[:], uint64(len(b)))]...)
	if _, err := w.Write(append(buf, b...)); err != nil {
		return fmt.Errorf("write snapshot metadata: %w", err)
	}
	return nil
}

func readClusterMeta(r io.Reader) (clusterMeta, error) {
	var m clusterMeta
	var magic [len(clusterMetaMagic)]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil || magic != clusterMetaMagic {
		return m, fmt.Errorf("read snapshot metadata: %w", fsm.ErrBadSnapshot)
	}
	size, err := binary.ReadUvarint(byteReader{r})
	if err != nil || size > maxClusterMeta {
		return m, fmt.Errorf("read snapshot metadata size: %w", fsm.ErrBadSnapshot)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return m, fmt.Errorf("read snapshot metadata: %w: %w", fsm.ErrBadSnapshot, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode snapshot metadata: %w: %w", fsm.ErrBadSnapshot, err)
	}
	return m, nil
}

// byteReader reads one byte at a time from r, so that nothing after the
// metadata block is consumed before the state's decoder gets r.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var one [1]byte
	_, err := io.ReadFull(b.r, one[:])
	return one[0], err
}

// writeTo writes the snapshot: the applied index with the format bits, the
// cluster's metadata block when there is a replica count, then the state.
func (s *snapshot) writeTo(w io.Writer) error {
	hdr, index := [8]byte{}, s.index|streamFormatBit|clockedFormatBit
	if s.replicas > 0 {
		index |= clusterMetaBit
	}
	binary.BigEndian.PutUint64(hdr[:], index)
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	if s.replicas > 0 {
		if err := writeClusterMeta(w, clusterMeta{Replicas: int(s.replicas)}); err != nil {
			return err
		}
	}
	return s.write(w)
}

// Persist hands our own snapshot store the writer instead of bytes (see
// snapshotStore); any other sink gets the bytes.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if own, ok := sink.(*snapshotSink); ok {
		return own.closeWith(s.writeTo)
	}
	if err := s.writeTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// monotonicStore is Raft's in-memory log store, declared monotonic: when a
// follower installs a snapshot, Raft then drops its whole log instead of
// keeping entries past the snapshot. Kept entries made a restarted follower
// refuse every append after the install (the previous entry fell inside the
// snapshot but was not its last index), and the leader resent the snapshot
// forever: the node never caught up.
type monotonicStore struct{ *raft.InmemStore }

// IsMonotonic implements raft.MonotonicLogStore.
func (monotonicStore) IsMonotonic() bool { return true }

// DeleteRange deletes the stored entries in [lo, hi], clamped to what the
// store holds. raft.InmemStore sets its last index to lo-1 when the range
// covers it, so a range starting at 0 (Raft compacting a log that
// installing a snapshot had just emptied: FirstIndex is 0) wrapped its last
// index to 2^64-1; the next removeOldLogs then looped over the whole range
// on Raft's main goroutine, and the node never caught up nor shut down
// (the catch-up test caught it).
func (s *monotonicStore) DeleteRange(lo, hi uint64) error {
	first, err := s.FirstIndex()
	if err != nil {
		return err
	}
	last, err := s.LastIndex()
	if err != nil {
		return err
	}
	if first == 0 && last == 0 {
		return nil // empty
	}
	lo, hi = max(lo, first), min(hi, last)
	if lo > hi {
		return nil
	}
	return s.InmemStore.DeleteRange(lo, hi)
}
