// A CPU emulator for the nsl CUDA kernels (feature `emulate`, tests only).
//
// The .cu sources are compiled as ordinary C++ with this header force-included. Each launch
// runs its blocks one after the other on the calling OS thread; the threads of a block are
// cooperative fibers (ucontext) switched at __syncthreads() and at warp shuffles, so barriers
// and shuffles have CUDA's semantics (a thread that has returned no longer takes part) and a
// barrier that not every live thread reaches is reported as a deadlock instead of hanging.
// Shared memory, dynamic shared memory and thread/block indices are per launch; different OS
// threads can launch concurrently. Floating point is IEEE single/double as on the GPU, built
// with -ffp-contract=off so only explicit fmaf() fuses (nvcc fuses a*b+c by default, so
// results can differ from a GPU in the last bits; the nsl tests compare with tolerances).
//
// What this cannot show: GPU-only behaviour (memory model and races between blocks, launch
// limits, PTX/JIT, the driver, real shared-memory capacity, speed).
#pragma once
#define NSL_EMULATE 1

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <memory>
#include <ucontext.h>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define __launch_bounds__(...)

using std::max;
using std::min;

struct alignas(16) float4 {
    float x, y, z, w;
};

struct EmuDim {
    unsigned x = 1, y = 1, z = 1;
};

struct EmuBarrier {
    unsigned expected = 0, arrived = 0;
    unsigned long phase = 0;
};

struct EmuFiber {
    ucontext_t ctx;
    EmuDim tid;
    bool done = false;
    char* stack = nullptr;
};

// Fiber stacks, kept per OS thread across launches (allocating and zeroing them per launch
// would dominate the run time).
constexpr std::size_t EMU_STACK = 64 * 1024;
inline char* emu_stack(unsigned i) {
    static thread_local std::vector<std::unique_ptr<char[]>> stacks;
    while (stacks.size() <= i) stacks.emplace_back(new char[EMU_STACK]);
    return stacks[i].get();
}

struct EmuLaunch {
    const char* kernel = "";
    ucontext_t main;
    std::vector<EmuFiber> fibers;
    unsigned current = 0;
    EmuDim block_idx, block_dim, grid_dim;
    EmuBarrier block_bar;
    std::vector<EmuBarrier> warp_bars;
    std::vector<uint64_t> xchg;
    std::vector<char> dyn_shared;
    unsigned long progress = 0;
    void (*invoke)(void**) = nullptr;
    void** params = nullptr;
};

inline thread_local EmuLaunch* emu_l = nullptr;

#define threadIdx (emu_l->fibers[emu_l->current].tid)
#define blockIdx (emu_l->block_idx)
#define blockDim (emu_l->block_dim)
#define gridDim (emu_l->grid_dim)

inline void emu_yield() { swapcontext(&emu_l->fibers[emu_l->current].ctx, &emu_l->main); }

inline void emu_wait(EmuBarrier& b) {
    unsigned long ph = b.phase;
    emu_l->progress++;
    if (++b.arrived == b.expected) {
        b.arrived = 0;
        b.phase++;
        return;
    }
    while (b.phase == ph) emu_yield();
}

inline void emu_drop(EmuBarrier& b) {
    b.expected--;
    if (b.expected > 0 && b.arrived == b.expected) {
        b.arrived = 0;
        b.phase++;
    }
    emu_l->progress++;
}

inline void __syncthreads() { emu_wait(emu_l->block_bar); }

template <class T>
inline T __shfl_xor_sync(unsigned, T v, int o) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    const unsigned me = emu_l->current, lane = me % 32, w = me / 32;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    emu_l->xchg[me] = bits;
    emu_wait(emu_l->warp_bars[w]);
    const unsigned src = w * 32 + (lane ^ (unsigned)o);
    uint64_t r = src < emu_l->xchg.size() ? emu_l->xchg[src] : 0;
    emu_wait(emu_l->warp_bars[w]);
    T out;
    std::memcpy(&out, &r, sizeof(T));
    return out;
}

inline void* emu_dynamic_shared() { return emu_l->dyn_shared.data(); }

// Rounding-explicit intrinsics: plain IEEE operations (the emulator never contracts).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }

// Call kernel `k` with its parameters read from the cuLaunchKernel-style array `p`.
template <class... A, std::size_t... I>
inline void emu_invoke_impl(void (*k)(A...), void** p, std::index_sequence<I...>) {
    k(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(p[I])...);
}
template <class... A>
inline void emu_invoke(void (*k)(A...), void** p) {
    emu_invoke_impl(k, p, std::index_sequence_for<A...>{});
}

inline void emu_fiber_main() {
    emu_l->invoke(emu_l->params);
    EmuFiber& f = emu_l->fibers[emu_l->current];
    f.done = true;
    emu_drop(emu_l->block_bar);
    emu_drop(emu_l->warp_bars[emu_l->current / 32]);
    // returning switches to uc_link (the scheduler)
}

// Run one launch; returns 0, or 2 on a barrier deadlock (message on stderr).
inline int emu_run(const char* kernel, void (*invoke)(void**), unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned bz, unsigned shmem, void** params) {
    EmuLaunch l;
    l.kernel = kernel;
    l.invoke = invoke;
    l.params = params;
    l.grid_dim = {gx, gy, gz};
    l.block_dim = {bx, by, bz};
    const unsigned nt = bx * by * bz;
    l.fibers.resize(nt);
    for (unsigned t = 0; t < nt; t++) l.fibers[t].stack = emu_stack(t);
    l.xchg.assign(nt, 0);
    EmuLaunch* saved = emu_l;
    emu_l = &l;
    int status = 0;
    for (unsigned z = 0; z < gz && status == 0; z++)
        for (unsigned y = 0; y < gy && status == 0; y++)
            for (unsigned x = 0; x < gx && status == 0; x++) {
                l.block_idx = {x, y, z};
                l.block_bar = EmuBarrier{nt, 0, 0};
                l.warp_bars.assign((nt + 31) / 32, EmuBarrier{});
                for (unsigned w = 0; w < l.warp_bars.size(); w++) l.warp_bars[w].expected = std::min(32u, nt - 32 * w);
                l.dyn_shared.assign(shmem, (char)0xFF);  // uninitialised shared memory reads as NaN
                for (unsigned t = 0; t < nt; t++) {
                    EmuFiber& f = l.fibers[t];
                    f.tid = {t % bx, (t / bx) % by, t / (bx * by)};
                    f.done = false;
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack;
                    f.ctx.uc_stack.ss_size = EMU_STACK;
                    f.ctx.uc_link = &l.main;
                    makecontext(&f.ctx, emu_fiber_main, 0);
                }
                unsigned live = nt;
                while (live > 0) {
                    unsigned long before = l.progress;
                    for (unsigned t = 0; t < nt; t++) {
                        if (l.fibers[t].done) continue;
                        l.current = t;
                        swapcontext(&l.main, &l.fibers[t].ctx);
                        if (l.fibers[t].done) live--;
                    }
                    if (live > 0 && l.progress == before) {
                        std::fprintf(stderr, "nsl-cuda emulator: %s deadlocked in block (%u,%u,%u): a barrier or shuffle is not reached by every live thread\n",
                                     kernel, x, y, z);
                        status = 2;
                        break;
                    }
                }
            }
    emu_l = saved;
    return status;
}
