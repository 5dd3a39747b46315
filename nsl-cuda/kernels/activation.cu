// ReLU, max-pooling and row softmax (formulas on nsl_core::Backend).
#include "common.cuh"

extern "C" __global__ void nsl_relu(int n, const float* __restrict__ x, float* __restrict__ y) {
    int i = gid();
    if (i < n) y[i] = fmaxf(x[i], 0.0f);
}

extern "C" __global__ void nsl_relu_backward(int n, const float* __restrict__ y, const float* __restrict__ dy, float* __restrict__ dx) {
    int i = gid();
    if (i < n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// One thread per output (r, ch); only taps inside the map take part (padding never wins; a
// window entirely in the padding gives -inf, as on the CPU).
extern "C" __global__ void nsl_max_pool(Win g, const float* __restrict__ x, float* __restrict__ y) {
    const int n = g.batch * g.ho * g.wo * g.c;
    int i = gid();
    if (i >= n) return;
    int ch = i % g.c, r = i / g.c;
    const OutPixel o = out_pixel_of(g, r);
    float m = -INFINITY;
    for_window_taps(g, o.oy, o.ox, [&](int yy, int xx) {
        m = fmaxf(m, x[((size_t)(o.b * g.h + yy) * g.w + xx) * g.c + ch]);
        return false;
    });
    y[i] = m;
}

// Whether input (yy, xx) is the first (row-major) tap of output (oy, ox)'s window equal to `ym`.
__device__ __forceinline__ bool first_max(const Win& g, const float* __restrict__ xb, int ch, int oy, int ox, int yy, int xx, float ym) {
    bool first = false;
    for_window_taps(g, oy, ox, [&](int sy, int sx) {
        if (xb[((size_t)sy * g.w + sx) * g.c + ch] != ym) return false;
        first = sy == yy && sx == xx;
        return true;
    });
    return first;
}

// Gather form of the max-pool scatter: one thread per input element adds dy of every window
// whose first max it is, in increasing output order (oy, then ox) — the CPU's order — so the
// sums match it bitwise. Overwrites dx.
extern "C" __global__ void nsl_max_pool_backward(Win g, const float* __restrict__ x, const float* __restrict__ y,
                                                 const float* __restrict__ dy, float* __restrict__ dx) {
    const int i = gid();
    if (i >= input_len(g)) return;
    const Pixel px = pixel_of(g, i);
    const float v = x[i];
    const float* xb = x + (size_t)px.b * g.h * g.w * g.c;
    float s = 0.0f;
    // oy = (yy + pad − ky)/stride grows as ky shrinks: taps downwards.
    for_readers<true>(g, px.y, px.x, [&](int oy, int ox, int, int) {
        const size_t o = ((size_t)(px.b * g.ho + oy) * g.wo + ox) * g.c + px.ch;
        const float ym = y[o];
        if (v == ym && first_max(g, xb, px.ch, oy, ox, px.y, px.x, ym)) s += dy[o];
    });
    dx[i] = s;
}

// One warp per row: y = exp(x − max) / Σ exp(x − max), the normaliser summed in f64 and
// applied as a multiplication by its f32 reciprocal (as on the CPU).
extern "C" __global__ void nsl_softmax_rows(int rows, int cols, const float* __restrict__ x, float* __restrict__ y) {
    int r = blockIdx.x * (NSL_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const float* xr = x + (size_t)r * cols;
    float* yr = y + (size_t)r * cols;
    float mx = -INFINITY;
    for (int c = lane; c < cols; c += 32) mx = fmaxf(mx, xr[c]);
    mx = warp_maxf(mx);
    double sum = 0.0;
    for (int c = lane; c < cols; c += 32) {
        float e = expf(xr[c] - mx);
        yr[c] = e;
        sum += (double)e;
    }
    sum = warp_sum(sum);
    float inv = (float)(1.0 / sum);
    for (int c = lane; c < cols; c += 32) yr[c] *= inv;
}

// One warp per row: dx = y·(dy − Σ_j dy_j·y_j), the dot in f64.
extern "C" __global__ void nsl_softmax_rows_backward(int rows, int cols, const float* __restrict__ y, const float* __restrict__ dy,
                                                     float* __restrict__ dx) {
    int r = blockIdx.x * (NSL_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const size_t base = (size_t)r * cols;
    double s = 0.0;
    for (int c = lane; c < cols; c += 32) s += (double)dy[base + c] * (double)y[base + c];
    float sf = (float)warp_sum(s);
    for (int c = lane; c < cols; c += 32) dx[base + c] = y[base + c] * (dy[base + c] - sf);
}
