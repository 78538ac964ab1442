// Package filewatch tells its owner when files it reads may have changed:
// on a fixed poll interval and on filesystem events in the files'
// directories. It does not decide whether anything changed; the owner's
// check function compares content (a hash of what it reads), which is the
// only test that holds for Kubernetes Secret and ConfigMap volumes, where an
// update swaps the directory's ..data symlink and touches no visible file.
//
// Events make updates fast; polling makes them certain (events can be lost:
// inotify queue overflow, a watched directory that is replaced, file systems
// without events). Both are used together by default.
//
// The mtls (certificates) and auth (users directory) packages share it.
package filewatch

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a burst of events must be quiet before the
// check runs: a Kubernetes volume update is several events in a row.
const DefaultDebounce = 50 * time.Millisecond

// Config says what to watch and how.
type Config struct {
	// Dirs are the directories whose events trigger a check: the parent
	// directories of the watched files, never the files themselves (a
	// watch on a file follows its inode, which a symlink swap leaves
	// behind).
	Dirs []string
	// Interval is the poll period; zero or negative disables polling.
	Interval time.Duration
	// Events turns on filesystem events for Dirs.
	Events bool
	// Debounce is the quiet period after an event; default DefaultDebounce.
	Debounce time.Duration
	// Logger receives warnings about the watch itself; nil discards them.
	Logger *slog.Logger
}

// Watcher runs a check function; see Start.
type Watcher struct {
	l         *loop
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Start calls check from one goroutine (never concurrently with itself)
// every cfg.Interval and shortly after events in cfg.Dirs, until Close. It
// does not call check at once: the owner has loaded before starting. When
// events cannot be set up (for example the inotify limit), Start logs a
// warning and relies on polling; a directory that cannot be watched is
// retried at every poll.
func Start(cfg Config, check func()) *Watcher {
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{stop: make(chan struct{}), done: make(chan struct{})}

	var fsw *fsnotify.Watcher
	if cfg.Events {
		var err error
		if fsw, err = fsnotify.NewWatcher(); err != nil {
			cfg.Logger.Warn("file events unavailable; relying on polling", "err", err, "interval", cfg.Interval)
			fsw = nil
		}
	}
	l := &loop{cfg: cfg, fsw: fsw, check: check, failing: map[string]bool{}}
	l.ensureWatches()
	w.l = l
	go l.run(w)
	return w
}

// Close stops the watcher and waits until a running check has returned.
// It is safe to call more than once.
func (w *Watcher) Close() {
	w.closeOnce.Do(func() { close(w.stop) })
	<-w.done
}

type loop struct {
	cfg     Config
	fsw     *fsnotify.Watcher
	check   func()
	failing map[string]bool // directories whose watch failed, logged once
}

func (l *loop) run(w *Watcher) {
	defer close(w.done)
	var tick <-chan time.Time
	if l.cfg.Interval > 0 {
		t := time.NewTicker(l.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if l.fsw != nil {
		defer l.fsw.Close()
		events, errs = l.fsw.Events, l.fsw.Errors
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()

	for {
		select {
		case <-w.stop:
			return
		case <-tick:
			l.ensureWatches()
			l.check()
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			debounce.Reset(l.cfg.Debounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// Typically an event queue overflow: changes may have been
			// missed, so check now.
			l.cfg.Logger.Debug("file watch error; checking now", "err", err)
			l.check()
		case <-debounce.C:
			l.check()
		}
	}
}

// ensureWatches adds a watch for every directory that has none (the first
// time, or after the directory was removed and came back).
func (l *loop) ensureWatches() {
	if l.fsw == nil {
		return
	}
	have := l.fsw.WatchList()
	for _, d := range l.cfg.Dirs {
		if slices.Contains(have, d) {
			continue
		}
		if err := l.fsw.Add(d); err != nil {
			if !l.failing[d] {
				l.cfg.Logger.Warn("cannot watch directory for events; relying on polling", "dir", d, "err", err)
				l.failing[d] = true
			}
			continue
		}
		if l.failing[d] {
			l.cfg.Logger.Info("watching directory for events again", "dir", d)
			delete(l.failing, d)
		}
	}
}
