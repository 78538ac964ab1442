package auth

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch"
)

// MaxEntryBytes bounds one users file (a ConfigMap holds at most 1 MiB).
const MaxEntryBytes = 1 << 20

// DefaultReloadInterval is the poll period of a Directory given a zero
// interval.
const DefaultReloadInterval = 5 * time.Second

// EntryError says why one file of the users directory was skipped.
type EntryError struct {
	File string // the file's name in the directory
	Err  error
}

func (e *EntryError) Error() string { return "users entry " + e.File + ": " + e.Err.Error() }

func (e *EntryError) Unwrap() error { return e.Err }

// entry is one visible file of the directory, read.
type entry struct {
	name string
	data []byte
	err  error // unreadable or too large
}

// readDir reads every visible regular file of dir in name order and hashes
// what it read. Names starting with "." are skipped: Kubernetes keeps the
// real files in ..data and ..<timestamp> directories and shows each key as
// a symlink, which is followed. A symlink that leads nowhere (a key being
// removed by kubelet) is skipped. Only an unreadable dir is an error.
func readDir(dir string) ([]entry, string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, "", fmt.Errorf("users directory: %w", err)
	}
	h := sha256.New()
	var entries []entry
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		e := entry{name: name}
		e.data, e.err = readEntry(filepath.Join(dir, name))
		if errors.Is(e.err, errSkip) {
			continue
		}
		entries = append(entries, e)
		_ = binary.Write(h, binary.BigEndian, uint64(len(name)))
		h.Write([]byte(name))
		if e.err != nil {
			h.Write([]byte{1})
			h.Write([]byte(e.err.Error()))
		} else {
			h.Write([]byte{0})
			_ = binary.Write(h, binary.BigEndian, uint64(len(e.data)))
			h.Write(e.data)
		}
	}
	return entries, hex.EncodeToString(h.Sum(nil)), nil
}

// errSkip marks a name that is not a user file: a directory, a device, a
// dangling symlink.
var errSkip = errors.New("not a regular file")

func readEntry(path string) ([]byte, error) {
	// Stat before opening: opening a named pipe would block.
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errSkip
	}
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errSkip
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errSkip
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxEntryBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxEntryBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxEntryBytes)
	}
	return data, nil
}

// build parses entries into users. Errors (one *EntryError per skipped
// file) and warnings (ignored keys) are in file name order.
func build(entries []entry) (map[string]User, []error, []string) {
	users := make(map[string]User, len(entries))
	from := make(map[string]string, len(entries))
	var errs []error
	var warnings []string
	for _, e := range entries {
		if e.err != nil {
			errs = append(errs, &EntryError{File: e.name, Err: e.err})
			continue
		}
		u, unknown, err := parseUser(e.data)
		if err != nil {
			errs = append(errs, &EntryError{File: e.name, Err: err})
			continue
		}
		if first, dup := from[u.Name]; dup {
			errs = append(errs, &EntryError{File: e.name, Err: fmt.Errorf("%w: user %q is already defined in %s", ErrInvalidUser, u.Name, first)})
			continue
		}
		for _, k := range unknown {
			warnings = append(warnings, fmt.Sprintf("users entry %s: unknown key %q ignored", e.name, k))
		}
		users[u.Name] = u
		from[u.Name] = e.name
	}
	return users, errs, warnings
}

// LoadDir loads every user of a users directory: one user per visible
// regular file (see Directory). A file that does not parse, or names a
// user an earlier file (in name order) already defined, yields an
// *EntryError and is skipped; the other users are returned. When dir
// itself cannot be read, the map is nil and the one error says why.
func LoadDir(dir string) (map[string]User, []error) {
	entries, _, err := readDir(dir)
	if err != nil {
		return nil, []error{err}
	}
	users, errs, _ := build(entries)
	return users, errs
}

// Option adjusts a Directory.
type Option func(*options)

type options struct {
	events, polling bool
	onReload        func(users map[string]User, errs []error)
}

// WithoutEvents turns off filesystem events: changes are seen by polling
// only.
func WithoutEvents() Option { return func(o *options) { o.events = false } }

// WithoutPolling turns off polling: changes are seen by filesystem events
// only. Meant for tests; production wants both.
func WithoutPolling() Option { return func(o *options) { o.polling = false } }

// WithOnReload calls f after each reload (a change of content, not the
// initial load) with the new users and the errors of the skipped files,
// from the Directory's goroutine. f must neither block nor modify users.
func WithOnReload(f func(users map[string]User, errs []error)) Option {
	return func(o *options) { o.onReload = f }
}

// Directory is the live set of users of a users directory (the users
// ConfigMap mounted as a volume, never with subPath, which Kubernetes never
// updates). It is safe for concurrent use.
//
// The set always reflects the directory's current content, as LoadDir
// reads it: a malformed file is skipped (its user is absent, exactly as on
// a fresh start, so that every pod agrees) and logged once per change; the
// valid files stay in force. Only when the directory cannot be read at all
// does the previous set stay, with a warning.
type Directory struct {
	dir      string
	log      *slog.Logger
	onReload func(map[string]User, []error)

	users   atomic.Pointer[map[string]User]
	errs    atomic.Pointer[[]error]
	reloads atomic.Uint64

	mu      sync.Mutex // serializes check
	hash    string
	failure string
	watcher *filewatch.Watcher
}

// OpenDirectory loads dir and then follows it: every interval (zero:
// DefaultReloadInterval) it hashes the directory's content, and it also
// checks shortly after any filesystem event in dir (Kubernetes updates a
// volume by swapping a ..data symlink, so content, not file times, is
// compared). It fails only when dir cannot be read; malformed entries are
// logged on log and skipped. Close stops the watching.
func OpenDirectory(dir string, interval time.Duration, log *slog.Logger, opts ...Option) (*Directory, error) {
	o := options{events: true, polling: true}
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	d := &Directory{dir: dir, log: log, onReload: o.onReload}
	entries, hash, err := readDir(dir)
	if err != nil {
		return nil, err
	}
	d.apply(entries, hash)
	d.log.Info("users loaded", "dir", dir, "users", len(*d.users.Load()), "invalid", len(*d.errs.Load()))

	if interval == 0 {
		interval = DefaultReloadInterval
	}
	if !o.polling {
		interval = 0
	}
	d.watcher = filewatch.Start(filewatch.Config{Dirs: []string{dir}, Interval: interval, Events: o.events, Logger: log}, d.check)
	return d, nil
}

// apply installs the users of entries and logs what was skipped.
func (d *Directory) apply(entries []entry, hash string) ([]error, map[string]User) {
	users, errs, warnings := build(entries)
	for _, err := range errs {
		var ee *EntryError
		if errors.As(err, &ee) {
			d.log.Warn("users entry skipped", "dir", d.dir, "file", ee.File, "err", ee.Err)
		}
	}
	for _, w := range warnings {
		d.log.Warn(w, "dir", d.dir)
	}
	if len(users) == 0 {
		d.log.Warn("no valid users: every client will be refused", "dir", d.dir)
	}
	d.users.Store(&users)
	d.errs.Store(&errs)
	d.hash = hash
	return errs, users
}

func (d *Directory) check() {
	d.mu.Lock()
	defer d.mu.Unlock()
	entries, hash, err := readDir(d.dir)
	if err != nil {
		if d.failure != err.Error() {
			d.failure = err.Error()
			d.log.Warn("users directory unreadable; keeping the previous users", "dir", d.dir, "err", err)
		}
		return
	}
	d.failure = ""
	if hash == d.hash {
		return
	}
	errs, users := d.apply(entries, hash)
	n := d.reloads.Add(1)
	d.log.Info("users reloaded", "dir", d.dir, "users", len(users), "invalid", len(errs), "reloads", n)
	if d.onReload != nil {
		d.onReload(users, errs)
	}
}

// Lookup returns the user called name.
func (d *Directory) Lookup(name string) (User, bool) {
	u, ok := (*d.users.Load())[name]
	return u, ok
}

// Authenticate returns the user called name, or an error wrapping
// ErrUnknownUser.
func (d *Directory) Authenticate(name string) (User, error) {
	u, ok := d.Lookup(name)
	if !ok {
		return User{}, fmt.Errorf("%w: %q", ErrUnknownUser, name)
	}
	return u, nil
}

// Users returns a copy of the current users by name.
func (d *Directory) Users() map[string]User {
	return maps.Clone(*d.users.Load())
}

// Errors returns the errors (*EntryError) of the files skipped in the
// current content.
func (d *Directory) Errors() []error {
	return append([]error(nil), *d.errs.Load()...)
}

// Reloads counts the changes of content applied since OpenDirectory.
func (d *Directory) Reloads() uint64 { return d.reloads.Load() }

// Close stops following the directory; the last users stay available.
func (d *Directory) Close() error {
	d.watcher.Close()
	return nil
}
