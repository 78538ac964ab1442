package auth

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch"
	"github.com/ephemeral-store/ephemeral-store/store/internal/filewatch/filewatchtest"
)

const (
	// waitFor bounds every wait: generous, because the test machine can
	// freeze for minutes; a passing test never waits that long.
	waitFor = 2 * time.Minute
	tick    = 5 * time.Millisecond
)

// polling is how the tests watch the directory unless they say otherwise.
var polling = filewatch.Config{Interval: 20 * time.Millisecond}

const (
	myuser = `{ "name": "myuser", "auth_mode": "certificate" }`
	reader = `{ "name": "reader", "auth_mode": "certificate", "permissions": [{"prefix": "pools/", "access": "read"}] }`
	broken = `{ "name": "broken", "auth_mode": "certificate", "permissions": [{"prefix": "pools/", "access": "write"}] }`
)

func files(kv ...string) map[string][]byte {
	m := map[string][]byte{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = []byte(kv[i+1])
	}
	return m
}

func names(users map[string]User) []string {
	var out []string
	for n := range users {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func entryFiles(t *testing.T, errs []error) []string {
	t.Helper()
	var out []string
	for _, err := range errs {
		var ee *EntryError
		require.True(t, errors.As(err, &ee), "%v is not an *EntryError", err)
		out = append(out, ee.File)
	}
	return out
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	write("a-myuser.json", myuser)
	write("b-reader", reader) // any file name will do
	write("c-broken.json", broken)
	write("d-notjson.json", "name: x")
	write("e-again.json", `{"name":"myuser","permissions":[]}`) // duplicate of a-myuser.json
	write(".hidden.json", `{"name":"hidden"}`)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "subdir"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "subdir", "x.json"), []byte(`{"name":"nested"}`), 0o644))
	require.NoError(t, os.Symlink("nowhere.json", filepath.Join(dir, "f-dangling.json")))
	require.NoError(t, os.Symlink("a-myuser.json", filepath.Join(dir, "g-link.json"))) // followed: a duplicate

	users, errs := LoadDir(dir)
	assert.Equal(t, []string{"myuser", "reader"}, names(users))
	assert.True(t, users["myuser"].AllKeys, "the first file wins")
	assert.Equal(t, []Permission{{Prefix: "pools/", Access: AccessRead}}, users["reader"].Permissions)
	assert.Equal(t, []string{"c-broken.json", "d-notjson.json", "e-again.json", "g-link.json"}, entryFiles(t, errs))
	for _, err := range errs {
		assert.ErrorIs(t, err, ErrInvalidUser)
	}
	assert.Contains(t, errs[2].Error(), `user "myuser" is already defined in a-myuser.json`)
	assert.Contains(t, errs[0].Error(), "users entry c-broken.json: ")
}

func TestLoadDirReadsAKubernetesVolumeOnce(t *testing.T) {
	a := filewatchtest.NewAtomicDir(t, t.TempDir(), files("myuser.json", myuser, "reader.json", reader))
	users, errs := LoadDir(a.Dir)
	assert.Empty(t, errs, "..data and the timestamped directory are not read")
	assert.Equal(t, []string{"myuser", "reader"}, names(users))
}

func TestLoadDirLimits(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "big.json"), bytes.Repeat([]byte(" "), MaxEntryBytes+1), 0o644))
	users, errs := LoadDir(dir)
	assert.Empty(t, users)
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "larger than")

	users, errs = LoadDir(filepath.Join(dir, "missing"))
	assert.Nil(t, users)
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], os.ErrNotExist)

	_, err := OpenDirectory(filepath.Join(dir, "missing"), polling, nil)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func newLog() (*slog.Logger, *filewatchtest.LogBuffer) { return filewatchtest.NewLog(slog.LevelInfo) }

// writer changes the directory's content: in place, or the way kubelet
// updates a ConfigMap volume.
type writer func(map[string][]byte)

func inPlace(t *testing.T, dir string) writer {
	var last map[string][]byte
	return func(fs map[string][]byte) {
		for name := range last {
			if _, keep := fs[name]; !keep {
				require.NoError(t, os.Remove(filepath.Join(dir, name)))
			}
		}
		for name, data := range fs {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
		}
		last = fs
	}
}

func TestDirectoryFollowsChanges(t *testing.T) {
	kubelet := func(t *testing.T, dir string) writer {
		var a *filewatchtest.AtomicDir
		return func(fs map[string][]byte) {
			if a == nil {
				a = filewatchtest.NewAtomicDir(t, dir, fs)
				return
			}
			a.Update(fs)
		}
	}
	tests := []struct {
		name   string
		writer func(*testing.T, string) writer
		watch  filewatch.Config
	}{
		{"kubernetes symlink swap, polling only", kubelet, filewatch.Config{Interval: polling.Interval, NoEvents: true}},
		{"kubernetes symlink swap, events only", kubelet, filewatch.Config{Interval: -1}},
		{"kubernetes symlink swap, both", kubelet, polling},
		{"in place, polling only", inPlace, filewatch.Config{Interval: polling.Interval, NoEvents: true}},
		{"in place, events only", inPlace, filewatch.Config{Interval: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write := tt.writer(t, dir)
			write(files("myuser.json", myuser))

			var hooked atomic.Int64
			var hookErrs atomic.Int64
			log, logs := newLog()
			d, err := OpenDirectory(dir, tt.watch, log, WithOnReload(func(u map[string]User, errs []error) {
				hooked.Add(1)
				hookErrs.Store(int64(len(errs)))
			}))
			require.NoError(t, err)
			t.Cleanup(func() { d.Close() })

			_, err = d.Authenticate("myuser")
			require.NoError(t, err)
			_, err = d.Authenticate("reader")
			require.ErrorIs(t, err, ErrUnknownUser)

			// myuser removed, reader added, one broken entry beside them.
			write(files("reader.json", reader, "broken.json", broken))
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				_, hasReader := d.Lookup("reader")
				_, hasMyuser := d.Lookup("myuser")
				assert.True(c, hasReader, "reader added")
				assert.False(c, hasMyuser, "myuser removed")
			}, waitFor, tick, "log:\n%s", logs)
			assert.Equal(t, []string{"reader"}, names(d.Users()))
			assert.Equal(t, []string{"broken.json"}, entryFiles(t, d.Errors()))
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.GreaterOrEqual(c, hooked.Load(), int64(1), "hook calls")
			}, waitFor, tick)
			assert.EqualValues(t, 1, hookErrs.Load())
			assert.Equal(t, 1, logs.Count("users entry skipped"), "log:\n%s", logs)

			// The broken entry is fixed; it was logged once, not at every poll.
			write(files("reader.json", reader, "broken.json", strings.Replace(broken, `"write"`, `"readwrite"`, 1)))
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				_, ok := d.Lookup("broken")
				assert.True(c, ok, "broken fixed")
			}, waitFor, tick, "log:\n%s", logs)
			assert.Empty(t, d.Errors())
			assert.Equal(t, 1, logs.Count("users entry skipped"), "log:\n%s", logs)

			u, err := d.Authenticate("broken")
			require.NoError(t, err)
			assert.NoError(t, Authorize(u, "pools/x", AccessReadWrite))
			assert.ErrorIs(t, Authorize(u, "other", AccessRead), ErrForbidden)
		})
	}
}

// TestDirectoryKeepsUsersWhileUnreadable removes the whole directory: the
// last users stay, and the directory is followed again when it returns.
func TestDirectoryKeepsUsersWhileUnreadable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "users")
	filewatchtest.NewAtomicDir(t, dir, files("myuser.json", myuser))
	log, logs := newLog()
	d, err := OpenDirectory(dir, polling, log)
	require.NoError(t, err)
	defer d.Close()
	const unreadable = "reloading users failed; keeping the previous one"

	require.NoError(t, os.RemoveAll(dir))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, 1, logs.Count(unreadable))
	}, waitFor, tick, "log:\n%s", logs)
	_, ok := d.Lookup("myuser")
	assert.True(t, ok, "the last users stay")

	a := filewatchtest.NewAtomicDir(t, dir, files("reader.json", reader))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, ok := d.Lookup("reader")
		assert.True(c, ok, "reader")
	}, waitFor, tick, "log:\n%s", logs)
	_, ok = d.Lookup("myuser")
	assert.False(t, ok)
	assert.Equal(t, 1, logs.Count(unreadable), "logged once:\n%s", logs)

	a.Update(files("reader.json", reader, "myuser.json", myuser))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, ok := d.Lookup("myuser")
		assert.True(c, ok, "myuser")
	}, waitFor, tick, "log:\n%s", logs)
}

func TestDirectoryWithNoUsersWarns(t *testing.T) {
	log, logs := newLog()
	d, err := OpenDirectory(t.TempDir(), polling, log)
	require.NoError(t, err)
	defer d.Close()
	assert.Empty(t, d.Users())
	assert.Equal(t, 1, logs.Count("no valid users"))
	_, err = d.Authenticate("myuser")
	assert.ErrorIs(t, err, ErrUnknownUser)
}
