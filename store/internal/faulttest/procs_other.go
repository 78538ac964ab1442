//go:build !linux

package faulttest

import "syscall"

// sysProcAttr: outside Linux there is no parent-death signal; t.Cleanup
// still kills every process by its pid.
func sysProcAttr() *syscall.SysProcAttr { return nil }
