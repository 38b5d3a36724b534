#!/usr/bin/env bash
# Starts evcxr_jupyter for the doublewin kernelspec with a persistent build folder, so that a
# second kernel session re-uses the compiled dependencies (tch, doublewin) and starts in
# seconds. Two kernels must not share a build folder: each takes the first free slot, held by
# a lock for the kernel's lifetime; when all are busy, evcxr's default temporary folder is used.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../scripts/env.sh"
slots="${DOUBLEWIN_KERNEL_DIR:-$DW_ROOT/target/evcxr}"
mkdir -p "$slots"
for i in 0 1 2 3; do
  exec 9>"$slots/slot-$i.lock"
  if flock -n 9; then
    export EVCXR_TMPDIR="$slots/slot-$i"
    mkdir -p "$EVCXR_TMPDIR"
    exec evcxr_jupyter --control_file "$1"
  fi
  exec 9>&-
done
exec evcxr_jupyter --control_file "$1"
