#!/usr/bin/env bash
# The egress guard: in air-gapped mode, nothing a container sends is forwarded out of the
# machine's uplink. Containers still reach each other and this host.
#
# Why: Docker's embedded DNS relays unknown names to the host's resolver from inside each kind
# node, and before kube-proxy has programmed the Service IPs a hostNetwork pod's API call
# follows the node's default route out of the machine. Both must stay on the machine.
#
# usage: scripts/egress-guard.sh [apply|status|remove]
#   apply   (default) in air-gapped mode (see airgapped in kind-node/common.sh) insert, once,
#           `DOCKER-USER -o <uplink> -j DROP` for iptables and ip6tables, preceded by a
#           rate-limited LOG rule (prefix "es-egress-drop: ", EGRESS_LOG=0 leaves it out).
#           Outside air-gapped mode no firewall rule is changed.
#   status  the DOCKER-USER counters and what the LOG rule saw in the kernel log.
#   remove  delete the guard's rules.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/kind-node/common.sh
source "$ROOT/scripts/kind-node/common.sh"
cd "$ROOT"

LOG_PREFIX="es-egress-drop: "
LOG_MATCH=(-m limit --limit 60/min --limit-burst 100 -j LOG --log-prefix "$LOG_PREFIX")

uplink() { ip route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit }}'; }

# ensure_chain IPT: DOCKER-USER exists and FORWARD jumps to it. Docker creates both for IPv4;
# for IPv6 (Docker's ip6tables support is off by default) the guard makes them itself.
ensure_chain() {
  local ipt=$1
  "$ipt" -n -L DOCKER-USER >/dev/null 2>&1 || "$ipt" -N DOCKER-USER
  "$ipt" -C FORWARD -j DOCKER-USER 2>/dev/null || "$ipt" -I FORWARD -j DOCKER-USER
}

# rule_line IPT PATTERN: the position of the first DOCKER-USER rule matching PATTERN (0: none).
rule_line() {
  "$1" -S DOCKER-USER | grep -v '^-N' | grep -n -- "$2" | head -1 | cut -d: -f1 || true
}

guard_ok() { # IPT UPLINK
  local ipt=$1 up=$2 want_log=$3 drop log
  "$ipt" -C DOCKER-USER -o "$up" -j DROP 2>/dev/null || return 1
  [[ $want_log == 1 ]] || return 0
  "$ipt" -C DOCKER-USER -o "$up" "${LOG_MATCH[@]}" 2>/dev/null || return 1
  drop=$(rule_line "$ipt" "-o $up -j DROP"); log=$(rule_line "$ipt" "$LOG_PREFIX")
  (( log < drop ))
}

delete_rules() { # IPT UPLINK
  local ipt=$1 up=$2
  while "$ipt" -D DOCKER-USER -o "$up" "${LOG_MATCH[@]}" 2>/dev/null; do :; done
  while "$ipt" -D DOCKER-USER -o "$up" -j DROP 2>/dev/null; do :; done
}

apply() {
  if ! airgapped; then
    log "egress guard: not air-gapped, no firewall rule changed"
    return 0
  fi
  local up ipt want_log=${EGRESS_LOG:-1}
  up=$(uplink)
  [[ -n $up ]] || { log "egress guard: no default route, nothing can leave"; return 0; }
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || apt_install iptables
    ensure_chain "$ipt"
    if guard_ok "$ipt" "$up" "$want_log"; then
      continue
    fi
    # Only the LOG rule missing: put it right before the DROP rule (keeps its counters).
    if [[ $want_log == 1 ]] && "$ipt" -C DOCKER-USER -o "$up" -j DROP 2>/dev/null &&
       ! "$ipt" -C DOCKER-USER -o "$up" "${LOG_MATCH[@]}" 2>/dev/null &&
       "$ipt" -I DOCKER-USER "$(rule_line "$ipt" "-o $up -j DROP")" -o "$up" "${LOG_MATCH[@]}" 2>/dev/null; then
      log "egress guard: $ipt LOG rule added before the DROP rule"
      continue
    fi
    # Not exactly in place (missing, or LOG after DROP): put both back in order.
    delete_rules "$ipt" "$up"
    "$ipt" -I DOCKER-USER 1 -o "$up" -j DROP
    if [[ $want_log == 1 ]] && ! "$ipt" -I DOCKER-USER 1 -o "$up" "${LOG_MATCH[@]}" 2>/dev/null; then
      log "egress guard: $ipt LOG target unavailable, counting with the DROP rule only"
    fi
    log "egress guard: $ipt DOCKER-USER drops container traffic leaving through $up"
  done
  log "egress guard in place (uplink $up; see: scripts/egress-guard.sh status)"
}

status() {
  local ipt up; up=$(uplink)
  for ipt in iptables ip6tables; do
    echo "--- $ipt -L DOCKER-USER -v -n -x"
    "$ipt" -L DOCKER-USER -v -n -x 2>/dev/null || echo "(no DOCKER-USER chain)"
  done
  local dropped
  dropped=$( { iptables -L DOCKER-USER -v -n -x; ip6tables -L DOCKER-USER -v -n -x; } 2>/dev/null |
    awk -v up="$up" '$3 == "DROP" { for (i = 4; i <= NF; i++) if ($i == up) { n += $1; break } }
      END { print n + 0 }')
  echo "--- dropped on the way out through ${up:-?}: $dropped packets"
  if dmesg >/dev/null 2>&1; then
    echo "--- logged (\"$LOG_PREFIX\", rate-limited), by protocol/destination/port:"
    dmesg | grep -F "$LOG_PREFIX" |
      sed -n 's/.* DST=\([^ ]*\) .* PROTO=\([A-Z0-9]*\).*DPT=\([0-9]*\).*/\2 \1:\3/p; s/.* DST=\([^ ]*\) .* PROTO=\(ICMP[v6]*\) .*/\2 \1/p' |
      sort | uniq -c | sort -rn || true
  fi
}

remove() {
  local up ipt; up=$(uplink)
  [[ -n $up ]] || return 0
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null && delete_rules "$ipt" "$up"
  done
  log "egress guard removed (uplink $up)"
}

case ${1:-apply} in
  apply) apply ;;
  status) status ;;
  remove) remove ;;
  *) die "usage: $0 [apply|status|remove]" ;;
esac
