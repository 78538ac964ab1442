#!/usr/bin/env bash
# Regenerates the values table of charts/ephemeral-store/README.md from the
# `## @param` comments of values.yaml; `--check` fails instead when it is stale.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT" || exit

args=()
for arg in "$@"; do
  case $arg in
    --check) args+=(-check) ;;
    *) die "usage: $0 [--check]" ;;
  esac
done
# The generator is in the test module (tests/go.mod); it runs there, on this chart.
go -C tests run ./chart/readmegen/cmd/chart-readme -chart "$ROOT/charts/ephemeral-store" "${args[@]}"
