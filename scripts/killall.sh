#!/usr/bin/env bash
# Stop this minik installation: the server, its containerd, the shims and containers of that
# containerd, and remove its network plumbing (like k3s-killall.sh). Data is kept.
#
# It stays in its lane: another minik instance, another containerd (Docker's, k3s's) and their
# containers, and interfaces it did not create are left alone. What is "this installation" comes
# from the same settings `minik server` reads (the service's env file, then the environment):
#   MINIK_DATA_DIR (/var/lib/minik)  MINIK_RUN_DIR (/run/minik)
#   MINIK_BRIDGE_NAME (minik0)       MINIK_NFT_TABLE (minik)
#   MINIK_DNS_INTERFACE (minik-dns0) MINIK_VXLAN_DEVICE (minik.1)  MINIK_CLUSTER_CIDR (10.42.0.0/16)
#   MINIK_CGROUP_PARENT (/minik, or /minik-<hash> for another data dir)
# - the server: the pid in $MINIK_RUN_DIR/minik.pid, or a `minik server` process whose data dir
#   (--data-dir, else its MINIK_DATA_DIR, else the default) is ours;
# - containerd: the pid in $MINIK_RUN_DIR/containerd/containerd.pid if that process runs with a
#   config under our data dir; shims: those whose -address is our containerd's socket, each
#   with its whole process tree (the containers); then every process left in our pods' cgroup
#   parent (in every cgroup hierarchy), and the emptied cgroups;
# - links: the veths enslaved to our bridge, then the bridge; the nftables table `ip $MINIK_NFT_TABLE`;
#   the VXLAN device of the pod network across nodes (with its routes) and minik's host-gw routes
#   (route protocol 77) into our cluster CIDR;
# - mounts under our data and run directories.
set -u
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

ENV_FILE="${MINIK_ENV_FILE:-/etc/systemd/system/minik.service.env}"
if [ -r "$ENV_FILE" ]; then
  while IFS='=' read -r key value; do
    case "$key" in
      MINIK_DATA_DIR|MINIK_RUN_DIR|MINIK_BRIDGE_NAME|MINIK_NFT_TABLE|MINIK_DNS_INTERFACE|MINIK_VXLAN_DEVICE|MINIK_CLUSTER_CIDR|MINIK_CGROUP_PARENT)
        [ -n "${!key:-}" ] || export "$key=$value" ;;
    esac
  done < "$ENV_FILE"
fi
DATA_DIR="$(realpath -m "${MINIK_DATA_DIR:-/var/lib/minik}")"
RUN_DIR="$(realpath -m "${MINIK_RUN_DIR:-/run/minik}")"
BRIDGE="${MINIK_BRIDGE_NAME:-minik0}"
TABLE="${MINIK_NFT_TABLE:-minik}"
DEFAULT_DATA_DIR=/var/lib/minik
# The same default as minik.config.default_cgroup_parent.
if [ -n "${MINIK_CGROUP_PARENT:-}" ]; then
  CGROUP_PARENT="$MINIK_CGROUP_PARENT"
elif [ "$DATA_DIR" = "$DEFAULT_DATA_DIR" ]; then
  CGROUP_PARENT=/minik
else
  CGROUP_PARENT="/minik-$(printf '%s' "$DATA_DIR" | sha256sum | cut -c1-10)"
fi

cmdline() { tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null; }

# The data dir a `minik server` process uses, or nothing when $1 is not one.
server_data_dir() {
  local pid=$1 args dir="" prev=""
  args="$(cmdline "$pid")" || return 0
  printf '%s\n' "$args" | grep -qx server || return 0
  printf '%s\n' "$args" | grep -qE '(^|/)minik$' || return 0
  while IFS= read -r a; do
    if [ "$prev" = "--data-dir" ]; then dir="$a"; fi
    case "$a" in --data-dir=*) dir="${a#--data-dir=}" ;; esac
    prev="$a"
  done <<< "$args"
  if [ -z "$dir" ]; then
    dir="$(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | sed -n 's/^MINIK_DATA_DIR=//p' | head -n1)"
  fi
  realpath -m "${dir:-$DEFAULT_DATA_DIR}"
}

# Every descendant of the given pids (children first found breadth-first), then the pids.
tree() {
  local all="$*" frontier="$*" next p
  while [ -n "$frontier" ]; do
    next=""
    for p in $frontier; do
      next="$next $(pgrep -P "$p" 2>/dev/null)"
    done
    frontier="$(echo $next)"
    all="$all $frontier"
  done
  echo $all
}

if [ -d /run/systemd/system ] && [ "$DATA_DIR" = "$DEFAULT_DATA_DIR" ] && systemctl is-active --quiet minik 2>/dev/null; then
  systemctl stop minik
fi
servers=""
if [ -f "$RUN_DIR/minik.pid" ]; then
  pid="$(cat "$RUN_DIR/minik.pid")"
  [ -n "$(server_data_dir "$pid")" ] && servers="$pid"
fi
for d in /proc/[0-9]*; do
  pid="${d#/proc/}"
  [ "$(server_data_dir "$pid")" = "$DATA_DIR" ] && servers="$servers $pid"
done
for pid in $servers; do kill "$pid" 2>/dev/null; done
for _ in $(seq 50); do
  alive=""
  for pid in $servers; do kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done
  [ -z "$alive" ] && break
  sleep 0.2
done
for pid in $alive; do kill -9 "$pid" 2>/dev/null; done
rm -f "$RUN_DIR/minik.pid"

# containerd started by this installation (its config lives under our data dir).
SOCK="$RUN_DIR/containerd/containerd.sock"
CPID_FILE="$RUN_DIR/containerd/containerd.pid"
if [ -f "$CPID_FILE" ]; then
  cpid="$(cat "$CPID_FILE")"
  if cmdline "$cpid" | grep -q "^$DATA_DIR/"; then kill "$cpid" 2>/dev/null; fi
fi
# Its shims and their containers: a shim names its containerd's socket in -address.
shims=""
for d in /proc/[0-9]*; do
  pid="${d#/proc/}"
  args="$(cmdline "$pid")" || continue
  case "$args" in
    *containerd-shim*) printf '%s\n' "$args" | grep -qx -- "$SOCK" && shims="$shims $pid" ;;
  esac
done
if [ -n "$shims" ]; then
  victims="$(tree $shims)"
  kill -9 $victims 2>/dev/null
fi

# Whatever is still in our pods' cgroup parent (a container whose shim died, a process moved
# there), in every hierarchy, then the emptied cgroups. Only plain absolute paths are accepted.
if printf '%s' "$CGROUP_PARENT" | grep -qE '^(/[A-Za-z0-9_][A-Za-z0-9_.-]*)+$'; then
  dirs=""
  while read -r _ _ _ root mnt _ rest; do
    fstype="${rest#*- }"; fstype="${fstype%% *}"
    case "$fstype" in cgroup|cgroup2) ;; *) continue ;; esac
    [ "$root" = "/" ] && [ -d "$mnt$CGROUP_PARENT" ] && dirs="$dirs $mnt$CGROUP_PARENT"
  done < /proc/self/mountinfo
  for _ in $(seq 20); do
    left=""
    [ -n "$dirs" ] && left="$(find $dirs -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
    [ -z "$left" ] && break
    kill -9 $left 2>/dev/null
    sleep 0.1
  done
  for d in $dirs; do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null; done
fi

if ip link show "$BRIDGE" >/dev/null 2>&1; then
  for l in $(ip -o link show master "$BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$l" 2>/dev/null
  done
  ip link delete "$BRIDGE" 2>/dev/null
fi
nft delete table ip "$TABLE" 2>/dev/null
# Pod network across nodes: our VXLAN device (its FDB, neighbour and route entries go with it) and
# the host-gw routes minik marks with route protocol 77, only inside our cluster CIDR.
vxlan_if="${MINIK_VXLAN_DEVICE:-minik.1}"
ip -d -o link show "$vxlan_if" 2>/dev/null | grep -q " vxlan " && ip link delete "$vxlan_if"
ip -4 route flush root "${MINIK_CLUSTER_CIDR:-10.42.0.0/16}" proto 77 2>/dev/null
# Cluster DNS IP: its dummy link, or (kernel without the dummy driver) the lo address labelled lo:<interface>.
dns_if="${MINIK_DNS_INTERFACE:-minik-dns0}"; dns_label="lo:$dns_if"
ip -d -o link show "$dns_if" 2>/dev/null | grep -q " dummy " && ip link delete "$dns_if"
ip -4 addr flush dev lo label "${dns_label:0:15}" 2>/dev/null
grep -E " ($RUN_DIR|$DATA_DIR)/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
echo "minik stopped ($DATA_DIR)"
exit 0
