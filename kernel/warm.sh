#!/usr/bin/env bash
# Compiles the notebook kernel's build slots ahead of time (before a workshop), so that the first
# cell of a notebook (`:dep doublewin`) answers in seconds instead of minutes. Each slot is warmed
# by a real kernel session that runs the notebooks' first two cells; a slot a running kernel holds
# is skipped (it is warm already). Idempotent: a warm slot takes a few seconds; with --if-cold a
# slot that has a build folder is not started at all (what setup.sh uses).
# usage: kernel/warm.sh [--slots N] [--if-cold]   (default 1; launch.sh uses up to 4, one per open notebook)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../scripts/env.sh"
count=1
if_cold=0
while [ $# -gt 0 ]; do
  case "$1" in
    --slots) count="${2:?--slots needs a number}"; shift 2 ;;
    --if-cold) if_cold=1; shift ;;
    *) echo "usage: kernel/warm.sh [--slots N] [--if-cold]" >&2; exit 2 ;;
  esac
done
[[ "$count" =~ ^[1-4]$ ]] || { echo "[warm] --slots must be 1 to 4 (launch.sh has 4 slots)" >&2; exit 2; }
slots="${DOUBLEWIN_KERNEL_DIR:-$DOUBLEWIN_CACHE/evcxr}"
mkdir -p "$slots"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The notebooks' own first cells: the same `:dep` line compiles the same build.
python3 - "$work/warm.ipynb" "$DW_ROOT" <<'PY'
import json, sys
cells = [':dep doublewin = { path = "%s" }' % sys.argv[2], 'doublewin::runtime::Runtime::from_env()?.describe()']
nb = {"cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                 "source": c} for i, c in enumerate(cells)],
      "metadata": {"kernelspec": {"display_name": "Rust (doublewin)", "language": "rust", "name": "doublewin"}},
      "nbformat": 4, "nbformat_minor": 5}
json.dump(nb, open(sys.argv[1], "w"))
PY
held=()
for ((i = 0; i < count; i++)); do
  if [ "$if_cold" = 1 ] && [ -d "$slots/slot-$i/target/debug" ]; then
    # Built before: the first notebook in it only recompiles what changed since.
    exec {fd}>"$slots/slot-$i.lock"
    flock -n "$fd" || true
    held+=("$fd")
    continue
  fi
  t0=$(date +%s)
  # launch.sh takes the first free slot: slots 0..i-1 are held here, so the kernel gets slot i
  # (or the next free one when a running kernel holds it).
  python3 "$DW_ROOT/scripts/run_notebook.py" "$work/warm.ipynb" "$work/out-$i.ipynb" > "$work/log" || { cat "$work/log"; exit 1; }
  echo "[warm] kernel build slot warmed in $(( $(date +%s) - t0 )) s"
  exec {fd}>"$slots/slot-$i.lock"
  flock -n "$fd" || true   # a running kernel's slot: it is warm, and the next session skips it too
  held+=("$fd")
done
echo "[warm] $count slot(s) ready under $slots"
