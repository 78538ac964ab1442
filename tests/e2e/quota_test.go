//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/gruntwork-io/terratest/modules/logger"
	"github.com/gruntwork-io/terratest/modules/random"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/client/api"
)

// quotaMemoryLimit is the store pods' memory limit in this suite: the
// chart derives the data quota from it (a fifth: store.quotaBytes 0).
const quotaMemoryLimit = 256 << 20

// TestE2EQuotaRefusesWritesBeforeMemoryKillsTheMajority fills a three-pod
// store with 256Mi pods through every pod at once, with values of 256 KiB,
// until the writes are refused with 507 quota_exceeded. Every replica holds
// every key, so without the quota this burst OOM-kills every pod at once,
// a majority loss that empties the store. It checks that no pod restarted
// or was OOM-killed, that every acknowledged write reads back, that the
// quota metrics moved on every pod, and that deletes work at the quota and
// make room for new writes. The pods' working set (kubelet) is logged.
func TestE2EQuotaRefusesWritesBeforeMemoryKillsTheMajority(t *testing.T) {
	c := suite(t, "memory quota")
	r := install(t, c, installOptions{Label: "quota", Set: map[string]string{
		"resources.limits.memory":   fmt.Sprint(quotaMemoryLimit),
		"resources.requests.memory": "64Mi",
	}})
	before := r.identities(t)
	wantQuota := quotaOf(quotaMemoryLimit)
	for i := range r.replicas {
		require.Equal(t, wantQuota, r.metricSum(t, i, "ephemeral_store_quota_bytes"), "quota of %s: a fifth of its memory limit", r.pod(i))
		require.Less(t, r.metricSum(t, i, "ephemeral_store_quota_used_bytes"), 0.05*wantQuota, "%s starts nearly empty", r.pod(i))
	}

	// The burst: one writer per pod, each through its own port-forward (two
	// of them forward every write to the leader), until each is refused.
	run := strings.ToLower(random.UniqueID())
	value := bytes.Repeat([]byte("q"), 256<<10)
	// The values could fill the quota nearly twice over: a store that
	// refuses nothing fails here, whether its pods survive or not.
	maxWrites := int(2*wantQuota) / len(value) / r.replicas
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
	)
	start := time.Now()
	for i := range r.replicas {
		cl, _ := r.podClient(t, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range maxWrites {
				key := fmt.Sprintf("quota/%s/%d/%04d", run, i, n)
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				_, err := cl.Put(ctx, key, value)
				cancel()
				if errors.Is(err, client.ErrQuotaExceeded) {
					t.Logf("writer through %s: refused after %d writes: %v", r.pod(i), n, err)
					return
				}
				if err != nil {
					t.Errorf("write %s through %s: %v", key, r.pod(i), err)
					return
				}
				mu.Lock()
				acked[key] = true
				mu.Unlock()
			}
			t.Errorf("writer through %s: %d writes of %d bytes, none refused", r.pod(i), maxWrites, len(value))
		}()
	}
	wg.Wait()
	require.False(t, t.Failed(), "the burst")
	t.Logf("burst: %d writes of %d KiB acknowledged (%d MiB) in %s before every writer was refused",
		len(acked), len(value)>>10, len(acked)*len(value)>>20, time.Since(start).Round(time.Second))
	require.GreaterOrEqual(t, float64(len(acked)*len(value)), 0.8*wantQuota, "the store filled most of its quota")

	// Refused again, through every pod; reads still work.
	clients := make([]*client.Client, r.replicas)
	for i := range r.replicas {
		clients[i], _ = r.podClient(t, i)
		_, err := clients[i].Put(t.Context(), fmt.Sprintf("quota/%s/again-%d", run, i), value)
		require.ErrorIs(t, err, client.ErrQuotaExceeded, "through %s", r.pod(i))
		var ae *client.APIError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, 507, ae.StatusCode)
		require.Equal(t, api.CodeQuotaExceeded, ae.Code)
	}

	r.logWorkingSets(t)
	for i := range r.replicas {
		used := r.metricSum(t, i, "ephemeral_store_quota_used_bytes")
		t.Logf("%s: ephemeral_store_quota_used_bytes %.0f of %.0f", r.pod(i), used, wantQuota)
		assert.Greater(t, used, 0.8*wantQuota, "%s: the used bytes moved", r.pod(i))
		assert.LessOrEqual(t, used, wantQuota, "%s: within the quota", r.pod(i))
	}
	requireNoRestart(t, r, before)

	// Nothing acknowledged is lost: every key, on every pod (stale reads
	// show each replica's own copy; the last pod also reads linearizably).
	for i, cl := range clients {
		page, err := cl.ListAll(t.Context(), "quota/"+run+"/", client.KeysOnly(), client.Stale())
		require.NoError(t, err, "list through %s", r.pod(i))
		got := map[string]bool{}
		for _, kv := range page {
			got[kv.Key] = true
		}
		require.Equal(t, acked, got, "%s holds every acknowledged write and nothing else", r.pod(i))
	}
	last := clients[r.replicas-1]
	for key := range acked {
		kv, err := last.Get(t.Context(), key)
		require.NoError(t, err, "get %s", key)
		require.True(t, bytes.Equal(value, kv.Value), "value of %s", key)
	}
	t.Logf("all %d acknowledged writes read back, every pod holds each of them", len(acked))

	// Deletes work at the quota and make room.
	var deleted int
	for key := range acked {
		if deleted == 8 {
			break
		}
		_, err := clients[0].Delete(t.Context(), key)
		require.NoError(t, err, "delete %s at the quota", key)
		delete(acked, key)
		deleted++
	}
	for i := 0; i < 4; i++ {
		key := fmt.Sprintf("quota/%s/after-delete-%d", run, i)
		_, err := clients[i%r.replicas].Put(t.Context(), key, value)
		require.NoError(t, err, "a write after %d deletes", deleted)
		acked[key] = true
	}
	requireNoRestart(t, r, before)
	r.logWorkingSets(t)
}

// quotaOf is the quota serve derives from a memory limit: a fifth
// (config.DefaultQuotaRatio), rounded down as serve does.
func quotaOf(limit int64) float64 { return float64(int64(float64(limit) * 0.2)) }

// requireNoRestart fails when a store pod restarted or was replaced since
// before (identities), or was ever OOM-killed.
func requireNoRestart(t *testing.T, r *release, before map[string]string) {
	t.Helper()
	require.Equal(t, before, r.identities(t), "no store pod restarted or was replaced")
	for name, p := range r.storePods(t) {
		for _, cs := range p.Status.ContainerStatuses {
			if term := cs.LastTerminationState.Terminated; term != nil {
				t.Errorf("%s/%s terminated before: %s (exit %d)", name, cs.Name, term.Reason, term.ExitCode)
			}
			require.Zero(t, cs.RestartCount, "%s/%s restarts", name, cs.Name)
		}
	}
}

// logWorkingSets logs each store pod's memory working set as the kubelet
// measures it (the figure the OOM killer acts on), from the nodes'
// stats/summary API, refreshed every few seconds. It only logs: the proof
// is that no pod restarted. Go's collector lets garbage grow up to its
// soft limit (90 % of the memory limit), so the working set says more
// about the collector than about the data.
func (r *release) logWorkingSets(t *testing.T) {
	t.Helper()
	nodes := map[string]bool{}
	for _, p := range r.storePods(t) {
		nodes[p.Spec.NodeName] = true
	}
	quiet := *r.kubectl
	quiet.Logger = logger.Discard // the summary is pages of JSON
	for node := range nodes {
		out, err := k8s.RunKubectlAndGetOutputContextE(t, t.Context(), &quiet, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/stats/summary")
		if err != nil {
			t.Logf("stats/summary of %s: %v", node, err)
			continue
		}
		var summary struct {
			Pods []struct {
				PodRef struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"podRef"`
				Containers []struct {
					Name   string `json:"name"`
					Memory struct {
						WorkingSetBytes *uint64 `json:"workingSetBytes"`
						RSSBytes        *uint64 `json:"rssBytes"`
					} `json:"memory"`
				} `json:"containers"`
			} `json:"pods"`
		}
		if err := json.Unmarshal([]byte(out), &summary); err != nil {
			t.Logf("stats/summary of %s: %v", node, err)
			continue
		}
		for _, p := range summary.Pods {
			if p.PodRef.Namespace != r.ns {
				continue
			}
			for _, cs := range p.Containers {
				if cs.Name != "ephemeral-store" || cs.Memory.WorkingSetBytes == nil {
					continue
				}
				rss := uint64(0)
				if cs.Memory.RSSBytes != nil {
					rss = *cs.Memory.RSSBytes
				}
				t.Logf("%s: working set %d MiB, RSS %d MiB, of a %d MiB limit", p.PodRef.Name,
					*cs.Memory.WorkingSetBytes>>20, rss>>20, quotaMemoryLimit>>20)
			}
		}
	}
}
