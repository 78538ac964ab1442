package main

import (
	"bytes"
	"debug/elf"
	"debug/macho"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// machOCPUs: the Mach-O CPU of each architecture a darwin CLI binary may be built for.
var machOCPUs = map[string]macho.Cpu{
	"amd64": macho.CpuAmd64,
	"arm64": macho.CpuArm64,
}

// runCheckBinary: release check-binary -platform OS/ARCH FILE...: each file is an executable for
// that platform (a static ELF for linux, a Mach-O for darwin).
func runCheckBinary(args []string) error {
	fs := flag.NewFlagSet("check-binary", flag.ContinueOnError)
	platform := fs.String("platform", "", "OS/ARCH the files must be built for: linux or darwin, amd64 or arm64")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("check-binary: no file given")
	}
	goos, arch, ok := strings.Cut(*platform, "/")
	if !ok {
		return fmt.Errorf("check-binary: -platform %q: want OS/ARCH, e.g. darwin/arm64", *platform)
	}
	for _, path := range fs.Args() {
		desc, err := checkExecutable(path, goos, arch)
		if err != nil {
			return fmt.Errorf("check-binary %s: %w", path, err)
		}
		fmt.Printf("%s: %s\n", path, desc)
	}
	return nil
}

// checkExecutable: the file at path is an executable for goos/arch; it returns what it is.
func checkExecutable(path, goos, arch string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	switch goos {
	case "linux":
		plat, err := parsePlatform(goos + "/" + arch)
		if err != nil {
			return "", err
		}
		if err := checkBinary(data, plat); err != nil {
			return "", err
		}
		return fmt.Sprintf("static ELF %s", machines[arch]), nil
	case "darwin":
		want, ok := machOCPUs[arch]
		if !ok {
			return "", fmt.Errorf("architecture %q: want amd64 or arm64", arch)
		}
		f, err := macho.NewFile(bytes.NewReader(data))
		if err != nil {
			if _, elfErr := elf.NewFile(bytes.NewReader(data)); elfErr == nil {
				return "", fmt.Errorf("an ELF file, not a Mach-O executable for darwin/%s", arch)
			}
			return "", fmt.Errorf("not a Mach-O executable for darwin/%s: %w", arch, err)
		}
		defer f.Close()
		if f.Cpu != want || f.Type != macho.TypeExec {
			return "", fmt.Errorf("a Mach-O %s for %s, not an executable for darwin/%s", f.Type, f.Cpu, arch)
		}
		return fmt.Sprintf("Mach-O executable %s", f.Cpu), nil
	default:
		return "", fmt.Errorf("OS %q: want linux or darwin", goos)
	}
}
