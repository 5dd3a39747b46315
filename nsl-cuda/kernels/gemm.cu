// Strided-batch SGEMM, C[z] = alpha·op(A[z])·op(B[z]) + beta·C[z] (row-major, see nsl_core::Gemm).
//
// Classic shared-memory tiling: a block of 256 threads computes a 64×64 tile of C, staging
// 64×16 panels of op(A) and 16×64 panels of op(B) through shared memory; each thread keeps a
// 4×4 register block (rows ty + 16·i, columns tx + 16·j, so shared reads are conflict-free
// broadcasts). Global loads are coalesced along the contiguous dimension of each operand for
// all four transpose combinations. Each output is one FMA chain over k in order, so results
// are deterministic. Edges are zero-padded in shared memory; with beta = 0, C is never read
// (garbage/NaN in C is ignored). blockIdx.x tiles m, blockIdx.y tiles n, blockIdx.z is the
// batch item.
//
// Split-k: a product with few output tiles and a long k (a weight gradient sums over
// batch·h·w rows) leaves most of the GPU idle, so the host may cut k into `splits` slices of
// `slice`: blockIdx.z then also numbers the slice, each block writes its partial tile to a
// scratch buffer, and nsl_split_k_sum adds the partials in slice order (deterministic).
#include "common.cuh"

#define BM 64
#define BN 64
#define BK 16

// op(A) of a plain product: A[i][l], stored k×m when transposed.
template <bool TA>
struct MatA {
    const float* __restrict__ a;
    int m, k;
    __device__ __forceinline__ float operator()(int i, int l) const {
        return TA ? a[(size_t)l * m + i] : a[(size_t)i * k + l];
    }
};

// The implicit patch matrix of a convolution (nsl_core::Backend::conv2d), never materialised:
// A[r][t·c + ch] = s[r][t] · x[b, oy·stride + ky − pad_top, ox·stride + kx − pad_left, ch]
// (zero outside the map; s ≡ 1 when null), t = ky·k + kx, r = (b·ho + oy)·wo + ox.
struct ConvA {
    Win g;
    const float* __restrict__ x;
    const float* __restrict__ s;
    __device__ __forceinline__ float operator()(int r, int l) const {
        int t = l / g.c, ch = l - t * g.c;
        int ox = r % g.wo, rest = r / g.wo;
        int oy = rest % g.ho, b = rest / g.ho;
        int y = oy * g.stride + t / g.k - g.pad_top;
        int xx = ox * g.stride + t % g.k - g.pad_left;
        if (y < 0 || y >= g.h || xx < 0 || xx >= g.w) return 0.0f;
        float v = x[((size_t)(b * g.h + y) * g.w + xx) * g.c + ch];
        return s ? s[(size_t)r * g.k * g.k + t] * v : v;
    }
};

// op(B) of a plain product: B[l][j], stored n×k when transposed.
template <bool TB>
struct MatB {
    const float* __restrict__ b;
    int k, n;
    __device__ __forceinline__ float operator()(int l, int j) const {
        return TB ? b[(size_t)j * k + l] : b[(size_t)l * n + j];
    }
};

// The patch matrix transposed, (s ⊙ P)ᵀ[i][r] = ConvA(r, i): the weight gradient's op(A).
struct ConvAT {
    ConvA a;
    __device__ __forceinline__ float operator()(int i, int r) const { return a(r, i); }
};

// The input gradient's op(A), dx = A'·B' with A'[p][t·n + o] = s[r][t]·dy[r][o] for the output
// r whose tap t reads input pixel p = (b·h + iy)·w + ix (zero when none does).
struct ConvDyA {
    Win g;
    int n;
    const float* __restrict__ dy;
    const float* __restrict__ s;
    __device__ __forceinline__ float operator()(int p, int l) const {
        int t = l / n, o = l - t * n;
        int ix = p % g.w, rest = p / g.w;
        int iy = rest % g.h, b = rest / g.h;
        int oy = reader(iy, g.pad_top, t / g.k, g.stride, g.ho);
        int ox = reader(ix, g.pad_left, t % g.k, g.stride, g.wo);
        if (oy < 0 || ox < 0) return 0.0f;
        size_t r = (size_t)(b * g.ho + oy) * g.wo + ox;
        float v = dy[r * n + o];
        return s ? s[r * g.k * g.k + t] * v : v;
    }
};

// The input gradient's op(B): B'[t·n + o][ch] = w[t·c + ch][o].
struct ConvWT {
    const float* __restrict__ w;
    int c, n;
    __device__ __forceinline__ float operator()(int l, int ch) const {
        int t = l / n, o = l - t * n;
        return w[((size_t)t * c + ch) * n + o];
    }
};

// One 64×64 tile of C = alpha·op(A)[:, k0..k1]·op(B)[k0..k1, :] + beta·C; `a_at(i, l)` and
// `b_at(l, j)` read op(A) and op(B) (TA and TB pick the load patterns that keep their reads
// coalesced).
template <bool TA, bool TB, class ALoad, class BLoad>
__device__ __forceinline__ void gemm_tile(int m, int n, int k0, int k1, float alpha, float beta, ALoad a_at,
                                          BLoad b_at, float* __restrict__ C) {
    __shared__ float As[BK][BM + 1];
    __shared__ float Bs[BK][BN + 1];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int bm = blockIdx.x * BM, bn = blockIdx.y * BN;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (int l0 = k0; l0 < k1; l0 += BK) {
#pragma unroll
        for (int s = 0; s < 4; s++) {
            int e = tid + NSL_THREADS * s;
            int i, l;
            if (TA) { i = e % BM; l = e / BM; } else { l = e % BK; i = e / BK; }
            int gi = bm + i, gl = l0 + l;
            float v = 0.0f;
            if (gi < m && gl < k1) v = a_at(gi, gl);
            As[l][i] = v;
        }
#pragma unroll
        for (int s = 0; s < 4; s++) {
            int e = tid + NSL_THREADS * s;
            int j, l;
            if (TB) { l = e % BK; j = e / BK; } else { j = e % BN; l = e / BN; }
            int gj = bn + j, gl = l0 + l;
            float v = 0.0f;
            if (gj < n && gl < k1) v = b_at(gl, gj);
            Bs[l][j] = v;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; i++) {
        int gi = bm + ty + 16 * i;
        if (gi >= m) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int gj = bn + tx + 16 * j;
            if (gj >= n) continue;
            size_t idx = (size_t)gi * n + gj;
            float r = alpha * acc[i][j];
            C[idx] = beta == 0.0f ? r : fmaf(beta, C[idx], r);
        }
    }
}

// blockIdx.z = item·splits + slice. With splits > 1, C is the partials buffer (splits·batch
// tiles of m×n, written with the alpha and beta given, which the host sets to 1 and 0).
#define NSL_GEMM_PARAMS                                                                              \
    int m, int n, int k, float alpha, float beta, const float* __restrict__ A, const float* __restrict__ B, \
        float* __restrict__ C, long long sa, long long sb, long long sc, int splits, int slice
#define NSL_GEMM_BODY(TA, TB)                                                                        \
    const long long z = blockIdx.z, item = z / splits;                                               \
    const int k0 = (int)(z - item * splits) * slice, k1 = min(k, k0 + slice);                        \
    float* out = splits > 1 ? C + z * (long long)m * n : C + item * sc;                             \
    gemm_tile<TA, TB>(m, n, k0, k1, alpha, beta, MatA<TA>{A + item * sa, m, k}, MatB<TB>{B + item * sb, k, n}, out);

extern "C" __global__ void __launch_bounds__(NSL_THREADS) nsl_gemm_nn(NSL_GEMM_PARAMS) { NSL_GEMM_BODY(false, false) }
extern "C" __global__ void __launch_bounds__(NSL_THREADS) nsl_gemm_nt(NSL_GEMM_PARAMS) { NSL_GEMM_BODY(false, true) }
extern "C" __global__ void __launch_bounds__(NSL_THREADS) nsl_gemm_tn(NSL_GEMM_PARAMS) { NSL_GEMM_BODY(true, false) }
extern "C" __global__ void __launch_bounds__(NSL_THREADS) nsl_gemm_tt(NSL_GEMM_PARAMS) { NSL_GEMM_BODY(true, true) }

// Fused convolution y = (s ⊙ im2col(x)) · w (nsl_core::Backend::conv2d): the GEMM above with
// the patch matrix read from x (and scaled) while staging it in shared memory. `s` may be null.
// y is rows × n, w is k²c × n. blockIdx.x tiles rows, blockIdx.y tiles n.
extern "C" __global__ void __launch_bounds__(NSL_THREADS)
    nsl_conv2d(Win g, int n, const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ s,
               float* __restrict__ y) {
    const int rows = g.batch * g.ho * g.wo, pl = g.k * g.k * g.c;
    gemm_tile<false, false>(rows, n, 0, pl, 1.0f, 0.0f, ConvA{g, x, s}, MatB<false>{w, pl, n}, y);
}

// Backward of nsl_conv2d, weight gradient: out[z] = (s ⊙ P)ᵀ·dy + beta·out[z] (k²c × n) over the
// rows z·slice .. (z+1)·slice, the patch matrix read from x. blockIdx.x tiles k²c, blockIdx.y
// tiles n, blockIdx.z is the slice: one slice accumulates into dw (beta = 1); several write
// partials (beta = 0) that nsl_split_k_sum adds to dw.
extern "C" __global__ void __launch_bounds__(NSL_THREADS)
    nsl_conv2d_dw(Win g, int n, const float* __restrict__ x, const float* __restrict__ s, const float* __restrict__ dy,
                  float* __restrict__ out, int slice, float beta) {
    const int rows = g.batch * g.ho * g.wo, pl = g.k * g.k * g.c;
    const int z = blockIdx.z, r0 = z * slice, r1 = min(rows, r0 + slice);
    gemm_tile<true, false>(pl, n, r0, r1, 1.0f, beta, ConvAT{ConvA{g, x, s}}, MatB<false>{dy, rows, n},
                           out + (size_t)z * pl * n);
}

// Backward of nsl_conv2d, input gradient: dx = col2im(s ⊙ (dy·wᵀ)) as one product over
// (tap, output channel) per input pixel, nothing materialised; overwrites dx.
// blockIdx.x tiles the batch·h·w pixels, blockIdx.y tiles c.
extern "C" __global__ void __launch_bounds__(NSL_THREADS)
    nsl_conv2d_dx(Win g, int n, const float* __restrict__ w, const float* __restrict__ s, const float* __restrict__ dy,
                  float* __restrict__ dx) {
    const int pixels = g.batch * g.h * g.w, depth = g.k * g.k * n;
    gemm_tile<false, true>(pixels, g.c, 0, depth, 1.0f, 0.0f, ConvDyA{g, n, dy, s}, ConvWT{w, g.c, n}, dx);
}

// The split-k reduction: c[i] = alpha·Σ_z part[z·len + i] + beta·c[i], slices added in order.
extern "C" __global__ void nsl_split_k_sum(int len, int parts, const float* __restrict__ part, float alpha, float beta,
                                           float* __restrict__ c) {
    int i = gid();
    if (i >= len) return;
    float s = 0.0f;
    for (int z = 0; z < parts; z++) s += part[(size_t)z * len + i];
    c[i] = beta == 0.0f ? alpha * s : fmaf(beta, c[i], alpha * s);
}
