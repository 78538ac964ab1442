#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME (default 30s). New failing inputs land
# in the package's testdata/fuzz/ and become regression seeds: commit them.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT" || exit
FUZZTIME=${FUZZTIME:-30s}
targets=(
  "./store/internal/httpapi FuzzRequest"
  "./store/internal/httpapi FuzzParse"
  "./store/internal/auth FuzzParseUser"
  "./store/internal/fsm FuzzRestoreStream"
)
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  stage "fuzz $name ($FUZZTIME)" go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
done
