package faulttest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ephemeral-store/ephemeral-store/store/client"
	"github.com/ephemeral-store/ephemeral-store/store/internal/scenario"
)

// Scenario is the cluster as the shared scenarios of
// store/internal/scenario drive it: a crash is SIGKILL, readiness and
// metrics come from each process's probe port, clients are User's with
// calls bounded by 5s. Call it from the test goroutine; every call returns
// the same value.
func (c *Cluster) Scenario() scenario.Cluster {
	c.t.Helper()
	c.statusMu.Lock()
	s := c.scenario
	c.statusMu.Unlock()
	if s != nil {
		return s
	}
	s = &processes{c: c, clients: map[string]*client.Client{}}
	// Clients are made here, in the test goroutine: a scenario also asks
	// for them inside its wait conditions, where failing is not allowed.
	s.clients[fmt.Sprint([]int(nil))] = c.Client(0, 5*time.Second)
	for i := range c.Nodes {
		s.clients[fmt.Sprint([]int{i})] = c.NodeClient(i, 5*time.Second)
	}
	c.statusMu.Lock()
	c.scenario = s
	c.statusMu.Unlock()
	return s
}

// processes implements scenario.Cluster over a Cluster.
type processes struct {
	c *Cluster

	mu      sync.Mutex
	clients map[string]*client.Client // by node set
}

var _ scenario.Cluster = (*processes)(nil)

func (p *processes) Size() int                              { return len(p.c.Nodes) }
func (p *processes) KillAll(nodes ...int)                   { p.c.KillAll(nodes...) }
func (p *processes) Start(i int)                            { p.c.Start(i) }
func (p *processes) Ready(i int) (bool, string)             { return p.c.Ready(i) }
func (p *processes) Metric(i int, n string) (float64, bool) { return p.c.Metric(i, n) }
func (p *processes) QuorumLossTimeout() time.Duration       { return p.c.opts.QuorumLossTimeout }

func (p *processes) Leader() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.c.Leader(ctx)
}

// Client returns the client of the node set, made once (the sets
// scenarios use were made by Scenario).
func (p *processes) Client(nodes ...int) *client.Client {
	key := fmt.Sprint(nodes)
	p.mu.Lock()
	defer p.mu.Unlock()
	if cl, ok := p.clients[key]; ok {
		return cl
	}
	var eps []string
	for _, i := range nodes {
		eps = append(eps, p.c.Endpoint(i))
	}
	cl := p.c.newClient(eps, 5*time.Second)
	p.clients[key] = cl
	return cl
}
