#!/usr/bin/env bash
# Create .venv and install llmrec with the extras a target needs. Idempotent: `make` calls it only
# when pyproject.toml or the constraints changed (stamp file), so a second run costs nothing.
#
# torch is the heaviest install (PyPI's Linux build pulls several GB of CUDA wheels). When this
# machine holds a local CPU wheel of torch, it is installed first and pip keeps it:
#   LLMREC_TORCH_WHEEL=/path/torch-*.whl, or any torch-*.whl in $LLMREC_WHEELHOUSE
#   (default ~/.cache/llmrec/wheels) or /opt/wheels.
set -euo pipefail

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-cpu,dev,export,eval}
STAMP=${STAMP:-$VENV/.bootstrap-stamp}

"$PYTHON" - <<'PY' || { echo "llmrec needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24" setuptools wheel

torch_wheel=${LLMREC_TORCH_WHEEL:-}
if [ -z "$torch_wheel" ]; then
  for dir in "${LLMREC_WHEELHOUSE:-$HOME/.cache/llmrec/wheels}" /opt/wheels; do
    cand=$(ls "$dir"/torch-*.whl 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$cand" ]; then torch_wheel=$cand; break; fi
  done
fi
if [ -n "$torch_wheel" ] && [[ ",$EXTRAS," == *",export,"* || ",$EXTRAS," == *",eval,"* ]]; then
  echo "==> using local torch wheel $torch_wheel"
  "${PIP[@]}" install -q "$torch_wheel"
fi

echo "==> installing llmrec[$EXTRAS] into $VENV"
"${PIP[@]}" install -q -c deploy/constraints.txt -e ".[$EXTRAS]"
date -u +%FT%TZ > "$STAMP"
