package filewatch

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
)

// Source says how a Reloader reads its files and builds its value from
// what it read. C is the content read (the files' bytes, a directory's
// entries), T the value built from it.
type Source[C, T any] struct {
	// What names the value in log messages: "certificate", "CA bundle",
	// "users".
	What string
	// Read reads the content and a hash identifying it; ReadFiles does
	// both for a list of files. An error means the content could not be
	// read: the previous value stays.
	Read func() (content C, hash string, err error)
	// Build makes the value of content whose hash differs from the
	// current one. An error refuses that content: the previous value
	// stays.
	Build func(C) (*T, error)
	// Log receives what happens: the first load and every reload (Info),
	// refused or unreadable content (Warn, once per distinct content or
	// error). Give it the attributes that name the files, e.g.
	// log.With("files", files). Nil discards.
	Log *slog.Logger
	// Describe, if set, adds attributes describing a value to the load
	// and reload messages ("users", 3).
	Describe func(*T) []any
	// OnReload, if set, is called after each reload (not after the first
	// load) with the new value, from the goroutine that checked. It must
	// not block.
	OnReload func(*T)
}

// Reloader holds the value built from a Source and keeps it current: Check
// reads the content again and, when its hash changed and it builds, swaps
// in the new value. Value is safe for concurrent use with Check and with
// itself; checks are serialised.
type Reloader[C, T any] struct {
	src Source[C, T]
	log *slog.Logger

	cur     atomic.Pointer[T]
	reloads atomic.Uint64

	mu      sync.Mutex // serialises check
	hash    string     // hash of the content cur was built from
	failure string     // what the last failure logged was about: logged once
	watcher *Watcher
}

// Load reads and builds src once; its error is Read's or Build's, unwrapped.
// The Reloader then changes only when Check is called: see Watch.
func Load[C, T any](src Source[C, T]) (*Reloader[C, T], error) {
	r := &Reloader[C, T]{src: src, log: src.Log}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	content, hash, err := src.Read()
	if err != nil {
		return nil, err
	}
	v, err := src.Build(content)
	if err != nil {
		return nil, err
	}
	r.cur.Store(v)
	r.hash = hash
	r.log.Info("loaded "+src.What, r.describe(v)...)
	return r, nil
}

// Fixed is a Reloader of a value that never changes (material given in
// memory rather than in files): Check does nothing.
func Fixed[C, T any](v *T) *Reloader[C, T] {
	r := &Reloader[C, T]{}
	r.cur.Store(v)
	return r
}

// Watch calls Check every cfg.Interval and shortly after filesystem events
// in dirs (see Start), until Close. Call it once, after Load.
func (r *Reloader[C, T]) Watch(dirs []string, cfg Config) {
	r.watcher = Start(dirs, cfg, r.log, r.Check)
}

// Value is the current value, never nil.
func (r *Reloader[C, T]) Value() *T { return r.cur.Load() }

// Reloads counts the values swapped in since Load.
func (r *Reloader[C, T]) Reloads() uint64 { return r.reloads.Load() }

// Check reads the content and swaps in its value when it changed and
// builds. A failure keeps the current value and is logged once per
// distinct content (refused) or error (unreadable); content that reads
// as the current one again clears it.
func (r *Reloader[C, T]) Check() {
	if r.src.Read == nil {
		return // Fixed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	content, hash, err := r.src.Read()
	switch {
	case err != nil:
		r.failed(err.Error(), err)
		return
	case hash == r.hash:
		r.failure = ""
		return
	}
	v, err := r.src.Build(content)
	if err != nil {
		r.failed(hash, err)
		return
	}
	r.cur.Store(v)
	r.hash, r.failure = hash, ""
	n := r.reloads.Load() + 1 // only this method, under r.mu, moves it
	r.log.Info("reloaded "+r.src.What, append(r.describe(v), "reloads", n)...)
	if r.src.OnReload != nil {
		r.src.OnReload(v)
	}
	// The counter moves last: a caller that waits for Reloads to move (a
	// test, or code that then reads what OnReload keeps) must find the
	// reload done, log line included. The CA pool's grace bookkeeping,
	// stamped after the counter had moved, once gave a removed CA a grace
	// period that started too late.
	r.reloads.Store(n)
}

func (r *Reloader[C, T]) failed(key string, err error) {
	if r.failure == key {
		return
	}
	r.failure = key
	r.log.Warn("reloading "+r.src.What+" failed; keeping the previous one", "err", err)
}

func (r *Reloader[C, T]) describe(v *T) []any {
	if r.src.Describe == nil {
		return nil
	}
	return r.src.Describe(v)
}

// Close stops the watching, if any, and waits for a running check; the
// last value stays available. It is safe to call more than once.
func (r *Reloader[C, T]) Close() {
	if r.watcher != nil {
		r.watcher.Close()
	}
}

// ReadFiles reads files, in order, and hashes their content. Each file's
// length is hashed before its bytes, so that bytes moving from one file to
// the next change the hash.
func ReadFiles(files ...string) ([][]byte, string, error) {
	h := sha256.New()
	contents := make([][]byte, len(files))
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, "", fmt.Errorf("read %s: %w", f, err)
		}
		contents[i] = data
		_ = binary.Write(h, binary.BigEndian, uint64(len(data)))
		h.Write(data)
	}
	return contents, hex.EncodeToString(h.Sum(nil)), nil
}

// ParentDirs are the directories to watch for files: each one's parent,
// made absolute, without repeats.
func ParentDirs(files ...string) []string {
	var dirs []string
	for _, f := range files {
		d := filepath.Dir(f)
		if abs, err := filepath.Abs(d); err == nil {
			d = abs
		}
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}
