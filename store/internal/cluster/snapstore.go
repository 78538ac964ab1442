package cluster

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// snapshotStore keeps the latest complete snapshot in memory; nothing is
// written to disk.
//
// A snapshot of this node's own state is kept as a writer (snapshot.writeTo
// over fsm.State.Snapshot: 8 bytes per key pinning the live table's
// records, sharing keys and values with it), not as bytes: bytes were a second and, with the previous
// snapshot, a third copy of every value. It is encoded when its size is
// published (to count, into no buffer) and each time it is opened, always
// to the same bytes. A snapshot installed from the leader arrives as bytes;
// once the state machine has restored it, those bytes give way to a writer
// over the restored state (shed).
//
// It replaces hashicorp/raft's InmemSnapshotStore, which makes a snapshot
// visible the moment it is created: a leader could then send a follower a
// snapshot that was still being written (the race detector saw it), with a
// size that did not match the bytes sent, and the follower waited forever
// for the rest; a cancelled snapshot stayed the latest. Here a snapshot is
// published only when its sink is closed, its bytes never change after
// that, and Cancel discards it.
type snapshotStore struct {
	mu     sync.RWMutex
	latest *memSnapshot // nil until the first snapshot is complete
	// previous stays open-able: Raft may open a snapshot by the ID it just
	// listed while a newer one is published.
	previous *memSnapshot
}

type memSnapshot struct {
	meta  raft.SnapshotMeta
	data  []byte                // as received, or
	write func(io.Writer) error // writes the same bytes on every call
}

// open streams the snapshot.
func (m *memSnapshot) open() io.ReadCloser {
	if m.write == nil {
		return io.NopCloser(bytes.NewReader(m.data))
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(m.write(pw)) }() // ends when the reader closes
	return pr
}

// countingWriter counts bytes and keeps none.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

var _ raft.SnapshotStore = (*snapshotStore)(nil)

func newSnapshotStore() *snapshotStore { return &snapshotStore{} }

// Create starts a snapshot; it is invisible until the sink is closed.
func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("unsupported snapshot version %d", version)
	}
	return &snapshotSink{store: s, meta: raft.SnapshotMeta{
		Version:            version,
		ID:                 fmt.Sprintf("%d-%d", term, index),
		Index:              index,
		Term:               term,
		Configuration:      configuration,
		ConfigurationIndex: configurationIndex,
	}}, nil
}

// List returns the latest complete snapshot, if any.
func (s *snapshotStore) List() ([]*raft.SnapshotMeta, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.latest == nil {
		return []*raft.SnapshotMeta{}, nil
	}
	meta := s.latest.meta
	return []*raft.SnapshotMeta{&meta}, nil
}

// Open reads the latest snapshot, which must be the one named id.
func (s *snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, snap := range []*memSnapshot{s.latest, s.previous} {
		if snap != nil && snap.meta.ID == id {
			meta := snap.meta
			return &meta, snap.open(), nil
		}
	}
	return nil, nil, fmt.Errorf("open snapshot %s: not among the retained snapshots", id)
}

type snapshotSink struct {
	store *snapshotStore
	meta  raft.SnapshotMeta
	buf   bytes.Buffer
	done  bool
}

func (k *snapshotSink) Write(p []byte) (int, error) {
	if k.done {
		return 0, fmt.Errorf("snapshot %s: write after close", k.meta.ID)
	}
	return k.buf.Write(p)
}

// Close publishes the snapshot as the latest.
func (k *snapshotSink) Close() error {
	if k.done {
		return nil
	}
	k.done = true
	k.meta.Size = int64(k.buf.Len())
	k.store.publish(&memSnapshot{meta: k.meta, data: k.buf.Bytes()})
	return nil
}

// closeWith publishes the snapshot as a writer instead of the bytes written
// so far (there must be none).
func (k *snapshotSink) closeWith(write func(io.Writer) error) error {
	if k.done {
		return fmt.Errorf("snapshot %s: closed twice", k.meta.ID)
	}
	if k.buf.Len() > 0 {
		_ = k.Cancel()
		return fmt.Errorf("snapshot %s: both bytes and a writer", k.meta.ID)
	}
	var size countingWriter
	if err := write(&size); err != nil {
		_ = k.Cancel()
		return fmt.Errorf("snapshot %s: %w", k.meta.ID, err)
	}
	k.done = true
	k.meta.Size = size.n
	k.store.publish(&memSnapshot{meta: k.meta, write: write})
	return nil
}

// shed replaces the bytes of the latest snapshot, received from the leader,
// by write, once the state machine has restored it. index is the state
// machine's applied index in the snapshot's header, which can be below the
// snapshot's Raft index (entries the state machine never sees, such as
// no-ops, do not move it) but never above it.
func (s *snapshotStore) shed(index uint64, write func(io.Writer) error) {
	s.mu.RLock()
	target := s.latest
	received := target != nil && target.write == nil && index <= target.meta.Index
	s.mu.RUnlock()
	if !received {
		return // nothing received to shed: spare the encode that sizes it
	}
	var size countingWriter
	if err := write(&size); err != nil {
		return // keep the bytes
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == target && target.write == nil {
		// A reader already opened keeps the old bytes; later ones get the
		// new size with the new stream.
		target.data, target.write, target.meta.Size = nil, write, size.n
	}
}

func (s *snapshotStore) publish(snap *memSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A local snapshot can finish after a newer one was installed from the
	// leader: it must not replace it.
	if l := s.latest; l != nil && (l.meta.Term > snap.meta.Term ||
		(l.meta.Term == snap.meta.Term && l.meta.Index > snap.meta.Index)) {
		s.previous = snap
		return
	}
	s.previous, s.latest = s.latest, snap
}

func (k *snapshotSink) ID() string { return k.meta.ID }

// Cancel discards the snapshot; the previous one stays the latest.
func (k *snapshotSink) Cancel() error {
	k.done = true
	k.buf = bytes.Buffer{}
	return nil
}
