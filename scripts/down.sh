#!/usr/bin/env bash
# Delete the kind cluster $KIND_CLUSTER (default ephemeral-store). Every image stays (node
# image, store image, components), so the next `make up` starts in about half a minute.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/kind-node/common.sh
source "$ROOT/scripts/kind-node/common.sh"
cd "$ROOT"

down() {
  if ! docker info >/dev/null 2>&1; then
    log "no Docker engine running: no cluster to delete"
    return 0
  fi
  "$ROOT/scripts/install-tools.sh" kind >/dev/null
  if ! kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    log "no kind cluster $KIND_CLUSTER"
    return 0
  fi
  kind delete cluster --name "$KIND_CLUSTER" --kubeconfig "$ES_KUBECONFIG"
  log "deleted $KIND_CLUSTER; images kept: $(docker images --format '{{.Repository}}:{{.Tag}}' | grep -c '^localhost/ephemeral-store') localhost/ephemeral-store/* images"
}

stage "delete kind cluster $KIND_CLUSTER" down
