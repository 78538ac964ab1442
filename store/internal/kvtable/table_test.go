package kvtable

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type model struct {
	value []byte
	meta  Meta
}

// checkAgainst asserts the table holds exactly the model.
func checkAgainst(t *testing.T, tb *Table, want map[string]model) {
	t.Helper()
	require.Equal(t, len(want), tb.Len())
	for k, m := range want {
		e, ok := tb.Get(k)
		require.True(t, ok, "key %q missing", k)
		require.Equal(t, k, string(e.Key()))
		require.True(t, bytes.Equal(m.value, e.Value()), "value of %q", k)
		require.Equal(t, m.meta, e.Meta())
	}
	seen := 0
	tb.Range(func(e Entry) bool {
		m, ok := want[string(e.Key())]
		require.True(t, ok, "Range returned %q, not in the model", e.Key())
		require.True(t, bytes.Equal(m.value, e.Value()))
		seen++
		return true
	})
	require.Equal(t, len(want), seen)
}

func randomValue(r *rand.Rand) []byte {
	var n int
	switch r.IntN(10) {
	case 0:
		n = 0
	case 1:
		n = maxSmall + r.IntN(3*pageSize) // a mapping of its own
	case 2:
		n = 1024 + r.IntN(64<<10)
	default:
		n = r.IntN(400)
	}
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return v
}

// TestTableMatchesAMap drives puts, overwrites and deletes of every size
// class (and records with mappings of their own) against a Go map, through
// several doublings of the index and deletions that move probe chains.
func TestTableMatchesAMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tb := New()
	defer tb.Retire()
	want := map[string]model{}
	for i := range 20000 {
		key := fmt.Sprintf("k/%d", r.IntN(3000))
		switch r.IntN(4) {
		case 0:
			_, had := want[key]
			require.Equal(t, had, tb.Delete(key), "delete %q", key)
			delete(want, key)
		default:
			m := model{value: randomValue(r), meta: Meta{Create: int64(i), Modify: int64(i) + 1, ExpireAt: -int64(i)}}
			tb.Put(key, m.value, m.meta)
			want[key] = m
		}
		if i%2500 == 0 {
			checkAgainst(t, tb, want)
		}
	}
	checkAgainst(t, tb, want)
	for k := range want {
		require.True(t, tb.Delete(k))
	}
	checkAgainst(t, tb, map[string]model{})
}

// TestPutFromItsOwnRecord: a put may take its value from the key's current
// record (the state machine rewrites a key's expiry so).
func TestPutFromItsOwnRecord(t *testing.T) {
	tb := New()
	defer tb.Retire()
	tb.Put("k", []byte("the value"), Meta{Create: 1, Modify: 1, ExpireAt: -5})
	e, _ := tb.Get("k")
	tb.Put("k", e.Value(), Meta{Create: 1, Modify: 1, ExpireAt: 7})
	e, _ = tb.Get("k")
	require.Equal(t, "the value", string(e.Value()))
	require.Equal(t, Meta{Create: 1, Modify: 1, ExpireAt: 7}, e.Meta())
}

// TestPinnedViewOutlivesWrites: a pinned view reads every record as it was
// when pinned while the owner overwrites and deletes every key, and the
// records let go meanwhile are reused only after the view is gone.
func TestPinnedViewOutlivesWrites(t *testing.T) {
	tb := New()
	defer tb.Retire()
	const n = 5000
	value := func(round, i int) []byte { return []byte(fmt.Sprintf("round %d value %d %0100d", round, i, i)) }
	for i := range n {
		tb.Put(fmt.Sprintf("k%d", i), value(0, i), Meta{Modify: 1})
	}
	p := tb.Pin()
	for round := 1; round <= 3; round++ {
		for i := range n {
			if i%10 == 0 {
				tb.Delete(fmt.Sprintf("k%d", i))
				continue
			}
			tb.Put(fmt.Sprintf("k%d", i), value(round, i), Meta{Modify: int64(round) + 1})
		}
	}
	grown := tb.Held()
	got := map[string]string{}
	require.NoError(t, p.Each(func(e Entry) error {
		got[string(e.Key())] = string(e.Value())
		require.Equal(t, int64(1), e.Meta().Modify)
		return nil
	}))
	require.Len(t, got, n)
	for i := range n {
		require.Equal(t, string(value(0, i)), got[fmt.Sprintf("k%d", i)])
	}

	// With the view gone, three more rounds fit in the memory the first
	// three took: the records let go are reused.
	p = nil
	waitUnpinned(t, tb)
	for round := 4; round <= 6; round++ {
		for i := range n {
			tb.Put(fmt.Sprintf("k%d", i), value(round, i), Meta{Modify: int64(round) + 1})
		}
	}
	require.LessOrEqual(t, tb.Held(), grown, "records let go were not reused")
	require.Empty(t, tb.limbo)
}

// TestRewritesAfterAPinAreFreedAtOnce: a key rewritten again and again
// while a view is pinned keeps the version the view sees and its latest,
// not every version between.
func TestRewritesAfterAPinAreFreedAtOnce(t *testing.T) {
	tb := New()
	defer tb.Retire()
	tb.Put("hot", []byte("seen by the view"), Meta{Modify: 1})
	p := tb.Pin()
	start := tb.Held()
	value := make([]byte, 1000)
	for i := range 10000 {
		tb.Put("hot", value, Meta{Modify: int64(i) + 2})
	}
	tb.mu.Lock()
	limbo := len(tb.limbo)
	tb.mu.Unlock()
	require.Equal(t, 1, limbo, "only the version the view sees waits")
	require.Less(t, tb.Held()-start, int64(8<<10), "rewrites after the pin were not reused")
	require.NoError(t, p.Each(func(e Entry) error {
		require.Equal(t, "seen by the view", string(e.Value()))
		return nil
	}))
	e, _ := tb.Get("hot")
	require.EqualValues(t, 10001, e.Meta().Modify)
	p = nil
	waitUnpinned(t, tb)
}

// TestRetireUnmaps: a retired table returns its memory at once, or, while a
// view is pinned, when the view goes.
func TestRetireUnmaps(t *testing.T) {
	before := HeldBytes()
	tb := New()
	for i := range 1000 {
		tb.Put(fmt.Sprintf("k%d", i), make([]byte, 500), Meta{})
	}
	require.Greater(t, HeldBytes(), before)
	tb.Retire()
	require.Equal(t, before, HeldBytes())

	tb = New()
	for i := range 1000 {
		tb.Put(fmt.Sprintf("k%d", i), bytes.Repeat([]byte{byte(i)}, 500), Meta{})
	}
	p := tb.Pin()
	tb.Retire()
	require.Greater(t, HeldBytes(), before, "retired while pinned: unmapped under the view")
	require.NoError(t, p.Each(func(e Entry) error {
		require.Len(t, e.Value(), 500)
		return nil
	}))
	p = nil
	waitFor(t, func() bool { runtime.GC(); return HeldBytes() == before })
}

// TestDroppedTableUnmaps: a table its owner drops without Retire still
// returns its memory once collected.
func TestDroppedTableUnmaps(t *testing.T) {
	before := HeldBytes()
	func() {
		tb := New()
		for i := range 1000 {
			tb.Put(fmt.Sprintf("k%d", i), make([]byte, 500), Meta{})
		}
	}()
	waitFor(t, func() bool { runtime.GC(); return HeldBytes() == before })
}

func TestSizeClasses(t *testing.T) {
	prevClass, prevSize := -1, 0
	for n := headerSize; n <= maxSmall; n++ {
		c, size := classOf(n)
		require.GreaterOrEqual(t, size, n)
		require.Less(t, c, numClasses)
		require.GreaterOrEqual(t, c, prevClass, "classes must not go down at %d", n)
		if c == prevClass {
			require.Equal(t, prevSize, size, "one class, one size (%d)", n)
		}
		if n > 1024 {
			require.LessOrEqual(t, float64(size), float64(n)*1.125+1, "waste above 12.5%% at %d", n)
		}
		prevClass, prevSize = c, size
	}
	_, size := classOf(maxSmall)
	require.Equal(t, maxSmall, size)
}

// waitUnpinned collects until every pin of tb is released (each pin's
// cleanup returns its memory first), so that HeldBytes is settled for the
// next test.
func waitUnpinned(t *testing.T, tb *Table) {
	t.Helper()
	waitFor(t, func() bool {
		runtime.GC()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		return len(tb.pins) == 0
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(10 * time.Millisecond) // polling period
	}
}
