#!/bin/bash
# A real server set up by `xvs realserver setup` for the lab's mode (DR: the
# VIP on lo with ARP kept quiet; TUN: that and the decapsulator; FULLNAT:
# the TOA reader, nothing on lo), and an HTTP server that answers with its
# own name.
# Usage: realserver.sh NAME VIP [dr|tun|fullnat]
set -euo pipefail
name=$1
vip=$2
mode=${3:-dr}

cat > /etc/systemd/system/xvs-realserver.service <<UNIT
[Unit]
Description=xvs real server for VIP $vip ($mode)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/xvs realserver setup --vip $vip --mode $mode
ExecStop=/usr/bin/xvs realserver teardown --vip $vip --mode $mode

[Install]
WantedBy=multi-user.target
UNIT

cat > /etc/systemd/system/xvs-httpd.service <<UNIT
[Unit]
Description=xvs lab HTTP server ($name)
After=network-online.target xvs-realserver.service

[Service]
ExecStart=/usr/bin/node /xvs/dist/src/lab/httpd.js --name $name --port 80
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable xvs-realserver.service xvs-httpd.service
systemctl restart xvs-realserver.service xvs-httpd.service
ip -4 addr show dev lo
