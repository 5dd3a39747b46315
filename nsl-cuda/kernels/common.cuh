// Shared helpers for the nsl CUDA kernels. Every kernel is `extern "C"` (unmangled names,
// looked up by the Rust side) and takes sizes as `int`: the Rust side refuses buffers of
// 2^31 − 2^20 elements or more, so every flat index below fits.
//
// Reductions are deterministic: fixed per-thread strides and fixed shared-memory / warp
// shuffle trees whose shape depends only on the problem size, never atomics on floats.
#pragma once

#define NSL_THREADS 256

// Dynamic shared memory (the launch's shared-memory bytes). Under the CPU emulator
// (NSL_EMULATE, see emu/emu.hpp) it is a per-block host buffer.
#ifdef NSL_EMULATE
#define NSL_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(emu_dynamic_shared())
#else
#define NSL_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

// Geometry of a k×k window over an NHWC map (mirrors nsl_core::Window, all fields int).
struct Win {
    int batch, h, w, c, k, stride, pad_top, pad_left, ho, wo;
};

// Four consecutive floats from 16-byte-aligned shared memory (one 128-bit load on the GPU).
__device__ __forceinline__ float4 ld4(const float* p) {
#ifdef NSL_EMULATE
    float4 v;
    std::memcpy(&v, p, sizeof v);
    return v;
#else
    return *reinterpret_cast<const float4*>(p);
#endif
}

// Global thread index for one-thread-per-element kernels.
__device__ __forceinline__ int gid() { return blockIdx.x * blockDim.x + threadIdx.x; }

// Elements of the input map, batch·h·w·c (nsl_core::Window::input_len).
__device__ __forceinline__ int input_len(const Win& g) { return g.batch * g.h * g.w * g.c; }

// The coordinates of flat index i = ((b·h + y)·w + x)·c + ch of an NHWC map.
struct Pixel {
    int b, y, x, ch;
};
__device__ __forceinline__ Pixel pixel_of(const Win& g, int i) {
    Pixel p;
    p.ch = i % g.c;
    int rest = i / g.c;
    p.x = rest % g.w;
    rest /= g.w;
    p.y = rest % g.h;
    p.b = rest / g.h;
    return p;
}

// The coordinates of output row r = (b·ho + oy)·wo + ox of a window.
struct OutPixel {
    int b, oy, ox;
};
__device__ __forceinline__ OutPixel out_pixel_of(const Win& g, int r) {
    OutPixel o;
    o.ox = r % g.wo;
    const int rest = r / g.wo;
    o.oy = rest % g.ho;
    o.b = rest / g.ho;
    return o;
}

// Offset in x of channel 0 of the pixel that tap t = ky·k + kx of output o's window reads,
// or -1 when the tap lies in the zero padding.
__device__ __forceinline__ long long tap_source(const Win& g, OutPixel o, int t) {
    const int y = o.oy * g.stride + t / g.k - g.pad_top;
    const int x = o.ox * g.stride + t % g.k - g.pad_left;
    if (y < 0 || y >= g.h || x < 0 || x >= g.w) return -1;
    return ((long long)(o.b * g.h + y) * g.w + x) * g.c;
}

// Output index o < n_out whose window tap kk reads input coordinate i, or -1.
__device__ __forceinline__ int reader(int i, int pad, int kk, int stride, int n_out) {
    int v = i + pad - kk;
    if (v < 0 || v % stride != 0) return -1;
    int o = v / stride;
    return o < n_out ? o : -1;
}

// Gathers (the adjoint of a window read, one thread per input element): f(oy, ox, ky, kx) for
// every output (oy, ox) whose window tap (ky, kx) reads input pixel (y, x). Taps run in the
// order (ky, kx), or with DOWN from (k−1, k−1) down, which visits the outputs in increasing
// (oy, ox) order.
template <bool DOWN = false, class F>
__device__ __forceinline__ void for_readers(const Win& g, int y, int x, F f) {
    for (int i = 0; i < g.k; i++) {
        const int ky = DOWN ? g.k - 1 - i : i;
        const int oy = reader(y, g.pad_top, ky, g.stride, g.ho);
        if (oy < 0) continue;
        for (int j = 0; j < g.k; j++) {
            const int kx = DOWN ? g.k - 1 - j : j;
            const int ox = reader(x, g.pad_left, kx, g.stride, g.wo);
            if (ox < 0) continue;
            f(oy, ox, ky, kx);
        }
    }
}

// The taps of output (oy, ox)'s window that lie inside the map, row-major: f(y, x) with their
// input pixel, until f returns true.
template <class F>
__device__ __forceinline__ void for_window_taps(const Win& g, int oy, int ox, F f) {
    for (int ky = 0; ky < g.k; ky++) {
        const int y = oy * g.stride + ky - g.pad_top;
        if (y < 0 || y >= g.h) continue;
        for (int kx = 0; kx < g.k; kx++) {
            const int x = ox * g.stride + kx - g.pad_left;
            if (x < 0 || x >= g.w) continue;
            if (f(y, x)) return;
        }
    }
}

// Warp all-reduce by xor butterfly: every lane ends with the same (bitwise) value, and the
// tree is fixed, so the result is deterministic.
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_sumf(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_maxf(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ double warp_maxd(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block sum over NSL_THREADS threads with a fixed tree; returns the total to every thread.
// `sh` holds NSL_THREADS doubles.
__device__ __forceinline__ double block_sum(double v, double* sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = NSL_THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

// ---- deterministic column reductions (per-channel sums over rows) ---------------------------
//
// Pass 1 (`col_partial`): grid (ceil(cols/32), ceil(rows/chunk)), block (32, 8). Block
// (bx, by) sums rows [by·chunk, (by+1)·chunk) of 32 columns: thread (tx, ty) takes rows
// ty, ty+8, … of the chunk in order, then thread ty = 0 adds the 8 partials in order. The
// partial of chunk `by` goes to part[by·cols + col]. Pass 2 (`nsl_col_final*`) adds the chunk
// partials of each column in chunk order. The host picks `chunk` from `rows` alone (256, more
// when rows > 256·65535 so the grid's y dimension stays within CUDA's limit).

template <int NOUT, class F>
__device__ __forceinline__ void col_partial(int rows, int cols, int chunk, F f, double* part0, double* part1) {
    __shared__ double sh[NOUT][8][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int col = blockIdx.x * 32 + tx;
    const int r0 = blockIdx.y * chunk;
    const int r1 = min(rows, r0 + chunk);
    double a[NOUT];
#pragma unroll
    for (int j = 0; j < NOUT; j++) a[j] = 0.0;
    if (col < cols) {
        for (int r = r0 + ty; r < r1; r += 8) f(r, col, a);
    }
#pragma unroll
    for (int j = 0; j < NOUT; j++) sh[j][ty][tx] = a[j];
    __syncthreads();
    if (ty == 0 && col < cols) {
        double* parts[2] = {part0, part1};
#pragma unroll
        for (int j = 0; j < NOUT; j++) {
            double s = 0.0;
            for (int i = 0; i < 8; i++) s += sh[j][i][tx];
            parts[j][(size_t)blockIdx.y * cols + col] = s;
        }
    }
}

// Pass 2 for a column reduction: out[col] = Σ_chunk part[chunk·cols + col], in chunk order.
__device__ __forceinline__ double col_total(int chunks, int cols, const double* part, int col) {
    double s = 0.0;
    for (int i = 0; i < chunks; i++) s += part[(size_t)i * cols + col];
    return s;
}
