#!/usr/bin/env bash
# The main job: set up (idempotent), run the double-win study through the experiment store and
# write its report (out/report/report.html, self-contained, and report.md with figures/), then
# execute every notebook into out/notebooks (executed copies and their HTML pages).
# DOUBLEWIN_PROFILE picks the size (tiny | small | full; default small, 25-30 minutes on a
# 2-core machine, more on a slowed host: crates/bench/studies.md); the study runs as
# DOUBLEWIN_WORKERS worker processes (default: one per core, one thread each), which share the
# store step by step. A rerun takes finished steps from the store (`doublewin --json info` prints
# which) and only re-renders the report; a notebook whose inputs (notebook, library sources,
# profile, store contents) did not change is not executed again.
# A workshop: the teacher runs this once and hands out the store
# (`target/release/doublewin store export --profile small small-store.tar.gz`); each participant
# runs `DOUBLEWIN_STORE_ARCHIVE=small-store.tar.gz bash scripts/main.sh` (or `--archive FILE`),
# which imports it (every file verified) and then only renders the report and the notebooks.
set -euo pipefail
archive="${DOUBLEWIN_STORE_ARCHIVE:-}"
if [ "${1:-}" = "--archive" ]; then
  archive="${2:?--archive needs a file}"
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/setup.sh" --main
source "$here/env.sh"
cd "$DW_ROOT"
export DOUBLEWIN_PROFILE="${DOUBLEWIN_PROFILE:-small}"
cargo build --release --quiet
t0=$(date +%s)
if [ -n "$archive" ]; then
  target/release/doublewin store import "$archive"
fi
target/release/doublewin study report --profile "$DOUBLEWIN_PROFILE" --workers "${DOUBLEWIN_WORKERS:-$(nproc)}" --out out/report
t1=$(date +%s)
DOUBLEWIN_NOTEBOOK_CACHE=1 bash "$here/run_notebooks.sh" out/notebooks
t2=$(date +%s)
# Every figure of the report and the notebooks: no error text, every legend entry drawn, text
# inside the canvas, no overprinted labels.
python "$here/check_figures.py" out/report out/notebooks
echo "[main] study + report in $(( t1 - t0 )) s, notebooks in $(( t2 - t1 )) s"
echo "[main] done in $(( t2 - t0 )) s: out/report/report.html, out/report/report.md, out/notebooks/"
