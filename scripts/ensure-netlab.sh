#!/usr/bin/env bash
# Ensures the tools the network lab of the fault tests needs
# (store/internal/faulttest/netlab): ip from iproute2 and iptables with
# iptables-restore. Installs them with apt-get only when one is missing,
# and says what it did. The lab itself needs root, as the tests do.
set -o errexit -o nounset -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if ! command -v iptables >/dev/null 2>&1 || ! command -v iptables-restore >/dev/null 2>&1; then
  missing+=(iptables)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "ensure-netlab: ip and iptables present ($(iptables --version))"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-netlab: missing ${missing[*]} and no apt-get to install them; install them by hand" >&2
  exit 1
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "ensure-netlab: missing ${missing[*]}; installing needs root (or sudo)" >&2
    exit 1
  fi
  sudo=(sudo)
fi
echo "ensure-netlab: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
  echo "ensure-netlab: apt-get install failed; updating the package lists and trying again"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "ensure-netlab: installed ${missing[*]} ($(iptables --version))"
