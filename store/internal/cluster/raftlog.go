package cluster

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/hashicorp/go-hclog"
)

// newHCLogAdapter gives Raft the hclog.Logger it requires. Raft's own
// messages go out as JSON lines at warn level and above (its info level
// logs every heartbeat change), beside the node's slog output.
func newHCLogAdapter(l *slog.Logger) hclog.Logger {
	var out io.Writer = os.Stderr
	if !l.Enabled(context.Background(), slog.LevelWarn) {
		out = io.Discard
	}
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Output: out, Level: hclog.Warn, JSONFormat: true})
}
