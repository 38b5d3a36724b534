#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU: CUDA visible from the command line and from a
# notebook cell, the device-generic tests (tests/cuda.rs: attacks and evaluation agree with the
# CPU, sparse adversarial training keeps pruned weights at zero, ResNet-18 PGD-10 training steps
# on CIFAR-shaped batches with their throughput), a CLI train + AutoAttack evaluation on the
# device, and the `paper` profile's plan. Writes out/gpu-check/ (or $1): info.json,
# nvidia-smi.txt, the logs, summary.md. Fails on the first check that fails.
# DOUBLEWIN_GPU_CHECK_DEVICE=cpu runs the same checks on the CPU (to test this script where no
# GPU is lent); a CUDA run refuses to start without a visible GPU.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
cd "$DW_ROOT"
dev="${DOUBLEWIN_GPU_CHECK_DEVICE:-cuda}"
out="${1:-$DW_ROOT/out/gpu-check}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
t0=$(date +%s)
step() { echo "[gpu-check] $* ($(( $(date +%s) - t0 )) s)"; }
exe="$DW_ROOT/target/release/doublewin"
cargo build --release --quiet --bin doublewin

step "1/5 the command line sees the device"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || echo "(no nvidia-smi)" > "$out/nvidia-smi.txt"
"$exe" --json info > "$out/info.json"
python3 - "$out/info.json" "$dev" <<'PY'
import json, sys
info, dev = json.load(open(sys.argv[1])), sys.argv[2]
if dev.startswith("cuda") and not info.get("cuda_devices"):
    sys.exit(f"[gpu-check] no CUDA device visible to doublewin: cuda_backend_loaded={info.get('cuda_backend_loaded')}, "
             "cuda_devices={info.get('cuda_devices')} (driver R580+ needed for the torch 2.13 CUDA 13 wheel; see environment.md)")
print(f"[gpu-check] cuda_backend_loaded={info.get('cuda_backend_loaded')} cuda_devices={info.get('cuda_devices')}")
PY

step "2/5 a notebook cell sees the device"
python3 - "$out/device_cell.ipynb" "$DW_ROOT" "$dev" <<'PY'
import json, sys
path, root, dev = sys.argv[1:]
cells = [f':dep doublewin = {{ path = "{root}" }}',
         f'let rt = doublewin::runtime::Runtime::new("{dev}".parse()?, 0, 0)?;\n'
         'let t = doublewin::tch::Tensor::ones([64, 64], (doublewin::tch::Kind::Float, rt.device));\n'
         'format!("{:?}: sum of ones(64, 64) = {}", t.device(), t.sum(doublewin::tch::Kind::Float).double_value(&[]))']
nb = {"cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                 "source": c} for i, c in enumerate(cells)],
      "metadata": {"kernelspec": {"name": "doublewin", "display_name": "Rust (doublewin)", "language": "rust"}},
      "nbformat": 4, "nbformat_minor": 5}
json.dump(nb, open(path, "w"), indent=1)
PY
python "$here/run_notebook.py" "$out/device_cell.ipynb" "$out/device_cell.executed.ipynb" 2>&1 | tee "$out/notebook.log"

step "3/5 the device-generic tests"
DOUBLEWIN_TEST_DEVICE="$dev" cargo test --release --quiet --test cuda -- --ignored --nocapture --test-threads 1 2>&1 | tee "$out/tests.log"

step "4/5 train and AutoAttack-evaluate on the device from the command line"
"$exe" --device "$dev" --seed 0 train --dataset digits --epochs 5 --out "$out/digits.safetensors" 2>&1 | tail -n 3 | tee "$out/train.log"
"$exe" --device "$dev" evaluate --net "$out/digits.safetensors" --dataset digits --eps 0.1 --attack autoattack-fast 2>&1 | tee "$out/evaluate.log"

step "5/5 the paper profile's plan (CIFAR-100 -> CIFAR-10 / SVHN, ResNet-18)"
"$exe" study plan --profile paper --store "$out/paper-store" > "$out/paper-plan.txt"
tail -n 1 "$out/paper-plan.txt"

{
  echo "# GPU check ($(date -u +%Y-%m-%d), device $dev)"
  echo; echo '```'; head -n 15 "$out/nvidia-smi.txt"; echo '```'
  echo; echo "- CLI: $(python3 -c 'import json,sys; i=json.load(open(sys.argv[1])); print("cuda_devices", i.get("cuda_devices"))' "$out/info.json")"
  echo "- notebook cell: $(grep -o 'Cuda([0-9]*): sum[^"]*\|Cpu: sum[^"]*' "$out/device_cell.executed.ipynb" | head -n 1 | sed 's/\\$//')"
  echo "- tests: $(grep -E '^test result' "$out/tests.log" | tail -n 1)"
  echo "- $(grep -o 'ResNet-18 PGD-10 training.*images/s' "$out/tests.log" | head -n 1)"
  echo "- evaluate: $(grep -iE 'RA|SA' "$out/evaluate.log" | tail -n 3 | tr '\n' ' ')"
} > "$out/summary.md"
step "all checks passed; summary in $out/summary.md"
cat "$out/summary.md"
