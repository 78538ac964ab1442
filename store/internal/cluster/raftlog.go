package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// newHCLogAdapter gives Raft the hclog.Logger it requires. Raft logs
// through hclog's intercept logger, whose own output is discarded; a sink
// turns every record into a slog record of the node's logger, with Raft's
// level and its key/value pairs as attributes, so Raft's lines are JSON
// like the rest and filtered by --log-level.
func newHCLogAdapter(l *slog.Logger) hclog.Logger {
	intercept := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:   "raft",
		Output: io.Discard,
		// The base logger writes nowhere, and at Off it does not format
		// either; the sink still receives every record and filters by the
		// slog logger's level.
		Level: hclog.Off,
	})
	intercept.RegisterSink(slogSink{l})
	return intercept
}

// slogLevel maps Raft's levels onto slog's; trace sits below debug.
func slogLevel(lv hclog.Level) slog.Level {
	switch lv {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Info:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// slogSink receives every record of the intercept logger.
type slogSink struct{ l *slog.Logger }

func (s slogSink) Accept(name string, lv hclog.Level, msg string, args ...any) {
	ctx := context.Background()
	level := slogLevel(lv)
	if !s.l.Enabled(ctx, level) {
		return
	}
	if level > slog.LevelDebug && routine(msg, args) {
		level = slog.LevelDebug
		if !s.l.Enabled(ctx, level) {
			return
		}
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	// Raft's pairs go in a group of their own: Raft uses keys such as
	// "node" that the node's logger has already set.
	r.AddAttrs(slog.String("logger", name), slog.Attr{Key: "raft", Value: slog.GroupValue(raftAttrs(args)...)})
	_ = s.l.Handler().Handle(ctx, r)
}

// raftAttrs turns hclog's alternating keys and values into attributes.
// An odd value out is kept under the key hclog itself uses for it.
func raftAttrs(args []any) []slog.Attr {
	attrs := make([]slog.Attr, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			attrs = append(attrs, slog.Any(hclog.MissingKey, attrValue(args[i])))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		attrs = append(attrs, slog.Any(key, attrValue(args[i+1])))
	}
	return attrs
}

// attrValue renders the values slog would not render well by itself:
// errors (the JSON handler would print {}) and hclog's Format.
func attrValue(v any) any {
	switch v := v.(type) {
	case error:
		return v.Error()
	case hclog.Format:
		if len(v) == 0 {
			return ""
		}
		f, _ := v[0].(string)
		return fmt.Sprintf(f, v[1:]...)
	case fmt.Stringer:
		return v.String()
	}
	return v
}

// routine reports the warnings Raft gives while things go as designed, so
// they are logged at debug and not shown as if something were wrong:
//   - a fresh node has no configuration until the bootstrap node adds it,
//     and its election timer fires meanwhile ("no known peers");
//   - a node that restarts empty makes the leader look for older entries
//     until it sends a snapshot ("failed to get previous log",
//     "appendEntries rejected");
//   - a node that never knew a leader times out before the first election
//     ("heartbeat timeout reached" with no last leader);
//   - nobody answers at a placeholder voter's address, by design
//     (membership.go).
func routine(msg string, args []any) bool {
	if strings.HasPrefix(msg, "heartbeat timeout reached") && leaderless(args) {
		return true // a node that never had a leader: the cluster is forming
	}
	for _, m := range []string{
		"no known peers, aborting election",
		"failed to get previous log",
		"appendEntries rejected, sending older logs",
	} {
		if strings.Contains(msg, m) {
			return true
		}
	}
	for _, a := range args {
		s := fmt.Sprint(a)
		if strings.Contains(s, placeholderSuffix) || strings.Contains(s, ".invalid:") {
			return true
		}
	}
	return false
}

// leaderless reports whether Raft's pairs name no last leader.
func leaderless(args []any) bool {
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k == "last-leader-id" {
			return fmt.Sprint(args[i+1]) == ""
		}
	}
	return false
}
