package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestRaftLinesAboutPlaceholdersAreDebug(t *testing.T) {
	var buf bytes.Buffer
	w := slogWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	lines := map[string]string{
		`[ERROR] raft: failed to heartbeat to: peer=placeholder-127-0-0-1-8108.invalid:1`:               "level=DEBUG",
		`[ERROR] raft: failed to appendEntries to: peer="{Voter 10.0.0.3:8088/placeholder x}"`:          "level=DEBUG",
		`[ERROR] raft: failed to appendEntries to: peer="{Voter n3/1a2b 10.0.0.3:8088}"`:                "level=ERROR",
		`[WARN]  raft: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=`: "level=WARN",
	}
	for line, want := range lines {
		buf.Reset()
		_, _ = w.Write([]byte(line + "\n"))
		if !strings.Contains(buf.String(), want) {
			t.Errorf("%q logged as %q, want %s", line, buf.String(), want)
		}
	}
}
