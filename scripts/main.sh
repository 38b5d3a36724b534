#!/usr/bin/env bash
# The main job: set up (idempotent), then the quickstart from the CLI (report + figures in
# out/quickstart), the double-win study through the experiment store (out/study-report.md) and
# the executed notebooks in out/notebooks. DOUBLEWIN_PROFILE picks the size (tiny | small | full;
# default small). A rerun takes finished steps from the store.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/setup.sh"
source "$here/env.sh"
cd "$DW_ROOT"
cargo build --release --quiet
t0=$(date +%s)
target/release/doublewin quickstart --out out/quickstart
target/release/doublewin study report --out out/study-report.md
bash "$here/run_notebooks.sh" out/notebooks
echo "[main] done in $(( $(date +%s) - t0 )) s: out/quickstart/report.md, out/study-report.md, out/notebooks/"
