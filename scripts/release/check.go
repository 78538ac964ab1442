package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// Want is what an archive must hold.
type Want struct {
	Name      string        // the reference the layout records
	Version   string        // the org.opencontainers.image.version label
	Platforms []v1.Platform // exactly these, one image each
	// Binaries, when set, are the files each platform's /ephemeral-store must equal byte for
	// byte (the CLI binaries of the release), by platform string.
	Binaries map[string]string
}

// CheckArchive unpacks the OCI layout archive and checks it holds one image index named
// want.Name, whose blobs all match their digests, with an image for exactly want.Platforms,
// each configured as the Dockerfile's image and holding a static binary of its architecture.
// It returns one line per platform.
func CheckArchive(archive string, want Want) (string, error) {
	dir, err := os.MkdirTemp("", "check-oci-")
	if err != nil {
		return "", fmt.Errorf("a directory to unpack into: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := untar(archive, dir); err != nil {
		return "", err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return "", fmt.Errorf("not an OCI image layout: %w", err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return "", fmt.Errorf("index.json: %w", err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		return "", fmt.Errorf("index.json: %w", err)
	}
	if len(tm.Manifests) != 1 {
		return "", fmt.Errorf("index.json lists %d entries, want 1 (the image index)", len(tm.Manifests))
	}
	entry := tm.Manifests[0]
	if got := entry.Annotations[annotationContainerdName]; got != want.Name {
		return "", fmt.Errorf("index.json names the image %q (%s), want %q", got, annotationContainerdName, want.Name)
	}
	if got, wantTag := entry.Annotations[annotationRefName], tagOf(want.Name); got != wantTag {
		return "", fmt.Errorf("index.json tags the image %q (%s), want %q", got, annotationRefName, wantTag)
	}
	idx, err := top.ImageIndex(entry.Digest)
	if err != nil {
		return "", fmt.Errorf("the image index %s: %w", entry.Digest, err)
	}
	// every blob against its digest and size, every descriptor's platform against its config
	if err := validate.Index(idx); err != nil {
		return "", fmt.Errorf("the image index %s does not validate: %w", entry.Digest, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return "", fmt.Errorf("the image index %s: %w", entry.Digest, err)
	}

	var got, wanted []string
	for _, pl := range want.Platforms {
		wanted = append(wanted, pl.String())
	}
	var report strings.Builder
	for _, d := range im.Manifests {
		if d.Platform == nil {
			return "", fmt.Errorf("manifest %s has no platform", d.Digest)
		}
		plat := *d.Platform
		got = append(got, plat.String())
		img, err := idx.Image(d.Digest)
		if err != nil {
			return "", fmt.Errorf("the %s image: %w", plat.String(), err)
		}
		line, err := checkImage(img, plat, want)
		if err != nil {
			return "", fmt.Errorf("the %s image %s: %w", plat.String(), d.Digest, err)
		}
		fmt.Fprintf(&report, "%s: manifest %s, %s\n", plat.String(), d.Digest, line)
	}
	sort.Strings(got)
	sort.Strings(wanted)
	if !reflect.DeepEqual(got, wanted) {
		return "", fmt.Errorf("platforms %v, want %v", got, wanted)
	}
	return report.String(), nil
}

// checkImage: the image of one platform is the Dockerfile's, with a static binary of that
// platform's architecture as its only file.
func checkImage(img v1.Image, plat v1.Platform, want Want) (string, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return "", fmt.Errorf("its config: %w", err)
	}
	if cf.OS != plat.OS || cf.Architecture != plat.Architecture {
		return "", fmt.Errorf("its config says %s/%s", cf.OS, cf.Architecture)
	}
	if wantCfg := imageConfig(want.Version); !reflect.DeepEqual(cf.Config, wantCfg) {
		return "", fmt.Errorf("its runtime config is\n  %+v\nwant (scripts/store-image/Dockerfile)\n  %+v", cf.Config, wantCfg)
	}
	layers, err := img.Layers()
	if err != nil {
		return "", fmt.Errorf("its layers: %w", err)
	}
	if len(layers) != 1 {
		return "", fmt.Errorf("%d layers, want 1 (the binary)", len(layers))
	}
	data, err := onlyFile(layers[0])
	if err != nil {
		return "", err
	}
	if err := checkBinary(data, plat); err != nil {
		return "", fmt.Errorf("/%s: %w", binaryName, err)
	}
	sum := sha256.Sum256(data)
	line := fmt.Sprintf("/%s %d bytes, static ELF %s, sha256 %x", binaryName, len(data), machines[plat.Architecture], sum)
	if path, ok := want.Binaries[plat.String()]; ok {
		other, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("the binary to compare with: %w", err)
		}
		if !bytes.Equal(data, other) {
			return "", fmt.Errorf("/%s differs from %s (sha256 %x)", binaryName, path, sha256.Sum256(other))
		}
		line += ", = " + filepath.Base(path)
	}
	return line, nil
}

// onlyFile is the content of the layer's one file, /ephemeral-store, executable; any other
// entry is an error.
func onlyFile(layer v1.Layer) ([]byte, error) {
	rc, err := layer.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("its layer: %w", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var data []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("its layer: %w", err)
		}
		if path.Clean(strings.TrimPrefix(hdr.Name, "/")) != binaryName || hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("its layer holds %q: want /%s alone", hdr.Name, binaryName)
		}
		if hdr.Mode&0o111 == 0 {
			return nil, fmt.Errorf("/%s has mode %o: not executable", binaryName, hdr.Mode)
		}
		if data, err = io.ReadAll(tr); err != nil {
			return nil, fmt.Errorf("its layer: %w", err)
		}
	}
	if data == nil {
		return nil, fmt.Errorf("its layer has no /%s", binaryName)
	}
	return data, nil
}

// untar unpacks the archive into dir; entries reaching outside dir, links and devices are
// errors.
func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("opening the archive: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		name := path.Clean(hdr.Name)
		if !filepath.IsLocal(name) {
			return fmt.Errorf("the archive has an entry outside its root: %q", hdr.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("unpacking: %w", err)
			}
		case tar.TypeReg:
			if err := writeFile(target, tr); err != nil {
				return err
			}
		default:
			return fmt.Errorf("the archive has %q of type %q: want files and directories only", hdr.Name, hdr.Typeflag)
		}
	}
}

func writeFile(target string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("unpacking: %w", err)
	}
	w, err := os.Create(target)
	if err != nil {
		return fmt.Errorf("unpacking: %w", err)
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Close()
		return fmt.Errorf("unpacking %s: %w", target, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("unpacking %s: %w", target, err)
	}
	return nil
}
