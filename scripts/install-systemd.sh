#!/usr/bin/env bash
# Installs xvsd as a systemd service for this checkout:
#   bash scripts/install-systemd.sh IFACE [--no-start]
# writes /etc/systemd/system/xvsd.service (systemd/xvsd.service with this
# checkout's path for /opt/xvs) and /etc/default/xvsd (XVSD_INTERFACE=IFACE,
# kept if it exists), then enables and starts the service unless --no-start.
# DESTDIR installs under another root (packaging, tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
iface=${1:?usage: install-systemd.sh IFACE [--no-start]}
start=1
[ "${2:-}" = "--no-start" ] && start=0
dest=${DESTDIR:-}
[ -f "$root/dist/src/cli/xvsd.js" ] || { echo "install-systemd: build first (npm run build)" >&2; exit 1; }
install -d "$dest/etc/systemd/system" "$dest/etc/default"
sed "s|/opt/xvs|$root|g" "$root/systemd/xvsd.service" > "$dest/etc/systemd/system/xvsd.service"
chmod 0644 "$dest/etc/systemd/system/xvsd.service"
if [ ! -e "$dest/etc/default/xvsd" ]; then
  printf '# xvsd: the interface that receives the virtual services'"'"' traffic, and more options\nXVSD_INTERFACE=%s\nXVSD_OPTS=\n' "$iface" > "$dest/etc/default/xvsd"
fi
if [ "$start" = 1 ] && [ -z "$dest" ]; then
  systemctl daemon-reload
  systemctl enable --now xvsd.service
fi
echo "install-systemd: xvsd.service installed for $root (interface $iface)"
