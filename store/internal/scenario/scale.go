package scenario

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RequireScaled waits until nodes 0..n-1 of c each act on n replicas and
// see a configuration of exactly those n nodes, all voters (no placeholder,
// no server beyond the count), and agree on one cluster id, clusterID when
// it is given (the cluster of the start, never a re-formed one). It returns
// that id. Scaling keeps every acknowledged write only if the configuration
// follows the count: issue 18's survivors of 5 -> 3 kept two placeholders
// as voters and lost every key at the next restart.
func RequireScaled(t *testing.T, c Cluster, n int, clusterID string) string {
	t.Helper()
	for i := range n {
		c.Client(i) // made here: the condition runs where failing is not allowed
	}
	var (
		mu   sync.Mutex // the condition runs on its own goroutine
		seen string
	)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ids, selves := map[string]bool{}, map[string]bool{}
		members := make([]map[string]bool, n)
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			st, err := c.Client(i).Cluster(ctx)
			cancel()
			if !assert.NoError(ct, err, "status of node %d", i) {
				return
			}
			ids[st.ClusterID] = true
			selves[nameOf(st.Self)] = true
			assert.Equal(ct, n, st.Replicas, "node %d acts on the replica count", i)
			assert.Len(ct, st.Members, n, "node %d: members %+v", i, st.Members)
			members[i] = map[string]bool{}
			for _, m := range st.Members {
				assert.Equal(ct, "voter", m.Suffrage, "node %d sees %s", i, m.ID)
				assert.False(ct, strings.HasSuffix(m.ID, "/placeholder"), "node %d sees placeholder %s", i, m.ID)
				members[i][m.Name] = true
			}
		}
		for i := range n {
			assert.Equal(ct, selves, members[i], "node %d: the members are nodes 0..%d", i, n-1)
		}
		if !assert.Len(ct, ids, 1, "one cluster id: %v", ids) {
			return
		}
		for id := range ids {
			if clusterID != "" {
				assert.Equal(ct, clusterID, id, "the cluster of the start, never a re-formed one")
			}
			mu.Lock()
			seen = id
			mu.Unlock()
		}
	}, 60*time.Second, 200*time.Millisecond, "a configuration of exactly the %d replicas", n)
	mu.Lock()
	defer mu.Unlock()
	return seen
}

// nameOf is the node name of a member ID (<name>/<incarnation>).
func nameOf(id string) string {
	if i := strings.LastIndex(id, "/"); i >= 0 {
		return id[:i]
	}
	return id
}
