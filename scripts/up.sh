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

CLIENT_DIR=$ES_WORK/client/$RELEASE
LOCAL_PORT=${ES_LOCAL_PORT:-18087}

# Two smoke tests with a user certificate: the chart's `helm test` pod writes and reads a key
# through the client Service inside the cluster, and this host writes a key through pod 0 and
# reads it back through pod 1 with bin/ephemeral-store and the user's Secret (port-forwards to
# the pods; the serving certificate names localhost).
smoke_test() {
  if ! helm test "$RELEASE" --kube-context "$CONTEXT" --namespace "$NAMESPACE" --timeout 3m; then
    kubectl --context "$CONTEXT" -n "$NAMESPACE" logs --all-containers --prefix \
      -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=test" >&2 || true
    return 1
  fi
  save_user_certificate myuser
  local pf0 pf1 rc=0 value
  value="smoke-$(date +%s)"
  kubectl --context "$CONTEXT" -n "$NAMESPACE" port-forward "pod/$RELEASE-0" "$LOCAL_PORT:8087" >/dev/null 2>&1 &
  pf0=$!
  kubectl --context "$CONTEXT" -n "$NAMESPACE" port-forward "pod/$RELEASE-1" "$((LOCAL_PORT + 1)):8087" >/dev/null 2>&1 &
  pf1=$!
  local cli=(bin/ephemeral-store --cert "$CLIENT_DIR/tls.crt" --key "$CLIENT_DIR/tls.key" --cacert "$CLIENT_DIR/ca.crt")
  for _ in $(seq 1 50); do
    "${cli[@]}" cluster --endpoints "https://localhost:$LOCAL_PORT" >/dev/null 2>&1 &&
      "${cli[@]}" cluster --endpoints "https://localhost:$((LOCAL_PORT + 1))" >/dev/null 2>&1 && break
    sleep 0.2 # waiting for kubectl port-forward to listen; nothing to watch instead
  done
  "${cli[@]}" put --endpoints "https://localhost:$LOCAL_PORT" smoke/up "$value" >/dev/null &&
    "${cli[@]}" get --endpoints "https://localhost:$((LOCAL_PORT + 1))" smoke/up --expect "$value" >/dev/null || rc=$?
  kill "$pf0" "$pf1" 2>/dev/null || true
  wait "$pf0" "$pf1" 2>/dev/null || true
  ((rc == 0)) || die "smoke test: a key written through $RELEASE-0 did not read back through $RELEASE-1"
  log "smoke test: wrote smoke/up through $RELEASE-0 and read it back through $RELEASE-1 as myuser"
}

# save_user_certificate USER: the client certificate Secret the chart made, as files.
save_user_certificate() {
  mkdir -p "$CLIENT_DIR"
  chmod 700 "$CLIENT_DIR"
  local f
  for f in tls.crt tls.key ca.crt; do
    kubectl --context "$CONTEXT" -n "$NAMESPACE" get secret "$RELEASE-user-$1" \
      -o "jsonpath={.data.${f//./\\.}}" | base64 -d >"$CLIENT_DIR/$f"
  done
  chmod 600 "$CLIENT_DIR/tls.key"
}
# -------------------------------------------------------------------------------------------------

next_steps() {
  cat <<EOF

The store is up: release $RELEASE in namespace $NAMESPACE of kind cluster $KIND_CLUSTER.

  export KUBECONFIG=$KUBECONFIG
  kubectl --context $CONTEXT -n $NAMESPACE get pods,svc
  helm --kube-context $CONTEXT -n $NAMESPACE status $RELEASE     # the chart's notes: clients, certificates
  helm --kube-context $CONTEXT -n $NAMESPACE test $RELEASE

  # from this host, as myuser (certificate saved from the Secret $RELEASE-user-myuser):
  kubectl --context $CONTEXT -n $NAMESPACE port-forward svc/$RELEASE $LOCAL_PORT:8087 &
  export ES_ENDPOINTS=https://localhost:$LOCAL_PORT ES_CERT=$CLIENT_DIR/tls.crt ES_KEY=$CLIENT_DIR/tls.key ES_CACERT=$CLIENT_DIR/ca.crt
  bin/ephemeral-store put pools/web-1 healthy --ttl 30s
  bin/ephemeral-store get pools/web-1
  bin/ephemeral-store cluster
  curl --cacert \$ES_CACERT --cert \$ES_CERT --key \$ES_KEY https://localhost:$LOCAL_PORT/v1/kv/pools/web-1

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
stage "up: bin/ephemeral-store (the CLI)" env CGO_ENABLED=0 go build -trimpath -o bin/ephemeral-store ./store/cmd/ephemeral-store
stage "up: smoke test" smoke_test
next_steps
