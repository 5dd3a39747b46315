#!/usr/bin/env bash
# Builds, here, everything the GPU checks of nsl-cuda run (test binaries, cuda_smoke, xtask and
# the nsl CLI, all with the cuda feature), into .gpu/ (git-ignored), for a
# machine with an NVIDIA GPU and driver but no Rust toolchain (the lent GPU machines).
#
#   bash nsl-cuda/gpu-bundle.sh        # here: needs cargo and the CUDA toolkit (ci-check.sh installs it)
#   bash .gpu/run.sh                   # there, from the repository root: OUT=<dir> for the logs
#
# The binaries link libcuda.so.1 dynamically (the driver's) and carry their kernels as PTX for
# compute_80, which the driver JIT-compiles for the GPU at hand (H100/H200 included).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CUDA_LIBRARY_PATH:-}" ]; then
    for d in /usr/local/cuda /opt/cuda /usr/lib/cuda; do
        if [ -d "$d/lib64" ] || [ -d "$d/bin" ]; then export CUDA_LIBRARY_PATH="$d"; break; fi
    done
fi
command -v nvcc >/dev/null || { echo "gpu-bundle: nvcc not found; run nsl-cuda/ci-check.sh first (installs the toolkit)" >&2; exit 1; }

out=.gpu
rm -rf "$out"
mkdir -p "$out/tests"
# The CPU≡CUDA property tests (and nsl-cuda's unit tests), built like `cargo test` builds them.
cargo test -p nsl-cuda --features cuda --no-run --message-format=json 2>/dev/null \
    | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    exe = m.get("executable")
    if m.get("reason") == "compiler-artifact" and exe and m.get("profile", {}).get("test"):
        name = m["target"]["name"]
        shutil.copy(exe, sys.argv[1] + "/tests/" + name)
        print("gpu-bundle: test binary", name)
' "$out"
cargo build --release -p nsl-cuda --features cuda --example cuda_smoke
cp target/release/examples/cuda_smoke "$out/"
cargo build --release -p xtask --features cuda
cp target/release/xtask "$out/"
cargo build --release -p nsl-models --features cuda --bin nsl
cp target/release/nsl "$out/"
strip "$out"/tests/* "$out"/cuda_smoke "$out"/xtask "$out"/nsl
cp nsl-cuda/gpu-run.sh "$out/run.sh"
cp nsl-cuda/tools/cublas_sgemm.cu "$out/"
du -sh "$out"
