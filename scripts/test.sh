#!/usr/bin/env bash
# The test command: sets everything up (idempotent), then runs lints, the Rust test suite, the
# benchmark's short mode, every notebook headless with the tiny profile (its study is computed
# into the experiment store on the first run, then read back; the main job runs them at the small
# profile), opens every notebook's HTML export in headless Chromium, and runs a study as a Slurm job
# array on a private single-node Slurm (scripts/slurm_test.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/setup.sh"
source "$here/env.sh"
cd "$DW_ROOT"
t0=$(date +%s)
cargo fmt --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# No function over 80 lines in src/ or crates/ outside the justified allow-list.
python "$here/long_functions.py"
if python "$here/long_functions.py" --max 5 > "$DW_ROOT/target/long-functions.log"; then
  echo "[test] the long-function check passed functions over 5 lines"; exit 1
fi
grep -q "not allowed" "$DW_ROOT/target/long-functions.log" || { echo "[test] the long-function check did not name them"; cat "$DW_ROOT/target/long-functions.log"; exit 1; }
# The study's modules must not import each other in a circle; the check must catch one.
python "$here/check_imports.py" src/study
circle="$DW_ROOT/target/import-circle"
# expect_circle NAME: the module tree written into $circle must fail the check, naming NAME.
expect_circle() {
  if python "$here/check_imports.py" "$circle" 2> "$DW_ROOT/target/import-circle.log"; then
    echo "[test] the import check passed the circle $1"; exit 1
  fi
  grep -q "import circle $1" "$DW_ROOT/target/import-circle.log" || { echo "[test] the import check did not name $1"; cat "$DW_ROOT/target/import-circle.log"; exit 1; }
}
rm -rf "$circle" && mkdir -p "$circle"
printf 'pub mod a;\npub mod b;\npub use b::Bee;\n' > "$circle/mod.rs"
printf 'pub struct Ay;\nfn f(_: super::Bee) {}\n' > "$circle/a.rs"
printf 'pub struct Bee;\nfn g(_: super::a::Ay) {}\n' > "$circle/b.rs"
expect_circle "a -> b -> a"
# ... and one through a folder module (steps/ is one module: its files together).
rm -rf "$circle" && mkdir -p "$circle/steps"
printf 'pub mod a;\npub mod steps;\n' > "$circle/mod.rs"
printf 'pub struct Ay;\nfn f(_: super::steps::Bee) {}\n' > "$circle/a.rs"
printf 'mod b;\npub use b::Bee;\n' > "$circle/steps/mod.rs"
printf 'pub struct Bee;\nfn g(_: super::super::a::Ay) {}\n' > "$circle/steps/b.rs"
expect_circle "a -> steps -> a"
cargo test --workspace --quiet 2>&1 | tee "$DW_ROOT/target/test.log"
# The benchmark in its short mode: checks that both sides still run (no timing assertions).
cargo run --quiet --bin doublewin -- bench --quick --out "$DW_ROOT/target/bench-quick.md" > "$DW_ROOT/target/bench-quick.log"
# The notebook runner fails on a cell that fails at run time (evcxr reports only compile errors).
if python "$here/run_notebook.py" tests/notebooks/fails_at_run_time.ipynb "$DW_ROOT/target/fails_at_run_time.ipynb" 2> "$DW_ROOT/target/fails.log"; then
  echo "[test] the notebook runner passed a notebook whose cell fails at run time"; exit 1
fi
grep -q "this cell fails on purpose" "$DW_ROOT/target/fails.log" || { echo "[test] the runner did not report the failing cell"; cat "$DW_ROOT/target/fails.log"; exit 1; }
echo "[test] the notebook runner fails on run-time errors, as it must"
# The HTML check must reject a page whose figure is blank and a page with an error output.
if python "$here/check_html.py" "$DW_ROOT/target/html-check" tests/html/blank_figure.html > "$DW_ROOT/target/html-blank.log"; then
  echo "[test] the HTML check passed a page whose figure is blank"; exit 1
fi
grep -q "looks blank" "$DW_ROOT/target/html-blank.log" || { echo "[test] the HTML check did not report the blank figure"; cat "$DW_ROOT/target/html-blank.log"; exit 1; }
if python "$here/check_html.py" "$DW_ROOT/target/html-check" tests/html/escaped_string.html > "$DW_ROOT/target/html-escaped.log"; then
  echo "[test] the HTML check passed a page that prints a string literal"; exit 1
fi
grep -q "escaped string" "$DW_ROOT/target/html-escaped.log" || { echo "[test] the HTML check did not report the escaped string"; cat "$DW_ROOT/target/html-escaped.log"; exit 1; }
python "$here/run_notebook.py" tests/notebooks/fails_at_run_time.ipynb "$DW_ROOT/target/fails_at_run_time.ipynb" --html "$DW_ROOT/target/fails_at_run_time.html" 2> /dev/null || true
if python "$here/check_html.py" "$DW_ROOT/target/html-check" "$DW_ROOT/target/fails_at_run_time.html" > "$DW_ROOT/target/html-error.log"; then
  echo "[test] the HTML check passed a page with an error output"; exit 1
fi
grep -q "error output" "$DW_ROOT/target/html-error.log" || { echo "[test] the HTML check did not report the error output"; cat "$DW_ROOT/target/html-error.log"; exit 1; }
echo "[test] the HTML check rejects blank figures, error outputs and escaped strings, as it must"
# The figure check must reject an error drawn as a figure, a legend entry without a mark, text
# off the canvas and overprinted labels.
for bad in error:"instead of a figure" unmarked:"no marker" outside:"outside the" overprint:"overprint"; do
  if python "$here/check_figures.py" "tests/figures/${bad%%:*}.svg" > "$DW_ROOT/target/figures-bad.log"; then
    echo "[test] the figure check passed tests/figures/${bad%%:*}.svg"; exit 1
  fi
  grep -q "${bad#*:}" "$DW_ROOT/target/figures-bad.log" || { echo "[test] the figure check did not say '${bad#*:}'"; cat "$DW_ROOT/target/figures-bad.log"; exit 1; }
done
echo "[test] the figure check rejects error figures, unmarked series, text off the canvas and overprinted labels"
DOUBLEWIN_PROFILE=tiny bash "$here/run_notebooks.sh" "$DW_ROOT/target/notebooks"
python "$here/check_figures.py" "$DW_ROOT/target/notebooks"
# JupyterLab in a real browser: notebook 01 opened, its first cells run from the keyboard.
DOUBLEWIN_PROFILE=tiny python "$here/check_jupyterlab.py"
python "$here/check_html.py" "$DW_ROOT/target/notebooks/screenshots" "$DW_ROOT"/target/notebooks/*.html
# A real single-node Slurm: a worker array and its report job, compared with a local run.
bash "$here/slurm_test.sh"
echo "[test] all checks passed in $(( $(date +%s) - t0 )) s"
