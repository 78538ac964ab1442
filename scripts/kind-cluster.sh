#!/usr/bin/env bash
# Create, or reuse, the kind cluster $KIND_CLUSTER (default ephemeral-store) from
# tests/e2e/kind-config.yaml (1 control plane + 2 workers) and the node image of
# scripts/node-image.sh; wait until every node is Ready, the NetworkPolicy agent and CoreDNS are
# up; load the store image.
#
# The node image is built first (scripts/node-image.sh) when it is missing or is not the one this
# checkout builds. An existing cluster whose nodes were made from another node image than this
# checkout's is deleted and created anew: a cluster left in Docker by an earlier session must
# not silently lack what the node image brings now (the policy agent, kindnetd-lite fixes).
# ES_KEEP_STALE_CLUSTER=1 keeps and reuses such a cluster, with a warning (the policy agent then
# runs only if its image is on every node).
#
# In air-gapped mode the egress guard is put in place first, and CoreDNS loses its `forward`
# block: with no upstream DNS it would only send queries that the guard drops, and keep
# health-checking the dead upstream. Cluster names resolve as before; others get SERVFAIL.
#
# kubeconfig: $ES_WORK/kubeconfig (context kind-$KIND_CLUSTER). Env: KIND_CLUSTER, ES_WORK,
# ES_AIRGAPPED=0/1 (skip the probe), STORE_IMAGE, KIND_CONFIG (another kind config file),
# ES_KEEP_STALE_CLUSTER=1.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/kind-node/common.sh
source "$ROOT/scripts/kind-node/common.sh"
cd "$ROOT"

CONFIG=${KIND_CONFIG:-$ROOT/tests/e2e/kind-config.yaml}
export KUBECONFIG=$ES_KUBECONFIG
K=(kubectl --context "kind-$KIND_CLUSTER")

dropped() { # packets the egress guard dropped so far
  { iptables -L DOCKER-USER -v -n -x; ip6tables -L DOCKER-USER -v -n -x; } 2>/dev/null |
    awk '$3 == "DROP" { n += $1 } END { print n + 0 }'
}

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; }

# node_stamp: the stamp of the node image the cluster's control plane was made from (Docker
# copies an image's labels into its containers), "" for a stock kindest/node.
node_stamp() {
  docker inspect -f "{{index .Config.Labels \"$STAMP_LABEL\"}}" "$KIND_CLUSTER-control-plane" 2>/dev/null || true
}

cluster() {
  local image want=""; image=$(node_image)
  if [[ $image == "$KIND_NODE_IMAGE" ]]; then
    want=$("$ROOT/scripts/node-image.sh" --stamp)
    if ! image_ok "$image" "$want"; then
      log "node image $image is missing or not this checkout's (stamp $want): building it"
      "$ROOT/scripts/node-image.sh"
    fi
  fi
  docker image inspect "$image" >/dev/null 2>&1 || die "no node image $image: run scripts/node-image.sh first"
  if cluster_exists; then
    local used have
    used=$(docker inspect -f '{{.Config.Image}}' "$KIND_CLUSTER-control-plane" 2>/dev/null || true)
    have=$(node_stamp)
    if [[ $used == "$image" && $have == "$want" ]]; then
      if reuse; then return 0; fi
      log "cluster $KIND_CLUSTER does not come back healthy: deleting it, to create it anew"
    elif [[ ${ES_KEEP_STALE_CLUSTER:-0} == 1 ]]; then
      log "WARNING: cluster $KIND_CLUSTER runs $used (stamp ${have:-none}), not this checkout's $image (stamp ${want:-none}); reusing it as ES_KEEP_STALE_CLUSTER=1 asks"
      if reuse; then return 0; fi
      log "cluster $KIND_CLUSTER does not come back healthy: deleting it, to create it anew"
    else
      log "cluster $KIND_CLUSTER runs $used (stamp ${have:-none}), not this checkout's $image (stamp ${want:-none}): deleting it, to create it anew (ES_KEEP_STALE_CLUSTER=1 would keep it)"
    fi
    kind delete cluster --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG"
  fi
  log "kind create cluster --name $KIND_CLUSTER --image $image --config ${CONFIG#"$ROOT"/}"
  kind create cluster --name "$KIND_CLUSTER" --image "$image" --config "$CONFIG" \
    --kubeconfig "$KUBECONFIG" --wait 5m
}

# reuse: the existing cluster, its stopped nodes started again (after a reboot or a dockerd
# restart); fails when it does not come back healthy.
reuse() {
  local stopped
  stopped=$(docker ps -a --filter "label=io.x-k8s.kind.cluster=$KIND_CLUSTER" --filter status=exited \
    --filter status=created -q)
  if [[ -n $stopped ]]; then
    log "starting the stopped nodes of $KIND_CLUSTER"
    # shellcheck disable=SC2086 # one ID per word
    docker start $stopped >/dev/null || return 1
  fi
  kind export kubeconfig --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 || return 1
  wait_for "the API server of $KIND_CLUSTER" 120 "${K[@]}" get --raw /readyz || return 1
  "${K[@]}" wait --for=condition=Ready nodes --all --timeout=180s >/dev/null || return 1
  log "reusing kind cluster $KIND_CLUSTER ($(kind get nodes --name "$KIND_CLUSTER" | wc -l) nodes)"
}

nodes_ready() {
  wait_for "the API server" 120 "${K[@]}" get --raw /readyz
  "${K[@]}" wait --for=condition=Ready nodes --all --timeout=300s >/dev/null
  "${K[@]}" get nodes -o wide
}

# policy_agent: the NetworkPolicy agent (kube-network-policies) as a DaemonSet, when the nodes
# hold its image (our node image; a stock kindest/node's kindnetd enforces policies itself).
policy_agent() {
  local node missing=()
  for node in $(kind get nodes --name "$KIND_CLUSTER"); do
    docker exec "$node" crictl inspecti "$KNP_IMAGE" >/dev/null 2>&1 || missing+=("$node")
  done
  if (( ${#missing[@]} )); then
    if [[ $(node_image) == "$KIND_NODE_IMAGE" ]]; then
      log "WARNING: $KNP_IMAGE is not on ${missing[*]} (an older node image): NetworkPolicies are NOT enforced"
    else
      log "$(node_image): its kindnetd enforces NetworkPolicies; no separate agent"
    fi
    return 0
  fi
  sed "s#__KNP_IMAGE__#$KNP_IMAGE#" "$KIND_NODE_DIR/kube-network-policies.yaml" | "${K[@]}" apply -f - >/dev/null
  "${K[@]}" -n kube-system rollout status ds/kube-network-policies --timeout=180s
}

# offline_dns: remove the `forward` block from the Corefile (once), then restart CoreDNS.
offline_dns() {
  local corefile; corefile=$("${K[@]}" -n kube-system get cm coredns -o jsonpath='{.data.Corefile}')
  if ! grep -qE '^\s*forward ' <<<"$corefile"; then
    log "CoreDNS has no upstream already"
    return 0
  fi
  "${K[@]}" -n kube-system get cm coredns -o json | jq '.data.Corefile |= (split("\n") | . as $l
    | reduce range(0; length) as $i ({out: [], skip: false};
        if ($l[$i] | test("^\\s*forward ")) then .skip = true
        elif .skip then (if ($l[$i] | test("^\\s*}\\s*$")) then .skip = false else . end)
        else .out += [$l[$i]] end) | .out | join("\n"))' | "${K[@]}" replace -f - >/dev/null
  "${K[@]}" -n kube-system rollout restart deploy/coredns >/dev/null
  log "CoreDNS: forward removed (air-gapped), restarted"
}

coredns_ready() {
  "${K[@]}" -n kube-system rollout status deploy/coredns --timeout=180s
  local want have
  want=$("${K[@]}" -n kube-system get deploy coredns -o jsonpath='{.spec.replicas}')
  have=$("${K[@]}" -n kube-system get deploy coredns -o jsonpath='{.status.readyReplicas}')
  [[ $have == "$want" ]] || die "CoreDNS: $have of $want replicas ready"
  log "CoreDNS: $have/$want replicas ready"
}

load_store_image() {
  local image; image=$(store_image)
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    log "no $image yet (scripts/store-image.sh builds it): nothing to load"
    return 0
  fi
  # kind loads it only into the nodes that lack this image ID
  kind load docker-image "$image" --name "$KIND_CLUSTER"
}

"$ROOT/scripts/install-tools.sh" kind kubectl
if airgapped; then stage "egress guard" "$ROOT/scripts/egress-guard.sh" apply; fi
before=$(dropped)
stage "kind cluster $KIND_CLUSTER" cluster
stage "nodes Ready" nodes_ready
stage "NetworkPolicy agent" policy_agent
if airgapped; then stage "CoreDNS without upstream" offline_dns; fi
stage "CoreDNS ready" coredns_ready
stage "load store image" load_store_image
if airgapped; then
  log "egress guard: $(( $(dropped) - before )) packets dropped during this run ($(dropped) in all; scripts/egress-guard.sh status)"
fi
log "cluster $KIND_CLUSTER ready: export KUBECONFIG=$KUBECONFIG; kubectl --context kind-$KIND_CLUSTER get nodes"
