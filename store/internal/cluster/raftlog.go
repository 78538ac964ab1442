package cluster

import (
	"bytes"
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogAdapter gives Raft the hclog.Logger it requires, writing into the
// node's slog logger so Raft's lines share the node's format and level.
// Raft's info level logs every heartbeat change; warn and above is kept.
func newHCLogAdapter(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            "raft",
		Output:          slogWriter{l},
		Level:           hclog.Warn,
		DisableTime:     true,
		IncludeLocation: false,
	})
}

// slogWriter turns each line hclog writes into one slog record.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelWarn
	switch {
	case bytes.Contains(p, []byte(placeholderSuffix)), bytes.Contains(p, []byte(".invalid:")):
		// Raft failing to reach a placeholder voter is expected: nobody is
		// there by design (membership.go). Not an operator's concern.
		level = slog.LevelDebug
	case bytes.Contains(p, []byte("[ERROR]")):
		level = slog.LevelError
	}
	w.l.Log(context.Background(), level, line)
	return len(p), nil
}
