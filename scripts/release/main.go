// Command release writes and checks the release's store image as an OCI image layout archive,
// without Docker or a registry: the static ephemeral-store binaries of several platforms, each
// alone in one layer, under one image index.
//
//	release image -out FILE -name REF -version V -created RFC3339 -binary linux/amd64=PATH ...
//	release check-image -archive FILE -name REF -version V -platform linux/amd64 ... [-binary linux/amd64=PATH ...]
//	release check-binary -platform darwin/arm64 FILE...
//
// The image is the one scripts/store-image/Dockerfile builds (FROM scratch, /ephemeral-store,
// user 65532:65532, ports 8087-8089, entrypoint /ephemeral-store, command serve, the same
// org.opencontainers.image labels); check-image fails when it is not, or when a platform's
// binary is not an executable for that platform.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: release image|check-image|check-binary [flags] (-h for the flags)")
	}
	switch args[0] {
	case "image":
		return runImage(args[1:])
	case "check-image":
		return runCheck(args[1:])
	case "check-binary":
		return runCheckBinary(args[1:])
	default:
		return fmt.Errorf("unknown command %q: want image, check-image or check-binary", args[0])
	}
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func runImage(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	var spec Spec
	var out, created string
	var binaries multi
	fs.StringVar(&out, "out", "", "the OCI image layout archive to write (a tar file)")
	fs.StringVar(&spec.Name, "name", "", "the image reference recorded in the layout, e.g. localhost/ephemeral-store:0.1.0")
	fs.StringVar(&spec.Version, "version", "", "the release version (org.opencontainers.image.version)")
	fs.StringVar(&created, "created", "", "the creation time recorded in the image configs (RFC 3339; the commit time keeps rebuilds identical)")
	fs.Var(&binaries, "binary", "OS/ARCH=PATH: the static binary of one platform (repeat per platform)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if out == "" {
		return errors.New("image: -out is required")
	}
	var err error
	if spec.Created, err = parseCreated(created); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	for _, b := range binaries {
		p, path, ok := strings.Cut(b, "=")
		if !ok || path == "" {
			return fmt.Errorf("image: -binary %q: want OS/ARCH=PATH", b)
		}
		plat, err := parsePlatform(p)
		if err != nil {
			return fmt.Errorf("image: -binary %q: %w", b, err)
		}
		spec.Binaries = append(spec.Binaries, Binary{Platform: plat, Path: path})
	}
	return WriteArchive(out, spec)
}

func runCheck(args []string) error {
	fs := flag.NewFlagSet("check-image", flag.ContinueOnError)
	var want Want
	var archive string
	var platforms multi
	fs.StringVar(&archive, "archive", "", "the OCI image layout archive to check")
	fs.StringVar(&want.Name, "name", "", "the image reference the layout must record")
	fs.StringVar(&want.Version, "version", "", "the release version the image must carry")
	var binaries multi
	fs.Var(&platforms, "platform", "OS/ARCH the index must hold (repeat; exactly these)")
	fs.Var(&binaries, "binary", "OS/ARCH=PATH: the file that platform's /ephemeral-store must equal (optional, repeat)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if archive == "" {
		return errors.New("check-image: -archive is required")
	}
	for _, p := range platforms {
		plat, err := parsePlatform(p)
		if err != nil {
			return fmt.Errorf("check-image: -platform %q: %w", p, err)
		}
		want.Platforms = append(want.Platforms, plat)
	}
	want.Binaries = map[string]string{}
	for _, b := range binaries {
		p, path, ok := strings.Cut(b, "=")
		if !ok || path == "" {
			return fmt.Errorf("check-image: -binary %q: want OS/ARCH=PATH", b)
		}
		plat, err := parsePlatform(p)
		if err != nil {
			return fmt.Errorf("check-image: -binary %q: %w", b, err)
		}
		want.Binaries[plat.String()] = path
	}
	report, err := CheckArchive(archive, want)
	if err != nil {
		return fmt.Errorf("check-image %s: %w", archive, err)
	}
	fmt.Print(report)
	return nil
}
