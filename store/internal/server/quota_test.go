package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/config"
	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// fillUntilRefused writes values of size bytes under prefix through cl
// until a write is refused with ErrQuotaExceeded, and returns the keys
// acknowledged. It fails after max writes.
func fillUntilRefused(t *testing.T, cl *client.Client, prefix string, size, max int) []string {
	t.Helper()
	value := bytes.Repeat([]byte("q"), size)
	var acked []string
	for i := range max {
		key := fmt.Sprintf("%s%04d", prefix, i)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := cl.Put(ctx, key, value)
		cancel()
		if errors.Is(err, client.ErrQuotaExceeded) {
			var ae *client.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, http.StatusInsufficientStorage, ae.StatusCode)
			return acked
		}
		require.NoError(t, err, "write %d", i)
		acked = append(acked, key)
	}
	t.Fatalf("%d writes of %d bytes were all acknowledged: the quota is not enforced", max, size)
	return nil
}

// TestQuotaRefusesWritesOnEveryNodeAndKeepsTheData fills a three-node
// cluster to its quota through a follower: the write past the quota is
// refused with 507, everything acknowledged reads back from every node,
// deletes work and make room, and the quota metrics follow.
func TestQuotaRefusesWritesOnEveryNodeAndKeepsTheData(t *testing.T) {
	const quotaBytes = 512 << 10
	c := testcluster.New(t, 3, testcluster.WithConfig(func(_ int, cfg *config.Config) {
		cfg.QuotaBytes = quotaBytes
	}))
	c.WaitReady(30*time.Second, 0, 1, 2)
	f := c.Follower()
	cl := c.Client(testcluster.UserAll, f)

	acked := fillUntilRefused(t, cl, "fill/", 16<<10, 64)
	// 16 KiB + 9 bytes of key + 96 per key: 31 fit in 512 KiB.
	assert.Len(t, acked, 31)

	probe := &http.Client{Timeout: 5 * time.Second}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		kvs, err := c.Client(testcluster.UserAll, i).List(ctx, "fill/", client.WithLimit(1000))
		cancel()
		require.NoError(t, err, "node %d", i)
		assert.Len(t, kvs.Items, len(acked), "node %d holds every acknowledged write", i)
		q, ok := scenario.ScrapeMetric(probe, c.Node(i).Probe, "ephemeral_store_quota_bytes")
		require.True(t, ok)
		assert.Equal(t, float64(quotaBytes), q)
		assert.EventuallyWithT(t, func(ct *assert.CollectT) {
			used, ok := scenario.ScrapeMetric(probe, c.Node(i).Probe, "ephemeral_store_quota_used_bytes")
			assert.True(ct, ok)
			assert.Greater(ct, used, 0.9*quotaBytes, "node %d", i)
			assert.LessOrEqual(ct, used, float64(quotaBytes), "node %d", i)
		}, 20*time.Second, 100*time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := cl.Put(ctx, acked[0], []byte("small"))
	require.NoError(t, err, "a write that shrinks a value passes")
	for _, k := range acked[1:4] {
		_, err := cl.Delete(ctx, k)
		require.NoError(t, err, "deletes work at the quota")
	}
	more := fillUntilRefused(t, cl, "more/", 16<<10, 64)
	assert.Len(t, more, 4, "the shrink and the deletes made room for 4")
}

// TestLeaderRefusesAForwardedWritePastItsQuota: a node without a quota of
// its own forwards the write, and the leader's refusal comes back as 507.
func TestLeaderRefusesAForwardedWritePastItsQuota(t *testing.T) {
	const quotaBytes = 256 << 10
	var unlimited atomic.Int32
	unlimited.Store(-1)
	c := testcluster.New(t, 3, testcluster.WithConfig(func(i int, cfg *config.Config) {
		cfg.QuotaBytes = quotaBytes
		if int32(i) == unlimited.Load() {
			cfg.QuotaBytes = -1
		}
	}))
	c.WaitReady(30*time.Second, 0, 1, 2)
	f := c.Follower()
	unlimited.Store(int32(f))
	c.Stop(f)
	c.Start(f)
	c.WaitReady(30*time.Second, 0, 1, 2)
	require.Equal(t, int64(-1), c.Node(f).Config.QuotaBytes)
	require.NotEqual(t, f, c.Leader(), "the node without a quota must forward")

	acked := fillUntilRefused(t, c.Client(testcluster.UserAll, f), "fwd/", 16<<10, 64)
	assert.Len(t, acked, 15, "the leader's quota of 256 KiB holds 15 values of 16 KiB")
}
