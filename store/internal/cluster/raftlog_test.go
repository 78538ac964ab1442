package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRaftLogsAreStructured drives the adapter the way Raft does and reads
// the JSON records back: Raft's level, its message, its key/value pairs as
// attributes, and the routine warnings demoted to debug.
func TestRaftLogsAreStructured(t *testing.T) {
	placeholder := raft.Server{Suffrage: raft.Voter, ID: "10.0.0.3:8088" + placeholderSuffix, Address: "placeholder-10-0-0-3-8088.invalid:1"}
	member := raft.Server{Suffrage: raft.Voter, ID: "n3/1a2b", Address: "10.0.0.3:8088"}
	tests := []struct {
		name      string
		log       func(hclog.Logger)
		wantLevel string // "" when nothing may be logged at info
		wantMsg   string
		wantAttrs map[string]any
	}{
		{
			name: "error with an error value",
			log: func(l hclog.Logger) {
				l.Error("failed to appendEntries to", "peer", member, "error", errors.New("connection refused"))
			},
			wantLevel: "ERROR", wantMsg: "failed to appendEntries to",
			wantAttrs: map[string]any{"error": "connection refused"},
		},
		{
			name: "warn keeps its pairs",
			log: func(l hclog.Logger) {
				l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "10.0.0.1:8088", "last-leader-id", "n1/ab")
			},
			wantLevel: "WARN", wantMsg: "heartbeat timeout reached, starting election",
			wantAttrs: map[string]any{"last-leader-addr": "10.0.0.1:8088", "last-leader-id": "n1/ab"},
		},
		{
			name:      "info is info",
			log:       func(l hclog.Logger) { l.Info("entering leader state", "leader", "n1") },
			wantLevel: "INFO", wantMsg: "entering leader state", wantAttrs: map[string]any{"leader": "n1"},
		},
		{
			name:      "odd argument kept",
			log:       func(l hclog.Logger) { l.Warn("odd", "lonely") },
			wantLevel: "WARN", wantMsg: "odd", wantAttrs: map[string]any{hclog.MissingKey: "lonely"},
		},
		{
			name:      "hclog.Fmt rendered",
			log:       func(l hclog.Logger) { l.Warn("fmt", "n", hclog.Fmt("%d entries", 3)) },
			wantLevel: "WARN", wantMsg: "fmt", wantAttrs: map[string]any{"n": "3 entries"},
		},
		{name: "debug below the level", log: func(l hclog.Logger) { l.Debug("votes", "needed", 2) }},
		{name: "trace below the level", log: func(l hclog.Logger) { l.Trace("x") }},
		{name: "a placeholder voter not answering", log: func(l hclog.Logger) { l.Error("failed to heartbeat to", "peer", placeholder.Address, "error", "dial") }},
		{name: "a placeholder voter by ID", log: func(l hclog.Logger) { l.Error("failed to appendEntries to", "peer", placeholder) }},
		{name: "a forming cluster's first election", log: func(l hclog.Logger) {
			l.Warn("heartbeat timeout reached, starting election", "last-leader-addr", "", "last-leader-id", "")
		}},
		{name: "a fresh node without peers", log: func(l hclog.Logger) { l.Warn("no known peers, aborting election") }},
		{name: "an empty follower catching up", log: func(l hclog.Logger) { l.Warn("failed to get previous log", "previous-index", 7, "last-index", 0) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := newHCLogAdapter(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
			tc.log(l)
			if tc.wantLevel == "" {
				assert.Empty(t, buf.String())
				return
			}
			var rec map[string]any
			require.NoError(t, json.Unmarshal(buf.Bytes(), &rec), buf.String())
			assert.Equal(t, tc.wantLevel, rec["level"])
			assert.Equal(t, tc.wantMsg, rec["msg"])
			assert.Equal(t, "raft", rec["logger"])
			pairs, _ := rec["raft"].(map[string]any)
			for k, v := range tc.wantAttrs {
				assert.Equal(t, v, pairs[k], "attribute %s in %s", k, buf.String())
			}
		})
	}
}

// TestRaftRoutineWarningsAreDebug checks that the demoted records are still
// there for whoever asks for debug.
func TestRaftRoutineWarningsAreDebug(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLogAdapter(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Named("raft-net").Warn("no known peers, aborting election")
	var rec map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &rec), buf.String())
	assert.Equal(t, "DEBUG", rec["level"])
	assert.Equal(t, "raft.raft-net", rec["logger"])
}
