#!/usr/bin/env bash
# Side-by-side benchmark of ephemeral-store, etcd and Redis on 127.0.0.1
# (issue 10). Builds the store and etcd (from the pinned version of the
# bench module), ensures redis-server (apt-get only if missing), then runs
# the Go harness of bench/, which writes bench/results/<date>/.
# Extra harness flags come from BENCH_FLAGS or the arguments, e.g.
#   scripts/bench.sh -quick        # a smoke test of the whole pipeline
set -o errexit -o nounset -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '[bench.sh %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/es-bench-bin-XXXXXX")
trap 'rm -rf "$dir"' EXIT

say "building ephemeral-store"
CGO_ENABLED=0 go build -o "$dir/ephemeral-store" ./store/cmd/ephemeral-store

# etcd's main package is go.etcd.io/etcd/server/v3 (server/main.go wraps
# etcdmain); bench/go.mod pins it as a tool dependency.
say "building etcd (version pinned in bench/go.mod)"
(cd bench && go build -o "$dir/etcd" go.etcd.io/etcd/server/v3)

if ! command -v redis-server >/dev/null 2>&1; then
  say "installing redis-server with apt-get"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  # The package may start its own service; the harness leaves it alone and
  # runs its own instance on another port.
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq redis-server
fi
say "redis: $(redis-server --version)"

say "building the harness"
(cd bench && go build -o "$dir/bench" ./cmd/bench)

say "running the harness"
# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
"$dir/bench" -repo . -store-bin "$dir/ephemeral-store" -etcd-bin "$dir/etcd" \
  -redis-bin "$(command -v redis-server)" ${BENCH_FLAGS:-} "$@"
