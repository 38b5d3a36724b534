#!/usr/bin/env bash
# Executes every notebook headless with the doublewin kernel and writes the executed copies and
# their HTML exports (one self-contained page each, figures inline) to out/notebooks (or $1),
# one notebook per core at a time (DOUBLEWIN_NOTEBOOK_JOBS, at most 4). A notebook stops at its
# first cell that fails, at compile or run time (scripts/run_notebook.py); the others still run
# and the script exits 1 naming the failed ones. The run size comes from
# DOUBLEWIN_PROFILE (tiny | small | full | paper); default small.
# With DOUBLEWIN_NOTEBOOK_CACHE=1 (the main job sets it) a notebook is skipped when its executed
# copy was made from the same notebook, library sources, profile and experiment-store contents:
# re-executing it would print the same results.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
out="${1:-$DW_ROOT/out/notebooks}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"   # absolute: nbconvert runs from notebooks/
export DOUBLEWIN_PROFILE="${DOUBLEWIN_PROFILE:-small}"
# The store the notebooks read, as the library defines it (one definition: Store::default_root).
exe="$(ls -t "${CARGO_TARGET_DIR:-$DW_ROOT/target}"/{release,debug}/doublewin 2>/dev/null | head -n1 || true)"
if [ -z "$exe" ]; then
  (cd "$DW_ROOT" && cargo build --quiet --bin doublewin)
  exe="${CARGO_TARGET_DIR:-$DW_ROOT/target}/debug/doublewin"
fi
store="$("$exe" --json info | python -c 'import json, sys; print(json.load(sys.stdin)["store"])')"
inputs_hash() {
  {
    sha256sum "$1"
    (cd "$DW_ROOT" && find src Cargo.toml Cargo.lock -type f | sort | xargs sha256sum)
    echo "profile $DOUBLEWIN_PROFILE"
    (cd "$store" 2>/dev/null && find . -name result.json | sort) || true
  } | sha256sum | cut -d' ' -f1
}
# Up to $jobs notebooks run at once, each in its own kernel (launch.sh gives each a build slot of
# its own): a notebook is mostly single-threaded compiling of its cells, so one per core keeps
# the cores busy. Each notebook's lines are printed together when it ends.
jobs="${DOUBLEWIN_NOTEBOOK_JOBS:-$(nproc)}"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "[notebooks] DOUBLEWIN_NOTEBOOK_JOBS must be a positive number, not '$jobs'" >&2; exit 2; }
(( jobs > 4 )) && jobs=4   # launch.sh has 4 build slots
# The cores shared out: each kernel's libtorch gets cores / jobs threads (OpenMP threads that
# outnumber the cores spin against each other: a quickstart training ran 5x slower that way).
export DOUBLEWIN_THREADS="${DOUBLEWIN_THREADS:-$(( $(nproc) / jobs > 0 ? $(nproc) / jobs : 1 ))}"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
run_one() {
  local nb="$1" name stamp t0
  name="$(basename "$nb")"
  stamp="$out/.${name%.ipynb}.inputs"
  t0=$(date +%s)
  echo "[notebooks] $name (profile $DOUBLEWIN_PROFILE)"
  python "$here/run_notebook.py" "$nb" "$out/$name" --html "$out/${name%.ipynb}.html" || return 1
  inputs_hash "$nb" > "$stamp"
  echo "[notebooks] $name ok in $(( $(date +%s) - t0 )) s -> $out/$name"
}
pending=()
for nb in "$DW_ROOT"/notebooks/*.ipynb; do
  name="$(basename "$nb")"
  stamp="$out/.${name%.ipynb}.inputs"
  if [ "${DOUBLEWIN_NOTEBOOK_CACHE:-0}" = 1 ] && [ -f "$out/$name" ] && [ -f "$out/${name%.ipynb}.html" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(inputs_hash "$nb")" ]; then
    echo "[notebooks] $name: unchanged inputs, executed copy kept ($out/$name)"
    continue
  fi
  pending+=("$nb")
done
failed=()
declare -A running=()   # pid -> notebook
finish() {   # waits for one notebook, prints its lines, records a failure
  local pid nb
  wait -n -p pid "${!running[@]}" && rc=0 || rc=$?
  nb="${running[$pid]}"
  unset "running[$pid]"
  cat "$logs/$(basename "$nb").log"
  [ "$rc" = 0 ] || failed+=("$(basename "$nb")")
}
for nb in "${pending[@]}"; do
  (( ${#running[@]} >= jobs )) && finish
  run_one "$nb" > "$logs/$(basename "$nb").log" 2>&1 &
  running[$!]="$nb"
done
while (( ${#running[@]} > 0 )); do finish; done
if (( ${#failed[@]} > 0 )); then
  echo "[notebooks] FAILED: ${failed[*]}" >&2
  exit 1
fi
