#!/usr/bin/env bash
# A Docker engine that can run kind: use the running one, else install Debian's docker.io and
# start dockerd by hand (no init system to rely on: background, log file, pidfile).
#
# Where the machine's capability bounding set lacks CAP_SYS_RESOURCE (bit 24 of CapBnd), any
# privileged container fails with "unable to apply caps: operation not permitted", and kind's
# nodes are privileged containers. Then scripts/kind-node/runc-wrapper.sh (strips that
# capability from create and exec specs) becomes Docker's *default* runtime, since kind cannot
# pass --runtime. In air-gapped mode the egress guard is put in place (scripts/egress-guard.sh).
#
# Env: ES_WORK (logs in $ES_WORK/logs/dockerd.log), ES_AIRGAPPED=0/1 to skip the probe.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/kind-node/common.sh
source "$ROOT/scripts/kind-node/common.sh"
cd "$ROOT"

PIDFILE=/var/run/docker.pid
DOCKERD_LOG=$ES_WORK/logs/dockerd.log
WRAPPER=/usr/local/sbin/es-runc
RUNTIME=es-runc

lacks_sys_resource() {
  local bnd; bnd=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
  (( (16#$bnd >> 24 & 1) == 0 ))
}

engine_up() { docker info >/dev/null 2>&1; }

install_engine() {
  if command -v dockerd >/dev/null; then
    log "dockerd is installed: $(dockerd --version)"
  else
    apt_install docker.io
  fi
  apt_install iptables jq ca-certificates
  command -v docker >/dev/null || die "no docker CLI after installing docker.io"
}

# configure_runtime: make the runc wrapper Docker's default runtime; sets RUNTIME_CHANGED when
# /etc/docker/daemon.json had to change. Other settings in that file are kept.
RUNTIME_CHANGED=false
configure_runtime() {
  if ! cmp -s "$ROOT/scripts/kind-node/runc-wrapper.sh" "$WRAPPER"; then
    install -m 0755 "$ROOT/scripts/kind-node/runc-wrapper.sh" "$WRAPPER"
    log "installed $WRAPPER"
  fi
  mkdir -p /etc/docker
  local have want
  have=$(jq -c -S . /etc/docker/daemon.json 2>/dev/null || echo '{}')
  want=$(jq -c -S --arg rt "$RUNTIME" --arg path "$WRAPPER" \
    '.runtimes[$rt] = {path: $path} | ."default-runtime" = $rt' <<<"$have")
  if [[ $have != "$want" ]]; then
    jq . <<<"$want" > /etc/docker/daemon.json
    log "/etc/docker/daemon.json: default runtime $RUNTIME ($WRAPPER)"
    RUNTIME_CHANGED=true
  fi
}

start_dockerd() {
  log "starting dockerd (log $DOCKERD_LOG, pidfile $PIDFILE)"
  # its own session, so that it outlives this script and the shell that ran it
  setsid dockerd --pidfile "$PIDFILE" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  wait_for "dockerd to answer" 90 docker info || { tail -20 "$DOCKERD_LOG" >&2; die "dockerd did not come up"; }
  log "dockerd $(docker version -f '{{.Server.Version}}') up, pid $(cat "$PIDFILE")"
}

stop_our_dockerd() {
  local pid; pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then die "the running Docker engine was not started by this script (no live $PIDFILE): restart it yourself with the runtime in /etc/docker/daemon.json"; fi
  log "stopping dockerd (pid $pid) to apply /etc/docker/daemon.json"
  kill "$pid"
  wait_for "dockerd (pid $pid) to exit" 60 sh -c "! kill -0 $pid 2>/dev/null" || die "dockerd did not stop"
}

engine() {
  local started=false
  if engine_up; then
    log "using the running Docker engine $(docker version -f '{{.Server.Version}}')"
  else
    install_engine
  fi
  if lacks_sys_resource; then
    log "CapBnd lacks CAP_SYS_RESOURCE: runc wrapper as the default runtime"
    configure_runtime
    if $RUNTIME_CHANGED && engine_up; then
      stop_our_dockerd
    fi
  fi
  if ! engine_up; then
    start_dockerd
    started=true
  fi
  if lacks_sys_resource && [[ $(docker info -f '{{.DefaultRuntime}}') != "$RUNTIME" ]]; then
    die "Docker's default runtime is $(docker info -f '{{.DefaultRuntime}}'), not $RUNTIME: privileged containers will fail here"
  fi
  docker info -f 'engine {{.ServerVersion}}: default runtime {{.DefaultRuntime}}, cgroup v{{.CgroupVersion}} ({{.CgroupDriver}}), storage {{.Driver}}, root {{.DockerRootDir}}' | while read -r l; do log "$l"; done
  # Smoke test once per engine start and configuration: a privileged container, as kind runs.
  local key; key=$(key_of "$(docker info -f '{{.ID}} {{.DefaultRuntime}}')" "$(cat "$PIDFILE" 2>/dev/null)")
  if $started || ! stamp_ok docker-smoke "$key"; then
    ensure_busybox_image
    docker run --rm --privileged "$BUSYBOX_IMAGE" true ||
      die "a privileged container does not start (see $DOCKERD_LOG)"
    log "privileged container OK"
    stamp_set docker-smoke "$key"
  fi
}

stage "docker engine" engine
stage "egress guard" "$ROOT/scripts/egress-guard.sh" apply
