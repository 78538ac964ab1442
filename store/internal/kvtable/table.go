// Package kvtable holds the state machine's keys and values outside the Go
// heap: a hash table of records in memory mapped from the kernel, so the
// collector neither scans them nor lets the heap grow to a multiple of them
// (GOGC's headroom multiplied every byte of data while it was on the heap:
// 3 times the raw bytes resident at a million keys).
//
// A record is written once and never changed: a put writes a new record and
// lets the old one go. A record let go is reused only when no pinned view
// (a snapshot being kept or written) can still read it. Nothing here is
// written to a file: the memory is private and anonymous, like the heap's.
//
// A Table is not safe for concurrent use by itself: its owner serialises
// writes (Put, Delete) against everything else, and may run reads (Get,
// Range, Len, Pin) concurrently with each other. A Pinned view may be read
// from any goroutine without the owner's lock, for as long as it is
// reachable.
package kvtable

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Record layout: create, modify and expiry (int64 each), key length and
// value length (uint32 each), then the key and the value.
const headerSize = 32

// Records up to maxSmall bytes share 1 MiB chunks, by size class; larger
// ones each get a mapping of their own, returned to the kernel when let go.
const (
	chunkShift = 20
	chunkSize  = 1 << chunkShift
	maxSmall   = 256 << 10
	pageSize   = 4096
	numClasses = 64 + 8*8 // 16-byte steps to 1 KiB, then 8 per doubling to maxSmall
)

// A slot of the index: the occupied bit, 19 bits of the key's hash (most
// probes that miss end without reading a record) and the record's
// reference, its chunk (24 bits) and offset in it (20 bits).
const (
	refBits  = 44
	refMask  = 1<<refBits - 1
	occupied = 1 << 63
	minSlots = 1 << 10
)

var le = binary.LittleEndian

// heldTotal is the memory every table of the process (and every pinned
// view) holds.
var heldTotal atomic.Int64

// HeldBytes is the memory all tables of this process and their pinned
// views hold outside the Go heap: what they mapped, less the parts of
// chunks no record has been cut from yet (mapped but never written, so not
// resident). Records let go and not yet reused count. Go's soft memory
// limit does not count it; the server lowers the limit by it.
func HeldBytes() int64 { return heldTotal.Load() }

// Meta is what a record holds besides its key and value.
type Meta struct {
	Create, Modify, ExpireAt int64
}

// Entry is a view of one record. Its slices point into the table: they stay
// valid only until the owner's next write (or, from a Pinned view, while the
// view is reachable). Copy what must outlive that.
type Entry struct{ b []byte }

// Key is the record's key.
func (e Entry) Key() []byte {
	kl := int(le.Uint32(e.b[24:]))
	return e.b[headerSize : headerSize+kl : headerSize+kl]
}

// Value is the record's value.
func (e Entry) Value() []byte {
	kl := int(le.Uint32(e.b[24:]))
	return e.b[headerSize+kl:]
}

// Meta is the record's revisions and expiry.
func (e Entry) Meta() Meta {
	return Meta{Create: int64(le.Uint64(e.b)), Modify: int64(le.Uint64(e.b[8:])), ExpireAt: int64(le.Uint64(e.b[16:]))}
}

// Table is the hash table. The zero value is not usable; call New.
type Table struct {
	seed  maphash.Seed
	mem   *memory
	mask  uint64
	count int
	// classes are the allocator's size classes; freeChunks the chunk
	// numbers of large records let go, for reuse.
	classes    [numClasses]class
	freeChunks []uint64

	// mu guards what a pin's cleanup shares with the owner's writes.
	mu sync.Mutex
	// epoch counts pins taken; a record let go while pins are held waits
	// in limbo, tagged with the epoch of the newest pin that can see it.
	epoch    uint64
	pins     map[uint64]struct{}
	unpinned bool // a pin went since limbo was last drained
	limbo    []limboEntry
	retired  bool
	// born holds the records written since the newest pin was taken,
	// while pins exist: no pin can see them, so letting one go frees it at
	// once instead of waiting in limbo (a key rewritten a thousand times
	// between two snapshots holds one record, not a thousand).
	born map[uint64]struct{}
}

// memory is every mapping a table holds. It is apart from Table so that a
// table dropped without Retire still returns its memory: a cleanup on the
// table unmaps it once nothing (no pinned view either) reaches the table.
type memory struct {
	chunks   [][]byte
	slots    []uint64
	slotsMap []byte
	held     atomic.Int64 // see HeldBytes
	unmapped bool
}

// hold counts n bytes more (or fewer) held.
func (m *memory) hold(n int64) {
	m.held.Add(n)
	heldTotal.Add(n)
}

type class struct {
	free  uint64 // reference+1 of the first record let go; 0: none
	chunk uint64 // the chunk records are cut from next
	off   int    // where, in it; chunkSize: no chunk yet or it is full
}

type limboEntry struct{ ref, epoch uint64 }

// New returns an empty table.
func New() *Table {
	t := &Table{seed: maphash.MakeSeed(), mem: &memory{}, pins: map[uint64]struct{}{}, born: map[uint64]struct{}{}}
	for i := range t.classes {
		t.classes[i].off = chunkSize
	}
	t.newSlots(minSlots)
	runtime.AddCleanup(t, func(m *memory) { m.unmapAll() }, t.mem)
	return t
}

// Len is the number of keys.
func (t *Table) Len() int { return t.count }

// Held is the memory this table holds outside the Go heap (as HeldBytes,
// without its pinned views).
func (t *Table) Held() int64 { return t.mem.held.Load() }

// Get returns the record of key.
func (t *Table) Get(key string) (Entry, bool) {
	i, ok := t.find(key, t.hash(key))
	if !ok {
		return Entry{}, false
	}
	return Entry{t.record(t.mem.slots[i] & refMask)}, true
}

// Range calls fn for every record, in no particular order, until it
// returns false. fn must not write to the table.
func (t *Table) Range(fn func(Entry) bool) {
	for _, s := range t.mem.slots {
		if s != 0 && !fn(Entry{t.record(s & refMask)}) {
			return
		}
	}
}

// Put stores key with value and meta, replacing the key's record if it has
// one. value may be a view of the key's current record.
func (t *Table) Put(key string, value []byte, m Meta) {
	pinned := t.drain()
	n := headerSize + len(key) + len(value)
	if len(key) > math.MaxUint32 || len(value) > math.MaxUint32 {
		panic("kvtable: key or value above 4 GiB")
	}
	ref := t.alloc(n)
	if pinned {
		t.mu.Lock()
		t.born[ref] = struct{}{}
		t.mu.Unlock()
	}
	b := t.at(ref)[:n]
	le.PutUint64(b, uint64(m.Create))
	le.PutUint64(b[8:], uint64(m.Modify))
	le.PutUint64(b[16:], uint64(m.ExpireAt))
	le.PutUint32(b[24:], uint32(len(key)))
	le.PutUint32(b[28:], uint32(len(value)))
	copy(b[headerSize:], key)
	copy(b[headerSize+len(key):], value)

	h := t.hash(key)
	i, found := t.find(key, h)
	slot := occupied | (h>>(64-(63-refBits)))<<refBits | ref
	if found {
		old := t.mem.slots[i] & refMask
		t.mem.slots[i] = slot
		t.release(old)
		return
	}
	t.mem.slots[i] = slot
	t.count++
	if t.count*4 > len(t.mem.slots)*3 {
		t.grow()
	}
}

// Delete removes key and reports whether it was there.
func (t *Table) Delete(key string) bool {
	t.drain()
	i, found := t.find(key, t.hash(key))
	if !found {
		return false
	}
	ref := t.mem.slots[i] & refMask
	t.removeSlot(i)
	t.count--
	t.release(ref)
	return true
}

// Retire returns the table's memory to the kernel once no pinned view needs
// it. The table must not be used after.
func (t *Table) Retire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.retired = true
	if len(t.pins) == 0 {
		t.mem.unmapAll()
	}
}

// Pinned is every record of a table at one instant, readable without the
// owner's lock and while the owner writes on: the records it names are not
// reused until it is unreachable (a cleanup lets them go).
type Pinned struct {
	t      *Table
	refs   []uint64
	chunks [][]byte
}

type pinKey struct {
	t       *Table
	epoch   uint64
	refsMap []byte
}

// Pin captures every record. It costs 8 bytes per key, held outside the
// heap too (HeldBytes counts them), so that a snapshot neither counts
// against GOGC's pacing nor makes the heap jump by the key count.
func (t *Table) Pin() *Pinned {
	refsMap := mapAnon(max(t.count, 1) * 8)
	heldTotal.Add(int64(len(refsMap)))
	refs := unsafeUint64s(refsMap)[:0]
	for _, s := range t.mem.slots {
		if s != 0 {
			refs = append(refs, s&refMask)
		}
	}
	p := &Pinned{t: t, refs: refs, chunks: slices.Clone(t.mem.chunks)}
	t.mu.Lock()
	t.epoch++
	epoch := t.epoch
	t.pins[epoch] = struct{}{}
	// Every record is now visible to this pin.
	t.born = map[uint64]struct{}{}
	t.mu.Unlock()
	runtime.AddCleanup(p, func(k pinKey) {
		unmap(k.refsMap)
		heldTotal.Add(-int64(len(k.refsMap)))
		k.t.unpin(k.epoch)
	}, pinKey{t, epoch, refsMap})
	return p
}

// Len is the number of records pinned.
func (p *Pinned) Len() int { return len(p.refs) }

// Each calls fn for every pinned record, in the same order on every call,
// until fn returns an error.
func (p *Pinned) Each(fn func(Entry) error) error {
	for _, ref := range p.refs {
		if err := fn(Entry{recordIn(p.chunks, ref)}); err != nil {
			runtime.KeepAlive(p)
			return err
		}
	}
	// p must stay reachable until its last record is read: its cleanup
	// lets the records be reused.
	runtime.KeepAlive(p)
	return nil
}

func (t *Table) unpin(epoch uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.pins, epoch)
	t.unpinned = true
	if t.retired && len(t.pins) == 0 {
		t.mem.unmapAll()
	}
}

// release lets a record go: at once when no pin can see it (nothing is
// pinned, or it was written after the newest pin), else into limbo until
// every pin that can see it is gone.
func (t *Table) release(ref uint64) {
	t.mu.Lock()
	_, unseen := t.born[ref]
	delete(t.born, ref)
	if len(t.pins) > 0 && !unseen {
		t.limbo = append(t.limbo, limboEntry{ref: ref, epoch: t.epoch})
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.free(ref)
}

// drain frees the records in limbo that no remaining pin can see: those let
// go before the oldest remaining pin was taken. It reports whether pins
// remain.
func (t *Table) drain() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pins) == 0 && len(t.born) > 0 {
		t.born = map[uint64]struct{}{}
	}
	if !t.unpinned {
		return len(t.pins) > 0
	}
	t.unpinned = false
	oldest := uint64(math.MaxUint64)
	for e := range t.pins {
		oldest = min(oldest, e)
	}
	keep := t.limbo[:0]
	for _, l := range t.limbo {
		if l.epoch < oldest {
			t.free(l.ref)
		} else {
			keep = append(keep, l)
		}
	}
	t.limbo = keep
	return len(t.pins) > 0
}

func (t *Table) hash(key string) uint64 { return maphash.String(t.seed, key) }

// find returns the slot holding key, or the empty slot where it belongs.
func (t *Table) find(key string, h uint64) (uint64, bool) {
	want := occupied | (h>>(64-(63-refBits)))<<refBits
	slots := t.mem.slots
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := slots[i]
		if s == 0 {
			return i, false
		}
		if s&^refMask == want && string(Entry{t.record(s & refMask)}.Key()) == key {
			return i, true
		}
	}
}

// home is the slot a record's key hashes to.
func (t *Table) home(ref uint64) uint64 {
	return maphash.Bytes(t.seed, Entry{t.record(ref)}.Key()) & t.mask
}

// removeSlot empties slot i and moves back the entries after it that its
// emptiness would hide from their probes (linear probing's deletion
// without tombstones).
func (t *Table) removeSlot(i uint64) {
	slots := t.mem.slots
	for j := i; ; {
		j = (j + 1) & t.mask
		s := slots[j]
		if s == 0 {
			break
		}
		k := t.home(s & refMask)
		// s stays when its home lies cyclically in (i, j].
		stays := (i < j && i < k && k <= j) || (j < i && (i < k || k <= j))
		if !stays {
			slots[i] = s
			i = j
		}
	}
	slots[i] = 0
}

func (t *Table) newSlots(n int) {
	m := mapAnon(n * 8)
	t.mem.slotsMap = m
	t.mem.slots = unsafeUint64s(m)
	t.mem.hold(int64(len(m)))
	t.mask = uint64(n - 1)
}

// grow doubles the index.
func (t *Table) grow() {
	oldMap, old := t.mem.slotsMap, t.mem.slots
	t.newSlots(len(old) * 2)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := t.home(s & refMask)
		for t.mem.slots[i] != 0 {
			i = (i + 1) & t.mask
		}
		t.mem.slots[i] = s
	}
	unmap(oldMap)
	t.mem.hold(-int64(len(oldMap)))
}

// classOf is the size class of a record of n bytes and the bytes it takes.
func classOf(n int) (int, int) {
	if n <= 1024 {
		c := (n + 15) / 16
		return c - 1, c * 16
	}
	p := bits.Len(uint(n - 1)) // 2^(p-1) < n <= 2^p
	base := 1 << (p - 1)
	step := base / 8
	k := (n - base + step - 1) / step
	return 64 + (p-11)*8 + k - 1, base + k*step
}

func (t *Table) alloc(n int) uint64 {
	if n > maxSmall {
		size := (n + pageSize - 1) / pageSize * pageSize
		t.mem.hold(int64(size))
		return t.newChunk(size) << chunkShift
	}
	c, size := classOf(n)
	cl := &t.classes[c]
	if cl.free != 0 {
		ref := cl.free - 1
		cl.free = le.Uint64(t.at(ref))
		return ref
	}
	if cl.off+size > chunkSize {
		cl.chunk, cl.off = t.newChunk(chunkSize), 0
	}
	ref := cl.chunk<<chunkShift | uint64(cl.off)
	cl.off += size
	t.mem.hold(int64(size))
	return ref
}

func (t *Table) free(ref uint64) {
	rec := t.record(ref)
	if len(rec) > maxSmall {
		n := ref >> chunkShift
		m := t.mem.chunks[n]
		unmap(m)
		t.mem.hold(-int64(len(m)))
		t.mem.chunks[n] = nil
		t.freeChunks = append(t.freeChunks, n)
		return
	}
	c, _ := classOf(len(rec))
	le.PutUint64(rec, t.classes[c].free)
	t.classes[c].free = ref + 1
}

func (t *Table) newChunk(size int) uint64 {
	m := mapAnon(size)
	if k := len(t.freeChunks); k > 0 {
		n := t.freeChunks[k-1]
		t.freeChunks = t.freeChunks[:k-1]
		t.mem.chunks[n] = m
		return n
	}
	if uint64(len(t.mem.chunks)) >= 1<<(refBits-chunkShift) {
		panic("kvtable: out of chunk numbers")
	}
	t.mem.chunks = append(t.mem.chunks, m)
	return uint64(len(t.mem.chunks) - 1)
}

// at is the memory from ref to its chunk's end.
func (t *Table) at(ref uint64) []byte {
	return t.mem.chunks[ref>>chunkShift][ref&(chunkSize-1):]
}

func (t *Table) record(ref uint64) []byte { return recordIn(t.mem.chunks, ref) }

// recordIn is the record ref names, exactly its length.
func recordIn(chunks [][]byte, ref uint64) []byte {
	b := chunks[ref>>chunkShift][ref&(chunkSize-1):]
	n := headerSize + int(le.Uint32(b[24:])) + int(le.Uint32(b[28:]))
	return b[:n:n]
}

func (m *memory) unmapAll() {
	if m.unmapped {
		return
	}
	m.unmapped = true
	for i, c := range m.chunks {
		if c != nil {
			unmap(c)
			m.chunks[i] = nil
		}
	}
	unmap(m.slotsMap)
	m.slotsMap, m.slots = nil, nil
	m.hold(-m.held.Load())
}
