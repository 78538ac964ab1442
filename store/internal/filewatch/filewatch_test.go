package filewatch

import (
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const waitFor = 10 * time.Second

func TestPollingCallsCheck(t *testing.T) {
	var n atomic.Int64
	w := Start(Config{Dirs: []string{t.TempDir()}, Interval: 5 * time.Millisecond}, func() { n.Add(1) })
	require.Eventually(t, func() bool { return n.Load() >= 3 }, waitFor, time.Millisecond)
	w.Close()
	after := n.Load()
	w.Close()                         // idempotent
	time.Sleep(20 * time.Millisecond) // proving a negative: no call after Close
	assert.Equal(t, after, n.Load())
}

func TestEventsCallCheckOncePerBurst(t *testing.T) {
	dir := t.TempDir()
	var n, running, overlap atomic.Int64
	w := Start(Config{Dirs: []string{dir}, Events: true, Debounce: 100 * time.Millisecond}, func() {
		if running.Add(1) > 1 {
			overlap.Add(1)
		}
		n.Add(1)
		running.Add(-1)
	})
	defer w.Close()
	assert.Zero(t, n.Load(), "no call at start")

	for i := range 10 {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte{byte(i)}, 0o644))
	}
	require.Eventually(t, func() bool { return n.Load() >= 1 }, waitFor, time.Millisecond)
	assert.LessOrEqual(t, n.Load(), int64(2), "a burst is debounced")
	assert.Zero(t, overlap.Load())
}

func TestWatchIsRestoredWhenTheDirectoryReturns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	require.NoError(t, os.Mkdir(dir, 0o755))
	w := Start(Config{Dirs: []string{dir}, Events: true, Interval: 5 * time.Millisecond}, func() {})
	defer w.Close()
	watched := func() bool { return slices.Contains(w.l.fsw.WatchList(), dir) }
	require.True(t, watched())

	require.NoError(t, os.RemoveAll(dir))
	require.Eventually(t, func() bool { return !watched() }, waitFor, time.Millisecond)
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.Eventually(t, watched, waitFor, time.Millisecond, "the next poll watches the directory again")
}
