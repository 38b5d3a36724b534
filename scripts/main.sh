#!/usr/bin/env bash
# The main job: set up (idempotent), run the double-win study through the experiment store and
# write its report (out/report/report.html, self-contained, and report.md with figures/), then
# execute every notebook into out/notebooks (executed copies and their HTML pages).
# DOUBLEWIN_PROFILE picks the size (tiny | small | full; default small, about 25 minutes on a
# 2-core laptop); the study runs as DOUBLEWIN_WORKERS worker processes (default: one per core,
# one thread each), which share the store step by step. A rerun takes finished steps from
# the store (`doublewin --json info` prints which) and only re-renders the report; a
# notebook whose inputs (notebook, library sources, profile, store contents) did not change is
# not executed again.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/setup.sh"
source "$here/env.sh"
cd "$DW_ROOT"
export DOUBLEWIN_PROFILE="${DOUBLEWIN_PROFILE:-small}"
cargo build --release --quiet
t0=$(date +%s)
target/release/doublewin study report --profile "$DOUBLEWIN_PROFILE" --workers "${DOUBLEWIN_WORKERS:-$(nproc)}" --out out/report
t1=$(date +%s)
DOUBLEWIN_NOTEBOOK_CACHE=1 bash "$here/run_notebooks.sh" out/notebooks
t2=$(date +%s)
echo "[main] study + report in $(( t1 - t0 )) s, notebooks in $(( t2 - t1 )) s"
echo "[main] done in $(( t2 - t0 )) s: out/report/report.html, out/report/report.md, out/notebooks/"
