#!/usr/bin/env bash
# Time to first result in a fresh notebook kernel session: kernel/warm.sh's notebook (the
# `:dep doublewin` line and one result) executed headless twice with the doublewin kernel, cold
# (an empty kernel build folder, so evcxr compiles tch and doublewin) and warm (the build folder the
# cold session left, as a second session of a user gets). Prints one line per session;
# BENCHMARKS.md quotes them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
export DOUBLEWIN_KERNEL_DIR="$(mktemp -d)"
trap 'rm -rf "$DOUBLEWIN_KERNEL_DIR"' EXIT
for session in cold warm; do
  t0=$(date +%s.%N)
  bash "$DW_ROOT/kernel/warm.sh" > /dev/null
  echo "[first-result] $session kernel session: $(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')") s"
done
