#!/usr/bin/env bash
# Executes every notebook headless with the doublewin kernel and writes the executed copies to
# out/notebooks (or $1). Fails on the first cell error. The run size comes from
# DOUBLEWIN_PROFILE (tiny | small | full); default small.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
out="${1:-$DW_ROOT/out/notebooks}"
mkdir -p "$out"
export DOUBLEWIN_PROFILE="${DOUBLEWIN_PROFILE:-small}"
for nb in "$DW_ROOT"/notebooks/*.ipynb; do
  t0=$(date +%s)
  echo "[notebooks] $(basename "$nb") (profile $DOUBLEWIN_PROFILE)"
  (cd "$DW_ROOT/notebooks" && jupyter nbconvert --to notebook --execute \
      --ExecutePreprocessor.kernel_name=doublewin --ExecutePreprocessor.timeout=3600 \
      --output-dir "$out" "$nb" --log-level=WARN)
  echo "[notebooks] $(basename "$nb") ok in $(( $(date +%s) - t0 )) s -> $out/$(basename "$nb")"
done
