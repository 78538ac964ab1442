#!/usr/bin/env bash
# The pinned tools, built from the Go module proxy into the repository's bin/:
#   kind     sigs.k8s.io/kind@$KIND_VERSION
#   helm     helm.sh/helm/v3/cmd/helm@$HELM_VERSION (with the release ldflags: its version,
#            and the Kubernetes version helm template/lint assume, from its client-go)
#   kubectl  k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION (the wrapper module node-image.sh
#            uses, so it is a build-cache hit after the node image), version ldflags included
#   ct       github.com/helm/chart-testing/v3/ct@$CT_VERSION, through scripts/install-ct.sh
#            when it exists (it adds yamllint)
# Each is skipped when `bin/<tool> version` already reports the pinned version.
#
# usage: scripts/install-tools.sh [kind|helm|kubectl|ct ...]   (default: all)
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/kind-node/common.sh
source "$ROOT/scripts/kind-node/common.sh"
cd "$ROOT"

W=$ES_WORK/go

# have TOOL VERSION: bin/TOOL reports VERSION.
have() {
  local v
  [[ -x $BIN/$1 ]] || return 1
  case $1 in
    kind) v=$("$BIN/kind" version 2>/dev/null | awk '{ print $2 }') ;;
    helm) v=$("$BIN/helm" version --template '{{.Version}}' 2>/dev/null) ;;
    kubectl) v=$("$BIN/kubectl" version --client -o json 2>/dev/null | jq -r .clientVersion.gitVersion) ;;
    ct) v=$("$BIN/ct" version 2>/dev/null | awk '/^Version:/ { print $2 }') ;;
  esac
  [[ $v == "$2" ]]
}

install_kind() {
  have kind "$KIND_VERSION" && { log "kind $KIND_VERSION present"; return 0; }
  # `go install pkg@version` would do, where the proxy serves @v/list; the wrapper works always.
  gowrap_build "$W/kind" sigs.k8s.io/kind "$KIND_VERSION" sigs.k8s.io/kind "$BIN/kind"
  "$BIN/kind" version
}

install_helm() {
  have helm "$HELM_VERSION" && { log "helm $HELM_VERSION present"; return 0; }
  local d=$W/helm p=helm.sh/helm/v3
  gowrap_mod "$d" "$p" "$HELM_VERSION" "$p/cmd/helm"
  local kv major minor ldf
  kv=$(cd "$d" && go list -m -f '{{.Version}}' k8s.io/client-go)   # v0.X.Y -> Kubernetes 1.X
  major=$(( $(cut -d. -f1 <<<"${kv#v}") + 1 )); minor=$(cut -d. -f2 <<<"$kv")
  ldf="-s -w -X $p/internal/version.version=$HELM_VERSION -X $p/internal/version.gitTreeState=clean"
  ldf+=" -X $p/pkg/lint/rules.k8sVersionMajor=$major -X $p/pkg/lint/rules.k8sVersionMinor=$minor"
  ldf+=" -X $p/pkg/chartutil.k8sVersionMajor=$major -X $p/pkg/chartutil.k8sVersionMinor=$minor"
  (cd "$d" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldf" -o "$BIN/helm" "$p/cmd/helm")
  log "helm $("$BIN/helm" version --template '{{.Version}}') (assumes Kubernetes $major.$minor)"
}

install_kubectl() {
  have kubectl "$K8S_VERSION" && { log "kubectl $K8S_VERSION present"; return 0; }
  local k=$ES_WORK/k8s/bin/kubectl
  if [[ ! -x $k ]] || [[ $("$k" version --client -o json | jq -r .clientVersion.gitVersion) != "$K8S_VERSION" ]]; then
    k8s_build "$ES_WORK/k8s/bin" kubectl
  fi
  install -m 0755 "$k" "$BIN/kubectl"
  "$BIN/kubectl" version --client
}

install_ct() {
  # scripts/install-ct.sh (the chart's) also installs yamllint, which ct lint runs
  if [[ -x $ROOT/scripts/install-ct.sh ]]; then
    "$ROOT/scripts/install-ct.sh"
  elif have ct "$CT_VERSION"; then
    log "ct $CT_VERSION present"
  else
    local p=github.com/helm/chart-testing/v3
    gowrap_build "$W/ct" "$p" "$CT_VERSION" "$p/ct" "$BIN/ct" -ldflags="-s -w -X $p/ct/cmd.Version=$CT_VERSION"
  fi
}

tools=("$@")
(( ${#tools[@]} )) || tools=(kind helm kubectl ct)
command -v jq >/dev/null || apt_install jq
for t in "${tools[@]}"; do
  case $t in
    kind) stage "tool kind $KIND_VERSION" install_kind ;;
    helm) stage "tool helm $HELM_VERSION" install_helm ;;
    kubectl) stage "tool kubectl $K8S_VERSION" install_kubectl ;;
    ct) stage "tool ct $CT_VERSION" install_ct ;;
    *) die "unknown tool $t (kind, helm, kubectl, ct)" ;;
  esac
done
