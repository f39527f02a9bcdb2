#!/usr/bin/env bash
# Installs what xvs needs on a fresh Debian 12 machine (as root) and builds it.
# Idempotent and quick when everything is already there; npm test and
# npm run demo call it first.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have clang || need_pkgs+=(clang)
have llvm-strip || need_pkgs+=(llvm)
[ -f /usr/include/bpf/bpf_helpers.h ] || need_pkgs+=(libbpf-dev)
[ -e /usr/lib/x86_64-linux-gnu/libbpf.so.1 ] || need_pkgs+=(libbpf1)
[ -f /usr/include/linux/bpf.h ] || need_pkgs+=(linux-libc-dev)
have ip || need_pkgs+=(iproute2)
have ethtool || need_pkgs+=(ethtool)
have tcpdump || need_pkgs+=(tcpdump)
have curl || need_pkgs+=(curl)
have bpftool || need_pkgs+=(bpftool)
have make || need_pkgs+=(make)
have ping || need_pkgs+=(iputils-ping)
have vagrant || need_pkgs+=(vagrant)
# The bench's comparison: the kernel's own NAT (nftables dnat/snat with conntrack).
have nft || need_pkgs+=(nftables)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages (${need_pkgs[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.xvs-lock-stamp
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > "$stamp"
fi

make -s -C bpf
npx --no-install tsc -p tsconfig.json
