#!/usr/bin/env bash
# The slow tier: every notebook top to bottom in FULL mode (no SIMIPU_QUICK), as a student runs it, with the
# time each one took. Notebook 08 fine-tunes from notebook 07's run, so they run in order.
# Extra arguments go to pytest, e.g.  bash scripts/test_full.sh -x
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
unset SIMIPU_QUICK
export MPLBACKEND=Agg PYTHONHASHSEED=0 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
status=0
t_all=$(date +%s)
for nb in notebooks/*.ipynb; do
  t0=$(date +%s)
  if python -m pytest --nbval-lax "$nb" -p no:cacheprovider -q "$@"; then result=ok; else result=FAILED; status=1; fi
  echo "[full mode] $nb: $result in $(( $(date +%s) - t0 )) s"
done
echo "[full mode] all notebooks: $(( $(date +%s) - t_all )) s"
exit $status
