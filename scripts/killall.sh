#!/usr/bin/env bash
# Stop minik, its containerd, every pod container, and remove minik's network interfaces and
# nftables table (like k3s-killall.sh). Data in /var/lib/minik is kept.
set -u
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
if [ -d /run/systemd/system ] && systemctl is-active --quiet minik 2>/dev/null; then systemctl stop minik; fi
if [ -f /run/minik/minik.pid ]; then kill "$(cat /run/minik/minik.pid)" 2>/dev/null; rm -f /run/minik/minik.pid; fi
pkill -f "minik server" 2>/dev/null
sleep 1
# containerd started by minik, then the shims (and so the containers).
if [ -f /run/minik/containerd/containerd.pid ]; then kill "$(cat /run/minik/containerd/containerd.pid)" 2>/dev/null; fi
pkill -f "containerd --config /var/lib/minik" 2>/dev/null
pkill -f "containerd-shim-runc-v2 -namespace k8s.io" 2>/dev/null
ip link delete minik0 2>/dev/null
for l in $(ip -o link show | awk -F': ' '{print $2}' | grep -E '^veth[0-9a-f]+' | cut -d@ -f1); do ip link delete "$l" 2>/dev/null; done
nft delete table ip minik 2>/dev/null
# Cluster DNS IP: its dummy link, or (kernel without the dummy driver) the lo address labelled lo:<interface>.
dns_if="${MINIK_DNS_INTERFACE:-minik-dns0}"; dns_label="lo:$dns_if"
ip -d -o link show "$dns_if" 2>/dev/null | grep -q " dummy " && ip link delete "$dns_if"
ip -4 addr flush dev lo label "${dns_label:0:15}" 2>/dev/null
grep -E ' /run/minik/|/var/lib/minik/' /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
echo "minik stopped"
exit 0
