// Package buildinfo is what a binary knows about its own build: the
// release version and the commit it was built from, for `ephemeral-store
// version` and the ephemeral_store_build_info metric.
//
// Builds through make or the image script set both with the linker
// (scripts/ldflags.sh):
//
//	-X github.com/ephemeral-store/ephemeral-store/store/internal/buildinfo.version=0.1.0
//	-X github.com/ephemeral-store/ephemeral-store/store/internal/buildinfo.commit=<sha>[-dirty]
//
// A plain `go build` in a checkout falls back on the VCS stamp Go records
// (absent with -buildvcs=false, which make uses: Go's stamp needs a git
// binary in the build environment, the linker flag does not).
package buildinfo

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by the linker; see the package comment.
var (
	version = "0.1.0"
	commit  = ""
)

// Unknown is the commit of a build that recorded none.
const Unknown = "unknown"

// Version is the release of this binary, the chart's appVersion.
func Version() string { return version }

// Commit is the commit this binary was built from, with "-dirty" when the
// tree had uncommitted changes, or Unknown.
func Commit() string {
	if commit != "" {
		return commit
	}
	return vcsCommit(debug.ReadBuildInfo())
}

func vcsCommit(info *debug.BuildInfo, ok bool) string {
	if !ok {
		return Unknown
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	switch {
	case rev == "":
		return Unknown
	case dirty:
		return rev + "-dirty"
	}
	return rev
}

// NewCollector is the ephemeral_store_build_info gauge: always 1, with the
// build in its labels, so a dashboard can show which version each pod runs
// and an upgrade is visible as the label changing.
func NewCollector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ephemeral_store_build_info",
		Help: "Always 1; the labels say which build this node runs.",
		ConstLabels: prometheus.Labels{
			"version":   Version(),
			"commit":    Commit(),
			"goversion": runtime.Version(),
		},
	})
	g.Set(1)
	return g
}
