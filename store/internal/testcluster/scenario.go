package testcluster

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
)

// Scenario is the cluster as the shared scenarios of
// store/internal/scenario drive it: a crash is Server.Kill, readiness and
// metrics come from each node's probe port, clients are UserAll's.
func (c *Cluster) Scenario() scenario.Cluster {
	c.t.Helper()
	s := &inProcess{c: c, clients: map[string]*client.Client{},
		probe: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	// Clients are made here, in the test goroutine: a scenario also asks
	// for them inside its wait conditions, where failing is not allowed.
	s.Client()
	for i := 0; i < c.Size(); i++ {
		s.Client(i)
	}
	return s
}

// inProcess implements scenario.Cluster over a Cluster.
type inProcess struct {
	c     *Cluster
	probe *http.Client

	mu      sync.Mutex
	clients map[string]*client.Client
}

var _ scenario.Cluster = (*inProcess)(nil)

func (s *inProcess) Size() int   { return s.c.Size() }
func (s *inProcess) Leader() int { return s.c.Leader() }
func (s *inProcess) Start(i int) { s.c.Start(i) }

func (s *inProcess) KillAll(nodes ...int) {
	for _, i := range nodes {
		s.c.Kill(i)
	}
}

func (s *inProcess) QuorumLossTimeout() time.Duration { return s.c.Node(0).Config.QuorumLossTimeout }

// Ready asks node i's /readyz, as a kubelet would.
func (s *inProcess) Ready(i int) (bool, string) {
	resp, err := s.probe.Get("http://" + s.c.Node(i).Probe + "/readyz")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK, strings.TrimSpace(string(body))
}

func (s *inProcess) Client(nodes ...int) *client.Client {
	if len(nodes) == 0 {
		for i := 0; i < s.c.Size(); i++ {
			nodes = append(nodes, i)
		}
	}
	key := fmt.Sprint(nodes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cl, ok := s.clients[key]; ok {
		return cl
	}
	var eps []string
	for _, i := range nodes {
		eps = append(eps, "https://"+s.c.Node(i).Client)
	}
	cert, key2, ca := s.c.CertPaths(UserAll)
	tlsCfg, err := client.TLSConfigFromFiles(cert, key2, ca)
	if err != nil {
		s.c.t.Fatalf("client TLS: %v", err)
	}
	cl, err := client.New(client.Config{Endpoints: eps, TLS: tlsCfg, Timeout: 5 * time.Second})
	if err != nil {
		s.c.t.Fatalf("client: %v", err)
	}
	s.c.t.Cleanup(func() { _ = cl.Close() })
	s.clients[key] = cl
	return cl
}

// Metric reads a metric without labels from node i's /metrics.
func (s *inProcess) Metric(i int, name string) (float64, bool) {
	return scenario.ScrapeMetric(s.probe, s.c.Node(i).Probe, name)
}
