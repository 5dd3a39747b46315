// Strided-batch SGEMM, C[z] = alpha·op(A[z])·op(B[z]) + beta·C[z] (row-major, see nsl_core::Gemm).
//
// Shared-memory tiling: a block of 256 threads computes a 128×64 tile of C, staging 128×16
// panels of op(A) and 16×64 panels of op(B) through shared memory; each thread keeps an 8×4
// register block (rows 8·ty .. 8·ty + 7, columns 4·tx .. 4·tx + 3) and reads it from shared
// memory as three 128-bit loads per step of k (32 FMAs). The next panels' global loads are
// issued into registers before the current panels are multiplied (prefetch), hiding their
// latency. Global loads are coalesced along the contiguous dimension of each operand for all
// four transpose combinations. Each output is one FMA chain over k in order, so results are
// deterministic. Edges are zero-padded in shared memory; with beta = 0, C is never read
// (garbage/NaN in C is ignored). blockIdx.x tiles m, blockIdx.y tiles n, blockIdx.z is the
// batch item.
//
// Split-k: a product with few output tiles and a long k (a weight gradient sums over
// batch·h·w rows) leaves most of the GPU idle, so the host may cut k into `splits` slices of
// `slice`: blockIdx.z then also numbers the slice, each block writes its partial tile to a
// scratch buffer, and nsl_split_k_sum adds the partials in slice order (deterministic).
#include "common.cuh"

#define BM 128
#define BN 64  // columns of the standard tile; the _n32 kernels use 32 (outputs of at most 32 columns)
#define BK 16
#define TM 8  // rows of C per thread (columns per thread: BN / 16)
#define A_LOADS (BM * BK / NSL_THREADS)

// A shared panel of W columns, rows padded by 4 floats: 16-byte aligned for the 128-bit reads,
// and the transposing stores spread over banks.
template <int W>
struct alignas(16) Panel {
    float v[BK][W + 4];
};

// N consecutive floats of 16-byte-aligned shared memory into registers.
template <int N>
__device__ __forceinline__ void lds(const float* p, float (&v)[N]);
template <>
__device__ __forceinline__ void lds<4>(const float* p, float (&v)[4]) {
    const float4 q = ld4(p);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
}
template <>
__device__ __forceinline__ void lds<2>(const float* p, float (&v)[2]) {
    v[0] = p[0], v[1] = p[1];
}

// Loaders of op(A) split each read in two: `row(i)` does the work that depends only on the row
// i — once per thread and tile, before the k loop (each thread reads the same rows of every
// panel) — and `at(row, l)` the rest. For the implicit convolution matrices that hoists the
// pixel decomposition (integer divisions) out of the inner loop.

// op(A) of a plain product: A[i][l], stored k×m when transposed.
template <bool TA>
struct MatA {
    const float* __restrict__ a;
    int m, k;
    using Row = int;
    __device__ __forceinline__ Row row(int i) const { return i; }
    __device__ __forceinline__ float at(Row i, int l) const {
        return TA ? a[(size_t)l * m + i] : a[(size_t)i * k + l];
    }
    // out[u] = A[i][l + STEP·u] (zero unless ok and the depth is below k1).
    template <int N, int STEP>
    __device__ __forceinline__ void run(Row i, int l, int k1, bool ok, float (&out)[N]) const {
#pragma unroll
        for (int u = 0; u < N; u++) out[u] = ok && l + STEP * u < k1 ? at(i, l + STEP * u) : 0.0f;
    }
};

// The implicit patch matrix of a convolution (nsl_core::Backend::conv2d), never materialised:
// A[r][t·c + ch] = s[r][t] · x[b, oy·stride + ky − pad_top, ox·stride + kx − pad_left, ch]
// (zero outside the map; s ≡ 1 when null), t = ky·k + kx, r = (b·ho + oy)·wo + ox.
struct ConvA {
    Win g;
    const float* __restrict__ x;
    const float* __restrict__ s;
    // Row r: its window's top-left input coordinate and that pixel's offset in x (which may lie
    // outside the map; only in-map taps are read).
    struct Row {
        int r, y0, x0, base;
    };
    __device__ __forceinline__ Row row(int r) const {
        const OutPixel o = out_pixel_of(g, r);
        int y0 = o.oy * g.stride - g.pad_top, x0 = o.ox * g.stride - g.pad_left;
        return Row{r, y0, x0, ((o.b * g.h + y0) * g.w + x0) * g.c};
    }
    __device__ __forceinline__ float at(const Row& q, int l) const {
        int t = l / g.c, ch = l - t * g.c;
        int ky = t / g.k, kx = t - ky * g.k;
        int y = q.y0 + ky, xx = q.x0 + kx;
        if (y < 0 || y >= g.h || xx < 0 || xx >= g.w) return 0.0f;
        float v = x[q.base + (ky * g.w + kx) * g.c + ch];
        return s ? s[(size_t)q.r * g.k * g.k + t] * v : v;
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

// Boilerplate: ConvAT, like ConvA and every op(A) loader, declares its operands, its `Row` and
// `row` (the interface gemm_tile reads), so the declarations repeat; the index logic differs.
// The patch matrix transposed, (s ⊙ P)ᵀ[i][r] = ConvA(r, i): the weight gradient's op(A). The
// row is a patch column i = t·c + ch; the output pixel r varies along k.
struct ConvAT {
    Win g;
    const float* __restrict__ x;
    const float* __restrict__ s;
    struct Row {
        int t, ky, kx, ch;
    };
    __device__ __forceinline__ Row row(int i) const {
        int t = i / g.c, ky = t / g.k;
        return Row{t, ky, t - ky * g.k, i - t * g.c};
    }
    // out[u] = (s ⊙ P)[r + STEP·u][i] (zero unless ok and the pixel is below r_end): the pixel
    // (b, oy, ox) is decomposed once and then stepped.
    template <int N, int STEP>
    __device__ __forceinline__ void run(const Row& q, int r, int r_end, bool ok, float (&out)[N]) const {
        int ox = r % g.wo, rest = r / g.wo;
        int oy = rest % g.ho, b = rest / g.ho;
#pragma unroll
        for (int u = 0; u < N; u++) {
            float v = 0.0f;
            int y = oy * g.stride + q.ky - g.pad_top, xx = ox * g.stride + q.kx - g.pad_left;
            if (ok && r < r_end && y >= 0 && y < g.h && xx >= 0 && xx < g.w) {
                v = x[((size_t)(b * g.h + y) * g.w + xx) * g.c + q.ch];
                if (s) v *= s[(size_t)r * g.k * g.k + q.t];
            }
            out[u] = v;
            r += STEP;
            ox += STEP;
            while (ox >= g.wo) {
                ox -= g.wo;
                if (++oy == g.ho) oy = 0, b++;
            }
        }
    }
};

// The input gradient's op(A), dx = A'·B' with A'[p][t·n + o] = s[r][t]·dy[r][o] for the output
// r whose tap t reads input pixel p = (b·h + iy)·w + ix (zero when none does).
struct ConvDyA {
    Win g;
    int n;
    const float* __restrict__ dy;
    const float* __restrict__ s;
    // Pixel p: its batch item's first output row and its padded coordinates.
    struct Row {
        int bho, iyp, ixp;
    };
    __device__ __forceinline__ Row row(int p) const {
        int ix = p % g.w, rest = p / g.w;
        int iy = rest % g.h, b = rest / g.h;
        return Row{b * g.ho, iy + g.pad_top, ix + g.pad_left};
    }
    // Output coordinate read by tap offset kk from padded coordinate v, or −1.
    __device__ __forceinline__ int reads(int v, int n_out) const {
        if (g.stride != 1) {
            if (v < 0 || v % g.stride != 0) return -1;
            v /= g.stride;
        }
        return v >= 0 && v < n_out ? v : -1;
    }
    __device__ __forceinline__ float at(const Row& q, int l) const {
        int t = l / n, o = l - t * n;
        int ky = t / g.k, kx = t - ky * g.k;
        int oy = reads(q.iyp - ky, g.ho), ox = reads(q.ixp - kx, g.wo);
        if (oy < 0 || ox < 0) return 0.0f;
        size_t r = (size_t)(q.bho + oy) * g.wo + ox;
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

template <bool B>
struct Bool {};

// Element s of thread tid in the op(A) panel: its row i within the tile and depth l within the
// panel (consecutive threads along op(A)'s contiguous dimension, so global reads coalesce).
// (Element e = tid + 256·s split as e % BM, e / BM or e % BK, e / BK; 256 is a multiple of both,
// so the row, or the depth, is the same for every s.)
template <bool TA>
__device__ __forceinline__ void a_pos(int tid, int s, int& i, int& l) {
    if (TA) {
        i = tid % BM, l = tid / BM + (NSL_THREADS / BM) * s;
    } else {
        l = tid % BK, i = tid / BK + (NSL_THREADS / BK) * s;
    }
}

// The thread's A_LOADS elements of the op(A) panel at depth l0 (zero outside m × k1).
// Not transposed: element s at its own row — prepared in rows[s].
template <class ALoad>
__device__ __forceinline__ void fetch_a(Bool<false>, const ALoad& a_at, const typename ALoad::Row (&rows)[A_LOADS],
                                        int tid, int bm, int m, int l0, int k1, float (&ra)[A_LOADS]) {
#pragma unroll
    for (int s = 0; s < A_LOADS; s++) {
        int i, l;
        a_pos<false>(tid, s, i, l);
        int gi = bm + i, gl = l0 + l;
        ra[s] = gi < m && gl < k1 ? a_at.at(rows[s], gl) : 0.0f;
    }
}
// Transposed: every element is in row tid % BM, at depths l0 + tid / BM + s·(256 / BM) (see
// a_pos) — a run the loader reads in one go (the weight gradient walks its pixels incrementally).
template <class ALoad>
__device__ __forceinline__ void fetch_a(Bool<true>, const ALoad& a_at, const typename ALoad::Row (&rows)[A_LOADS],
                                        int tid, int bm, int m, int l0, int k1, float (&ra)[A_LOADS]) {
    a_at.template run<A_LOADS, NSL_THREADS / BM>(rows[0], l0 + tid / BM, k1, bm + tid % BM < m, ra);
}

// One 128×BN_ tile of C = alpha·op(A)[:, k0..k1]·op(B)[k0..k1, :] + beta·C; `a_at` (a loader
// as above) and `b_at(l, j)` read op(A) and op(B) (TA and TB pick the load patterns that keep
// their reads coalesced).
template <bool TA, bool TB, int BN_ = BN, class ALoad, class BLoad>
__device__ __forceinline__ void gemm_tile(int m, int n, int k0, int k1, float alpha, float beta, ALoad a_at,
                                          BLoad b_at, float* __restrict__ C) {
    constexpr int TN = BN_ / 16, B_LOADS = BK * BN_ / NSL_THREADS;
    __shared__ Panel<BM> As;
    __shared__ Panel<BN_> Bs;
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int bm = blockIdx.x * BM, bn = blockIdx.y * BN_;
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    // Element s of this thread in the op(B) panel: its column within the tile and depth (as a_pos).
    auto b_pos = [&](int s, int& j, int& l) {
        int e = tid + NSL_THREADS * s;
        if (TB) { l = e % BK; j = e / BK; } else { j = e % BN_; l = e / BN_; }
    };
    // The rows of op(A) this thread loads are the same in every panel: prepare them once.
    typename ALoad::Row rows[A_LOADS];
#pragma unroll
    for (int s = 0; s < A_LOADS; s++) {
        int i, l;
        a_pos<TA>(tid, s, i, l);
        rows[s] = a_at.row(min(bm + i, m - 1));
    }
    float ra[A_LOADS], rb[B_LOADS];
    auto fetch = [&](int l0) {
        fetch_a(Bool<TA>{}, a_at, rows, tid, bm, m, l0, k1, ra);
#pragma unroll
        for (int s = 0; s < B_LOADS; s++) {
            int j, l;
            b_pos(s, j, l);
            int gj = bn + j, gl = l0 + l;
            rb[s] = gj < n && gl < k1 ? b_at(gl, gj) : 0.0f;
        }
    };

    if (k0 < k1) fetch(k0);
    for (int l0 = k0; l0 < k1; l0 += BK) {
#pragma unroll
        for (int s = 0; s < A_LOADS; s++) {
            int i, l;
            a_pos<TA>(tid, s, i, l);
            As.v[l][i] = ra[s];
        }
#pragma unroll
        for (int s = 0; s < B_LOADS; s++) {
            int j, l;
            b_pos(s, j, l);
            Bs.v[l][j] = rb[s];
        }
        __syncthreads();
        if (l0 + BK < k1) fetch(l0 + BK);  // in flight while this panel is multiplied
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            const float4 a0 = ld4(&As.v[kk][TM * ty]), a1 = ld4(&As.v[kk][TM * ty + 4]);
            const float a[TM] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            float b[TN];
            lds(&Bs.v[kk][TN * tx], b);
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < TM; i++) {
        int gi = bm + TM * ty + i;
        if (gi >= m) continue;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            int gj = bn + TN * tx + j;
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

extern "C" __global__ void __launch_bounds__(NSL_THREADS, 2) nsl_gemm_nn(NSL_GEMM_PARAMS) { NSL_GEMM_BODY(false, false) }
extern "C" __global__ void __launch_bounds__(NSL_THREADS, 2) nsl_gemm_nt(NSL_GEMM_PARAMS) { NSL_GEMM_BODY(false, true) }
extern "C" __global__ void __launch_bounds__(NSL_THREADS, 2) nsl_gemm_tn(NSL_GEMM_PARAMS) { NSL_GEMM_BODY(true, false) }
extern "C" __global__ void __launch_bounds__(NSL_THREADS, 2) nsl_gemm_tt(NSL_GEMM_PARAMS) { NSL_GEMM_BODY(true, true) }

// The three convolution kernels below are the tiled GEMM with an implicit operand. Each
// takes (out, slice, beta): blockIdx.z is the slice of the reduction it sums (k0 = z·slice),
// and it writes out + z·(its output size) with beta. One slice writes the result itself; with
// several, out is the partials buffer and nsl_split_k_sum adds them up (see gemm.rs).

// One split-k slice of an m×n convolution product over a reduction of `depth`: slice
// z = blockIdx.z sums l ∈ [z·slice, min(depth, (z+1)·slice)) and writes out + z·m·n with beta.
template <bool TA, bool TB, int BN_, class ALoad, class BLoad>
__device__ __forceinline__ void conv_slice(int m, int n, int depth, ALoad a_at, BLoad b_at, float* __restrict__ out,
                                           int slice, float beta) {
    const int z = blockIdx.z, l0 = z * slice, l1 = min(depth, l0 + slice);
    gemm_tile<TA, TB, BN_>(m, n, l0, l1, 1.0f, beta, a_at, b_at, out + (size_t)z * m * n);
}

// Fused convolution y = (s ⊙ im2col(x)) · w (nsl_core::Backend::conv2d): the patch matrix is
// read from x (and scaled) while staging it in shared memory. `s` may be null. y is rows × n,
// w is k²c × n. blockIdx.x tiles rows, blockIdx.y tiles n.
template <int BN_>
__device__ __forceinline__ void conv2d(Win g, int n, const float* __restrict__ x, const float* __restrict__ w,
                                       const float* __restrict__ s, float* __restrict__ out, int slice, float beta) {
    const int rows = g.batch * g.ho * g.wo, pl = g.k * g.k * g.c;
    conv_slice<false, false, BN_>(rows, n, pl, ConvA{g, x, s}, MatB<false>{w, pl, n}, out, slice, beta);
}

// Backward of nsl_conv2d, weight gradient: dw += (s ⊙ P)ᵀ·dy (k²c × n), summing over the
// batch·ho·wo rows, the patch matrix read from x. blockIdx.x tiles k²c, blockIdx.y tiles n.
template <int BN_>
__device__ __forceinline__ void conv2d_dw(Win g, int n, const float* __restrict__ x, const float* __restrict__ s,
                                          const float* __restrict__ dy, float* __restrict__ out, int slice, float beta) {
    const int rows = g.batch * g.ho * g.wo, pl = g.k * g.k * g.c;
    conv_slice<true, false, BN_>(pl, n, rows, ConvAT{g, x, s}, MatB<false>{dy, rows, n}, out, slice, beta);
}

// Backward of nsl_conv2d, input gradient: dx = col2im(s ⊙ (dy·wᵀ)) as one product over
// (tap, output channel) per input pixel, nothing materialised.
// blockIdx.x tiles the batch·h·w pixels, blockIdx.y tiles c.
template <int BN_>
__device__ __forceinline__ void conv2d_dx(Win g, int n, const float* __restrict__ w, const float* __restrict__ s,
                                          const float* __restrict__ dy, float* __restrict__ out, int slice, float beta) {
    const int pixels = g.batch * g.h * g.w;
    conv_slice<false, true, BN_>(pixels, g.c, g.k * g.k * n, ConvDyA{g, n, dy, s}, ConvWT{w, g.c, n}, out, slice, beta);
}

#define NSL_CONV_PARAMS                                                                                       \
    Win g, int n, const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ c,        \
        float* __restrict__ out, int slice, float beta
// (a, b, c) are (x, w, s) for nsl_conv2d, (x, s, dy) for _dw and (w, s, dy) for _dx.
extern "C" __global__ void __launch_bounds__(NSL_THREADS, 2) nsl_conv2d(NSL_CONV_PARAMS) { conv2d<BN>(g, n, a, b, c, out, slice, beta); }
extern "C" __global__ void __launch_bounds__(NSL_THREADS, 2) nsl_conv2d_n32(NSL_CONV_PARAMS) { conv2d<32>(g, n, a, b, c, out, slice, beta); }
extern "C" __global__ void __launch_bounds__(NSL_THREADS, 2) nsl_conv2d_dw(NSL_CONV_PARAMS) { conv2d_dw<BN>(g, n, a, b, c, out, slice, beta); }
extern "C" __global__ void __launch_bounds__(NSL_THREADS, 2) nsl_conv2d_dw_n32(NSL_CONV_PARAMS) { conv2d_dw<32>(g, n, a, b, c, out, slice, beta); }
extern "C" __global__ void __launch_bounds__(NSL_THREADS, 2) nsl_conv2d_dx(NSL_CONV_PARAMS) { conv2d_dx<BN>(g, n, a, b, c, out, slice, beta); }
extern "C" __global__ void __launch_bounds__(NSL_THREADS, 2) nsl_conv2d_dx_n32(NSL_CONV_PARAMS) { conv2d_dx<32>(g, n, a, b, c, out, slice, beta); }

// The split-k reduction: c[i] = alpha·Σ_z part[z·len + i] + beta·c[i], slices added in order.
extern "C" __global__ void nsl_split_k_sum(int len, int parts, const float* __restrict__ part, float alpha, float beta,
                                           float* __restrict__ c) {
    int i = gid();
    if (i >= len) return;
    float s = 0.0f;
    for (int z = 0; z < parts; z++) s += part[(size_t)z * len + i];
    c[i] = beta == 0.0f ? alpha * s : fmaf(beta, c[i], alpha * s);
}
