#!/usr/bin/env bash
# Prints the go build -ldflags of a release build of the module in DIR (default: the
# repository): stripped, with the version (appVersion of the chart) and the commit
# (git HEAD, "-dirty" with uncommitted changes, "unknown" outside git) stamped into
# store/internal/buildinfo. Used by `make build` and scripts/store-image.sh.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
dir=${1:-$ROOT}
pkg=github.com/ephemeral-store/ephemeral-store/store/internal/buildinfo

version=$(chart_app_version "$dir")
commit=unknown
if git -C "$dir" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  commit=$(git -C "$dir" rev-parse HEAD)
  git -C "$dir" diff --quiet HEAD -- 2>/dev/null || commit+=-dirty
fi
echo "-s -w -X $pkg.version=$version -X $pkg.commit=$commit"
