#!/bin/sh
# Remove everything the nta traffic lab may have left after a crash: processes running inside ntalab-*
# namespaces (found with `ip netns pids`, so nothing outside the lab is touched), the namespaces themselves,
# /etc/netns/ntalab-*, the lab user and its sudoers rule, and the /tmp/ntalab-* work folders.
set -u
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
for ns in $(ip netns list | awk '{print $1}' | grep '^ntalab-'); do
    for pid in $(ip netns pids "$ns"); do
        echo "killing pid $pid in $ns ($(cat /proc/$pid/comm 2>/dev/null))"
        kill -TERM "$pid" 2>/dev/null
    done
done
sleep 1
for ns in $(ip netns list | awk '{print $1}' | grep '^ntalab-'); do
    for pid in $(ip netns pids "$ns"); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" && echo "deleted namespace $ns"
done
for d in /etc/netns/ntalab-*; do [ -e "$d" ] && rm -rf "$d" && echo "removed $d"; done
if id ntalab >/dev/null 2>&1; then userdel ntalab && echo "removed user ntalab"; fi
[ -e /etc/sudoers.d/ntalab-lab ] && rm -f /etc/sudoers.d/ntalab-lab && echo "removed /etc/sudoers.d/ntalab-lab"
for d in /tmp/ntalab-*; do [ -d "$d" ] && rm -rf "$d" && echo "removed $d"; done
left=$(ip netns list | grep -c '^ntalab-')
echo "ntalab namespaces left: $left"
