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

const (
	// waitFor bounds every wait: generous, because the test machine can
	// freeze for minutes; a passing test never waits that long.
	waitFor = 2 * time.Minute
	tick    = 5 * time.Millisecond
	poll    = 20 * time.Millisecond // poll interval in tests
)

func TestPollingCallsCheck(t *testing.T) {
	var n atomic.Int64
	w := Start([]string{t.TempDir()}, Config{Interval: 5 * time.Millisecond, NoEvents: true}, nil, func() { n.Add(1) })
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, n.Load(), int64(3))
	}, waitFor, time.Millisecond)
	w.Close()
	after := n.Load()
	w.Close()                         // idempotent
	time.Sleep(20 * time.Millisecond) // proving a negative: no call after Close
	assert.Equal(t, after, n.Load())
}

func TestEventsCallCheckOncePerBurst(t *testing.T) {
	dir := t.TempDir()
	var n, running, overlap atomic.Int64
	w := Start([]string{dir}, Config{Interval: -1, Debounce: 100 * time.Millisecond}, nil, func() {
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
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, n.Load(), int64(1))
	}, waitFor, time.Millisecond)
	assert.LessOrEqual(t, n.Load(), int64(2), "a burst is debounced")
	assert.Zero(t, overlap.Load())
}

func TestWatchIsRestoredWhenTheDirectoryReturns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	require.NoError(t, os.Mkdir(dir, 0o755))
	w := Start([]string{dir}, Config{Interval: 5 * time.Millisecond}, nil, func() {})
	defer w.Close()
	watched := func() bool { return slices.Contains(w.l.fsw.WatchList(), dir) }
	require.True(t, watched())

	require.NoError(t, os.RemoveAll(dir))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.False(c, watched(), "the watch goes with the directory")
	}, waitFor, time.Millisecond)
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.True(c, watched(), "the next poll watches the directory again")
	}, waitFor, time.Millisecond)
}

func TestZeroConfigPollsAtTheDefaultIntervalAndFollowsEvents(t *testing.T) {
	w := Start([]string{t.TempDir()}, Config{}, nil, func() {})
	defer w.Close()
	assert.Equal(t, DefaultInterval, w.l.cfg.Interval)
	assert.Equal(t, DefaultDebounce, w.l.cfg.Debounce)
	assert.NotNil(t, w.l.fsw)
}
