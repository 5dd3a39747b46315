#!/usr/bin/env bash
# The GPU checks of nsl-cuda, run on a machine with an NVIDIA GPU from binaries that
# nsl-cuda/gpu-bundle.sh built elsewhere (copied here as .gpu/run.sh). From the repository root:
#
#   OUT=/tmp/gpu-out bash .gpu/run.sh [smoke|props|compare|cli|bench|profile|cublas]...   (default: all)
#
# Logs go to $OUT/gpu-<step>.log; the exit status is the number of failed steps. Each step has a
# time limit (a hung kernel fails its step, the rest still run) and prints as it goes, so a lease
# that ends early still returns what finished. `cublas` compiles tools/cublas_sgemm.cu with the
# machine's nvcc and times cuBLAS FP32/TF32 at nsl's GEMM shapes; `profile` prints the kernel-time
# tables (NSL_CUDA_PROFILE=1) of a plain and a dynamic-DNS CNN-9 step.
# NSL_CUDA_CASES sets the property tests' random cases per op (their default otherwise).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(smoke props compare cli bench profile cublas)
failed=0
# step NAME SECONDS COMMAND...: runs COMMAND with a time limit, its output in $OUT/gpu-NAME.log.
step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name: $* ($(date -u +%H:%M:%S), limit $limit s)"
    local t0=$SECONDS
    if timeout -k 5 "$limit" "$@" >"$OUT/gpu-$name.log" 2>&1; then
        echo "   ok in $((SECONDS - t0)) s"
    else
        echo "   FAILED (exit $?) in $((SECONDS - t0)) s; last lines:"
        failed=$((failed + 1))
    fi
    tail -n 25 "$OUT/gpu-$name.log" | sed 's/^/   | /'
}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
nproc
for s in "${steps[@]}"; do
    case $s in
        smoke) step smoke 60 .gpu/cuda_smoke ;;
        props) for t in .gpu/tests/*; do step "props-$(basename "$t")" 180 "$t" --test-threads 1; done ;;
        compare) step compare 90 .gpu/xtask compare-backends --iterations 60 --out "$OUT/compare" ;;
        cli) step cli 120 bash -c 'set -e; .gpu/nsl --backend cuda quickstart
              .gpu/nsl --backend cuda train --similarity static-dns --width 0.25 --batch-size 32 --lr 0.01 --bn-debias --iterations 100 --quiet --out /tmp/nsl-static
              .gpu/nsl --backend cuda eval /tmp/nsl-static/checkpoint.safetensors
              .gpu/nsl --backend cuda fold --out /tmp/nsl-folded.safetensors /tmp/nsl-static/checkpoint.safetensors' ;;
        bench) step bench 120 .gpu/xtask bench --backend cuda --reps 3 ;;
        profile) for r in plain dynamic-dns; do
                     step "profile-$r" 60 env NSL_CUDA_PROFILE=1 .gpu/xtask bench --backend cuda --only "$r"
                 done ;;
        cublas) step cublas 60 bash -c 'PATH=$PATH:/usr/local/cuda/bin; nvcc -O2 -o /tmp/cublas_sgemm .gpu/cublas_sgemm.cu -lcublas && /tmp/cublas_sgemm' ;;
        *) echo "unknown step $s (smoke, props, compare, cli, bench, profile, cublas)"; failed=$((failed + 1)) ;;
    esac
done
echo "== $failed step(s) failed"
exit "$failed"
