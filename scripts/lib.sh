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
