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
	meta raft.SnapshotMeta
	data []byte
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
			return &meta, io.NopCloser(bytes.NewReader(snap.data)), nil
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
	snap := &memSnapshot{meta: k.meta, data: k.buf.Bytes()}
	k.store.mu.Lock()
	defer k.store.mu.Unlock()
	// A local snapshot can finish after a newer one was installed from the
	// leader: it must not replace it.
	if l := k.store.latest; l != nil && (l.meta.Term > snap.meta.Term ||
		(l.meta.Term == snap.meta.Term && l.meta.Index > snap.meta.Index)) {
		k.store.previous = snap
		return nil
	}
	k.store.previous, k.store.latest = k.store.latest, snap
	return nil
}

func (k *snapshotSink) ID() string { return k.meta.ID }

// Cancel discards the snapshot; the previous one stays the latest.
func (k *snapshotSink) Cancel() error {
	k.done = true
	k.buf = bytes.Buffer{}
	return nil
}
