#!/bin/sh
# runc wrapper (ephemeral-store): this VM's capability bounding set lacks CAP_SYS_RESOURCE, so runc
# fails with "unable to apply caps: operation not permitted" for any spec that asks for it
# (docker --privileged, docker exec into a privileged container, ...). Strip it from the
# bundle's config.json (create/run) and from --process files (exec), then exec the real runc.
REAL_RUNC=${REAL_RUNC:-/usr/sbin/runc}
strip() { # $1 = json file, $2 = jq path of the capabilities object
  [ -f "$1" ] && grep -q CAP_SYS_RESOURCE "$1" || return 0
  if jq "$2 |= (with_entries(.value |= map(select(. != \"CAP_SYS_RESOURCE\"))))" "$1" > "$1.es-runc.tmp"; then
    mv "$1.es-runc.tmp" "$1"
    # inside a kind node (has /kind), keep a record of every spec we had to fix
    [ -d /kind ] && echo "$(date -Iseconds) stripped CAP_SYS_RESOURCE: $1" >> /var/log/es-runc-wrapper.log
  else
    rm -f "$1.es-runc.tmp"
  fi
}
prev=""
for a in "$@"; do
  case "$prev" in
    --bundle|-b) strip "$a/config.json" .process.capabilities ;;
    --process|-p) strip "$a" .capabilities ;;
  esac
  case "$a" in
    --bundle=*) strip "${a#--bundle=}/config.json" .process.capabilities ;;
    --process=*) strip "${a#--process=}" .capabilities ;;
  esac
  prev="$a"
done
exec "$REAL_RUNC" "$@"
