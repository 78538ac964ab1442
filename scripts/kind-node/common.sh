# shellcheck shell=bash
# Shared by the cluster scripts, sourced right after scripts/lib.sh: the work directory,
# image names, version stamps, apt installs, Go wrapper-module builds, air-gapped detection.
#
# Build artefacts live in ES_WORK, outside the repository and outside /tmp (which may be
# cleaned): CI runs later on the same machine and reuses them, with Docker's image store
# and the Go build cache.

export ES_WORK=${ES_WORK:-/var/tmp/ephemeral-store}
export KIND_CLUSTER=${KIND_CLUSTER:-ephemeral-store}
export ES_KUBECONFIG=${ES_KUBECONFIG:-$ES_WORK/kubeconfig}
export KIND_NODE_DIR=$ROOT/scripts/kind-node
mkdir -p "$ES_WORK/logs" "$ES_WORK/stamps" "$ES_WORK/bin" "$ES_WORK/tmp"

# Our own images: `localhost/...` so that any pull attempt fails at once on 127.0.0.1.
export ES_IMAGE_PREFIX=localhost/ephemeral-store
export BASE_IMAGE=$ES_IMAGE_PREFIX/kind-base:$DEBIAN_SUITE      # kind base: Debian + containerd + kind files
export STATIC_BASE=$ES_IMAGE_PREFIX/static-base:1               # /tmp, passwd, CA bundle
export IPTABLES_BASE=$ES_IMAGE_PREFIX/iptables-base:1           # + busybox, iptables (nft+legacy), conntrack
export BUSYBOX_IMAGE=$ES_IMAGE_PREFIX/busybox:$BUSYBOX_VERSION  # smoke tests, local-path helper
export KNP_IMAGE=$ES_IMAGE_PREFIX/kube-network-policies:$KNP_VERSION  # NetworkPolicy agent (patched)
export STAMP_LABEL=org.ephemeral-store.stamp                    # image label holding its version stamp

# --- version stamps ----------------------------------------------------------------------
# A stage is skipped when its output exists and its stamp equals the key of its inputs
# (versions, and the content of the files it is built from).

# key_of STRING...: a short hash of the strings.
key_of() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
# files_key FILE...: a short hash of the files' contents.
files_key() { cat "$@" | sha256sum | cut -c1-16; }
stamp_ok() { [[ -f $ES_WORK/stamps/$1 && $(<"$ES_WORK/stamps/$1") == "$2" ]]; }
stamp_set() { printf '%s' "$2" > "$ES_WORK/stamps/$1"; }

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
image_stamp() { docker image inspect -f "{{index .Config.Labels \"$STAMP_LABEL\"}}" "$1" 2>/dev/null || true; }
# image_ok IMAGE KEY: the image exists and carries the stamp KEY.
image_ok() { [[ $(image_stamp "$1") == "$2" ]]; }
# drop_replaced OLD_ID IMAGE: remove the image ID a rebuild replaced (and, through docker rmi,
# its untagged parents), so repeated rebuilds do not leak disk; ignored while still in use.
drop_replaced() {
  local new; new=$(image_id "$2")
  if [[ -n $1 && $1 != "$new" ]]; then docker rmi "$1" >/dev/null 2>&1 || true; fi
}
# label_image IMAGE KEY: re-tag IMAGE with the stamp label (a metadata-only build, no layer).
label_image() {
  local ctx; ctx=$(mktemp -d "$ES_WORK/tmp/label.XXXXXX")
  printf 'FROM %s\nLABEL %s=%s\n' "$1" "$STAMP_LABEL" "$2" > "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$1" "$ctx" >/dev/null 2>"$ctx.log" || { cat "$ctx.log" >&2; return 1; }
  rm -rf "$ctx" "$ctx.log"
}

# --- host packages -----------------------------------------------------------------------
# apt_install PKG...: install the Debian packages that are missing. `apt-get update` runs
# at most once a day (and once more when an install fails on a stale list). Services are
# not started by the packages (policy-rc.d), we start what we need by hand.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  (( ${#missing[@]} )) || return 0
  local stamp=$ES_WORK/stamps/apt-update policy=/usr/sbin/policy-rc.d added_policy=false
  local alog=$ES_WORK/logs/apt.log
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 0755 "$policy"; added_policy=true
  fi
  if [[ ! -f $stamp || -n $(find "$stamp" -mmin +1440) ]]; then
    log "apt-get update"
    apt-get update >>"$alog" 2>&1 && touch "$stamp"
  fi
  log "apt-get install ${missing[*]} (log $alog)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>"$alog" 2>&1; then
    apt-get update >>"$alog" 2>&1 && touch "$stamp"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >>"$alog" 2>&1 ||
      { tail -20 "$alog" >&2; die "apt-get install ${missing[*]} failed"; }
  fi
  if $added_policy; then rm -f "$policy"; fi
}

# --- Go ----------------------------------------------------------------------------------
# go_mod_dir MODULE VERSION: the module's source directory in the module cache.
go_mod_dir() { go mod download -json "$1@$2" | jq -r .Dir; }

# has_require GO_MOD MODULE VERSION: the go.mod file requires MODULE at VERSION.
has_require() { grep -Eq "^(require[[:space:]]+|[[:space:]]+)$2 $3( |\$)" "$1" 2>/dev/null; }

# gowrap_mod DIR MODULE VERSION PACKAGE: a throwaway wrapper module in DIR that requires
# MODULE at VERSION and imports PACKAGE. `go install pkg@version` is not enough here: it reads
# <module>/@v/list, which this module proxy answers with 403 for some modules
# (sigs.k8s.io/cri-tools, ...).
gowrap_mod() {
  local dir=$1 mod=$2 ver=$3 pkg=$4
  mkdir -p "$dir"
  has_require "$dir/go.mod" "$mod" "$ver" && return 0
  rm -f "$dir/go.mod" "$dir/go.sum"
  printf 'module ephemeral-store/wrap\n\ngo 1.24\n\nrequire %s %s\n' "$mod" "$ver" > "$dir/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" > "$dir/tools.go"
  (cd "$dir" && go mod tidy)
}

# gowrap_build DIR MODULE VERSION PACKAGE OUTPUT [go build flags...]: build a main package of
# a pinned module version through a wrapper module (static, trimmed, stripped).
gowrap_build() {
  local dir=$1 mod=$2 ver=$3 pkg=$4 out=$5; shift 5
  gowrap_mod "$dir" "$mod" "$ver" "$pkg"
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' "$@" -o "$out" "$pkg")
}

# k8s_build OUTDIR PACKAGE...: build k8s.io/kubernetes commands at $K8S_VERSION, with the
# version ldflags hack/lib/version.sh sets (a plain build reports v0.0.0-master, which
# kubeadm and kind refuse). The build date is the release tag's time, so rebuilds are
# byte-identical. The wrapper module is shared by node-image.sh and install-tools.sh.
k8s_build() {
  local out=$1; shift
  local w=$ES_WORK/go/k8s v=${K8S_VERSION#v}
  local major=${v%%.*} minor; minor=$(cut -d. -f2 <<<"$v")
  local kdir; kdir=$(go_mod_dir k8s.io/kubernetes "$K8S_VERSION")
  mkdir -p "$w" "$out"
  if ! has_require "$w/go.mod" k8s.io/kubernetes "$K8S_VERSION"; then
    rm -f "$w/go.mod" "$w/go.sum"
    printf 'module ephemeral-store/k8s\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n' "$K8S_VERSION" > "$w/go.mod"
    # k8s.io/kubernetes points its staging modules at ./staging; outside the kubernetes
    # repository they must be the published v0.X.Y modules.
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$kdir/go.mod" |
      while read -r m; do echo "replace $m => $m v0.${v#*.}"; done >> "$w/go.mod"
    {
      printf '//go:build tools\n\npackage tools\n\nimport (\n'
      for c in kubelet kubeadm kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl; do
        printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"
      done
      printf ')\n'
    } > "$w/tools.go"
    (cd "$w" && go mod tidy)
  fi
  local date p ldf="-s -w" commit=0000000000000000000000000000000000000000
  date=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | jq -r .Time)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ldf+=" -X $p.gitCommit=$commit -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  local pkgs=() c
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  (cd "$w" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldf" -o "$out/" "${pkgs[@]}")
}

# --- network -------------------------------------------------------------------------------
# airgapped: true when no container registry answers, always when CI is set. The answer is
# kept in ES_AIRGAPPED (1/0) for the scripts this one runs; set it yourself to skip the probe.
airgapped() {
  if [[ -z ${ES_AIRGAPPED:-} ]]; then
    if [[ -n ${CI:-} && ${CI} != false && ${CI} != 0 ]]; then
      ES_AIRGAPPED=1; log "air-gapped mode: CI is set"
    elif curl -s -o /dev/null -m 3 https://registry.k8s.io/v2/ ||
         curl -s -o /dev/null -m 3 https://registry-1.docker.io/v2/; then
      ES_AIRGAPPED=0; log "online: a container registry answered"
    else
      ES_AIRGAPPED=1; log "air-gapped mode: no container registry answered a 3 s probe"
    fi
    export ES_AIRGAPPED
  fi
  [[ $ES_AIRGAPPED == 1 ]]
}

# --- waiting -------------------------------------------------------------------------------
# wait_for DESCRIPTION TIMEOUT_SECONDS CMD...: poll CMD once a second until it succeeds,
# printing progress every 10 s; fail after the timeout.
wait_for() {
  local what=$1 timeout=$2 start now; shift 2
  start=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    now=$(( $(date +%s) - start ))
    (( now < timeout )) || { log "timed out after ${timeout}s waiting for $what"; return 1; }
    (( now == 0 || now % 10 )) || log "waiting for $what (${now}s)"
    sleep 1
  done
}

# --- images ----------------------------------------------------------------------------------
# node_image: the kind node image to use: a stock kindest/node of our Kubernetes version when
# one is present locally, else the one node-image.sh builds.
node_image() {
  if docker image inspect "kindest/node:$K8S_VERSION" >/dev/null 2>&1; then
    echo "kindest/node:$K8S_VERSION"
  else
    echo "$KIND_NODE_IMAGE"
  fi
}

# ensure_busybox_image: a tiny image from Debian's busybox-static (smoke tests, the
# local-path helper image).
ensure_busybox_image() {
  local key; key=$(key_of busybox "$BUSYBOX_VERSION" "$KIND_NODE_REV")
  image_ok "$BUSYBOX_IMAGE" "$key" && return 0
  apt_install busybox-static
  local r=$ES_WORK/rootfs/busybox a
  rm -rf "$r"; mkdir -p "$r"/{bin,etc,tmp,root,var/run}; chmod 1777 "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$r/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$r/etc/group"
  local old; old=$(image_id "$BUSYBOX_IMAGE")
  tar -C "$r" --numeric-owner -c . | docker import --change 'CMD ["sh"]' --change 'ENV PATH=/bin' \
    --change "LABEL $STAMP_LABEL=$key" - "$BUSYBOX_IMAGE" >/dev/null
  drop_replaced "$old" "$BUSYBOX_IMAGE"
  log "built $BUSYBOX_IMAGE"
}

# store_image: the store's image, localhost/ephemeral-store:<chart appVersion> (0.1.0 while the
# chart does not exist yet); STORE_IMAGE overrides it.
store_image() {
  if [[ -n ${STORE_IMAGE:-} ]]; then echo "$STORE_IMAGE"; return 0; fi
  echo "localhost/ephemeral-store:$(chart_app_version "$ROOT")"
}
