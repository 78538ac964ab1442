package filewatchtest

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// LogBuffer collects what a reloader logs, so tests can count how often a
// failed reload was reported.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String is everything logged so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Count is how many times s occurs in the log.
func (l *LogBuffer) Count(s string) int { return strings.Count(l.String(), s) }

// NewLog returns a text logger at level writing into a new LogBuffer.
func NewLog(level slog.Level) (*slog.Logger, *LogBuffer) {
	b := &LogBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level})), b
}
