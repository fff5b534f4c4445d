#!/usr/bin/env bash
# Install test dependencies and run minik's whole test suite (unit, integration, e2e).
#
# Needs root for the integration/e2e tests (containerd, network namespaces). Creates .venv in the
# repository (reused on later runs). Extra arguments go to pytest, e.g. ./scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  pkgs="containerd runc catatonit nftables iptables busybox-static docker-registry skopeo iproute2 iputils-ping"
  missing=""
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "[test] installing system packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi

PY="${MINIK_TEST_PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/pip install -q -e ".[test]"

export PATH="$PWD/.venv/bin:$PATH"
if [ "$#" -eq 0 ]; then
  set -- tests
fi
# Parallel across the machine's cores; every test uses its own directories, ports and sockets.
exec .venv/bin/python -m pytest -n "${MINIK_TEST_WORKERS:-auto}" -q -p no:cacheprovider "$@"
