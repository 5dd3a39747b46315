// Elementwise ops and simple reductions: axpy, scale, mul, map, dot, mul_rows, mul_cols,
// dot_rows, dot_cols, plus the shared pass-2 kernels of the deterministic reductions
// (`nsl_sum_f64`, `nsl_col_final_f64`, `nsl_col_final_f32`). `fill` is a cuMemsetD32.
//
// Where the CPU backend computes `a·x + b` without fusing, the kernels use the `__f*_rn`
// intrinsics so nvcc does not contract them into an FMA either and both backends round alike.
#include "common.cuh"

extern "C" __global__ void nsl_axpy(int n, float alpha, const float* __restrict__ x, float* __restrict__ y) {
    int i = gid();
    if (i < n) y[i] = __fadd_rn(y[i], __fmul_rn(alpha, x[i]));
}

extern "C" __global__ void nsl_scale(int n, float alpha, float* __restrict__ x) {
    int i = gid();
    if (i < n) x[i] *= alpha;
}

extern "C" __global__ void nsl_mul(int n, const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out) {
    int i = gid();
    if (i < n) out[i] = a[i] * b[i];
}

// kind: 0 SqrtEps(p0), 1 Recip, 2 Square, 3 Sign, 4 Affine(p0, p1); see nsl_core::Map.
extern "C" __global__ void nsl_map(int n, int kind, float p0, float p1, const float* __restrict__ x, float* __restrict__ out) {
    int i = gid();
    if (i >= n) return;
    float v = x[i], r;
    switch (kind) {
        case 0: r = sqrtf(v + p0); break;
        case 1: r = 1.0f / v; break;
        case 2: r = v * v; break;
        case 3: r = v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f); break;
        default: r = __fadd_rn(__fmul_rn(p0, v), p1); break;
    }
    out[i] = r;
}

// dot pass 1: block b sums (in f64) elements b·256 + t, b·256 + t + grid·256, …; then a fixed
// block tree. The grid size is chosen by the host from n alone.
extern "C" __global__ void nsl_dot_partial(int n, const float* __restrict__ a, const float* __restrict__ b, double* __restrict__ part) {
    __shared__ double sh[NSL_THREADS];
    double s = 0.0;
    for (long long i = (long long)blockIdx.x * NSL_THREADS + threadIdx.x; i < n; i += (long long)gridDim.x * NSL_THREADS)
        s += (double)a[i] * (double)b[i];
    double t = block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = t;
}

// Sum of n doubles in one block of NSL_THREADS threads (fixed strides and tree): out[0].
extern "C" __global__ void nsl_sum_f64(int n, const double* __restrict__ v, double* __restrict__ out) {
    __shared__ double sh[NSL_THREADS];
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += NSL_THREADS) s += v[i];
    double t = block_sum(s, sh);
    if (threadIdx.x == 0) out[0] = t;
}

extern "C" __global__ void nsl_mul_rows(int rows, int cols, const float* __restrict__ x, const float* __restrict__ s, float* __restrict__ out) {
    int i = gid();
    if (i < rows * cols) out[i] = x[i] * s[i / cols];
}

extern "C" __global__ void nsl_mul_cols(int rows, int cols, const float* __restrict__ x, const float* __restrict__ s, float* __restrict__ out) {
    int i = gid();
    if (i < rows * cols) out[i] = x[i] * s[i % cols];
}

// One warp per row (8 rows per block): out[r] = Σ_c a[r,c]·b[r,c] in f64.
extern "C" __global__ void nsl_dot_rows(int rows, int cols, const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out) {
    int r = blockIdx.x * (NSL_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const float* ar = a + (size_t)r * cols;
    const float* br = b + (size_t)r * cols;
    double s = 0.0;
    for (int c = lane; c < cols; c += 32) s += (double)ar[c] * (double)br[c];
    s = warp_sum(s);
    if (lane == 0) out[r] = (float)s;
}

// dot_cols pass 1 (see col_partial).
extern "C" __global__ void nsl_dot_cols_partial(int rows, int cols, int chunk, const float* __restrict__ a, const float* __restrict__ b, double* __restrict__ part) {
    col_partial<1>(
        rows, cols, chunk,
        [=](int r, int c, double* acc) {
            size_t i = (size_t)r * cols + c;
            acc[0] += (double)a[i] * (double)b[i];
        },
        part, nullptr);
}

extern "C" __global__ void nsl_col_final_f64(int chunks, int cols, const double* __restrict__ part, double* __restrict__ out) {
    int c = gid();
    if (c < cols) out[c] = col_total(chunks, cols, part, c);
}

extern "C" __global__ void nsl_col_final_f32(int chunks, int cols, const double* __restrict__ part, float* __restrict__ out) {
    int c = gid();
    if (c < cols) out[c] = (float)col_total(chunks, cols, part, c);
}
