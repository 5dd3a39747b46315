#!/usr/bin/env bash
# The GPU checks of nsl-cuda, run on a machine with an NVIDIA GPU from binaries that
# nsl-cuda/gpu-bundle.sh built elsewhere (copied here as .gpu/run.sh). From the repository root:
#
#   OUT=/tmp/gpu-out bash .gpu/run.sh [smoke|props|compare|bench]...   (default: all four)
#
# Logs go to $OUT/gpu-<step>.log; the exit status is the number of failed steps.
# NSL_CUDA_CASES sets the property tests' random cases per op (their default otherwise).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(smoke props compare bench)
failed=0
step() {
    local name=$1
    shift
    echo "== $name: $* ($(date -u +%H:%M:%S))"
    local t0=$SECONDS
    if "$@" >"$OUT/gpu-$name.log" 2>&1; then
        echo "   ok in $((SECONDS - t0)) s"
    else
        echo "   FAILED (exit $?) in $((SECONDS - t0)) s; last lines:"
        failed=$((failed + 1))
    fi
    tail -n 25 "$OUT/gpu-$name.log" | sed 's/^/   | /'
}
nvidia-smi -L || true
for s in "${steps[@]}"; do
    case $s in
        smoke) step smoke .gpu/cuda_smoke ;;
        props) for t in .gpu/tests/*; do step "props-$(basename "$t")" "$t" --test-threads 1; done ;;
        compare) step compare .gpu/xtask compare-backends --iterations 60 --out "$OUT/compare" ;;
        bench) step bench .gpu/xtask bench --backend cuda --reps 3 ;;
        *) echo "unknown step $s (smoke, props, compare, bench)"; failed=$((failed + 1)) ;;
    esac
done
echo "== $failed step(s) failed"
exit "$failed"
