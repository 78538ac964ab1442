package kvtable

import "unsafe"

// unsafeUint64s views a mapping as the index's slots. The mapping is
// page-aligned and outside the Go heap, and the slots hold no Go pointers,
// so the collector has nothing to know about them.
func unsafeUint64s(b []byte) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8) //nolint:gosec // audited: a page-aligned mapping of len(b) bytes, read as len(b)/8 words
}
