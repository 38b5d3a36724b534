#!/usr/bin/env bash
# The main job: set up (idempotent), then the quickstart from the CLI (report + figures in
# out/quickstart) and the executed notebooks in out/notebooks. DOUBLEWIN_PROFILE picks the size
# (tiny | small | full; default small).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/setup.sh"
source "$here/env.sh"
cd "$DW_ROOT"
cargo build --release --quiet
t0=$(date +%s)
target/release/doublewin quickstart --out out/quickstart
bash "$here/run_notebooks.sh" out/notebooks
echo "[main] done in $(( $(date +%s) - t0 )) s: out/quickstart/report.md, out/notebooks/"
