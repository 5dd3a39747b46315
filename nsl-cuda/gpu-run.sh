#!/usr/bin/env bash
# The GPU checks of nsl-cuda, run on a machine with an NVIDIA GPU from binaries that
# nsl-cuda/gpu-bundle.sh built elsewhere (copied here as .gpu/run.sh). From the repository root:
#
#   OUT=/tmp/gpu-out bash .gpu/run.sh [smoke|props|compare|cli|bench|profile|cublas|tier-profile|tier]...
#   (default: all but tier-profile and tier)
#
# Logs go to $OUT/gpu-<step>.log; the exit status is the number of failed steps. Each step has a
# time limit (a hung kernel fails its step, the rest still run) and prints as it goes, so a lease
# that ends early still returns what finished. `cublas` compiles tools/cublas_sgemm.cu with the
# machine's nvcc and times cuBLAS FP32/TF32 at nsl's GEMM shapes; `profile` prints the kernel-time
# tables (NSL_CUDA_PROFILE=1) of a plain and a dynamic-DNS CNN-9 step.
# PROPS_LIMIT and BENCH_LIMIT override those steps' time limits (seconds).
# NSL_CUDA_CASES sets the property tests' random cases per op (their default otherwise).
# `tier` runs the Fashion-MNIST real tier (`xtask repro --scale real --backend cuda`) into
# $OUT/tier until TIER_DEADLINE (epoch seconds): two processes share the GPU, one training the
# dynamic rows, one the plain and static rows, each seed by seed (seed 0 of every key row before
# seed 1), then one seed of the other rows; a run cut off by the deadline is dropped. The Debian
# files are read from /usr/share/datasets/fashion-mnist, or copied there from .fmnist/ if carried.
# `tier-profile` trains CNN-9 for 300 real-tier iterations with the kernel profiler on, to see
# where a tier step's time goes beside the bench's (the 2026-12-04 tier ran at ~1/4 of its img/s).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(smoke props compare cli bench profile cublas)
# tier_stream NAME ARGS...; each ARGS is one `xtask repro` argument list (quoted), run in order
# until the deadline.
tier_stream() {
    local name=$1
    shift
    for args in "$@"; do
        local left=$((TIER_DEADLINE - $(date +%s)))
        [ "$left" -gt 20 ] || break
        echo "[$name] $(date -u +%H:%M:%S) repro $args (${left} s left)"
        eval "timeout -k 5 $left .gpu/xtask repro --scale real --backend cuda --out \"$OUT/tier\" $args"
    done
}
# Debian's Fashion-MNIST files, copied from .fmnist/ when carried and not installed.
place_fmnist() {
    local d=/usr/share/datasets/fashion-mnist
    if [ -d .fmnist ] && [ ! -f $d/train-images-idx3-ubyte.gz ]; then mkdir -p $d && cp .fmnist/*.gz $d/; fi
}
run_tier() {
    : "${TIER_DEADLINE:=$(($(date +%s) + 600))}"
    place_fmnist
    local key_dyn='--rows "Dynamic NSN w/ DNS"' key_plain='--rows "Baseline CNN,Static NSN w/ DNS,Static NSN w/ UNS"'
    local a=() b=()
    for s in 1 2 3 4 5; do a+=("$key_dyn --seeds $s"); b+=("$key_plain --seeds $s"); done
    a+=('--rows "Dynamic NSN w/ UNS" --seeds 1' '--rows "Dynamic NSN (J)" --seeds 1' '--rows "Dynamic NSN (Shared)" --seeds 1' '--rows "Dynamic NSN (CNN)" --seeds 1')
    b+=('--rows "Baseline CNN++,Static NSN (J)" --seeds 1' '--only extensions --seeds 1' '--only table8 --seeds 1')
    tier_stream dyn "${a[@]}" >"$OUT/gpu-tier-dyn.log" 2>&1 &
    tier_stream plain "${b[@]}" >"$OUT/gpu-tier-plain.log" 2>&1 &
    wait
    .gpu/xtask repro --scale real --backend cuda --out "$OUT/tier" --seeds 5 --report-only >"$OUT/gpu-tier-report.log" 2>&1
    grep -h '^\[' "$OUT"/gpu-tier-*.log | tail -n 40
}
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
        props) for t in .gpu/tests/*; do step "props-$(basename "$t")" "${PROPS_LIMIT:-180}" "$t" --test-threads 1; done ;;
        compare) step compare 90 .gpu/xtask compare-backends --iterations 60 --out "$OUT/compare" ;;
        cli) step cli 120 bash -c 'set -e; .gpu/nsl --backend cuda quickstart
              .gpu/nsl --backend cuda train --similarity static-dns --width 0.25 --batch-size 32 --lr 0.01 --bn-debias --iterations 100 --quiet --out /tmp/nsl-static
              .gpu/nsl --backend cuda eval /tmp/nsl-static/checkpoint.safetensors
              .gpu/nsl --backend cuda fold --out /tmp/nsl-folded.safetensors /tmp/nsl-static/checkpoint.safetensors' ;;
        bench) step bench "${BENCH_LIMIT:-120}" .gpu/xtask bench --backend cuda --reps 3 ;;
        profile) for r in plain dynamic-dns; do
                     step "profile-$r" 60 env NSL_CUDA_PROFILE=1 .gpu/xtask bench --backend cuda --only "$r"
                 done ;;
        tier-profile) place_fmnist
                      step tier-profile 180 bash -c 'set -e; rm -rf /tmp/nsl-tp; SECONDS=0
                           NSL_CUDA_PROFILE=1 .gpu/nsl --backend cuda train --dataset fashion-mnist --iterations 300 \
                               --eval-every 300 --checkpoint-every 300 --quiet --out /tmp/nsl-tp
                           echo "wall $SECONDS s"; grep -h images_per_second /tmp/nsl-tp/summary.json' ;;
        tier) run_tier ;;
        cublas) step cublas 60 bash -c 'PATH=$PATH:/usr/local/cuda/bin; nvcc -O2 -o /tmp/cublas_sgemm .gpu/cublas_sgemm.cu -lcublas && /tmp/cublas_sgemm' ;;
        *) echo "unknown step $s (smoke, props, compare, cli, bench, profile, cublas, tier-profile, tier)"; failed=$((failed + 1)) ;;
    esac
done
echo "== $failed step(s) failed"
exit "$failed"
