#!/usr/bin/env bash
# `make up`: the store running on a local kind cluster, built offline when needed.
#   Docker engine -> kind node image -> store image -> kind cluster -> helm upgrade --install
#   -> smoke test (a key written and read back with a user certificate) -> what to type next.
# Every step is idempotent; a second run with nothing changed takes seconds.
#
# Env: KIND_CLUSTER (ephemeral-store), ES_NAMESPACE (default), ES_RELEASE (ephemeral-store),
# ES_WORK (/var/tmp/ephemeral-store), ES_AIRGAPPED=0/1 (skip the registry probe), CI.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/kind-node/common.sh
source "$ROOT/scripts/kind-node/common.sh"
cd "$ROOT"

RELEASE=${ES_RELEASE:-ephemeral-store}
NAMESPACE=${ES_NAMESPACE:-default}
CHART=$ROOT/charts/ephemeral-store
VALUES=$CHART/values-kind.yaml
CONTEXT=kind-$KIND_CLUSTER
export KUBECONFIG=$ES_KUBECONFIG

install_chart() {
  [[ -f $CHART/Chart.yaml ]] || die "no chart at ${CHART#"$ROOT"/} yet"
  local values=()
  [[ -f $VALUES ]] && values=(-f "$VALUES")
  # The image tag stays the same while the code changes: the image ID as a pod annotation
  # makes a rebuilt image roll the StatefulSet.
  local id; id=$(image_id "$(store_image)"); id=${id#sha256:}
  helm upgrade --install "$RELEASE" "$CHART" "${values[@]}" --kube-context "$CONTEXT" \
    --namespace "$NAMESPACE" --create-namespace --wait --timeout 10m \
    --set-string "podAnnotations.ephemeral-store/image-id=${id:0:12}"
  kubectl --context "$CONTEXT" -n "$NAMESPACE" get pods -o wide -l "app.kubernetes.io/instance=$RELEASE"
}

# ---- SMOKE TEST: to be finalized by the lead ---------------------------------------------------
# For now: the chart's `helm test` pod, which writes a key through the client Service with the
# certificate of the values' test user and reads it back (charts/ephemeral-store/templates/
# tests/). Replace or extend here (e.g. a write through one pod and a read through another with
# bin/ephemeral-store and the user Secret) once the details are settled.
smoke_test() {
  # (no --logs: the test pod is deleted once it succeeded; it stays when it fails)
  if ! helm test "$RELEASE" --kube-context "$CONTEXT" --namespace "$NAMESPACE" --timeout 3m; then
    kubectl --context "$CONTEXT" -n "$NAMESPACE" logs --all-containers --prefix \
      -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=test" >&2 || true
    return 1
  fi
}
# -------------------------------------------------------------------------------------------------

next_steps() {
  cat <<EOF

The store is up: release $RELEASE in namespace $NAMESPACE of kind cluster $KIND_CLUSTER.

  export KUBECONFIG=$KUBECONFIG
  kubectl --context $CONTEXT -n $NAMESPACE get pods,svc
  helm --kube-context $CONTEXT -n $NAMESPACE status $RELEASE     # the chart's notes: clients, certificates
  helm --kube-context $CONTEXT -n $NAMESPACE test $RELEASE
  make test-e2e        # the end-to-end suites, on this cluster
  make down            # delete the cluster (images stay; the next make up takes about a minute)
  scripts/egress-guard.sh status                                   # what the egress guard dropped
EOF
}

airgapped || true   # decide once, for every script below (ES_AIRGAPPED is exported)
stage "up: scripts/ensure-docker.sh" "$ROOT/scripts/ensure-docker.sh"
stage "up: scripts/install-tools.sh" "$ROOT/scripts/install-tools.sh" kind kubectl helm
stage "up: scripts/node-image.sh" "$ROOT/scripts/node-image.sh"
stage "up: scripts/store-image.sh" "$ROOT/scripts/store-image.sh"
stage "up: scripts/kind-cluster.sh" "$ROOT/scripts/kind-cluster.sh"
stage "up: helm upgrade --install $RELEASE" install_chart
stage "up: smoke test" smoke_test
next_steps
