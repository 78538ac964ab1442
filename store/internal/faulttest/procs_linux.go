package faulttest

import "syscall"

// sysProcAttr makes the kernel kill a server when the test process dies,
// so a test binary that panics or times out leaves no process behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
