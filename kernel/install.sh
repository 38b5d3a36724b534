#!/usr/bin/env bash
# Installs the notebook kernel, idempotently: evcxr_jupyter (cargo install, ~6 min the first
# time) and a kernelspec named "doublewin" inside the project's venv, whose launcher sets the
# variables tch needs to build and load (see environment.md). With --user the kernelspec goes to
# the user's Jupyter data folder instead (~/.local/share/jupyter/kernels), so a JupyterLab outside
# the venv lists "Rust (doublewin)" too.
# usage: kernel/install.sh [--user]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../scripts/env.sh"
EVCXR_VERSION=0.22.0
if ! cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
  echo "[kernel] installing evcxr_jupyter $EVCXR_VERSION (cargo install, several minutes once)"
  cargo install evcxr_jupyter --locked --version "$EVCXR_VERSION" --quiet
fi
spec="$DW_VENV/share/jupyter/kernels/doublewin"
case "${1:-}" in
  "") ;;
  --user) spec="${JUPYTER_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/jupyter}/kernels/doublewin" ;;
  *) echo "usage: kernel/install.sh [--user]" >&2; exit 2 ;;
esac
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
