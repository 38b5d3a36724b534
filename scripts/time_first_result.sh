#!/usr/bin/env bash
# Time to first result in a fresh notebook kernel session: a notebook whose cells are the
# `:dep doublewin` line and one result (the runtime description), executed headless twice with
# the doublewin kernel: cold (an empty kernel build folder, so evcxr compiles tch and doublewin)
# and warm (the build folder the cold session left, as a second session of a user gets).
# Prints one line per session; BENCHMARKS.md quotes them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$work/first.ipynb" "$DW_ROOT" <<'PY'
import json, sys
cells = [':dep doublewin = { path = "%s" }' % sys.argv[2],
         'doublewin::runtime::Runtime::from_env()?.describe()']
nb = {"cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                 "source": c} for i, c in enumerate(cells)],
      "metadata": {"kernelspec": {"display_name": "Rust (doublewin)", "language": "rust", "name": "doublewin"}},
      "nbformat": 4, "nbformat_minor": 5}
json.dump(nb, open(sys.argv[1], "w"))
PY
export DOUBLEWIN_KERNEL_DIR="$work/slots"
for session in cold warm; do
  t0=$(date +%s.%N)
  jupyter nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=doublewin \
    --ExecutePreprocessor.timeout=1800 --output-dir "$work" --output "out-$session" "$work/first.ipynb" --log-level=ERROR
  echo "[first-result] $session kernel session: $(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')") s"
done
