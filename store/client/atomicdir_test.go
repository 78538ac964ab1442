package client

// atomicDir reproduces, for tests, the way Kubernetes updates a Secret
// volume: a copy of the server's filewatchtest.AtomicDir, which this
// module cannot import.
import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// atomicDir is a directory laid out as kubelet's AtomicWriter lays out a
// Secret or ConfigMap volume:
//
//	dir/..2024_01_02_15_04_05.123456789/tls.crt   the payload, one directory per version
//	dir/..data -> ..2024_01_02_15_04_05.123456789  the current version
//	dir/tls.crt -> ..data/tls.crt                  the names a container reads
//
// An update writes a new timestamped directory, points a ..data_tmp
// symlink at it, renames ..data_tmp over ..data (the atomic step), adds
// symlinks for new names, removes those of names that are gone, and deletes
// the old version. No visible name is ever written in place.
type atomicDir struct {
	Dir     string
	tb      testing.TB
	current string   // name of the current timestamped directory
	names   []string // visible names
}

// newAtomicDir creates dir if needed and writes the first version of files
// (name -> content) into it.
func newAtomicDir(tb testing.TB, dir string, files map[string][]byte) *atomicDir {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	a := &atomicDir{Dir: dir, tb: tb}
	a.Update(files)
	return a
}

// Update replaces the whole content with files, the AtomicWriter way.
func (a *atomicDir) Update(files map[string][]byte) {
	a.tb.Helper()
	must := func(err error) {
		a.tb.Helper()
		if err != nil {
			a.tb.Fatalf("atomic dir %s: %v", a.Dir, err)
		}
	}
	// 1. A new timestamped directory with the payload.
	tsDir, err := os.MkdirTemp(a.Dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	must(err)
	must(os.Chmod(tsDir, 0o755))
	var names []string
	for name, content := range files {
		must(os.WriteFile(filepath.Join(tsDir, name), content, 0o644))
		names = append(names, name)
	}
	slices.Sort(names)
	// 2. ..data_tmp -> new version, renamed over ..data.
	tmp := filepath.Join(a.Dir, "..data_tmp")
	must(os.Symlink(filepath.Base(tsDir), tmp))
	must(os.Rename(tmp, filepath.Join(a.Dir, "..data")))
	// 3. Visible symlinks for new names.
	for _, name := range names {
		link := filepath.Join(a.Dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			must(os.Symlink(filepath.Join("..data", name), link))
		}
	}
	// 4. Remove visible names that are gone, then the old version.
	for _, name := range a.names {
		if !slices.Contains(names, name) {
			must(os.Remove(filepath.Join(a.Dir, name)))
		}
	}
	if a.current != "" {
		must(os.RemoveAll(filepath.Join(a.Dir, a.current)))
	}
	a.current, a.names = filepath.Base(tsDir), names
}
