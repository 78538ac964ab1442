package filewatch

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch/filewatchtest"
)

// joined is the value of the test source: the files' contents joined by
// "+". Content containing "bad" does not build.
type joined struct{ s string }

var errBad = errors.New("bad content")

func joinedSource(log *slog.Logger, files ...string) Source[[][]byte, joined] {
	return Source[[][]byte, joined]{
		What: "pair",
		Read: func() ([][]byte, string, error) { return ReadFiles(files...) },
		Build: func(c [][]byte) (*joined, error) {
			parts := make([]string, len(c))
			for i, b := range c {
				parts[i] = string(b)
			}
			s := strings.Join(parts, "+")
			if strings.Contains(s, "bad") {
				return nil, errBad
			}
			return &joined{s}, nil
		},
		Log:      log,
		Describe: func(v *joined) []any { return []any{"value", v.s} },
	}
}

// A writer changes files in a directory the way something outside the
// process does.
type writer struct {
	name string
	// start writes the first content into dir and returns the function
	// that writes every later one.
	start func(t *testing.T, dir string, files map[string][]byte) func(map[string][]byte)
}

var writers = []writer{
	{"in place", func(t *testing.T, dir string, files map[string][]byte) func(map[string][]byte) {
		write := func(files map[string][]byte) {
			for name, data := range files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
			}
		}
		write(files)
		return write
	}},
	{"rename over", func(t *testing.T, dir string, files map[string][]byte) func(map[string][]byte) {
		// What editors and atomic writers do: a new inode renamed over
		// the old name.
		write := func(files map[string][]byte) {
			for name, data := range files {
				tmp := filepath.Join(dir, "."+name+".tmp")
				require.NoError(t, os.WriteFile(tmp, data, 0o644))
				require.NoError(t, os.Rename(tmp, filepath.Join(dir, name)))
			}
		}
		write(files)
		return write
	}},
	{"kubernetes ..data symlink swap", func(t *testing.T, dir string, files map[string][]byte) func(map[string][]byte) {
		return filewatchtest.NewAtomicDir(t, dir, files).Update
	}},
}

var watchModes = []struct {
	name string
	cfg  Config
}{
	{"polling only", Config{Interval: poll, NoEvents: true}},
	{"events only", Config{Interval: -1}},
	{"polling and events", Config{Interval: poll}},
}

func TestReloaderFollowsChanges(t *testing.T) {
	for _, w := range writers {
		for _, m := range watchModes {
			t.Run(w.name+", "+m.name, func(t *testing.T) {
				dir := t.TempDir()
				write := w.start(t, dir, map[string][]byte{"a": []byte("a1"), "b": []byte("b1")})
				log, logs := filewatchtest.NewLog(slog.LevelInfo)
				src := joinedSource(log, filepath.Join(dir, "a"), filepath.Join(dir, "b"))
				var hooked atomic.Pointer[joined]
				src.OnReload = func(v *joined) { hooked.Store(v) }
				r, err := Load(src)
				require.NoError(t, err)
				r.Watch(ParentDirs(filepath.Join(dir, "a"), filepath.Join(dir, "b")), m.cfg)
				t.Cleanup(r.Close)
				assert.Equal(t, "a1+b1", r.Value().s)
				assert.Equal(t, 1, logs.Count(`msg="loaded pair" value=a1+b1`), "log:\n%s", logs)

				write(map[string][]byte{"a": []byte("a2"), "b": []byte("b2")})
				require.EventuallyWithT(t, func(c *assert.CollectT) {
					assert.Equal(c, "a2+b2", r.Value().s)
					assert.EqualValues(c, 1, r.Reloads())
					if v := hooked.Load(); assert.NotNil(c, v, "OnReload not called") {
						assert.Equal(c, "a2+b2", v.s)
					}
				}, waitFor, tick, "log:\n%s", logs)
				assert.Equal(t, 1, logs.Count(`msg="reloaded pair" value=a2+b2 reloads=1`), "log:\n%s", logs)
			})
		}
	}
}

// TestReloaderKeepsTheLastGoodValue feeds content that does not build and
// files that cannot be read: the last good value stays, each distinct
// failure is logged once, and the next good content is taken.
func TestReloaderKeepsTheLastGoodValue(t *testing.T) {
	dir := t.TempDir()
	a := filewatchtest.NewAtomicDir(t, dir, map[string][]byte{"a": []byte("a1"), "b": []byte("b1")})
	log, logs := filewatchtest.NewLog(slog.LevelInfo)
	r, err := Load(joinedSource(log, filepath.Join(dir, "a"), filepath.Join(dir, "b")))
	require.NoError(t, err)
	r.Watch([]string{dir}, Config{Interval: poll})
	defer r.Close()
	const failed = "reloading pair failed; keeping the previous one"

	steps := []struct {
		name  string
		files map[string][]byte
		err   string
	}{
		{"does not build", map[string][]byte{"a": []byte("bad"), "b": []byte("b1")}, "bad content"},
		{"another content that does not build", map[string][]byte{"a": []byte("a1"), "b": []byte("bad")}, "bad content"},
		{"a file missing", map[string][]byte{"a": []byte("a1")}, "no such file or directory"},
	}
	for i, s := range steps {
		a.Update(s.files)
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			assert.Equal(c, i+1, logs.Count(failed), "%s: log:\n%s", s.name, logs)
		}, waitFor, tick)
		assert.Contains(t, logs.String(), s.err)
		assert.Equal(t, "a1+b1", r.Value().s, s.name)
		assert.Zero(t, r.Reloads(), s.name)
	}
	a.Update(map[string][]byte{"a": []byte("a3"), "b": []byte("b3")})
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, "a3+b3", r.Value().s)
	}, waitFor, tick, "log:\n%s", logs)
	assert.Equal(t, len(steps), logs.Count(failed), "each failure logged once, not at every poll:\n%s", logs)
	assert.EqualValues(t, 1, r.Reloads())
}

// An owner without a goroutine (the Go client) calls Check where it uses
// the value: nothing changes in between.
func TestReloaderWithoutWatchChangesOnlyOnCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(file, []byte("one"), 0o644))
	r, err := Load(joinedSource(nil, file))
	require.NoError(t, err)
	defer r.Close() // no watcher: a no-op

	require.NoError(t, os.WriteFile(file, []byte("two"), 0o644))
	assert.Equal(t, "one", r.Value().s)
	r.Check()
	assert.Equal(t, "two", r.Value().s)
	r.Check()
	assert.EqualValues(t, 1, r.Reloads(), "the same content again is no reload")

	require.NoError(t, os.WriteFile(file, []byte("bad"), 0o644))
	r.Check()
	assert.Equal(t, "two", r.Value().s)
}

func TestLoadReturnsTheErrorUnwrapped(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("bad"), 0o644))

	_, err := Load(joinedSource(nil, bad))
	assert.Same(t, errBad, err)
	_, err = Load(joinedSource(nil, filepath.Join(dir, "missing")))
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, filepath.Join(dir, "missing"), "names the file")
}

func TestFixedNeverChanges(t *testing.T) {
	r := Fixed[[][]byte](&joined{"x"})
	r.Check()
	r.Close()
	assert.Equal(t, "x", r.Value().s)
	assert.Zero(t, r.Reloads())
}

func TestReadFilesHashesContentPerFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(data), 0o644))
		return p
	}
	hash := func(files ...string) string {
		t.Helper()
		_, h, err := ReadFiles(files...)
		require.NoError(t, err)
		return h
	}
	ab, c := write("1", "ab"), write("2", "c")
	a, bc := write("3", "a"), write("4", "bc")
	ab2 := write("5", "ab")
	assert.Equal(t, hash(ab, c), hash(ab2, c), "same content, same hash")
	assert.NotEqual(t, hash(ab, c), hash(a, bc), "bytes moved between files")
	assert.NotEqual(t, hash(ab, c), hash(c, ab), "order counts")

	contents, _, err := ReadFiles(ab, c)
	require.NoError(t, err)
	assert.Equal(t, [][]byte{[]byte("ab"), []byte("c")}, contents)
}

func TestParentDirs(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	assert.Equal(t, []string{"/etc/tls", wd}, ParentDirs("/etc/tls/tls.crt", "/etc/tls/tls.key", "ca.crt"))
}
