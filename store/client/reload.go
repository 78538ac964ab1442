package client

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// fileValue is a value built from files, built again when their content
// changes: the client's part of the server's filewatch.Reloader (a
// separate module cannot import that internal package). The client needs
// no watcher goroutine and no fsnotify, only "read again, and swap in what
// builds": check runs where the value is used (a TLS handshake). Content,
// never file times, decides whether anything changed, which is the only
// test that holds for Kubernetes Secret volumes (an update swaps the
// ..data symlink and touches no visible file).
type fileValue[T any] struct {
	files []string
	build func(contents [][]byte) (*T, error)

	cur  atomic.Pointer[T]
	mu   sync.Mutex // serialises check
	hash string     // of the content cur was built from
}

// loadFiles reads files and builds their value once; the error is the
// read's or the build's.
func loadFiles[T any](build func([][]byte) (*T, error), files ...string) (*fileValue[T], error) {
	f := &fileValue[T]{files: files, build: build}
	contents, hash, err := readFiles(files...)
	if err != nil {
		return nil, err
	}
	v, err := build(contents)
	if err != nil {
		return nil, err
	}
	f.cur.Store(v)
	f.hash = hash
	return f, nil
}

// value is the current value, never nil.
func (f *fileValue[T]) value() *T { return f.cur.Load() }

// check reads the files again and swaps in their value when their content
// changed and builds. Content that does not read or build (a rotation half
// written) keeps the current value.
func (f *fileValue[T]) check() {
	f.mu.Lock()
	defer f.mu.Unlock()
	contents, hash, err := readFiles(f.files...)
	if err != nil || hash == f.hash {
		return
	}
	v, err := f.build(contents)
	if err != nil {
		return
	}
	f.cur.Store(v)
	f.hash = hash
}

// readFiles reads files, in order, and hashes their content. Each file's
// length is hashed before its bytes, so that bytes moving from one file to
// the next change the hash.
func readFiles(files ...string) ([][]byte, string, error) {
	h := sha256.New()
	contents := make([][]byte, len(files))
	for i, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, "", fmt.Errorf("read %s: %w", name, err)
		}
		contents[i] = data
		_ = binary.Write(h, binary.BigEndian, uint64(len(data)))
		h.Write(data)
	}
	return contents, hex.EncodeToString(h.Sum(nil)), nil
}
