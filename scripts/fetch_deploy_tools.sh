#!/usr/bin/env bash
# Fetch the checkers of deploy/ into build/tools (tests/deploy uses them; `make test` runs this):
#   build/tools/bin/promtool    Prometheus's promtool and server (build/tools/bin/prometheus,
#                               for the live scrape test), from Debian's `prometheus` package,
#                               downloaded with `apt-get download` and unpacked with `dpkg-deb -x`
#                               (no root needed, nothing installed system-wide);
#   build/tools/compose_spec.json  the Compose Specification's JSON Schema as the PyPI package
#                               docker-compose 1.29.2 ships it (compose/config/compose_spec.json),
#                               downloaded by pip with no dependencies and checked by sha256.
# Idempotent: what is already there is kept.
set -euo pipefail

TOOLS=${TOOLS:-build/tools}
PYTHON=${PYTHON:-.venv/bin/python}
PROMTOOL=$TOOLS/bin/promtool
PROMETHEUS=$TOOLS/bin/prometheus
COMPOSE_SCHEMA=$TOOLS/compose_spec.json
COMPOSE_WHEEL_SHA256=8d5589373b35c8d3b1c8c1182c6e4a4ff14bffa3dd0b605fcd08f73c94cef809

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! { [ -x "$PROMTOOL" ] && "$PROMTOOL" --version >/dev/null 2>&1 \
  && [ -x "$PROMETHEUS" ] && "$PROMETHEUS" --version >/dev/null 2>&1; }; then
  for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || {
      echo "$tool is needed to fetch promtool (or put a promtool binary at $PROMTOOL)" >&2
      exit 1
    }
  done
  echo "==> fetching promtool (Debian package prometheus) into $PROMTOOL"
  (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1) || {
    echo "apt-get download prometheus failed (run 'apt-get update' once?)" >&2
    exit 1
  }
  dpkg-deb -x "$work"/prometheus_*.deb "$work/prometheus"
  mkdir -p "$(dirname "$PROMTOOL")"
  install -m 0755 "$work/prometheus/usr/bin/promtool" "$PROMTOOL"
  install -m 0755 "$work/prometheus/usr/bin/prometheus" "$PROMETHEUS"
  "$PROMTOOL" --version 2>&1 | head -n 1
fi

if [ ! -s "$COMPOSE_SCHEMA" ]; then
  echo "==> fetching the Compose Specification schema (PyPI docker-compose==1.29.2)"
  "$PYTHON" -m pip --disable-pip-version-check download -q --no-deps --only-binary=:all: \
    -d "$work/pypi" docker-compose==1.29.2
  wheel=$(ls "$work"/pypi/docker_compose-1.29.2-*.whl)
  echo "$COMPOSE_WHEEL_SHA256  $wheel" | sha256sum --check --quiet
  mkdir -p "$TOOLS"
  "$PYTHON" - "$wheel" "$COMPOSE_SCHEMA" <<'PY'
import sys
import zipfile
from pathlib import Path

with zipfile.ZipFile(sys.argv[1]) as wheel:
    Path(sys.argv[2]).write_bytes(wheel.read("compose/config/compose_spec.json"))
PY
fi
