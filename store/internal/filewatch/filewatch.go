// Package filewatch keeps values read from files current, for certificates,
// CA bundles and the users directory alike.
//
// A Reloader holds the value built from some files and replaces it when
// their content changes and still builds; content that does not read or
// build is logged once and the last good value stays. Content, never file
// times, decides whether anything changed: it is the only test that holds
// for Kubernetes Secret and ConfigMap volumes, where an update swaps the
// directory's ..data symlink and touches no visible file.
//
// A Watcher tells a Reloader when to look: on a fixed poll interval and on
// filesystem events in the files' directories. Events make updates fast;
// polling makes them certain (events can be lost: inotify queue overflow, a
// watched directory that is replaced, file systems without events). Both
// are used together by default. An owner that has no goroutine to spare
// calls Reloader.Check where it uses the value instead, as the Go client
// (a module of its own, with a small copy of Reloader) does at each TLS
// handshake.
package filewatch

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultInterval is the poll period of a Config with a zero Interval.
const DefaultInterval = 5 * time.Second

// DefaultDebounce is how long a burst of events must be quiet before the
// check runs: a Kubernetes volume update is several events in a row.
const DefaultDebounce = 50 * time.Millisecond

// Config says how a Watcher notices changes. The zero Config polls every
// DefaultInterval and follows events, as production wants.
type Config struct {
	// Interval is the poll period: zero means DefaultInterval, negative
	// never polls (events only, for tests).
	Interval time.Duration
	// NoEvents turns filesystem events off: changes are seen by polling
	// only (for tests).
	NoEvents bool
	// Debounce is the quiet period after an event; zero means
	// DefaultDebounce.
	Debounce time.Duration
}

// Watcher runs a check function; see Start.
type Watcher struct {
	l         *loop
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Start calls check from one goroutine (never concurrently with itself)
// every cfg.Interval and shortly after events in dirs, until Close. dirs
// are the parent directories of the files read, never the files themselves
// (a watch on a file follows its inode, which a symlink swap leaves
// behind). Start does not call check at once: the owner has loaded before
// starting. When events cannot be set up (for example the inotify limit),
// Start logs a warning on log (nil discards) and relies on polling; a
// directory that cannot be watched is retried at every poll.
func Start(dirs []string, cfg Config, log *slog.Logger, check func()) *Watcher {
	switch {
	case cfg.Interval == 0:
		cfg.Interval = DefaultInterval
	case cfg.Interval < 0:
		cfg.Interval = 0
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{stop: make(chan struct{}), done: make(chan struct{})}

	var fsw *fsnotify.Watcher
	if !cfg.NoEvents {
		var err error
		if fsw, err = fsnotify.NewWatcher(); err != nil {
			log.Warn("file events unavailable; relying on polling", "err", err, "interval", cfg.Interval)
			fsw = nil
		}
	}
	l := &loop{dirs: dirs, cfg: cfg, log: log, fsw: fsw, check: check, failing: map[string]bool{}}
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
	dirs    []string
	cfg     Config // Interval 0: no polling
	log     *slog.Logger
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
			l.log.Debug("file watch error; checking now", "err", err)
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
	for _, d := range l.dirs {
		if slices.Contains(have, d) {
			continue
		}
		if err := l.fsw.Add(d); err != nil {
			if !l.failing[d] {
				l.log.Warn("cannot watch directory for events; relying on polling", "dir", d, "err", err)
				l.failing[d] = true
			}
			continue
		}
		if l.failing[d] {
			l.log.Info("watching directory for events again", "dir", d)
			delete(l.failing, d)
		}
	}
}
