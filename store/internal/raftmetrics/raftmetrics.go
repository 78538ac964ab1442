// Package raftmetrics exports hashicorp/raft's own measurements (commit
// time, leader contact, FSM apply and snapshot timings, state changes) to
// Prometheus. Raft reports them through go-metrics' process-wide global
// sink, so only a process that runs one node installs it: `serve`, not
// `dev` or the in-process test clusters, where the nodes would mix.
//
// Raft's key raft.commitTime becomes ephemeral_store_raft_commitTime:
// go-metrics joins the service name and the key with "_" and keeps Raft's
// camel case. Timings are summaries in milliseconds.
package raftmetrics

import (
	"fmt"
	"strings"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	gmprometheus "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// Prefix starts every exported name.
const Prefix = "ephemeral_store"

// expiration drops a series Raft stopped updating, such as the
// per-follower replication timings of a follower that left: each pod
// restart is a new follower ID, and the series must not pile up. The
// metrics declared below never expire.
const expiration = 15 * time.Minute

// Declared are exported from the start, at zero, so the dashboard and the
// alerts find them before the first write or election.
var (
	declaredSummaries = map[string]string{
		"raft.commitTime":          "Time from a log entry's append on the leader to its commit (ms).",
		"raft.leader.lastContact":  "Time since the leader last heard from a majority, when it checked (ms).",
		"raft.fsm.applyBatch":      "Time to apply one batch of committed entries to the key-value state (ms).",
		"raft.fsm.applyBatchNum":   "Entries per batch applied to the key-value state.",
		"raft.fsm.snapshot":        "Time to take a snapshot of the key-value state (ms).",
		"raft.fsm.restore":         "Time to restore the key-value state from a snapshot (ms).",
		"raft.snapshot.create":     "Time to create a snapshot sink (ms).",
		"raft.snapshot.persist":    "Time to write a snapshot into the in-memory snapshot store (ms).",
		"raft.rpc.appendEntries":   "Time a follower takes to process one AppendEntries request (ms).",
		"raft.rpc.installSnapshot": "Time a follower takes to install a snapshot sent by the leader (ms).",
	}
	declaredCounters = map[string]string{
		"raft.apply":                           "Entries the leader appended for clients.",
		"raft.state.candidate":                 "Elections this node started.",
		"raft.state.leader":                    "Times this node became leader.",
		"raft.state.follower":                  "Times this node became follower.",
		"raft.transition.heartbeat_timeout":    "Times this follower stopped hearing from the leader.",
		"raft.transition.leader_lease_timeout": "Times this leader stepped down without a majority's answers.",
	}
)

// Install makes Raft's metrics part of reg. Call it once per process,
// before the node starts.
func Install(reg prometheus.Registerer) error {
	sink, err := gmprometheus.NewPrometheusSinkFrom(gmprometheus.PrometheusOpts{
		Name:               "ephemeral_store_raft",
		Registerer:         reg,
		Expiration:         expiration,
		SummaryDefinitions: summaries(),
		CounterDefinitions: counters(),
	})
	if err != nil {
		return fmt.Errorf("raft metrics: %w", err)
	}
	if _, err := metrics.NewGlobal(config(), sink); err != nil {
		return fmt.Errorf("raft metrics: %w", err)
	}
	return nil
}

// config names every key Prefix_<key> and adds nothing else: no host name
// (Prometheus labels the target), no Go runtime metrics (the Go collector
// exports those already).
func config() *metrics.Config {
	c := metrics.DefaultConfig(Prefix)
	c.EnableHostname = false
	c.EnableHostnameLabel = false
	c.EnableServiceLabel = false
	c.EnableRuntimeMetrics = false
	c.EnableTypePrefix = false
	return c
}

// Name is the Prometheus name of Raft's key: Name("raft.commitTime") is
// "ephemeral_store_raft_commitTime".
func Name(key string) string {
	return strings.Join(keyParts(key), "_")
}

func keyParts(key string) []string {
	return append([]string{Prefix}, strings.Split(key, ".")...)
}

func summaries() []gmprometheus.SummaryDefinition {
	var out []gmprometheus.SummaryDefinition
	for key, help := range declaredSummaries {
		out = append(out, gmprometheus.SummaryDefinition{Name: keyParts(key), Help: help})
	}
	return out
}

func counters() []gmprometheus.CounterDefinition {
	var out []gmprometheus.CounterDefinition
	for key, help := range declaredCounters {
		out = append(out, gmprometheus.CounterDefinition{Name: keyParts(key), Help: help})
	}
	return out
}
