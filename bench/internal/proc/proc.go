// Package proc starts the benchmarked servers as child processes and ends
// them by PID only: the harness must never touch a process it did not start
// (another engineer's cluster may run on the same machine).
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Proc is one running child process whose output goes to a log file.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string

	exited chan struct{}
	err    error
}

// Start runs path with args, stdout and stderr appended to logPath. The
// child gets its own process group so a Ctrl-C at the terminal reaches only
// the harness, which then stops every child itself, in order.
func Start(name, logPath, path string, args ...string) (*Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: log: %w", name, err)
	}
	defer logf.Close() // the child holds its own descriptor
	fmt.Fprintf(logf, "=== bench: start %s at %s ===\n", name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = cleanEnv()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, path, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// cleanEnv drops ES_ variables, which the store would read as flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if len(kv) < 3 || kv[:3] != "ES_" {
			env = append(env, kv)
		}
	}
	return env
}

// PID of the child.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Running reports whether the child has not exited yet.
func (p *Proc) Running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Exited is closed when the child has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// ExitErr is the wait status, valid once Exited is closed.
func (p *Proc) ExitErr() error { return p.err }

// Kill sends SIGKILL to the child's PID and waits (bounded) until it is
// reaped. A child that already exited is left alone.
func (p *Proc) Kill() error {
	if !p.Running() {
		return nil
	}
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", p.Name, p.PID(), err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(30 * time.Second): // a frozen VM can delay even SIGKILL
		return fmt.Errorf("%s (pid %d) still alive 30s after SIGKILL", p.Name, p.PID())
	}
}

// Stop asks the child to exit with SIGTERM and kills it if it has not
// exited within grace.
func (p *Proc) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("terminate %s (pid %d): %w", p.Name, p.PID(), err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
		return p.Kill()
	}
}
