#!/bin/sh
# Generate the Python stubs for minik's CRI v1 subset (proto/cri/v1/api.proto) into
# minik/agent/cri/_generated/ (or into the directory given as $1, used by the drift test), and the
# cluster link's (proto/minik/cluster.proto) into minik/client/_generated/ (or $2).
# Needs grpcio-tools; PYTHON picks the interpreter (default: the dev venv, else python3).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$repo/minik/agent/cri/_generated"}
if [ -z "${PYTHON:-}" ]; then
    if [ -x /opt/minik-dev/bin/python ]; then PYTHON=/opt/minik-dev/bin/python; else PYTHON=python3; fi
fi

mkdir -p "$out"
"$PYTHON" -m grpc_tools.protoc \
    -I "$repo/proto/cri/v1" \
    --python_out="$out" \
    --pyi_out="$out" \
    --grpc_python_out="$out" \
    "$repo/proto/cri/v1/api.proto"

# protoc writes a top-level `import api_pb2`; make it absolute so the stubs import as part of
# the minik package without touching sys.path.
sed -i 's/^import api_pb2 as api__pb2$/from minik.agent.cri._generated import api_pb2 as api__pb2/' \
    "$out/api_pb2_grpc.py"

# Generated code is never linted (STYLE.md); protobuf and grpcio ship no type stubs here, so tell
# mypy to keep quiet inside these files while still using the field types the .pyi declares.
for f in api_pb2.pyi api_pb2_grpc.py; do
    sed -i '1i # mypy: ignore-errors' "$out/$f"
done

cat > "$out/__init__.py" <<'PY'
"""Generated CRI v1 stubs (scripts/gen-proto.sh from proto/cri/v1/api.proto). Do not edit."""
PY

# The server <-> agent link (proto/minik/cluster.proto) into minik/client/_generated/ (or $2).
cout=${2:-"$repo/minik/client/_generated"}
mkdir -p "$cout"
"$PYTHON" -m grpc_tools.protoc \
    -I "$repo/proto/minik" \
    --python_out="$cout" \
    --pyi_out="$cout" \
    --grpc_python_out="$cout" \
    "$repo/proto/minik/cluster.proto"
sed -i 's/^import cluster_pb2 as cluster__pb2$/from minik.client._generated import cluster_pb2 as cluster__pb2/' \
    "$cout/cluster_pb2_grpc.py"
for f in cluster_pb2.pyi cluster_pb2_grpc.py; do
    sed -i '1i # mypy: ignore-errors' "$cout/$f"
done
cat > "$cout/__init__.py" <<'PY'
"""Generated minik cluster link stubs (scripts/gen-proto.sh from proto/minik/cluster.proto). Do not edit."""
PY
