#!/usr/bin/env bash
# Install minik on this machine and start it (as `sudo ./scripts/install.sh`).
#
# Installs the system packages minik drives (containerd, runc, catatonit, nftables, busybox-static),
# a virtualenv with minik in /opt/minik, the `minik` command in /usr/local/bin, and either a systemd
# unit (minik.service) or, where systemd is not PID 1, a background daemon with a pid file and log.
#
# Environment (k3s-style):
#   INSTALL_MINIK_EXEC         extra flags for `minik server` (e.g. "--disable-agent --tls-san my.host")
#   INSTALL_MINIK_SKIP_START   =true: install but do not start
#   INSTALL_MINIK_SKIP_ENABLE  =true: do not enable the unit at boot
#   INSTALL_MINIK_BIN_DIR      where `minik` and the helper scripts go (default /usr/local/bin)
#   INSTALL_MINIK_SYSTEMD_DIR  where the unit goes (default /etc/systemd/system)
#   INSTALL_MINIK_SKIP_APT     =true: do not install Debian packages (you provide them)
#   MINIK_*                    written into the service's environment file (e.g. MINIK_TOKEN, MINIK_NODE_NAME)
#   MINIK_URL                  set (with MINIK_TOKEN or MINIK_TOKEN_FILE): install an agent joining that
#                              server instead (unit minik-agent.service, `minik agent`; INSTALL_MINIK_EXEC
#                              then holds extra `minik agent` flags)
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${INSTALL_MINIK_PREFIX:-/opt/minik}"
BIN_DIR="${INSTALL_MINIK_BIN_DIR:-/usr/local/bin}"
SYSTEMD_DIR="${INSTALL_MINIK_SYSTEMD_DIR:-/etc/systemd/system}"
CONFIG_DIR="/etc/minik"
LOG_FILE="/var/log/minik.log"
PID_FILE="/run/minik/minik.pid"
EXEC_FLAGS="${INSTALL_MINIK_EXEC:-}"

info() { echo "[minik] $*"; }
fatal() { echo "[minik] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fatal "run as root: sudo $0"

if [ "${INSTALL_MINIK_SKIP_APT:-}" != "true" ] && command -v apt-get >/dev/null; then
  pkgs="containerd runc catatonit nftables iptables busybox-static iproute2 ca-certificates python3 python3-venv python3-dev"
  missing=""
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    info "installing system packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi

PY="${INSTALL_MINIK_PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in /usr/bin/python3 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then PY="$cand"; break; fi
  done
fi
[ -n "$PY" ] || fatal "need Python >= 3.11 with the venv module (apt-get install python3 python3-venv)"

info "installing minik into $PREFIX (python: $("$PY" --version 2>&1))"
mkdir -p "$PREFIX"
[ -x "$PREFIX/venv/bin/python" ] || "$PY" -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
"$PREFIX/venv/bin/pip" install -q "$SRC"
ln -sf "$PREFIX/venv/bin/minik" "$BIN_DIR/minik"
install -m 0755 "$SRC/scripts/uninstall.sh" "$BIN_DIR/minik-uninstall.sh"
install -m 0755 "$SRC/scripts/killall.sh" "$BIN_DIR/minik-killall.sh"
mkdir -p "$CONFIG_DIR"

# Stop a previous background daemon (a restart does not stop running containers).
if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
  info "stopping the running minik (pid $(cat "$PID_FILE"))"
  kill "$(cat "$PID_FILE")" || true
  for _ in $(seq 50); do kill -0 "$(cat "$PID_FILE")" 2>/dev/null || break; sleep 0.2; done
fi

# MINIK_URL (with MINIK_TOKEN or MINIK_TOKEN_FILE) installs an agent that joins that server, as
# K3S_URL does for k3s: unit minik-agent.service running `minik agent`.
UNIT=minik
COMMAND=server
if [ -n "${MINIK_URL:-}" ]; then
  [ -n "${MINIK_TOKEN:-}${MINIK_TOKEN_FILE:-}" ] || fatal "MINIK_URL is set: MINIK_TOKEN (or MINIK_TOKEN_FILE) is required to join"
  UNIT=minik-agent
  COMMAND=agent
fi
ENV_FILE="$SYSTEMD_DIR/$UNIT.service.env"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  mkdir -p "$SYSTEMD_DIR"
  sed "s|@BIN_DIR@|$BIN_DIR|g; s|@EXEC_FLAGS@|$EXEC_FLAGS|g; s|@ENV_FILE@|$ENV_FILE|g" "$SRC/systemd/$UNIT.service" > "$SYSTEMD_DIR/$UNIT.service"
  umask 077; env | grep -E '^MINIK_' > "$ENV_FILE" || true; umask 022
  systemctl daemon-reload
  [ "${INSTALL_MINIK_SKIP_ENABLE:-}" = "true" ] || systemctl enable "$UNIT" >/dev/null 2>&1
  if [ "${INSTALL_MINIK_SKIP_START:-}" != "true" ]; then
    info "starting $UNIT.service"
    systemctl restart "$UNIT"
  fi
  MODE="systemd"
else
  MODE="background"
  if [ "${INSTALL_MINIK_SKIP_START:-}" != "true" ]; then
    info "systemd is not running here: starting minik in the background (log: $LOG_FILE, pid: $PID_FILE)"
    mkdir -p "$(dirname "$PID_FILE")"
    # shellcheck disable=SC2086
    setsid nohup "$BIN_DIR/minik" "$COMMAND" $EXEC_FLAGS >>"$LOG_FILE" 2>&1 < /dev/null &
    echo $! > "$PID_FILE"
  fi
fi

if [ "$COMMAND" = agent ]; then
  info "agent installed ($MODE): it joins $MINIK_URL; on the server: kubectl get nodes -o wide"
  exit 0
fi

if [ "${INSTALL_MINIK_SKIP_START:-}" != "true" ]; then
  info "waiting for the API to become ready"
  for _ in $(seq 120); do
    if [ -f "$CONFIG_DIR/kubeconfig.yaml" ] && KUBECONFIG="$CONFIG_DIR/kubeconfig.yaml" kubectl get --raw /readyz >/dev/null 2>&1; then
      info "minik is ready ($MODE)."
      echo
      echo "  export KUBECONFIG=$CONFIG_DIR/kubeconfig.yaml"
      echo "  kubectl get nodes"
      echo "  # or: minik kubectl get all -A"
      echo
      echo "  join token: $(cat /var/lib/minik/server/node-token 2>/dev/null || echo '(see /var/lib/minik/server/node-token)')"
      exit 0
    fi
    sleep 0.5
  done
  if [ "$MODE" = systemd ]; then fatal "minik did not become ready; see: journalctl -u minik"; fi
  fatal "minik did not become ready; see $LOG_FILE"
fi
info "installed (not started)."
