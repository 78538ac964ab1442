//go:build !linux

package netlab

import (
	"context"
	"errors"
	"net"
	"os/exec"
)

// errNotLinux is every answer outside Linux: the lab is made of Linux
// network namespaces.
var errNotLinux = errors.New("netlab: network namespaces need Linux")

// Lab is a hub namespace with a bridge and one namespace per node; it
// cannot be built outside Linux.
type Lab struct{}

// New always fails outside Linux.
func New(n int) (*Lab, error) { return nil, errNotLinux }

// RemoveStale has nothing to do outside Linux.
func RemoveStale() ([]string, error) { return nil, nil }

func (l *Lab) Close() error                 { return nil }
func (l *Lab) N() int                       { return 0 }
func (l *Lab) Prefix() string               { return "" }
func (l *Lab) IP(i int) string              { return "" }
func (l *Lab) HubIP() string                { return "" }
func (l *Lab) Namespace(i int) string       { return "" }
func (l *Lab) HubNamespace() string         { return "" }
func (l *Lab) Cut(a, b int) error           { return errNotLinux }
func (l *Lab) CutOneWay(from, to int) error { return errNotLinux }
func (l *Lab) Partition(g ...[]int) error   { return errNotLinux }
func (l *Lab) Heal() error                  { return errNotLinux }
func (l *Lab) Cuts() string                 { return "" }
func (l *Lab) Rules(i int) (string, error)  { return "", errNotLinux }

func (l *Lab) Command(i int, path string, args ...string) *exec.Cmd {
	return exec.Command(path, args...)
}

func (l *Lab) HubCommand(path string, args ...string) *exec.Cmd {
	return exec.Command(path, args...)
}

func (l *Lab) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, errNotLinux
}
