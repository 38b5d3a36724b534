#!/usr/bin/env bash
# Executes every notebook headless with the doublewin kernel and writes the executed copies and
# their HTML exports (one self-contained page each, figures inline) to out/notebooks (or $1). Fails on the first cell that fails, at compile or run time
# (scripts/run_notebook.py). The run size comes from
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
inputs_hash() {
  local store="${DOUBLEWIN_STORE:-${XDG_CACHE_HOME:-$HOME/.cache}/doublewin/store}"
  {
    sha256sum "$1"
    (cd "$DW_ROOT" && find src Cargo.toml Cargo.lock -type f | sort | xargs sha256sum)
    echo "profile $DOUBLEWIN_PROFILE"
    (cd "$store" 2>/dev/null && find . -name result.json | sort) || true
  } | sha256sum | cut -d' ' -f1
}
for nb in "$DW_ROOT"/notebooks/*.ipynb; do
  name="$(basename "$nb")"
  stamp="$out/.${name%.ipynb}.inputs"
  if [ "${DOUBLEWIN_NOTEBOOK_CACHE:-0}" = 1 ] && [ -f "$out/$name" ] && [ -f "$out/${name%.ipynb}.html" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(inputs_hash "$nb")" ]; then
    echo "[notebooks] $name: unchanged inputs, executed copy kept ($out/$name)"
    continue
  fi
  t0=$(date +%s)
  echo "[notebooks] $name (profile $DOUBLEWIN_PROFILE)"
  python "$here/run_notebook.py" "$nb" "$out/$name" --html "$out/${name%.ipynb}.html"
  inputs_hash "$nb" > "$stamp"
  echo "[notebooks] $name ok in $(( $(date +%s) - t0 )) s -> $out/$name"
done
