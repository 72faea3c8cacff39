#!/usr/bin/env bash
# Creates .venv and installs rllib_mwm with its pinned simulator stack.
# Usage: bash scripts/install.sh [extra ...]   e.g. `bash scripts/install.sh dev`
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless rendering needs EGL (Mesa works on CPU). Install it where we can.
if ! ldconfig -p 2>/dev/null | grep -q "libEGL.so.1"; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri
  else
    echo "install.sh: libEGL missing; install Mesa EGL (Debian/Ubuntu:" \
         "sudo apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri)" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extras=$(IFS=,; echo "${*:-}")
spec="."; [ -n "$extras" ] && spec=".[${extras}]"
# torch comes from pyproject.toml alone; timm's torchvision pins the torch it fits.
.venv/bin/python -m pip install -q -e "$spec"
echo "install.sh: ready (.venv)"
