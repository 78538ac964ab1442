package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

const testName = "localhost/ephemeral-store:1.2.3"

var (
	buildOnce sync.Once
	built     map[string]string
	buildErr  error
)

// binaries builds a small static program for linux/amd64 and linux/arm64, once per run.
func binaries(t *testing.T) map[string]string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "release-test-")
		if err != nil {
			buildErr = err
			return
		}
		src := map[string]string{
			"go.mod":  "module hello\n\ngo 1.26\n",
			"main.go": "package main\n\nfunc main() { println(\"hello\") }\n",
		}
		for name, body := range src {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				buildErr = err
				return
			}
		}
		built = map[string]string{}
		for _, arch := range []string{"amd64", "arm64"} {
			out := filepath.Join(dir, "hello-"+arch)
			cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=-buildvcs=false")
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{arch: arch, out: string(b), err: err}
				return
			}
			built[arch] = out
		}
	})
	if buildErr != nil {
		t.Fatalf("building the test binaries: %v", buildErr)
	}
	return built
}

type buildError struct {
	arch, out string
	err       error
}

func (e *buildError) Error() string { return e.arch + ": " + e.err.Error() + "\n" + e.out }

func spec(t *testing.T, bins ...Binary) Spec {
	t.Helper()
	return Spec{Name: testName, Version: "1.2.3", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Binaries: bins}
}

func want(platforms ...v1.Platform) Want {
	return Want{Name: testName, Version: "1.2.3", Platforms: platforms}
}

func write(t *testing.T, s Spec) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "image.oci.tar")
	if err := WriteArchive(out, s); err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	return out
}

func TestArchiveHoldsBothPlatformsWithTheirBinaries(t *testing.T) {
	b := binaries(t)
	out := write(t, spec(t, Binary{amd64, b["amd64"]}, Binary{arm64, b["arm64"]}))
	w := want(amd64, arm64)
	w.Binaries = map[string]string{"linux/amd64": b["amd64"], "linux/arm64": b["arm64"]}
	report, err := CheckArchive(out, w)
	if err != nil {
		t.Fatalf("CheckArchive: %v", err)
	}
	for _, s := range []string{"linux/amd64: ", "static ELF EM_X86_64", "linux/arm64: ", "static ELF EM_AARCH64"} {
		if !strings.Contains(report, s) {
			t.Errorf("report lacks %q:\n%s", s, report)
		}
	}
	// the same inputs give the same bytes: a release can be rebuilt and compared
	again := write(t, spec(t, Binary{amd64, b["amd64"]}, Binary{arm64, b["arm64"]}))
	if !sameFile(t, out, again) {
		t.Error("two archives of the same inputs differ")
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}

// The builder refuses binaries that would not run in the image.
func TestWriteArchiveRejectsWrongBinaries(t *testing.T) {
	b := binaries(t)
	dynamic, err := exec.LookPath("true") // the host's coreutils: dynamically linked
	if err != nil {
		t.Fatalf("no true(1) to use as a dynamic binary: %v", err)
	}
	cases := []struct {
		name string
		bins []Binary
		err  string
	}{
		{"arm64 binary labelled amd64", []Binary{{amd64, b["arm64"]}}, "EM_AARCH64, not linux/amd64"},
		{"amd64 binary labelled arm64", []Binary{{arm64, b["amd64"]}}, "EM_X86_64, not linux/arm64"},
		{"not an ELF file", []Binary{{amd64, "release_test.go"}}, "not an ELF executable"},
		{"missing file", []Binary{{amd64, "/nonexistent/ephemeral-store"}}, "no such file"},
		{"no platform", nil, "at least one platform"},
		{"platform twice", []Binary{{amd64, b["amd64"]}, {amd64, b["amd64"]}}, "given twice"},
	}
	if out, err := exec.Command("file", "-L", dynamic).Output(); err == nil && strings.Contains(string(out), "dynamically linked") &&
		strings.Contains(string(out), "x86-64") {
		cases = append(cases, struct {
			name string
			bins []Binary
			err  string
		}{"dynamically linked", []Binary{{amd64, dynamic}}, "dynamically linked"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := WriteArchive(filepath.Join(t.TempDir(), "x.tar"), spec(t, c.bins...))
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("WriteArchive: %v, want an error with %q", err, c.err)
			}
		})
	}
}

// The check fails on an archive that is not the release's.
func TestCheckArchiveRejects(t *testing.T) {
	b := binaries(t)
	good := write(t, spec(t, Binary{amd64, b["amd64"]}, Binary{arm64, b["arm64"]}))
	amdOnly := write(t, spec(t, Binary{amd64, b["amd64"]}))
	otherVersion := spec(t, Binary{amd64, b["amd64"]}, Binary{arm64, b["arm64"]})
	otherVersion.Version = "9.9.9"
	cases := []struct {
		name    string
		archive string
		want    func() Want
		err     string
	}{
		{"a platform missing", amdOnly, func() Want { return want(amd64, arm64) }, "platforms [linux/amd64], want [linux/amd64 linux/arm64]"},
		{"a platform more", good, func() Want { return want(amd64) }, "platforms [linux/amd64 linux/arm64], want [linux/amd64]"},
		{"another name", good, func() Want { w := want(amd64, arm64); w.Name = "localhost/other:1.2.3"; return w }, "names the image"},
		{"another version label", write(t, otherVersion), func() Want { return want(amd64, arm64) }, "runtime config"},
		{"another binary", good, func() Want {
			w := want(amd64, arm64)
			w.Binaries = map[string]string{"linux/amd64": b["arm64"]}
			return w
		}, "differs from"},
		{"a corrupted blob", corrupt(t, good), func() Want { return want(amd64, arm64) }, "does not validate"},
		{"not a tar file", "release_test.go", func() Want { return want(amd64, arm64) }, "archive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := CheckArchive(c.archive, c.want())
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("CheckArchive: %v, want an error with %q", err, c.err)
			}
		})
	}
}

// corrupt is a copy of the archive with one byte of its largest blob (a layer) changed.
func corrupt(t *testing.T, archive string) string {
	t.Helper()
	dir := t.TempDir()
	if err := untar(archive, dir); err != nil {
		t.Fatal(err)
	}
	var largest string
	var size int64
	blobs, err := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range blobs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			largest, size = p, fi.Size()
		}
	}
	data, err := os.ReadFile(largest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(largest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "corrupt.tar")
	if err := tarDir(dir, out, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCheckExecutable(t *testing.T) {
	b := binaries(t)
	cases := []struct {
		name, path, os, arch, err string
	}{
		{"linux amd64", b["amd64"], "linux", "amd64", ""},
		{"linux arm64", b["arm64"], "linux", "arm64", ""},
		{"arm64 as amd64", b["arm64"], "linux", "amd64", "not linux/amd64"},
		{"ELF as darwin", b["amd64"], "darwin", "amd64", "an ELF file, not a Mach-O"},
		{"windows", b["amd64"], "windows", "amd64", `OS "windows"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := checkExecutable(c.path, c.os, c.arch)
			if c.err == "" {
				if err != nil {
					t.Fatalf("checkExecutable: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("checkExecutable: %v, want an error with %q", err, c.err)
			}
		})
	}
}
