package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What scripts/store-image/Dockerfile and scripts/store-image.sh put into the image; the two
// must not drift apart (check-image compares a built image against these).
const (
	binaryName = "ephemeral-store" // COPY ephemeral-store /ephemeral-store
	imageUser  = "65532:65532"
	sourceURL  = "https://github.com/ephemeral-store/ephemeral-store"
	// the PATH the Docker builder gives every image FROM scratch
	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

	// the containerd import (ctr, kind load image-archive) names the image after this annotation
	annotationContainerdName = "io.containerd.image.name"
	// the OCI name of an index.json entry: its tag (skopeo's oci-archive:FILE:TAG)
	annotationRefName = "org.opencontainers.image.ref.name"
)

var (
	entrypoint   = []string{"/" + binaryName}
	command      = []string{"serve"}
	exposedPorts = []string{"8087/tcp", "8088/tcp", "8089/tcp"}
)

// machines: the ELF machine of each architecture an image may hold (the binary runs FROM
// scratch, so only linux).
var machines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64,
	"arm64": elf.EM_AARCH64,
}

// Spec is one image to write.
type Spec struct {
	Name     string    // the reference recorded in the layout (localhost/ephemeral-store:0.1.0)
	Version  string    // org.opencontainers.image.version
	Created  time.Time // the config's creation time and the files' modification time
	Binaries []Binary  // one per platform
}

// Binary is the static ephemeral-store binary of one platform.
type Binary struct {
	Platform v1.Platform
	Path     string
}

func parsePlatform(s string) (v1.Platform, error) {
	os, arch, ok := strings.Cut(s, "/")
	if !ok || os == "" || arch == "" || strings.Contains(arch, "/") {
		return v1.Platform{}, errors.New("want OS/ARCH, e.g. linux/amd64")
	}
	if os != "linux" {
		return v1.Platform{}, fmt.Errorf("OS %q: the image runs FROM scratch on linux only", os)
	}
	if _, ok := machines[arch]; !ok {
		return v1.Platform{}, fmt.Errorf("architecture %q: want one of amd64, arm64", arch)
	}
	return v1.Platform{OS: os, Architecture: arch}, nil
}

func parseCreated(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("-created is required (RFC 3339, e.g. the commit time)")
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("-created %q: %w", s, err)
	}
	return t.UTC(), nil
}

// tagOf is the tag of a reference name:tag ("" when it has none).
func tagOf(name string) string {
	i := strings.LastIndex(name, ":")
	if i < 0 || strings.Contains(name[i:], "/") {
		return ""
	}
	return name[i+1:]
}

func (s Spec) validate() error {
	if s.Name == "" || tagOf(s.Name) == "" {
		return fmt.Errorf("-name %q: want a reference with a tag, e.g. localhost/ephemeral-store:0.1.0", s.Name)
	}
	if s.Version == "" {
		return errors.New("-version is required")
	}
	if len(s.Binaries) == 0 {
		return errors.New("no -binary: the image needs at least one platform")
	}
	seen := map[string]bool{}
	for _, b := range s.Binaries {
		p := b.Platform.String()
		if seen[p] {
			return fmt.Errorf("platform %s given twice", p)
		}
		seen[p] = true
	}
	return nil
}

// imageConfig is the runtime configuration of the image, as the Dockerfile sets it.
func imageConfig(version string) v1.Config {
	ports := map[string]struct{}{}
	for _, p := range exposedPorts {
		ports[p] = struct{}{}
	}
	return v1.Config{
		User:         imageUser,
		ExposedPorts: ports,
		Env:          []string{defaultPath},
		Entrypoint:   entrypoint,
		Cmd:          command,
		Labels: map[string]string{
			"org.opencontainers.image.version": version,
			"org.opencontainers.image.source":  sourceURL,
		},
	}
}

// WriteArchive writes the image index of spec as an OCI image layout, packed into the tar file
// out (written whole to a temporary file first, then renamed).
func WriteArchive(out string, spec Spec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range spec.Binaries {
		img, err := platformImage(spec, b)
		if err != nil {
			return err
		}
		plat := b.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &plat},
		})
	}
	dir, err := os.MkdirTemp(filepath.Dir(out), ".oci-layout-")
	if err != nil {
		return fmt.Errorf("the layout directory: %w", err)
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the OCI layout: %w", err)
	}
	err = p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		annotationRefName:        tagOf(spec.Name), // OCI: the tag; skopeo's oci-archive:FILE:TAG
		annotationContainerdName: spec.Name,
	}))
	if err != nil {
		return fmt.Errorf("writing the image index: %w", err)
	}
	return tarDir(dir, out, spec.Created)
}

// platformImage is the image of one platform: its binary alone in one layer.
func platformImage(spec Spec, b Binary) (v1.Image, error) {
	data, err := os.ReadFile(b.Path)
	if err != nil {
		return nil, fmt.Errorf("the %s binary: %w", b.Platform.String(), err)
	}
	if err := checkBinary(data, b.Platform); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Path, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg, Name: binaryName, Mode: 0o755, Size: int64(len(data)),
		ModTime: spec.Created, Format: tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("the layer of %s: %w", b.Platform.String(), err)
	}
	if _, err := tw.Write(data); err != nil {
		return nil, fmt.Errorf("the layer of %s: %w", b.Platform.String(), err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("the layer of %s: %w", b.Platform.String(), err)
	}
	layerTar := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("the layer of %s: %w", b.Platform.String(), err)
	}

	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("the config of %s: %w", b.Platform.String(), err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = b.Platform.OS, b.Platform.Architecture
	cf.Created = v1.Time{Time: spec.Created}
	cf.Config = imageConfig(spec.Version)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, fmt.Errorf("the config of %s: %w", b.Platform.String(), err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: spec.Created},
			CreatedBy: "COPY " + binaryName + " /" + binaryName + " # scripts/release.sh",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("the image of %s: %w", b.Platform.String(), err)
	}
	return img, nil
}

// checkBinary: data is a static ELF executable for the platform's architecture (a dynamically
// linked one would not start FROM scratch).
func checkBinary(data []byte, plat v1.Platform) error {
	want, ok := machines[plat.Architecture]
	if !ok {
		return fmt.Errorf("no known ELF machine for %s", plat.String())
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not an ELF executable for %s: %w", plat.String(), err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("an ELF executable for %s, not %s (%s)", f.Machine, plat.String(), want)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %s: not an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (it has a program interpreter): it cannot run FROM scratch; build with CGO_ENABLED=0")
		}
	}
	return nil
}

// tarDir packs dir into the tar file out: entries sorted, owned by root, with mtime, so that the
// same inputs give the same bytes.
func tarDir(dir, out string, mtime time.Time) (err error) {
	var paths []string
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the layout %s: %w", dir, err)
	}
	sort.Strings(paths)

	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("creating %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	tw := tar.NewWriter(f)
	for _, path := range paths {
		if err := addFile(tw, dir, path, mtime); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("renaming %s: %w", tmp, err)
	}
	return nil
}

func addFile(tw *tar.Writer, dir, path string, mtime time.Time) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("reading the layout: %w", err)
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return fmt.Errorf("reading the layout: %w", err)
	}
	hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
	switch {
	case fi.IsDir():
		hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
		return tw.WriteHeader(hdr)
	case fi.Mode().IsRegular():
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, fi.Size()
	default:
		return fmt.Errorf("%s: not a file or a directory", path)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("archiving %s: %w", rel, err)
	}
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("archiving %s: %w", rel, err)
	}
	defer r.Close()
	if _, err := io.Copy(tw, r); err != nil {
		return fmt.Errorf("archiving %s: %w", rel, err)
	}
	return nil
}
