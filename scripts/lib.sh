# shellcheck shell=bash
# Sourced by every script: strict mode, repository root, versions, progress helpers.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
# shellcheck source=scripts/versions.sh
source "$ROOT/scripts/versions.sh"

export BIN="$ROOT/bin"
export PATH="$BIN:$PATH"
export GOFLAGS=${GOFLAGS:--buildvcs=false}
mkdir -p "$BIN"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# stage NAME CMD...: run one stage with its name and duration printed.
stage() {
  local name=$1 start; shift
  start=$(date +%s)
  log "==> $name"
  "$@"
  log "<== $name done in $(( $(date +%s) - start ))s"
}

# chart_app_version DIR: appVersion of DIR/charts/ephemeral-store/Chart.yaml, the release of
# the store binary and image (0.1.0 when DIR has no chart, as a tree from before the chart).
chart_app_version() {
  local chart=$1/charts/ephemeral-store/Chart.yaml v=""
  [[ -f $chart ]] && v=$(sed -n 's/^appVersion:[[:space:]]*["'\'']\{0,1\}\([^"'\'' #]*\).*/\1/p' "$chart" | head -1)
  echo "${v:-0.1.0}"
}
