//go:build !unix

package kvtable

// mapAnon falls back to the Go heap where there is no mmap: the table
// works, only its memory is the collector's again.
func mapAnon(n int) []byte { return make([]byte, n) }

func unmap([]byte) {}
