#!/usr/bin/env bash
# CI check of the CUDA backend (nsl-cuda, feature `cuda`), run after the workspace tests.
#
#   1. installs the CUDA toolkit if nvcc is missing (Debian bookworm: contrib/non-free
#      nvidia-cuda-toolkit 11.8, nvidia-cuda-dev, libcuda1; needs root and network),
#   2. builds nsl-cuda with --features cuda (kernels through nvcc) and its smoke example,
#   3. runs its tests: on a machine without a GPU every GPU test prints
#      `skipped: no CUDA device (...)` and passes; on a GPU they compare against the CPU,
#   4. runs the same CPU≡CUDA tests with --features emulate (kernels on the CPU emulator),
#   5. compiles the cuBLAS timing tool that gpu-run.sh builds on GPU machines.
#
# Environment: CARGO_TARGET_DIR (default: the workspace's), NSL_CUDA_ARCH (default compute_80),
# CUDA_LIBRARY_PATH (default: the directory holding libcuda.so, found below).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvcc >/dev/null 2>&1; then
    echo "ci-check: nvcc not found; installing the CUDA toolkit (Debian contrib/non-free)"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    if [ ! -f /etc/apt/sources.list.d/nonfree.sources ]; then
        $SUDO tee /etc/apt/sources.list.d/nonfree.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
        nvidia-cuda-toolkit nvidia-cuda-dev libcuda1
    $SUDO apt-get clean  # the downloaded .debs (~1.5 GB) are not needed once installed
fi
nvcc --version | tail -n 2

# cust's build script looks for <dir>/lib64 under CUDA_LIBRARY_PATH, /usr/local/cuda, /opt/cuda;
# Debian's toolkit lives in /usr/lib/cuda, and libcuda.so in the default linker path.
if [ -z "${CUDA_LIBRARY_PATH:-}" ]; then
    for d in /usr/local/cuda /opt/cuda /usr/lib/cuda; do
        if [ -d "$d/lib64" ]; then export CUDA_LIBRARY_PATH="$d"; break; fi
    done
fi
echo "ci-check: CUDA_LIBRARY_PATH=${CUDA_LIBRARY_PATH:-<unset>}"

set -x
cargo build -p nsl-cuda --features cuda --all-targets
cargo test -p nsl-cuda --features cuda
cargo run -p nsl-cuda --features cuda --example cuda_smoke || test $? -eq 2  # 2: no device
cargo test -p nsl-cuda --features emulate
nvcc -O2 -o "${TMPDIR:-/tmp}/nsl-cublas-sgemm" nsl-cuda/tools/cublas_sgemm.cu -lcublas
# clippy for the cuda/emulate builds is a developer check (README), not CI:
# CI must stay under 20 minutes on 2 cores.
