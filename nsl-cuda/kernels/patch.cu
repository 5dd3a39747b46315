// DNS / UNS patch transforms on im2col rows and their fused backwards
// (formulas on nsl_core::Backend::patch_scale / patch_matmul). cols is rows × taps × c,
// the per-row matrices M are rows × taps (scale) or rows × taps × taps (matmul).
//
// Sums that the CPU backend builds as `acc += m·x` (axpy order) use `__fadd_rn(__fmul_rn())`
// in the same order, so both backends round identically there; the `dm` dot products are
// deterministic warp (or per-thread) reductions.
#include "common.cuh"

// out[r,t,ch] = m[r,t] · cols[r,t,ch]
extern "C" __global__ void nsl_patch_scale(int n, int c, const float* __restrict__ cols, const float* __restrict__ m, float* __restrict__ out) {
    int i = gid();
    if (i < n) out[i] = m[i / c] * cols[i];
}

// One warp per (r, t) segment of c channels (c ≥ 32): dcols = m·dout, dm = Σ_c cols·dout.
extern "C" __global__ void nsl_patch_scale_backward_warp(int segs, int c, const float* __restrict__ cols, const float* __restrict__ m,
                                                         const float* __restrict__ dout, float* __restrict__ dcols, float* __restrict__ dm) {
    int sgi = blockIdx.x * (NSL_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (sgi >= segs) return;
    const size_t base = (size_t)sgi * c;
    const float s = m[sgi];
    float acc = 0.0f;
    for (int ch = lane; ch < c; ch += 32) {
        float g = dout[base + ch];
        dcols[base + ch] = s * g;
        acc += cols[base + ch] * g;
    }
    acc = warp_sumf(acc);
    if (lane == 0) dm[sgi] = acc;
}

// The same with one thread per segment, for few channels (c < 32).
extern "C" __global__ void nsl_patch_scale_backward_thread(int segs, int c, const float* __restrict__ cols, const float* __restrict__ m,
                                                           const float* __restrict__ dout, float* __restrict__ dcols, float* __restrict__ dm) {
    int sgi = gid();
    if (sgi >= segs) return;
    const size_t base = (size_t)sgi * c;
    const float s = m[sgi];
    float acc = 0.0f;
    for (int ch = 0; ch < c; ch++) {
        float g = dout[base + ch];
        dcols[base + ch] = s * g;
        acc += cols[base + ch] * g;
    }
    dm[sgi] = acc;
}

// Copy row r's taps×taps matrix to shared memory when `shared` (dynamic smem of taps² floats),
// and return where to read it from.
__device__ __forceinline__ const float* stage_matrix(int taps, int shared, const float* __restrict__ mr, float* sh) {
    if (!shared) return mr;
    for (int i = threadIdx.x; i < taps * taps; i += blockDim.x) sh[i] = mr[i];
    __syncthreads();
    return sh;
}

// One block per row r: out[a,ch] = Σ_q M[a,q] · cols[q,ch] (q ascending).
extern "C" __global__ void nsl_patch_matmul(int rows, int taps, int c, int shared, const float* __restrict__ cols, const float* __restrict__ m,
                                            float* __restrict__ out) {
    NSL_DYNAMIC_SHARED(float, sh);
    const int r = blockIdx.x;
    if (r >= rows) return;
    const int pl = taps * c;
    const float* M = stage_matrix(taps, shared, m + (size_t)r * taps * taps, sh);
    const float* x = cols + (size_t)r * pl;
    float* o = out + (size_t)r * pl;
    for (int idx = threadIdx.x; idx < pl; idx += blockDim.x) {
        int a = idx / c, ch = idx - a * c;
        const float* ma = M + a * taps;
        float s = 0.0f;
        for (int q = 0; q < taps; q++) s = __fadd_rn(s, __fmul_rn(ma[q], x[q * c + ch]));
        o[idx] = s;
    }
}

// One block per row r:
//   dcols[q,ch] = Σ_a M[a,q] · dout[a,ch]   (a ascending)
//   dM[a,q]    = Σ_ch dout[a,ch] · cols[q,ch] (a warp per (a,q) when c ≥ 32, else a thread)
extern "C" __global__ void nsl_patch_matmul_backward(int rows, int taps, int c, int shared, const float* __restrict__ cols,
                                                     const float* __restrict__ m, const float* __restrict__ dout,
                                                     float* __restrict__ dcols, float* __restrict__ dm) {
    NSL_DYNAMIC_SHARED(float, sh);
    const int r = blockIdx.x;
    if (r >= rows) return;
    const int pl = taps * c, tt = taps * taps;
    const float* M = stage_matrix(taps, shared, m + (size_t)r * tt, sh);
    const float* x = cols + (size_t)r * pl;
    const float* g = dout + (size_t)r * pl;
    float* dc = dcols + (size_t)r * pl;
    float* dmr = dm + (size_t)r * tt;
    for (int idx = threadIdx.x; idx < pl; idx += blockDim.x) {
        int q = idx / c, ch = idx - q * c;
        float s = 0.0f;
        for (int a = 0; a < taps; a++) s = __fadd_rn(s, __fmul_rn(M[a * taps + q], g[a * c + ch]));
        dc[idx] = s;
    }
    if (c >= 32) {
        const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
        for (int p = warp; p < tt; p += warps) {
            int a = p / taps, q = p - a * taps;
            float acc = 0.0f;
            for (int ch = lane; ch < c; ch += 32) acc += g[a * c + ch] * x[q * c + ch];
            acc = warp_sumf(acc);
            if (lane == 0) dmr[p] = acc;
        }
    } else {
        for (int p = threadIdx.x; p < tt; p += blockDim.x) {
            int a = p / taps, q = p - a * taps;
            float acc = 0.0f;
            for (int ch = 0; ch < c; ch++) acc += g[a * c + ch] * x[q * c + ch];
            dmr[p] = acc;
        }
    }
}
