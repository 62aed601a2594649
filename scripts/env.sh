#!/usr/bin/env bash
# Sourced by the other scripts: makes sure .venv exists and holds simipu with all its extras ([dev] pulls
# in [synth] and [notebooks]) at the tested versions of constraints.txt. Creates or refreshes it when
# missing or when pyproject.toml, constraints.txt or this script changed. Needs only Python 3.11.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SIMIPU_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.simipu-installed"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" "$ROOT/scripts/env.sh" | sha256sum | cut -d' ' -f1)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[simipu] creating virtual environment $VENV with $($PY --version 2>&1)"
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    # Debian/Ubuntu ship venv separately; install it when we can, else say exactly what to do.
    rm -rf "$VENV"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      ver="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
      apt-get update -qq && apt-get install -y -qq "python${ver}-venv" >/dev/null
      "$PY" -m venv "$VENV"
    else
      echo "[simipu] '$PY -m venv' failed: install your distribution's python3-venv package" \
           "(e.g. sudo apt-get install python3-venv) and run this again." >&2
      exit 1
    fi
  fi
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "[simipu] installing simipu and its dependencies into $VENV (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # open3d's wheel links libusb-1.0.so.0, which minimal systems lack: the dependency libusb-package
  # ships that library and simipu preloads it (simipu/_open3d.py), so no system package is needed.
  "$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt" -e "$ROOT[dev]"
  "$VENV/bin/python" -m ipykernel install --prefix "$VENV" --name python3 >/dev/null
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
