#!/bin/bash
# Every VM: tools for looking at traffic; on the director and real servers also
# Node 20, the BPF build deps, and xvs built from the rsynced repo at /xvs.
# Usage: common.sh --build|--no-build LAB_PREFIX   (e.g. 192.0.2.0/24)
set -euo pipefail
build=$1
lab_net=$2
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
apt-get install -y -q --no-install-recommends ca-certificates curl gnupg iproute2 ethtool tcpdump iputils-ping

if [ "$build" = --build ]; then
  apt-get install -y -q --no-install-recommends clang llvm libbpf-dev linux-libc-dev libc6-dev make
  # Debian 12 ships Node 18; xvs needs 20.
  if ! node --version 2>/dev/null | grep -q '^v20\.'; then
    curl -fsSL https://deb.nodesource.com/setup_20.x | bash -
    apt-get install -y -q nodejs
  fi
  cd /xvs
  npm ci --no-audit --no-fund
  npm run build
  npm link --no-audit --no-fund   # xvs, xvsd, xvsadm on PATH
fi

# Units read the lab interface from here; its name depends on the box and provider.
lab_if=$(ip -o -4 addr show to "$lab_net" | awk '{ print $2; exit }')
if [ -z "$lab_if" ]; then
  echo "no interface has an address in $lab_net" >&2
  exit 1
fi
touch /etc/default/xvs
sed -i '/^XVS_IF=/d' /etc/default/xvs
echo "XVS_IF=$lab_if" >> /etc/default/xvs
grep -q '^XVSD_ARGS=' /etc/default/xvs || echo 'XVSD_ARGS=' >> /etc/default/xvs
echo "lab interface: $lab_if"
