#!/usr/bin/env bash
# Generate the Python code for every .proto under shared/protos into OUT
# (default: shared/protos). The generated files are checked in; a test reruns this
# into a temporary folder and fails when the checked-in copies are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-shared/protos}
py=${PYTHON:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m grpc_tools.protoc \
  --proto_path=isthmus/shared/protos=shared/protos \
  --proto_path="$("$py" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')" \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  shared/protos/*.proto
mkdir -p "$out"
cp "$tmp"/isthmus/shared/protos/*.py "$tmp"/isthmus/shared/protos/*.pyi "$out"/
