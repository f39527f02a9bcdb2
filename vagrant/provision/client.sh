#!/bin/bash
# The client: curl, and a helper that shows how requests spread.
# Usage: client.sh VIP
set -euo pipefail
vip=$1

cat > /usr/local/bin/xvs-try <<SCRIPT
#!/bin/bash
# N requests to the VIP (default 8), one connection each, counted per real server.
n=\${1:-8}
for _ in \$(seq 1 "\$n"); do curl -s --max-time 2 http://$vip/ || echo "(no answer)"; done | sort | uniq -c
SCRIPT
chmod 755 /usr/local/bin/xvs-try
echo "try: vagrant ssh client -c 'curl http://$vip/'   or   vagrant ssh client -c xvs-try"
