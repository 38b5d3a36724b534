#!/usr/bin/env bash
# Installs the notebook kernel, idempotently: evcxr_jupyter (cargo install, ~6 min the first
# time) and a kernelspec named "doublewin" inside the project's venv, whose launcher sets the
# variables tch needs to build and load (see environment.md).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../scripts/env.sh"
EVCXR_VERSION=0.22.0
if ! cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
  echo "[kernel] installing evcxr_jupyter $EVCXR_VERSION (cargo install, several minutes once)"
  cargo install evcxr_jupyter --locked --version "$EVCXR_VERSION" --quiet
fi
spec="$DW_VENV/share/jupyter/kernels/doublewin"
mkdir -p "$spec"
cat > "$spec/kernel.json.tmp" <<JSON
{
  "argv": ["bash", "$DW_ROOT/kernel/launch.sh", "{connection_file}"],
  "display_name": "Rust (doublewin)",
  "language": "rust",
  "interrupt_mode": "message"
}
JSON
mv "$spec/kernel.json.tmp" "$spec/kernel.json"
echo "[kernel] kernelspec 'doublewin' -> $spec"
