#!/usr/bin/env bash
# Wall time of one study from an empty store: 1 worker x all cores' threads vs N workers x 1
# thread (default N = cores), each on its own fresh store; checks that both give the same
# verdict table and prints a Markdown table (for BENCHMARKS.md).
# usage: scripts/time_workers.sh [profile (default tiny)]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
cd "$DW_ROOT"
profile="${1:-tiny}"
cores="$(nproc)"
cargo build --release --quiet --bin doublewin
exe="$DW_ROOT/target/release/doublewin"
tmp="$(mktemp -d /tmp/doublewin-workers.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
run() { # name threads workers
  local t0 t1
  t0=$(date +%s.%N)
  "$exe" --threads "$2" study run --profile "$profile" --workers "$3" --store "$tmp/$1" > "$tmp/$1.log" 2>&1
  t1=$(date +%s.%N)
  "$exe" --threads "$2" study report --profile "$profile" --store "$tmp/$1" --out "$tmp/$1-report" > /dev/null 2>&1
  python3 -c "print(f'{$t1 - $t0:.0f}')"
}
one=$(run one "$cores" 1)
many=$(run many 1 "$cores")
steps=$("$exe" study plan --profile "$profile" --store "$tmp/one" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["steps"]))')
echo "| study (profile \`$profile\`, $steps steps, empty store) | wall time | speed-up |"
echo "| --- | --- | --- |"
echo "| 1 worker x $cores threads | $one s | 1.00x |"
echo "| $cores workers x 1 thread | $many s | $(python3 -c "print(f'{$one / $many:.2f}x')") |"
# One thread per worker vs several threads change the floating-point order, so accuracies may
# differ slightly; say whether the verdicts agree.
python3 - "$tmp/one-report/report.json" "$tmp/many-report/report.json" <<'PY'
import json, sys
def outcomes(path):
    return [(v["pretraining"], v["family"], v["fraction"], r["label"], r["outcome"])
            for v in json.load(open(path))["verdicts"] for r in v["verdict"]["rows"]]
a, b = (outcomes(p) for p in sys.argv[1:])
same = sum(x == y for x, y in zip(a, b))
print(f"\nticket verdicts: {same} of {len(a)} the same in both runs")
PY
