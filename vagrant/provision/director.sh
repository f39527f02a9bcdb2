#!/bin/bash
# The director: the VIP on the lab interface, xvsd on that interface, and the
# virtual service with both real servers (wrr 3:1) in the lab's mode: DR,
# TUN, or FULLNAT with the director's own lab address as the local address.
# Usage: director.sh VIP [dr|tun|fullnat] [DIRECTOR_ADDRESS]
set -euo pipefail
vip=$1
mode=${2:-dr}
dip=${3:-192.0.2.1}
case $mode in
  dr) flag=-g ;;
  tun) flag=-i ;;
  fullnat) flag=-b ;;
  *) echo "director.sh: mode $mode: use dr, tun or fullnat" >&2; exit 2 ;;
esac
laddr=""
[ "$mode" = fullnat ] && laddr="xvsadm -P -t $vip:80 -z $dip"

cat > /usr/local/sbin/xvs-services <<SCRIPT
#!/bin/bash
# Loads the lab's virtual service into xvsd (run by xvs-services.service).
set -euo pipefail
for _ in \$(seq 1 30); do
  xvsadm -L -n >/dev/null 2>&1 && break
  sleep 1
done
xvsadm -D -t $vip:80 2>/dev/null || true
xvsadm -A -t $vip:80 -s wrr
$laddr
xvsadm -a -t $vip:80 -r 192.0.2.11 $flag -w 3
xvsadm -a -t $vip:80 -r 192.0.2.12 $flag -w 1
xvsadm -L -n
SCRIPT
chmod 755 /usr/local/sbin/xvs-services

cat > /etc/systemd/system/xvs-vip.service <<UNIT
[Unit]
Description=xvs VIP $vip on the lab interface
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile=/etc/default/xvs
ExecStart=/sbin/ip addr replace $vip/32 dev \${XVS_IF}
ExecStop=/sbin/ip addr del $vip/32 dev \${XVS_IF}

[Install]
WantedBy=multi-user.target
UNIT

# XVSD_ARGS in /etc/default/xvs takes extra flags (e.g. --xdp-mode generic).
cat > /etc/systemd/system/xvsd.service <<UNIT
[Unit]
Description=xvs director daemon
Requires=xvs-vip.service
After=xvs-vip.service

[Service]
EnvironmentFile=/etc/default/xvs
ExecStart=/usr/bin/xvsd --interface \${XVS_IF} \$XVSD_ARGS
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT

# PartOf: a restarted xvsd gets its service table loaded again.
cat > /etc/systemd/system/xvs-services.service <<UNIT
[Unit]
Description=xvs lab virtual service $vip:80 ($mode)
Requires=xvsd.service
After=xvsd.service
PartOf=xvsd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/xvs-services

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable xvs-vip.service xvsd.service xvs-services.service
systemctl restart xvs-vip.service xvsd.service xvs-services.service
