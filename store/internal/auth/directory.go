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

	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch"
)

// MaxEntryBytes bounds one users file (a ConfigMap holds at most 1 MiB).
const MaxEntryBytes = 1 << 20

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
	onReload func(users map[string]User, errs []error)
}

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
	r *filewatch.Reloader[[]entry, userSet]
}

// userSet is the users of one content of the directory and the errors of
// the files skipped.
type userSet struct {
	users map[string]User
	errs  []error
}

// OpenDirectory loads dir and then follows it as w says (the zero Config:
// it hashes the directory's content every filewatch.DefaultInterval, and
// also shortly after any filesystem event in dir; Kubernetes updates a
// volume by swapping a ..data symlink, so content, not file times, is
// compared). It fails only when dir cannot be read; malformed entries are
// logged on log and skipped. Close stops the watching.
func OpenDirectory(dir string, w filewatch.Config, log *slog.Logger, opts ...Option) (*Directory, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	log = log.With("dir", dir)
	src := filewatch.Source[[]entry, userSet]{
		What:  "users",
		Read:  func() ([]entry, string, error) { return readDir(dir) },
		Build: func(entries []entry) (*userSet, error) { return buildLogged(entries, log), nil },
		Log:   log,
		Describe: func(s *userSet) []any {
			return []any{"users", len(s.users), "invalid", len(s.errs)}
		},
	}
	if o.onReload != nil {
		src.OnReload = func(s *userSet) { o.onReload(s.users, s.errs) }
	}
	r, err := filewatch.Load(src)
	if err != nil {
		return nil, err
	}
	r.Watch([]string{dir}, w)
	return &Directory{r: r}, nil
}

// buildLogged builds the users of entries and logs what was skipped.
func buildLogged(entries []entry, log *slog.Logger) *userSet {
	users, errs, warnings := build(entries)
	for _, err := range errs {
		var ee *EntryError
		if errors.As(err, &ee) {
			log.Warn("users entry skipped", "file", ee.File, "err", ee.Err)
		}
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	if len(users) == 0 {
		log.Warn("no valid users: every client will be refused")
	}
	return &userSet{users: users, errs: errs}
}

// Lookup returns the user called name.
func (d *Directory) Lookup(name string) (User, bool) {
	u, ok := d.r.Value().users[name]
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
	return maps.Clone(d.r.Value().users)
}

// Errors returns the errors (*EntryError) of the files skipped in the
// current content.
func (d *Directory) Errors() []error {
	return append([]error(nil), d.r.Value().errs...)
}

// Reloads counts the changes of content applied since OpenDirectory.
func (d *Directory) Reloads() uint64 { return d.r.Reloads() }

// Close stops following the directory; the last users stay available.
func (d *Directory) Close() error {
	d.r.Close()
	return nil
}
