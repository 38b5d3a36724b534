# Sourced by the project's scripts: where the venv, libtorch and data live, and the variables
# tch needs to build (LIBTORCH_USE_PYTORCH + the venv's python first on PATH) and to run
# (LD_LIBRARY_PATH to torch's lib folder, for anything not built by this crate's build.rs).
DW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DW_ROOT
export DW_VENV="${DOUBLEWIN_VENV:-$DW_ROOT/.venv}"
export DW_PY_TAG="python3.11"
export DW_TORCH_VERSION="2.13.0"
export DOUBLEWIN_CACHE="${DOUBLEWIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/doublewin}"
export DOUBLEWIN_DATA="${DOUBLEWIN_DATA:-$DOUBLEWIN_CACHE/data}"
if [ -n "${LIBTORCH:-}" ]; then
  # An existing libtorch (see environment.md): use it instead of the venv's.
  export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  # torch-sys only asks whether this is set, but cargo reruns its build script when the value
  # changes: naming the venv makes a build folder shared between checkouts (the notebook kernel's
  # slots) relink against the current venv's libtorch instead of keeping a link path into the
  # venv of whichever checkout built it first, which may since have been deleted.
  export LIBTORCH_USE_PYTORCH="$DW_VENV"
  export VIRTUAL_ENV="$DW_VENV"
  export PATH="$DW_VENV/bin:$PATH"
  DW_TORCH_LIB="$(ls -d "$DW_VENV"/lib/python3.*/site-packages/torch/lib 2>/dev/null | head -n1 || true)"
  if [ -n "$DW_TORCH_LIB" ]; then
    export LD_LIBRARY_PATH="$DW_TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
export PATH="$HOME/.cargo/bin:$PATH"
