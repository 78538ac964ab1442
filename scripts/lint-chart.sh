#!/usr/bin/env bash
# Lints the chart: `helm lint --strict` with every values file (values.yaml,
# values-*.yaml, ci/*-values.yaml), `ct lint` (yamllint + helm lint of each
# ci/ file), and the check that the README values table is current.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT" || exit

CHART=charts/ephemeral-store

command -v helm >/dev/null 2>&1 ||
  die "helm not found in $BIN or on PATH: run 'make tools' (helm $HELM_VERSION goes into bin/)"
if ! command -v ct >/dev/null 2>&1 || ! command -v yamllint >/dev/null 2>&1; then
  "$ROOT/scripts/install-ct.sh"
fi

lint_values_files() {
  local f
  helm lint --strict "$CHART"
  for f in "$CHART"/values-*.yaml "$CHART"/ci/*-values.yaml; do
    log "helm lint --strict -f $f"
    helm lint --strict "$CHART" -f "$f"
  done
}

stage "helm lint --strict (every values file)" lint_values_files
stage "ct lint" ct lint --config ct.yaml --charts "$CHART"
stage "README values table is current" "$ROOT/scripts/chart-readme.sh" --check
