// Convolution geometry: im2col and its adjoint col2im (see nsl_core::Backend::im2col).
// cols is rows × k²c with column t·c + ch, tap t = ky·k + kx, row r = (b·ho + oy)·wo + ox.
#include "common.cuh"

// One thread per cols entry (writes coalesced; reads coalesced along channels).
extern "C" __global__ void nsl_im2col(Win g, const float* __restrict__ x, float* __restrict__ cols) {
    const int pl = g.k * g.k * g.c;
    const int rows = g.batch * g.ho * g.wo;
    int e = gid();
    if (e >= rows * pl) return;
    int r = e / pl, j = e - r * pl;
    int t = j / g.c, ch = j - t * g.c;
    const long long src = tap_source(g, out_pixel_of(g, r), t);
    cols[e] = src < 0 ? 0.0f : x[src + ch];
}

// Gather form of the scatter-add: one thread per input element sums, in the fixed order
// (ky, kx) — the CPU backend's order — every cols entry that read it. No atomics; overwrites dx.
extern "C" __global__ void nsl_col2im(Win g, const float* __restrict__ dcols, float* __restrict__ dx) {
    const int pl = g.k * g.k * g.c;
    const int i = gid();
    if (i >= input_len(g)) return;
    const Pixel px = pixel_of(g, i);
    float s = 0.0f;
    for_readers(g, px.y, px.x, [&](int oy, int ox, int ky, int kx) {
        s += dcols[((size_t)(px.b * g.ho + oy) * g.wo + ox) * pl + (ky * g.k + kx) * g.c + px.ch];
    });
    dx[i] = s;
}

// Backward of nsl_conv2d, scale gradient, from dP = dy·wᵀ (rows × k²c, computed by the GEMM):
// ds[r][t] = Σ_ch x[src(r, t), ch] · dP[r][t·c + ch], one thread per (r, t), channels in order;
// overwrites ds.
extern "C" __global__ void nsl_conv2d_ds(Win g, const float* __restrict__ x, const float* __restrict__ dp,
                                         float* __restrict__ ds) {
    const int taps = g.k * g.k;
    int e = gid();
    if (e >= g.batch * g.ho * g.wo * taps) return;
    int r = e / taps, t = e - r * taps;
    const long long src = tap_source(g, out_pixel_of(g, r), t);
    float acc = 0.0f;
    if (src >= 0) {
        const float* xp = x + src;
        const float* dpr = dp + (size_t)e * g.c;  // row r, tap t: (r·taps + t)·c
        for (int ch = 0; ch < g.c; ch++) acc = fmaf(xp[ch], dpr[ch], acc);
    }
    ds[e] = acc;
}
