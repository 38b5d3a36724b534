#!/usr/bin/env bash
# One idempotent set-up for everything doublewin needs; re-running re-uses what is there.
#   1. system tools (apt), when missing: dpkg-deb, npm, python3-venv, chromium and chromium-driver
#      (headless, for the check of the notebooks' HTML exports and the JupyterLab browser test),
#      slurm-wlm and munge (the Slurm test's cluster)
#   2. the project venv (.venv): torch==2.13.0 (libtorch for tch), Jupyter, numpy, scipy, safetensors,
#      torchattacks 3.5.1 (the reference for attack parity tests)
#   3. the embedded datasets, prepared into $DOUBLEWIN_DATA and verified by hash
#   4. the notebook kernel (evcxr_jupyter + kernelspec "doublewin") and its build slots, one per
#      core (kernel/warm.sh --if-cold)                                    [skip with --no-kernel]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
with_kernel=1
# --main: only what the main job needs (the study, its report, the notebooks): no Slurm, no
# browser, no Selenium, which serve the tests.
for_tests=1
for a in "$@"; do
  [ "$a" = "--no-kernel" ] && with_kernel=0
  [ "$a" = "--main" ] && for_tests=0
done
t0=$(date +%s)
phase_start=$t0
# Each phase's seconds, printed as it ends (README's set-up table is made of these lines).
phase() { local now; now=$(date +%s); echo "[setup] $1: $(( now - phase_start )) s"; phase_start=$now; }

# 0. Disk. A first set-up and build write about 15 GB: the venv (~5 GB with torch), target/ (~9 GB
# for the test build) and the datasets. Say so before starting rather than fail inside pip or rustc
# with "No space left on device".
need_gb=2
[ -x "$DW_VENV/bin/python" ] || need_gb=$(( need_gb + 6 ))
[ -d "$DW_ROOT/target" ] || need_gb=$(( need_gb + 9 ))
free_gb=$(df -P -BG "$DW_ROOT" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
if [ "$free_gb" -lt "$need_gb" ]; then
  echo "[setup] error: $free_gb GB free on the disk of $DW_ROOT; set-up and the build need about $need_gb GB" \
       "(the venv, target/, the datasets). Free some space (old clones, cargo clean in other checkouts) and run again." >&2
  exit 1
fi

# 1. System tools.
need_apt=()
command -v dpkg-deb >/dev/null || need_apt+=(dpkg)
command -v npm >/dev/null || need_apt+=(npm)
command -v flock >/dev/null || need_apt+=(util-linux)
python3 -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
if [ "$for_tests" = 1 ]; then
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
  command -v slurmctld >/dev/null || need_apt+=(slurm-wlm)
  command -v munged >/dev/null || need_apt+=(munge)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# apt-get download needs package lists; fetch them once if this machine has none.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  echo "[setup] apt-get update (package lists for the Fashion-MNIST package)"
  apt-get update -qq
fi
phase "system tools"

# 2. The venv.
PY_PACKAGES=("torch==$DW_TORCH_VERSION" "torchvision==0.28.0" "numpy" "scipy" "safetensors" "jupyterlab" "nbclient" "nbconvert" "ipykernel")
if ! "$DW_VENV/bin/python" -c "import torch, torchvision, numpy, scipy, safetensors, nbclient, nbconvert; assert torch.__version__.split('+')[0] == '$DW_TORCH_VERSION'" 2>/dev/null; then
  echo "[setup] creating $DW_VENV with ${PY_PACKAGES[*]} (~3 GB download the first time)"
  [ -x "$DW_VENV/bin/python" ] || python3 -m venv "$DW_VENV"
  "$DW_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
fi
# torchattacks: the independent implementation the attack parity tests compare against. Its
# requirements would pull other torch versions; it needs only torch, numpy and scipy at run time.
if ! "$DW_VENV/bin/python" -c "import torchattacks; assert torchattacks.__version__ == '3.5.1'" 2>/dev/null; then
  echo "[setup] installing torchattacks==3.5.1 (--no-deps)"
  "$DW_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "torchattacks==3.5.1"
fi
# Selenium drives Chromium through the distribution's chromedriver in the JupyterLab browser test.
if [ "$for_tests" = 1 ] && ! "$DW_VENV/bin/python" -c "import selenium" 2>/dev/null; then
  echo "[setup] installing selenium"
  "$DW_VENV/bin/python" -m pip install --quiet --disable-pip-version-check selenium
fi
source "$here/env.sh"   # torch's lib folder exists now
phase "venv"

# 3. Data.
"$DW_VENV/bin/python" "$here/prepare_data.py" --cache "$DOUBLEWIN_DATA" --downloads "$DOUBLEWIN_CACHE/downloads"
phase "data"

# 4. Kernel.
if [ "$with_kernel" = 1 ]; then
  bash "$DW_ROOT/kernel/install.sh"
  # One build slot per notebook that run_notebooks.sh runs at once (one per core, at most 4),
  # compiled once (minutes) so that no notebook waits for a cold build.
  slots=$(nproc); (( slots > 4 )) && slots=4
  bash "$DW_ROOT/kernel/warm.sh" --slots "$slots" --if-cold
  phase "notebook kernel"
fi
echo "[setup] ready in $(( $(date +%s) - t0 )) s"
