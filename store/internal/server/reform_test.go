package server_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/testcluster"
)

// Silence is never proof: when two of three voters go silent (killed, and
// never restarted, so nothing answers at their addresses) the survivor
// keeps its data and waits, however long, saying why. Only an operator's
// explicit, authenticated reform re-forms the cluster. Its twin is
// TestMajorityLossReformsAnEmptyCluster, where the addresses answer as new
// incarnations and the cluster re-forms by itself.
func TestSilentVotersAreAwaitedUntilAnOperatorReforms(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitReady(readyTimeout)
	ctx := ctxT(t)
	_, err := c.Client(testcluster.UserAll).Put(ctx, "k", []byte("v"))
	require.NoError(t, err)
	l := c.Leader()
	other := (l + 1) % 3
	survivor := 3 - l - other
	// A linearizable read through the survivor: it has applied the write.
	_, err = c.Client(testcluster.UserAll, survivor).Get(ctx, "k")
	require.NoError(t, err)
	c.Kill(l)
	c.Kill(other)

	sv := c.Node(survivor).Server.Node()
	require.Eventually(t, func() bool { return sv.Status().Quorum.State == api.QuorumWaiting },
		60*time.Second, 100*time.Millisecond, "the survivor should report that it waits for silent voters")
	// The quorum-loss timeout of the test cluster is 3s: watch for more than
	// three of them. The old rule re-formed after three.
	cid := sv.Status().ClusterID
	var changed atomic.Value // what the survivor reported when it stopped waiting
	if !assert.Never(t, func() bool {
		st := sv.Status()
		if st.Quorum.State != api.QuorumWaiting || st.ClusterID != cid || len(st.Quorum.Silent) != 2 {
			changed.Store(fmt.Sprintf("quorum %s, cluster %s (was %s), silent %v", st.Quorum.State, st.ClusterID, cid, st.Quorum.Silent))
			return true
		}
		return false
	}, 12*time.Second, 200*time.Millisecond, "the survivor keeps waiting for its two silent voters, in its cluster") {
		t.Fatalf("the survivor stopped waiting: %v", changed.Load())
	}
	kv, err := c.Client(testcluster.UserAll, survivor).Get(ctx, "k", client.Stale())
	require.NoError(t, err, "the survivor keeps its data while it waits")
	require.Equal(t, "v", string(kv.Value))

	_, err = c.Client(testcluster.UserReader, survivor).Reform(ctx, cid)
	require.True(t, errors.Is(err, client.ErrForbidden), "a user without read/write on every key may not reform: %v", err)
	_, err = c.Client(testcluster.UserAll, survivor).Reform(ctx, "not-the-cluster-id")
	var apiErr *client.APIError
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "reform_refused", apiErr.Code)

	st, err := c.Client(testcluster.UserAll, survivor).Reform(ctx, cid)
	require.NoError(t, err)
	require.NotEqual(t, cid, st.ClusterID, "reform bootstraps a new cluster")
	c.WaitReady(readyTimeout, survivor)
	_, err = c.Client(testcluster.UserAll, survivor).Get(ctx, "k")
	require.True(t, errors.Is(err, client.ErrKeyNotFound), "a reform loses the data, got %v", err)

	c.Start(l)
	c.Start(other)
	c.WaitReady(60 * time.Second)
	require.Len(t, c.Node(l).Server.Node().Status().Members, 3, "the restarted nodes join the re-formed cluster")
}
