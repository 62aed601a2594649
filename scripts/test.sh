#!/usr/bin/env bash
# The whole test suite: unit tests, then every notebook top to bottom (nbval, quick mode).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -x -k matching
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
export SIMIPU_QUICK=1 MPLBACKEND=Agg PYTHONHASHSEED=0
exec python -m pytest tests notebooks --nbval-lax -p no:cacheprovider "$@"
