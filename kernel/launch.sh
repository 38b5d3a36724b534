#!/usr/bin/env bash
# Starts evcxr_jupyter for the doublewin kernelspec with a persistent build folder, so that a
# second kernel session re-uses the compiled dependencies (tch, doublewin) and starts in
# seconds. Two kernels must not share a build folder: each takes the first free slot, held by
# a lock for the kernel's lifetime; when all are busy, evcxr's default temporary folder is used.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../scripts/env.sh"
# Outside the Cargo workspace: a build slot is a crate of its own, and cargo refuses a crate that
# sits inside a workspace without being a member of it.
slots="${DOUBLEWIN_KERNEL_DIR:-$DOUBLEWIN_CACHE/evcxr}"
# evcxr links cells against the Rust standard library dynamically and relies on an $ORIGIN-relative
# rpath that is computed from cargo's deps/ folder but loaded from its parent: it resolves only
# when the build folder and the toolchain share no path prefix but "/". Name the toolchain's
# library folder so cells load wherever the build folder is.
export LD_LIBRARY_PATH="$(rustc --print target-libdir)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
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
