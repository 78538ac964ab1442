//go:build unix

package kvtable

import (
	"fmt"
	"syscall"
)

// mapAnon maps n bytes of private anonymous memory: zeroed, outside the Go
// heap, resident only once touched, never backed by a file.
func mapAnon(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		// As the Go heap does when it cannot grow: a replica that cannot
		// hold the state it must apply cannot go on.
		panic(fmt.Sprintf("kvtable: map %d bytes: %v", n, err))
	}
	return b
}

func unmap(b []byte) {
	if err := syscall.Munmap(b); err != nil {
		panic(fmt.Sprintf("kvtable: unmap %d bytes: %v", len(b), err))
	}
}
