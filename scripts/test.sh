#!/usr/bin/env bash
# The test command: sets everything up (idempotent), then runs lints, the Rust test suite, the
# benchmark's short mode and every notebook headless with the small profile (the main job's
# study: computed into the experiment store on the first run, about 15 minutes, then read back).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/setup.sh"
source "$here/env.sh"
cd "$DW_ROOT"
t0=$(date +%s)
cargo fmt --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --quiet 2>&1 | tee "$DW_ROOT/target/test.log"
# The benchmark in its short mode: checks that both sides still run (no timing assertions).
cargo run --quiet --bin doublewin -- bench --quick --out "$DW_ROOT/target/bench-quick.md" > "$DW_ROOT/target/bench-quick.log"
# The notebook runner fails on a cell that fails at run time (evcxr reports only compile errors).
if python "$here/run_notebook.py" tests/notebooks/fails_at_run_time.ipynb "$DW_ROOT/target/fails_at_run_time.ipynb" 2> "$DW_ROOT/target/fails.log"; then
  echo "[test] the notebook runner passed a notebook whose cell fails at run time"; exit 1
fi
grep -q "this cell fails on purpose" "$DW_ROOT/target/fails.log" || { echo "[test] the runner did not report the failing cell"; cat "$DW_ROOT/target/fails.log"; exit 1; }
echo "[test] the notebook runner fails on run-time errors, as it must"
DOUBLEWIN_PROFILE=small bash "$here/run_notebooks.sh" "$DW_ROOT/target/notebooks"
echo "[test] all checks passed in $(( $(date +%s) - t0 )) s"
