#!/usr/bin/env bash
# The kind node image for Kubernetes $K8S_VERSION, with no container registry.
#
# A stock kindest/node:$K8S_VERSION present locally is used as it is. Otherwise
# $KIND_NODE_IMAGE is built from Debian's archive and the Go module proxy only, by kind's own
# builder (`kind build node-image --type file`) fed a release tarball assembled here:
#   1. kubernetes binaries   kubelet, kubeadm, kubectl, kube-* with version ldflags
#   2. base image            debootstrap $DEBIAN_SUITE with the packages of kind's base
#                            Dockerfile, containerd + crictl built from the proxy, kind's base
#                            files (entrypoint, containerd config, units) from the kind module,
#                            the runc wrapper and a /sbin/init shim for cgroup v1 hosts
#   3. component binaries    etcd, coredns, local-path-provisioner, kube-network-policies (the
#                            NetworkPolicy agent, patched: scripts/kind-node/README.md), and our
#                            own kindnetd-lite and pause (scripts/kind-node/src)
#   4. component images      tagged exactly as kubeadm and kind expect (11 images), plus the
#                            policy agent and busybox under our own names (13 in all)
#   5. node image            the tarball, then kind's builder, which finds every image in the
#                            archives and so never fetches one
# Each stage is skipped when its output exists with a matching version stamp; the node image
# carries its stamp as a label, so a second run with nothing changed returns in about a second.
# Why each odd step is there: scripts/kind-node/README.md ("Pitfalls", numbered below).
#
# `node-image.sh --stamp` prints the stamp this checkout's node image carries, and builds nothing
# (scripts/kind-cluster.sh compares it with the stamp of a running cluster's nodes).
# Env: ES_WORK (work dir, default /var/tmp/ephemeral-store), logs in $ES_WORK/logs.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/kind-node/common.sh
source "$ROOT/scripts/kind-node/common.sh"
cd "$ROOT"

K8S_BIN=$ES_WORK/k8s/bin        # kubernetes binaries
CBIN=$ES_WORK/bin               # component binaries (etcd, coredns, ...)
ROOTFS=$ES_WORK/rootfs/base     # the base image's Debian root
IMAGES_TXT=$ES_WORK/images.txt  # every image the node must contain
LOGS=$ES_WORK/logs
KNP_PATCH=$KIND_NODE_DIR/kube-network-policies-xt-nfqueue.patch
K8S_CMDS=(kubelet kubeadm kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl)
# The packages kind's images/base/Dockerfile installs, plus Debian's runc and CNI plugins.
BASE_PKGS=(
  systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod
  libseccomp2 pigz fuse-overlayfs nfs-common open-iscsi e2fsprogs
  bash ca-certificates curl jq procps runc containernetworking-plugins
)

# The version stamp of the node image: every version and every file it is built from.
node_key() {
  key_of "rev=$KIND_NODE_REV" "$K8S_VERSION" "$KIND_VERSION" "$CONTAINERD_VERSION" \
    "$CRICTL_VERSION" "$ETCD_VERSION" "$COREDNS_VERSION" "$LPP_VERSION" "$DEBIAN_SUITE" \
    "$BUSYBOX_VERSION" "$KNP_VERSION" "${BASE_PKGS[*]}" \
    "$(files_key "$KIND_NODE_DIR/runc-wrapper.sh" "$KIND_NODE_DIR/archive-repack.py" \
      "$KIND_NODE_DIR/check-archives.py" "$KNP_PATCH" "$KIND_NODE_DIR"/src/*/main.go)"
}

# ---- 1. kubernetes binaries ---------------------------------------------------------------
k8s_binaries() {
  local key c ok=true; key=$(key_of "$K8S_VERSION" "$(go env GOVERSION)")
  for c in "${K8S_CMDS[@]}"; do [[ -x $K8S_BIN/$c ]] || ok=false; done
  if $ok && stamp_ok k8s-binaries "$key"; then log "up to date: $K8S_BIN"; return 0; fi
  # Pitfall 5: without the version ldflags kubeadm reports v0.0.0-master and kind refuses it.
  log "go build ${K8S_CMDS[*]} ($K8S_VERSION, CGO_ENABLED=0) -> $K8S_BIN (log $LOGS/k8s-build.log)"
  k8s_build "$K8S_BIN" "${K8S_CMDS[@]}" > "$LOGS/k8s-build.log" 2>&1 ||
    { tail -30 "$LOGS/k8s-build.log" >&2; die "kubernetes build failed"; }
  [[ $("$K8S_BIN/kubeadm" version -o short) == "$K8S_VERSION" ]] || die "kubeadm reports $("$K8S_BIN/kubeadm" version -o short)"
  stamp_set k8s-binaries "$key"
}

# ---- 2. base image --------------------------------------------------------------------------
debootstrap_rootfs() {
  local key; key=$(key_of "$DEBIAN_SUITE" "${BASE_PKGS[@]}")
  if [[ -x $ROOTFS/usr/bin/systemctl ]] && stamp_ok base-debootstrap "$key"; then return 0; fi
  log "debootstrap --variant=minbase $DEBIAN_SUITE -> $ROOTFS (log $LOGS/debootstrap.log)"
  rm -rf "$ROOTFS"; mkdir -p "$(dirname "$ROOTFS")"
  # minbase + an explicit list == kind's clean-install (no recommends)
  debootstrap --variant=minbase --include="$(IFS=,; echo "${BASE_PKGS[*]}")" \
    "$DEBIAN_SUITE" "$ROOTFS" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" > "$LOGS/debootstrap.log" 2>&1 ||
    { tail -20 "$LOGS/debootstrap.log" >&2; die "debootstrap failed"; }
  stamp_set base-debootstrap "$key"
}

runtime_binaries() {
  local p=github.com/containerd/containerd/v2 key
  # Pitfall 6: crictl's module is one of those `go install` cannot fetch (403 on @v/list).
  key=$(key_of crictl "$CRICTL_VERSION")
  if [[ ! -x $CBIN/crictl ]] || ! stamp_ok crictl "$key"; then
    log "building crictl $CRICTL_VERSION"
    gowrap_build "$ES_WORK/go/crictl" sigs.k8s.io/cri-tools "$CRICTL_VERSION" \
      sigs.k8s.io/cri-tools/cmd/crictl "$CBIN/crictl" \
      -ldflags="-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION#v}"
    stamp_set crictl "$key"
  fi
  # Pitfall 7: Debian's containerd 1.7 lacks `ctr images import --label`, which kind's
  # builder passes; containerd v2 (kind's version) is built from the proxy.
  key=$(key_of containerd "$CONTAINERD_VERSION")
  if [[ ! -x $CBIN/containerd ]] || ! stamp_ok containerd "$key"; then
    log "building containerd $CONTAINERD_VERSION"
    gowrap_mod "$ES_WORK/go/containerd" "$p" "$CONTAINERD_VERSION" "$p/cmd/containerd"
    (cd "$ES_WORK/go/containerd" && CGO_ENABLED=0 go build -trimpath \
      -tags "no_aufs no_zfs no_btrfs no_devmapper" \
      -ldflags "-s -w -X $p/version.Version=$CONTAINERD_VERSION -X $p/version.Revision=ephemeral-store" \
      -o "$CBIN/" "$p/cmd/containerd" "$p/cmd/containerd-shim-runc-v2" "$p/cmd/ctr")
    stamp_set containerd "$key"
  fi
}

install_kind_files() {
  local f=$KIND_SRC/images/base/files b
  install -d -m 0755 "$ROOTFS/kind" "$ROOTFS/kind/bin" "$ROOTFS/etc/containerd" \
    "$ROOTFS/etc/systemd/system/kubelet.service.d" "$ROOTFS/etc/kubernetes/manifests" "$ROOTFS/LICENSES"
  install -m 0755 "$f"/usr/local/bin/* "$ROOTFS/usr/local/bin/"
  install -m 0644 "$f"/kind/README.txt "$ROOTFS/kind/"
  install -m 0755 "$f"/kind/bin/* "$ROOTFS/kind/bin/"
  install -m 0644 "$f"/LICENSES/* "$ROOTFS/LICENSES/"
  install -m 0644 "$f"/etc/crictl.yaml "$ROOTFS/etc/"
  install -m 0644 "$f"/etc/containerd/* "$ROOTFS/etc/containerd/"
  # Pitfall 3: without CAP_SYS_RESOURCE nothing in the node may lower an oom_score_adj, and
  # containerd asks for -998 for every sandbox; restrict_oom_score_adj (kind's rootless
  # setting) clamps it to containerd's own score.
  sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$ROOTFS/etc/containerd/config.toml"
  grep -q 'restrict_oom_score_adj = true' "$ROOTFS/etc/containerd/config.toml" ||
    die "kind's containerd config has no restrict_oom_score_adj to set"
  install -m 0644 "$f"/etc/default/* "$ROOTFS/etc/default/"
  install -m 0644 "$f"/etc/sysctl.d/* "$ROOTFS/etc/sysctl.d/"
  install -m 0644 "$f"/etc/systemd/system/*.service "$f"/etc/systemd/system/*.slice "$ROOTFS/etc/systemd/system/"
  install -m 0644 "$f"/etc/systemd/system/kubelet.service.d/* "$ROOTFS/etc/systemd/system/kubelet.service.d/"
  # kind's unit and tools expect containerd in /usr/local/bin
  for b in containerd ctr containerd-shim-runc-v2 crictl; do
    install -m 0755 "$CBIN/$b" "$ROOTFS/usr/local/bin/$b"
  done
  # Debian's CNI plugins live in /usr/lib/cni; containerd and kindnet look in /opt/cni/bin
  install -d -m 0755 "$ROOTFS/opt/cni/bin"
  for b in host-local loopback ptp portmap bridge; do ln -sfn "/usr/lib/cni/$b" "$ROOTFS/opt/cni/bin/$b"; done
  # Pitfalls 1 and 4: the runc wrapper, first "runc" in PATH for containerd's shim. Not needed
  # with containerd 2.3 (privileged pods get the current, already reduced, capability set);
  # kept as insurance, it logs to /var/log/es-runc-wrapper.log whenever it has to act.
  install -m 0755 "$KIND_NODE_DIR/runc-wrapper.sh" "$ROOTFS/usr/local/sbin/runc"
  # Pitfall 2: systemd >= 256 refuses cgroup v1 unless SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1 is
  # on the "kernel command line", which inside a container is PID 1's argv: an init shim.
  cat > "$ROOTFS/usr/local/sbin/es-init" <<'INIT'
#!/bin/sh
if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
  exec /usr/lib/systemd/systemd SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1 systemd.unified_cgroup_hierarchy=0 "$@"
fi
exec /usr/lib/systemd/systemd "$@"
INIT
  chmod 0755 "$ROOTFS/usr/local/sbin/es-init"
  ln -sfn /usr/local/sbin/es-init "$ROOTFS/sbin/init"
  # the RUN steps of kind's base Dockerfile
  chroot "$ROOTFS" /bin/bash -euc '
    chmod 755 /kind /kind/bin
    find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete
    rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
    grep -q "^ReadKMsg=no" /etc/systemd/journald.conf || echo "ReadKMsg=no" >> /etc/systemd/journald.conf
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service
    systemctl mask systemd-binfmt.service
    ctr oci spec \
      | jq ".hooks.createContainer[.hooks.createContainer| length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" \
      | jq "del(.process.rlimits)" > /etc/containerd/cri-base.json
    containerd --version; runc --version | head -1; crictl --version
    apt-get clean
    rm -rf /var/cache/debconf/*-old /var/lib/apt/lists/* /var/log/* /tmp/* /var/tmp/* \
      /usr/share/doc/* /usr/share/doc-base/* /usr/share/man/* /usr/share/locale/*
    rm -f /etc/machine-id; : > /etc/machine-id
  ' > "$LOGS/base-rootfs.log" 2>&1 || { tail -20 "$LOGS/base-rootfs.log" >&2; die "base rootfs steps failed"; }
}

base_image() {
  local key; key=$(key_of "rev=$KIND_NODE_REV" "$DEBIAN_SUITE" "${BASE_PKGS[*]}" "$CRICTL_VERSION" \
    "$CONTAINERD_VERSION" "$KIND_VERSION" "$(files_key "$KIND_NODE_DIR/runc-wrapper.sh")")
  if image_ok "$BASE_IMAGE" "$key"; then log "up to date: $BASE_IMAGE"; return 0; fi
  debootstrap_rootfs
  runtime_binaries
  log "installing kind's base files, the runc wrapper and the init shim into $ROOTFS"
  install_kind_files
  log "docker import -> $BASE_IMAGE"
  local old ctx=$ES_WORK/images/base-meta
  old=$(image_id "$BASE_IMAGE")
  tar -C "$ROOTFS" --numeric-owner --xattrs -c . | docker import - "$BASE_IMAGE-rootfs" >/dev/null
  # Pitfall 10: docker import cannot set STOPSIGNAL; a metadata-only build on top can.
  mkdir -p "$ctx"
  cat > "$ctx/Dockerfile" <<DF
FROM $BASE_IMAGE-rootfs
# tell systemd it is in a container; systemd exits on SIGRTMIN+3 (SIGTERM re-executes it)
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]
LABEL $STAMP_LABEL=$key
DF
  DOCKER_BUILDKIT=0 docker build -q -t "$BASE_IMAGE" "$ctx" >/dev/null 2>"$LOGS/docker-build.log" ||
    { cat "$LOGS/docker-build.log" >&2; die "docker build $BASE_IMAGE failed"; }
  docker rmi "$BASE_IMAGE-rootfs" >/dev/null 2>&1 || true   # untags; the layer stays shared
  drop_replaced "$old" "$BASE_IMAGE"
}

# ---- 3. component binaries --------------------------------------------------------------------
component_binaries() {
  local key
  export CGO_ENABLED=0
  key=$(key_of etcd "$ETCD_VERSION")
  if [[ ! -x $CBIN/etcd ]] || ! stamp_ok etcd "$key"; then
    log "building etcd $ETCD_VERSION"
    # go.etcd.io/etcd/v3 (the root with main.go) uses replace directives, which `go install`
    # refuses; a wrapper calling etcdmain.Main is the same program.
    local d=$ES_WORK/go/etcd
    gowrap_mod "$d" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3/etcdmain
    printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > "$d/main.go"
    rm -f "$d/tools.go"
    (cd "$d" && go build -trimpath -ldflags='-s -w' -o "$CBIN/etcd" .)
    stamp_set etcd "$key"
  fi
  key=$(key_of coredns "$COREDNS_VERSION")
  if [[ ! -x $CBIN/coredns ]] || ! stamp_ok coredns "$key"; then
    log "building coredns $COREDNS_VERSION"
    gowrap_build "$ES_WORK/go/coredns" github.com/coredns/coredns "$COREDNS_VERSION" \
      github.com/coredns/coredns "$CBIN/coredns"
    stamp_set coredns "$key"
  fi
  key=$(key_of lpp "$LPP_VERSION")
  if [[ ! -x $CBIN/local-path-provisioner ]] || ! stamp_ok local-path-provisioner "$key"; then
    log "building local-path-provisioner $LPP_VERSION"
    gowrap_build "$ES_WORK/go/local-path-provisioner" github.com/rancher/local-path-provisioner \
      "$LPP_VERSION" github.com/rancher/local-path-provisioner "$CBIN/local-path-provisioner" \
      -ldflags="-s -w -X main.VERSION=$LPP_VERSION"
    stamp_set local-path-provisioner "$key"
  fi
  # kindnetd-lite (caveat 1 of the lab: kind's kindnetd module is not served by the proxy)
  key=$(key_of kindnetd "$K8S_VERSION" "$(files_key "$KIND_NODE_DIR/src/kindnetd-lite/main.go")")
  if [[ ! -x $CBIN/kindnetd ]] || ! stamp_ok kindnetd "$key"; then
    log "building kindnetd-lite"
    local d=$ES_WORK/go/kindnetd-lite k=v0.${K8S_VERSION#v1.}
    mkdir -p "$d"; cp "$KIND_NODE_DIR/src/kindnetd-lite/main.go" "$d/"
    if ! has_require "$d/go.mod" k8s.io/client-go "$k"; then
      rm -f "$d/go.mod" "$d/go.sum"
      # the client-go of our Kubernetes version: mostly build-cache hits after the k8s build
      printf 'module ephemeral-store/kindnetd-lite\n\ngo 1.24\n\nrequire (\n\tgithub.com/vishvananda/netlink v1.3.1\n\tk8s.io/api %s\n\tk8s.io/apimachinery %s\n\tk8s.io/client-go %s\n)\n' \
        "$k" "$k" "$k" > "$d/go.mod"
      (cd "$d" && go mod tidy)
    fi
    (cd "$d" && go build -trimpath -ldflags='-s -w' -o "$CBIN/kindnetd" .)
    stamp_set kindnetd "$key"
  fi
  # kube-network-policies, the NetworkPolicy agent that kind's real kindnetd embeds, with our
  # patch: it queues packets through xtables' NFQUEUE target instead of the nft queue
  # expression, which kernels without CONFIG_NFT_QUEUE refuse (scripts/kind-node/README.md).
  key=$(key_of knp "$KNP_VERSION" "$(files_key "$KNP_PATCH")")
  if [[ ! -x $CBIN/kube-network-policies ]] || ! stamp_ok kube-network-policies "$key"; then
    log "building kube-network-policies $KNP_VERSION with ${KNP_PATCH#"$ROOT"/}"
    local d=$ES_WORK/go/kube-network-policies
    rm -rf "$d"; cp -r "$(go_mod_dir sigs.k8s.io/kube-network-policies "$KNP_VERSION")" "$d"; chmod -R u+w "$d"
    patch -p1 -d "$d" < "$KNP_PATCH" >/dev/null || die "${KNP_PATCH#"$ROOT"/} does not apply to $KNP_VERSION"
    (cd "$d" && go build -trimpath -ldflags='-s -w' -o "$CBIN/kube-network-policies" ./cmd)
    stamp_set kube-network-policies "$key"
  fi
  key=$(key_of pause "$(files_key "$KIND_NODE_DIR/src/pause/main.go")")
  if [[ ! -x $CBIN/pause ]] || ! stamp_ok pause "$key"; then
    log "building pause"
    local d=$ES_WORK/go/pause
    mkdir -p "$d"; cp "$KIND_NODE_DIR/src/pause/main.go" "$d/"
    [[ -f $d/go.mod ]] || printf 'module ephemeral-store/pause\n\ngo 1.24\n' > "$d/go.mod"
    (cd "$d" && go build -trimpath -ldflags='-s -w' -o "$CBIN/pause" .)
    stamp_set pause "$key"
  fi
  log "etcd $("$CBIN/etcd" --version | awk 'NR == 1 { print $3 }'), $("$CBIN/coredns" -version | head -1)"
}

# ---- 4. component images ------------------------------------------------------------------------
static_base() {
  local key; key=$(key_of static-base "rev=$KIND_NODE_REV")
  image_ok "$STATIC_BASE" "$key" && return 0
  # what distroless/static gives: /tmp, passwd and group, nsswitch, the CA bundle
  local r=$ES_WORK/rootfs/static
  rm -rf "$r"; mkdir -p "$r"/{tmp,etc/ssl/certs,root,var/run,usr/local/bin}; chmod 1777 "$r/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > "$r/etc/group"
  echo 'hosts: files dns' > "$r/etc/nsswitch.conf"
  cp -L "$ROOTFS/etc/ssl/certs/ca-certificates.crt" "$r/etc/ssl/certs/"
  local old; old=$(image_id "$STATIC_BASE")
  tar -C "$r" --numeric-owner -c . | docker import --change "LABEL $STAMP_LABEL=$key" \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin' - "$STATIC_BASE" >/dev/null
  drop_replaced "$old" "$STATIC_BASE"
  log "built $STATIC_BASE"
}

# iptables-base: static-base + busybox + iptables (nft and legacy), nft and conntrack with their
# libraries from the Debian root, and an iptables-wrapper that picks the node's backend
# (pitfall 12: kube-proxy and kindnetd must use the backend the node chose).
iptables_base() {
  local key; key=$(key_of iptables-base "rev=$KIND_NODE_REV" "$(image_id "$STATIC_BASE")" \
    "$(files_key "$KIND_NODE_DIR/iptables-wrapper.sh")")
  image_ok "$IPTABLES_BASE" "$key" && return 0
  local r=$ES_WORK/rootfs/iptables f lib so a t m
  rm -rf "$r"; cp -a "$ES_WORK/rootfs/static" "$r"; mkdir -p "$r/bin" "$r/usr/sbin"
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [[ -e $r/bin/$a ]] || ln -s busybox "$r/bin/$a"; done
  stage_bin() { # copy binaries and their shared libraries from the Debian root
    for f in "$@"; do
      install -D -m 0755 "$(readlink -f "$ROOTFS$f")" "$r$f"
      for lib in $(chroot "$ROOTFS" ldd "$f" | grep -o '/[^ ]*'); do
        [[ -e $r$lib ]] || { mkdir -p "$r$(dirname "$lib")"; cp -L "$ROOTFS$lib" "$r$lib"; }
      done
    done
  }
  stage_bin /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/nft /usr/sbin/conntrack
  local xt=/usr/lib/x86_64-linux-gnu/xtables
  mkdir -p "$r$xt"; cp -a "$ROOTFS$xt/." "$r$xt/"
  for so in "$r$xt"/*.so; do stage_bin "${so#"$r"}" 2>/dev/null || true; done
  cp "$ROOTFS"/etc/{protocols,services,ethertypes} "$r/etc/"
  install -m 0755 "$KIND_NODE_DIR/iptables-wrapper.sh" "$r/usr/sbin/iptables-wrapper"
  for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sfn iptables-wrapper "$r/usr/sbin/$t"
    for m in nft legacy; do ln -sfn "xtables-$m-multi" "$r/usr/sbin/${t/tables/tables-$m}"; done
  done
  local old; old=$(image_id "$IPTABLES_BASE")
  tar -C "$r" --numeric-owner -c . | docker import --change "LABEL $STAMP_LABEL=$key" \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin' - "$IPTABLES_BASE" >/dev/null
  drop_replaced "$old" "$IPTABLES_BASE"
  docker run --rm "$IPTABLES_BASE" sh -c 'iptables-nft -V && iptables-legacy -V && nft -v && conntrack -V' >/dev/null ||
    die "$IPTABLES_BASE: iptables/nft/conntrack do not run"
  log "built $IPTABLES_BASE"
}

# build_image TAG BASE BINARY DEST [Dockerfile lines...]: a one-binary image, skipped when an
# image with the same inputs exists.
build_image() {
  local tag=$1 base=$2 bin=$3 dest=$4; shift 4
  local key; key=$(key_of "$tag" "$(image_id "$base")" "$(files_key "$bin")" "$dest" "$@")
  image_ok "$tag" "$key" && return 0
  local ctx; ctx=$ES_WORK/images/$(tr '/:' '__' <<<"$tag")
  rm -rf "$ctx"; mkdir -p "$ctx"
  cp "$bin" "$ctx/$(basename "$dest")"
  { echo "FROM $base"; echo "COPY $(basename "$dest") $dest"; printf '%s\n' "$@"
    echo "LABEL $STAMP_LABEL=$key"; } > "$ctx/Dockerfile"
  local old; old=$(image_id "$tag")
  # the legacy builder (no buildx here); every FROM is local, nothing is pulled
  DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null 2>"$LOGS/docker-build.log" ||
    { cat "$LOGS/docker-build.log" >&2; die "docker build $tag failed"; }
  drop_replaced "$old" "$tag"
  log "built $tag"
}

component_images() {
  # names kind insists on, read from the kind source so that a kind upgrade follows along
  local kindnetd lpp lph sandbox etcd coredns pause c
  kindnetd=$(sed -n 's/^const kindnetdImage = "\(.*\)"/\1/p' "$KIND_SRC/pkg/build/nodeimage/const_cni.go")
  lpp=$(sed -n 's/^const storageProvisionerImage = "\(.*\)"/\1/p' "$KIND_SRC/pkg/build/nodeimage/const_storage.go")
  lph=$(sed -n 's/^const storageHelperImage = "\(.*\)"/\1/p' "$KIND_SRC/pkg/build/nodeimage/const_storage.go")
  sandbox=$(sed -n 's/^\s*sandbox_image = "\(.*\)"/\1/p' "$KIND_SRC/images/base/files/etc/containerd/config.toml")
  local kubeadm_images
  mapfile -t kubeadm_images < <("$K8S_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION")
  img() { printf '%s\n' "${kubeadm_images[@]}" | grep "/$1:"; }
  etcd=$(img etcd); coredns=$(img coredns); pause=$(img pause)
  [[ -n $kindnetd && -n $lpp && -n $lph && -n $sandbox && -n $etcd && -n $coredns && -n $pause ]] ||
    die "could not read the image names from kind $KIND_VERSION / kubeadm"

  static_base
  iptables_base
  ensure_busybox_image
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    build_image "$(img "$c")" "$STATIC_BASE" "$K8S_BIN/$c" "/usr/local/bin/$c" "ENTRYPOINT [\"/usr/local/bin/$c\"]"
  done
  build_image "$(img kube-proxy)" "$IPTABLES_BASE" "$K8S_BIN/kube-proxy" /usr/local/bin/kube-proxy \
    'ENTRYPOINT ["/usr/local/bin/kube-proxy"]'
  build_image "$etcd" "$STATIC_BASE" "$CBIN/etcd" /usr/local/bin/etcd 'ENTRYPOINT ["/usr/local/bin/etcd"]'
  build_image "$coredns" "$STATIC_BASE" "$CBIN/coredns" /coredns 'EXPOSE 53 53/udp' 'ENTRYPOINT ["/coredns"]'
  build_image "$pause" scratch "$CBIN/pause" /pause 'USER 65535:65535' 'ENTRYPOINT ["/pause"]'
  # Pitfall 11: kubeadm wants pause:3.10.1, kind's containerd config pins its sandbox image.
  [[ $sandbox == "$pause" ]] || docker tag "$pause" "$sandbox"
  build_image "$kindnetd" "$IPTABLES_BASE" "$CBIN/kindnetd" /bin/kindnetd 'ENTRYPOINT ["/bin/kindnetd"]'
  build_image "$lpp" "$STATIC_BASE" "$CBIN/local-path-provisioner" /usr/local/bin/local-path-provisioner \
    'ENTRYPOINT ["/usr/local/bin/local-path-provisioner"]'
  docker tag "$BUSYBOX_IMAGE" "$lph"
  build_image "$KNP_IMAGE" "$STATIC_BASE" "$CBIN/kube-network-policies" /bin/netpol 'ENTRYPOINT ["/bin/netpol"]'
  # What the node image must hold (kind's builder swaps kubeadm's pause for the sandbox image),
  # plus the policy agent (deployed by scripts/kind-cluster.sh) and busybox under its own name
  # (the end-to-end tests' probe pods; the same image ID as the local-path helper).
  printf '%s\n' "${kubeadm_images[@]}" "$sandbox" "$kindnetd" "$lpp" "$lph" "$KNP_IMAGE" "$BUSYBOX_IMAGE" |
    sort -u > "$IMAGES_TXT"
  log "$(wc -l < "$IMAGES_TXT") images for the node: $(tr '\n' ' ' < "$IMAGES_TXT")"
}

# ---- 5. node image ---------------------------------------------------------------------------------
node_image() {
  local rel=$ES_WORK/release tarball=$ES_WORK/kubernetes-server-linux-amd64.tar.gz b c
  local sbin=$rel/kubernetes/server/bin
  rm -rf "$rel"; mkdir -p "$sbin"
  printf '%s' "$K8S_VERSION" > "$rel/kubernetes/version"
  for b in kubeadm kubelet kubectl; do cp "$K8S_BIN/$b" "$sbin/"; done
  # Pitfall 8: kind reads only the first manifest of each image archive and wants fully
  # qualified names; everything beyond the 4 kube-* images rides in kube-proxy.tar, repacked.
  save() { # OUT.tar IMAGE...
    local out=$1; shift
    docker save "$@" -o "$ES_WORK/tmp/save.tar"
    python3 "$KIND_NODE_DIR/archive-repack.py" "$ES_WORK/tmp/save.tar" "$out" >/dev/null
    rm -f "$ES_WORK/tmp/save.tar"
  }
  img() { grep "/$1:" "$IMAGES_TXT"; }
  for c in kube-apiserver kube-controller-manager kube-scheduler; do save "$sbin/$c.tar" "$(img "$c")"; done
  local extra
  mapfile -t extra < <(grep -v -E '/(kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy):' "$IMAGES_TXT")
  save "$sbin/kube-proxy.tar" "$(img kube-proxy)" "${extra[@]}"
  # kind must find every image in the archives, or it would try to fetch it
  python3 "$KIND_NODE_DIR/check-archives.py" "$sbin" "$IMAGES_TXT"
  log "packing $tarball"
  (cd "$rel" && tar -c kubernetes | pigz -1 > "$tarball")
  rm -rf "$rel"

  local old key=$1
  old=$(image_id "$KIND_NODE_IMAGE")
  # Pitfall 9: the builder always runs `docker pull <base image>` (errors ignored); a
  # localhost/ name makes that fail at once on 127.0.0.1.
  log "kind build node-image --type file --base-image $BASE_IMAGE --image $KIND_NODE_IMAGE (log $LOGS/kind-build-node-image.log)"
  TMPDIR=$ES_WORK/tmp kind build node-image --type file "$tarball" --base-image "$BASE_IMAGE" \
    --image "$KIND_NODE_IMAGE" --arch amd64 -v 1 > "$LOGS/kind-build-node-image.log" 2>&1 ||
    { tail -30 "$LOGS/kind-build-node-image.log" >&2; die "kind build node-image failed"; }
  rm -rf "$ES_WORK"/tmp/k8s-tar-extract-* "$tarball"
  grep -q 'Detected built images' "$LOGS/kind-build-node-image.log" &&
    log "$(grep -o 'Detected built images:.*' "$LOGS/kind-build-node-image.log" | cut -c1-200)..."
  if grep -q 'Failed to pull' "$LOGS/kind-build-node-image.log"; then
    die "kind's builder tried to fetch an image (see $LOGS/kind-build-node-image.log)"
  fi
  label_image "$KIND_NODE_IMAGE" "$key"
  drop_replaced "$old" "$KIND_NODE_IMAGE"
  log "$KIND_NODE_IMAGE: $(docker image inspect -f '{{.Id}} {{.Size}} bytes' "$KIND_NODE_IMAGE") ($(docker run --rm --entrypoint cat "$KIND_NODE_IMAGE" /kind/version))"
}

main() {
  if [[ ${1:-} == --stamp ]]; then node_key; return 0; fi
  docker info >/dev/null 2>&1 || die "no Docker engine: run scripts/ensure-docker.sh first"
  if docker image inspect "kindest/node:$K8S_VERSION" >/dev/null 2>&1; then
    log "using the local stock image kindest/node:$K8S_VERSION"
    return 0
  fi
  local key; key=$(node_key)
  if image_ok "$KIND_NODE_IMAGE" "$key"; then
    log "$KIND_NODE_IMAGE is up to date (stamp $key)"
    return 0
  fi
  log "building $KIND_NODE_IMAGE (stamp $key); logs in $LOGS"
  local pkgs=(debootstrap busybox-static pigz jq patch)
  command -v python3 >/dev/null || pkgs+=(python3)
  stage "host packages" apt_install "${pkgs[@]}"
  stage "kind CLI" "$ROOT/scripts/install-tools.sh" kind
  KIND_SRC=$(go_mod_dir sigs.k8s.io/kind "$KIND_VERSION")
  stage "kubernetes $K8S_VERSION binaries" k8s_binaries
  stage "base image $BASE_IMAGE" base_image
  stage "component binaries" component_binaries
  stage "component images" component_images
  stage "node image $KIND_NODE_IMAGE" node_image "$key"
}

main "$@"
