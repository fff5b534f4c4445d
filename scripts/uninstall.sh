#!/usr/bin/env bash
# Remove minik: stop everything, remove the unit, the venv, the command, and (unless
# MINIK_KEEP_DATA=true) /var/lib/minik, /etc/minik and /run/minik.
set -u
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }
BIN_DIR="${INSTALL_MINIK_BIN_DIR:-/usr/local/bin}"
SYSTEMD_DIR="${INSTALL_MINIK_SYSTEMD_DIR:-/etc/systemd/system}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENV_FILE="${MINIK_ENV_FILE:-$SYSTEMD_DIR/minik.service.env}"
if [ -r "$ENV_FILE" ]; then
  while IFS='=' read -r key value; do
    case "$key" in
      MINIK_DATA_DIR|MINIK_RUN_DIR|MINIK_CONFIG_DIR|MINIK_BRIDGE_NAME|MINIK_NFT_TABLE)
        [ -n "${!key:-}" ] || export "$key=$value" ;;
    esac
  done < "$ENV_FILE"
fi
if [ -x "$BIN_DIR/minik-killall.sh" ]; then "$BIN_DIR/minik-killall.sh"; elif [ -x "$here/killall.sh" ]; then "$here/killall.sh"; fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl disable minik >/dev/null 2>&1
  rm -f "$SYSTEMD_DIR/minik.service" "$SYSTEMD_DIR/minik.service.env"
  systemctl daemon-reload
fi
rm -rf /opt/minik
rm -f "$BIN_DIR/minik" "$BIN_DIR/minik-killall.sh" "$BIN_DIR/minik-uninstall.sh"
# Only this installation's directories (the same settings killall scopes itself by).
if [ "${MINIK_KEEP_DATA:-}" != "true" ]; then
  rm -rf "${MINIK_DATA_DIR:-/var/lib/minik}" "${MINIK_CONFIG_DIR:-/etc/minik}" "${MINIK_RUN_DIR:-/run/minik}"
fi
echo "minik uninstalled"
