#!/bin/sh
# iptables-wrapper (in the kube-proxy and kindnetd images): pick the iptables backend the node
# uses (the kind entrypoint and kubelet chose it already), repoint the iptables* links at it,
# then re-exec. The same idea as kubernetes-sigs/iptables-wrappers.
mode=""
for m in nft legacy; do
  if xtables-$m-multi iptables-save -t mangle 2>/dev/null | grep -qE '^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY)'; then
    mode=$m; break
  fi
done
if [ -z "$mode" ]; then
  nl=$( (xtables-legacy-multi iptables-save; xtables-legacy-multi ip6tables-save) 2>/dev/null | grep -c '^-')
  nn=$( (xtables-nft-multi iptables-save; xtables-nft-multi ip6tables-save) 2>/dev/null | grep -c '^-')
  if [ "${nl:-0}" -gt "${nn:-0}" ]; then mode=legacy; else mode=nft; fi
fi
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf "xtables-$mode-multi" "/usr/sbin/$t"
done
exec "$0" "$@"
