// Window L2 norm and batch normalisation (formulas on nsl_core::Backend).
//
// Batch-norm statistics follow the CPU backend: f64 per-channel sums (deterministic column
// reductions, see common.cuh), two passes (mean, then centred squares), per-channel constants
// computed in f64 and rounded to f32 exactly where the CPU rounds them.
#include "common.cuh"

// One warp per output row r: n[r] = sqrt(Σ_{t,ch} x[src(r,t), ch]² + eps) over the zero-padded
// window; lanes stride over the flattened (t, ch) index, then a fixed warp tree.
extern "C" __global__ void nsl_window_norm(Win g, float eps, const float* __restrict__ x, float* __restrict__ n) {
    const int rows = g.batch * g.ho * g.wo;
    int r = blockIdx.x * (NSL_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const OutPixel o = out_pixel_of(g, r);
    const int pl = g.k * g.k * g.c;
    float s = 0.0f;
    for (int idx = lane; idx < pl; idx += 32) {
        int t = idx / g.c, ch = idx - t * g.c;
        const long long src = tap_source(g, o, t);
        if (src >= 0) {
            float v = x[src + ch];
            s += v * v;
        }
    }
    s = warp_sumf(s);
    if (lane == 0) n[r] = sqrtf(s + eps);
}

// dx[i] += x[i] · Σ_{r reading i} dn[r]/n[r]: one thread per input element, readers in the
// fixed order (ky, kx) (gather, no atomics). Accumulates.
extern "C" __global__ void nsl_window_norm_backward(Win g, const float* __restrict__ x, const float* __restrict__ n,
                                                    const float* __restrict__ dn, float* __restrict__ dx) {
    const int i = gid();
    if (i >= input_len(g)) return;
    const Pixel px = pixel_of(g, i);
    float s = 0.0f;
    for_readers(g, px.y, px.x, [&](int oy, int ox, int, int) {
        const int r = (px.b * g.ho + oy) * g.wo + ox;
        s += dn[r] / n[r];
    });
    if (s != 0.0f) dx[i] = __fadd_rn(dx[i], __fmul_rn(s, x[i]));
}

// ---- batch norm ------------------------------------------------------------------------------

// Pass 1 of Σ_r x[r,c].
extern "C" __global__ void nsl_bn_sum_partial(int rows, int c, int chunk, const float* __restrict__ x, double* __restrict__ part) {
    col_partial<1>(
        rows, c, chunk, [=](int r, int ch, double* acc) { acc[0] += (double)x[(size_t)r * c + ch]; }, part, nullptr);
}

// Pass 1 of Σ_r (x[r,c] − μ_c)², μ_c = sums[c]·inv_rows.
extern "C" __global__ void nsl_bn_sq_partial(int rows, int c, int chunk, double inv_rows, const float* __restrict__ x,
                                             const double* __restrict__ sums, double* __restrict__ part) {
    col_partial<1>(
        rows, c, chunk,
        [=](int r, int ch, double* acc) {
            double e = (double)x[(size_t)r * c + ch] - sums[ch] * inv_rows;
            acc[0] += e * e;
        },
        part, nullptr);
}

// Per channel: mean, biased var (f32, written out) and scale = γ/σ.
extern "C" __global__ void nsl_bn_finalize_train(int c, double inv_rows, float eps, const double* __restrict__ sums,
                                                 const double* __restrict__ sq, const float* __restrict__ gamma,
                                                 float* __restrict__ mean, float* __restrict__ var, float* __restrict__ scale) {
    int ch = gid();
    if (ch >= c) return;
    float m = (float)(sums[ch] * inv_rows);
    float v = (float)(sq[ch] * inv_rows);
    mean[ch] = m;
    var[ch] = v;
    double inv = 1.0 / sqrt((double)v + (double)eps);
    scale[ch] = (float)((double)gamma[ch] * inv);
}

// scale = γ/σ of the running statistics.
extern "C" __global__ void nsl_bn_finalize_eval(int c, float eps, const float* __restrict__ gamma,
                                                const float* __restrict__ var, float* __restrict__ scale) {
    int ch = gid();
    if (ch >= c) return;
    double inv = 1.0 / sqrt((double)var[ch] + (double)eps);
    scale[ch] = (float)((double)gamma[ch] * inv);
}

// y = (x − μ)·scale + β (unfused, as on the CPU; centring first keeps y accurate when σ is tiny).
extern "C" __global__ void nsl_bn_affine(int n, int c, const float* __restrict__ x, const float* __restrict__ mean,
                                         const float* __restrict__ scale, const float* __restrict__ beta,
                                         float* __restrict__ y) {
    int i = gid();
    if (i >= n) return;
    int ch = i % c;
    y[i] = __fadd_rn(__fmul_rn(__fsub_rn(x[i], mean[ch]), scale[ch]), beta[ch]);
}

// inv[c] = 1/sqrt(var[c] + eps) in f64.
extern "C" __global__ void nsl_bn_inv(int c, float eps, const float* __restrict__ var, double* __restrict__ inv) {
    int ch = gid();
    if (ch < c) inv[ch] = 1.0 / sqrt((double)var[ch] + (double)eps);
}

// Pass 1 of Σ dy and Σ dy·x̂ (x̂ = (x − μ)·inv), both in f64.
extern "C" __global__ void nsl_bn_bwd_partial(int rows, int c, int chunk, const float* __restrict__ x, const float* __restrict__ dy,
                                              const float* __restrict__ mean, const double* __restrict__ inv,
                                              double* __restrict__ part_dy, double* __restrict__ part_dyx) {
    col_partial<2>(
        rows, c, chunk,
        [=](int r, int ch, double* acc) {
            size_t i = (size_t)r * c + ch;
            double g = (double)dy[i];
            acc[0] += g;
            acc[1] += g * ((double)x[i] - (double)mean[ch]) * inv[ch];
        },
        part_dy, part_dyx);
}

// dβ += Σdy, dγ += Σdy·x̂ (accumulate), and the f32 constants of the dx pass:
// k = γ·inv, a = mean(dy), b = mean(dy·x̂), inv32 (consts = [k | a | b | inv32], 4c floats).
extern "C" __global__ void nsl_bn_bwd_finalize(int c, double n, const double* __restrict__ sdy, const double* __restrict__ sdyx,
                                               const float* __restrict__ gamma, const double* __restrict__ inv,
                                               float* __restrict__ dgamma, float* __restrict__ dbeta, float* __restrict__ consts) {
    int ch = gid();
    if (ch >= c) return;
    dbeta[ch] += (float)sdy[ch];
    dgamma[ch] += (float)sdyx[ch];
    consts[ch] = (float)((double)gamma[ch] * inv[ch]);
    consts[c + ch] = (float)(sdy[ch] / n);
    consts[2 * c + ch] = (float)(sdyx[ch] / n);
    consts[3 * c + ch] = (float)inv[ch];
}

// dx = k·(dy − a − x̂·b), x̂ = (x − μ)·inv32, in unfused f32 as on the CPU.
extern "C" __global__ void nsl_bn_bwd_dx(int n, int c, const float* __restrict__ x, const float* __restrict__ dy,
                                         const float* __restrict__ mean, const float* __restrict__ consts, float* __restrict__ dx) {
    int i = gid();
    if (i >= n) return;
    int ch = i % c;
    float k = consts[ch], a = consts[c + ch], b = consts[2 * c + ch], inv = consts[3 * c + ch];
    float xh = __fmul_rn(__fsub_rn(x[i], mean[ch]), inv);
    dx[i] = __fmul_rn(k, __fsub_rn(__fsub_rn(dy[i], a), __fmul_rn(xh, b)));
}
