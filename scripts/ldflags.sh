#!/usr/bin/env bash
# Prints the go build -ldflags of a release build of the module in DIR (default: the
# repository): stripped, with the version (appVersion of the chart) and the commit
# (git HEAD, "-dirty" with uncommitted changes, "unknown" outside git) stamped into
# store/internal/buildinfo. Used by `make build` and scripts/store-image.sh.
set -o errexit -o nounset -o pipefail
dir=${1:-$(cd "$(dirname "$0")/.." && pwd)}
pkg=github.com/ephemeral-store/ephemeral-store/store/internal/buildinfo

version=$(sed -n 's/^appVersion:[[:space:]]*["'\'']\{0,1\}\([^"'\'' #]*\).*/\1/p' \
  "$dir/charts/ephemeral-store/Chart.yaml" 2>/dev/null | head -1)
commit=unknown
if git -C "$dir" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  commit=$(git -C "$dir" rev-parse HEAD)
  git -C "$dir" diff --quiet HEAD -- 2>/dev/null || commit+=-dirty
fi
echo "-s -w -X $pkg.version=${version:-0.1.0} -X $pkg.commit=$commit"
