package kvhistory

import (
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// EndOfTime is the Return of an operation whose outcome is unknown: it may
// take effect at any point after its call.
const EndOfTime = int64(math.MaxInt64)

// Recorder collects operations from many goroutines on one monotonic
// clock. It is safe for concurrent use.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

// NewRecorder returns an empty recorder whose clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the current timestamp for Call and Return: nanoseconds since the
// recorder was made, on the monotonic clock (wall-clock steps cannot
// reorder operations).
func (h *Recorder) Now() int64 { return int64(time.Since(h.start)) }

// Time converts a timestamp of Now back to wall-clock time (for logs).
func (h *Recorder) Time(ts int64) time.Time { return h.start.Add(time.Duration(ts)) }

// Add records one completed (or unknown) operation.
func (h *Recorder) Add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Operations returns a copy of the operations recorded so far.
func (h *Recorder) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// Len is the number of operations recorded so far.
func (h *Recorder) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}
