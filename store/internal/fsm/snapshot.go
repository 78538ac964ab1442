package fsm

import (
	"encoding/gob"
	"fmt"
	"io"
)

// snapshotV1 is the serialized form of the state. Only the map and the
// revision travel: history is local, and a restored replica tells watchers
// that older revisions are gone.
type snapshotV1 struct {
	Revision int64
	Items    []KeyValue
}

// snapshotView is what a snapshot holds until it is written: pointers to
// the key versions of one instant. Gob flattens pointers, so it encodes
// exactly as snapshotV1 does.
type snapshotView struct {
	Revision int64
	Items    []*KeyValue
}

// Snapshot captures the state at this instant. The returned function writes
// it, as often as it is called, always the same bytes; it may run
// concurrently with Apply because a KeyValue is never changed once stored
// (Apply replaces it). The capture costs a pointer per key and shares the
// keys and values with the live map, so a retained snapshot is not a second
// copy of the data.
func (s *State) Snapshot() func(io.Writer) error {
	s.mu.RLock()
	snap := snapshotView{Revision: s.revision, Items: make([]*KeyValue, 0, len(s.kv))}
	for _, kv := range s.kv {
		snap.Items = append(snap.Items, kv)
	}
	s.mu.RUnlock()
	return func(w io.Writer) error {
		if err := gob.NewEncoder(w).Encode(&snap); err != nil {
			return fmt.Errorf("encode snapshot: %w", err)
		}
		return nil
	}
}

// Restore replaces the whole state with a snapshot's.
func (s *State) Restore(r io.Reader) error {
	var snap snapshotV1
	if err := gob.NewDecoder(r).Decode(&snap); err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	kv := make(map[string]*KeyValue, len(snap.Items))
	expiring := make(map[string]int64)
	var bytes int64
	for i := range snap.Items {
		item := &snap.Items[i]
		kv[item.Key] = item
		bytes += item.size()
		if item.ExpireAt != 0 {
			expiring[item.Key] = item.ExpireAt
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv, s.expiring, s.revision, s.bytes = kv, expiring, snap.Revision, bytes
	s.hub.reset(snap.Revision)
	return nil
}
