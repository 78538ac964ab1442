package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client/api"
	"github.com/ephemeral-store/ephemeral-store/store/internal/auth"
	"github.com/ephemeral-store/ephemeral-store/store/internal/cluster"
	"github.com/ephemeral-store/ephemeral-store/store/internal/fsm"
	"github.com/ephemeral-store/ephemeral-store/store/internal/quota"
)

// leaderWithQuota is a localCluster whose "leader" admits each command
// through a quota, as cluster.Node does before proposing.
type leaderWithQuota struct {
	localCluster
	q *quota.Quota
}

func (l leaderWithQuota) Apply(ctx context.Context, c fsm.Command) (fsm.Result, error) {
	release, err := l.q.Admit(c)
	if err != nil {
		return fsm.Result{}, err
	}
	defer release()
	return l.localCluster.Apply(ctx, c)
}

// newQuotaAPI is an API over a fresh state with a quota of limit bytes,
// checked by the API (apiQuota) and by the leader (leaderQuota) as chosen.
func newQuotaAPI(limit int64, apiQuota, leaderQuota bool) (*API, *fsm.State, *quota.Quota) {
	s := fsm.New(fsm.Limits{HistoryEvents: 64, WatcherBuffer: 8})
	q := quota.New(limit, s)
	var c Replicator = localCluster{s}
	if leaderQuota {
		c = leaderWithQuota{localCluster{s}, q}
	}
	o := Options{
		Cluster: c, State: s,
		Users:       oneUser{auth.User{Name: "myuser", AuthMode: "certificate", AllKeys: true}},
		UserOf:      func(*tls.ConnectionState) (string, error) { return "myuser", nil },
		MaxKeyBytes: 64, MaxValueBytes: 4096,
	}
	if apiQuota {
		o.Quota = q
	}
	return New(o), s, q
}

func do(t *testing.T, a *API, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "https://store"+target, strings.NewReader(body))
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	return rec
}

func requireQuotaExceeded(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	require.Equal(t, http.StatusInsufficientStorage, rec.Code, rec.Body.String())
	var e api.ErrorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	assert.Equal(t, api.CodeQuotaExceeded, e.Error.Code)
	assert.Empty(t, rec.Header().Get("Retry-After"), "retrying does not help until room is freed")
}

// TestQuotaRefusesWritesPastItAndKeepsReadsAndDeletes fills a store to its
// quota, whichever node checks it: the one that takes the request, the
// leader the write is forwarded to, or both as in a real cluster.
func TestQuotaRefusesWritesPastItAndKeepsReadsAndDeletes(t *testing.T) {
	value := strings.Repeat("v", 1000)
	for _, tc := range []struct {
		name                  string
		apiQuota, leaderQuota bool
	}{
		{"checked where the request arrives and on the leader", true, true},
		{"checked where the request arrives", true, false},
		{"refused by the leader after forwarding", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Room for 8 keys of 1003 bytes and their overhead, not 9.
			a, s, q := newQuotaAPI(8*(1003+quota.PerKeyOverhead)+500, tc.apiQuota, tc.leaderQuota)
			var acked []string
			for i := 0; ; i++ {
				require.Less(t, i, 100, "no write refused: the quota is not enforced")
				key := fmt.Sprintf("k%02d", i)
				rec := do(t, a, "PUT", "/v1/kv/"+key, value)
				if rec.Code == http.StatusInsufficientStorage {
					requireQuotaExceeded(t, rec)
					assert.Equal(t, http.StatusNotFound, do(t, a, "GET", "/v1/kv/"+key, "").Code, "a refused write did not happen")
					break
				}
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				acked = append(acked, key)
			}
			assert.Len(t, acked, 8, "8 keys of 1003 bytes + overhead fit")
			assert.LessOrEqual(t, q.Used(), q.Limit())

			for _, k := range acked {
				rec := do(t, a, "GET", "/v1/kv/"+k, "")
				require.Equal(t, http.StatusOK, rec.Code)
				assert.Equal(t, value, rec.Body.String())
			}
			assert.Equal(t, http.StatusOK, do(t, a, "GET", "/v1/kv/?prefix=k", "").Code)
			requireQuotaExceeded(t, do(t, a, "PUT", "/v1/kv/"+acked[0], value+value)) // grows it by 1000
			assert.Equal(t, http.StatusOK, do(t, a, "PUT", "/v1/kv/"+acked[0], value).Code, "a write that keeps the size")
			assert.Equal(t, http.StatusOK, do(t, a, "PUT", "/v1/kv/"+acked[0], "short").Code, "a write that shrinks a value")
			assert.Equal(t, http.StatusOK, do(t, a, "DELETE", "/v1/kv/"+acked[1], "").Code)
			assert.Equal(t, http.StatusOK, do(t, a, "PUT", "/v1/kv/new", value).Code, "deletes made room")
			keys, _ := s.Stats()
			assert.Equal(t, len(acked), keys)
		})
	}
}

// FuzzQuota drives random writes and deletes against a small quota: the
// data never goes past it from empty, a refusal is always 507
// quota_exceeded and changes nothing, reads and deletes are never refused,
// and what was acknowledged reads back.
func FuzzQuota(f *testing.F) {
	f.Add([]byte{0, 200, 1, 1, 255, 2, 0, 3, 9})
	f.Add([]byte("put put put delete put"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 300 {
			return
		}
		a, _, q := newQuotaAPI(3000, true, true)
		want := map[string]string{}
		for i := 0; i+1 < len(ops); i += 2 {
			key := fmt.Sprintf("k%d", ops[i]%8)
			switch ops[i] % 3 {
			case 0, 1:
				value := strings.Repeat("x", int(ops[i+1])*4)
				rec := do(t, a, "PUT", "/v1/kv/"+key, value)
				switch rec.Code {
				case http.StatusOK:
					want[key] = value
				case http.StatusInsufficientStorage:
					requireQuotaExceeded(t, rec)
					old, had := want[key]
					require.True(t, !had || len(value) > len(old), "a write that does not grow the data was refused")
				default:
					t.Fatalf("PUT %s: %d %s", key, rec.Code, rec.Body)
				}
			case 2:
				rec := do(t, a, "DELETE", "/v1/kv/"+key, "")
				require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, rec.Code, rec.Body.String())
				delete(want, key)
			}
			require.LessOrEqual(t, q.Used(), q.Limit())
		}
		for k, v := range want {
			rec := do(t, a, "GET", "/v1/kv/"+k, "")
			require.Equal(t, http.StatusOK, rec.Code)
			require.Equal(t, v, rec.Body.String())
		}
	})
}

// laggingFollower is a follower whose replica applies the leader's
// commits only at a read barrier, as a real follower may still lack the
// last ones when the next request comes.
type laggingFollower struct {
	leader  leaderWithQuota
	replica *fsm.State
	mu      sync.Mutex
	pending []fsm.Command
}

func (l *laggingFollower) Apply(ctx context.Context, c fsm.Command) (fsm.Result, error) {
	res, err := l.leader.Apply(ctx, c)
	if err == nil {
		l.mu.Lock()
		l.pending = append(l.pending, c)
		l.mu.Unlock()
	}
	return res, err
}

func (l *laggingFollower) LinearizableRead(context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.pending {
		l.replica.Apply(c)
	}
	l.pending = nil
	return nil
}
func (l *laggingFollower) Status() api.ClusterStatus { return api.ClusterStatus{} }
func (l *laggingFollower) ForceReform(context.Context, string, string) error {
	return cluster.ErrReformRefused
}

// TestFollowerCatchesUpBeforeItRefuses: a delete the client has just made
// through a follower counts, even when the follower has not applied it
// yet: the follower refuses only after a read barrier.
func TestFollowerCatchesUpBeforeItRefuses(t *testing.T) {
	const limit = 3 * (2 + 1000 + quota.PerKeyOverhead)
	leaderState := fsm.New(fsm.Limits{HistoryEvents: 64, WatcherBuffer: 8})
	replica := fsm.New(fsm.Limits{HistoryEvents: 64, WatcherBuffer: 8})
	f := &laggingFollower{leader: leaderWithQuota{localCluster{leaderState}, quota.New(limit, leaderState)}, replica: replica}
	a := New(Options{
		Cluster: f, State: replica, Quota: quota.New(limit, replica),
		Users:       oneUser{auth.User{Name: "myuser", AuthMode: "certificate", AllKeys: true}},
		UserOf:      func(*tls.ConnectionState) (string, error) { return "myuser", nil },
		MaxKeyBytes: 64, MaxValueBytes: 4096,
	})
	value := strings.Repeat("v", 1000)
	for _, k := range []string{"k1", "k2", "k3"} {
		require.Equal(t, http.StatusOK, do(t, a, "PUT", "/v1/kv/"+k, value).Code)
	}
	requireQuotaExceeded(t, do(t, a, "PUT", "/v1/kv/k4", value))
	require.NoError(t, f.LinearizableRead(context.Background()), "the follower catches up")
	require.Equal(t, http.StatusOK, do(t, a, "DELETE", "/v1/kv/k1", "").Code)
	_, _, ok := replica.Get("k1")
	require.True(t, ok, "the follower has not applied the delete yet")
	assert.Equal(t, http.StatusOK, do(t, a, "PUT", "/v1/kv/k4", value).Code, "the delete made room")
}
