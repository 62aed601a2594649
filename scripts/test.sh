#!/usr/bin/env bash
# The whole test suite: unit tests, then every notebook top to bottom (nbval, quick mode).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -x -k matching
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
# The interactive HTML page is tested in a real headless browser (tests/test_html_browser.py): Debian's
# chromium, installed here when we can (root with apt-get); without it that test skips and says why.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[simipu] installing Debian's chromium for the browser test"
  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
    || echo "[simipu] could not install chromium; the browser test will skip" >&2
fi
export SIMIPU_QUICK=1 MPLBACKEND=Agg PYTHONHASHSEED=0
exec python -m pytest tests notebooks --nbval-lax -p no:cacheprovider "$@"
