#!/bin/sh
# Generate the Python stubs for minik's CRI v1 subset (proto/cri/v1/api.proto) into
# minik/agent/cri/_generated/ (or into the directory given as $1, used by the drift test).
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
