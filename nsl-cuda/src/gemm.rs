//! Strided-batch GEMM (see [`nsl_core::Gemm`]) with the tiled kernel of `kernels/gemm.cu`.
//!
//! The kernel is our own: 128×64 tiles of C per block of 256 threads, 16-deep shared-memory
//! panels (the next ones prefetched into registers), an 8×4 register block per thread read with
//! 128-bit shared loads, transposes handled by the load pattern, batch items on `gridDim.z`, and
//! `beta = 0` writing C without reading it. The convolutions run the same tile with implicit
//! operands (`conv.rs`), plus 128×32-tile twins for outputs of at most 32 columns.
//!
//! **Own kernel, not cuBLAS — measured** (NVIDIA H200, `nsl-bench/RESULTS.md`): this kernel runs
//! square SGEMMs at ~21 TFLOP/s, ~70% of cuBLAS FP32 at 1024³; cuBLAS TF32 is 4–8× cuBLAS FP32 on
//! large shapes. We keep the FP32 kernel: it fuses the convolutions' im2col (cuBLAS would need
//! the patch matrix written out), keeps CPU≡CUDA agreement at FP32 tolerances and needs nothing
//! beyond the driver (`cust` has no cuBLAS binding). The next step is TF32 `mma.sync` inside this
//! tile, opt-in, with TF32 tolerances.
//!
//! **Split-k.** A product with few 128×64 output tiles and a long k — the weight gradients, which
//! sum over batch·h·w rows — would run on a handful of blocks: [`split_k`] cuts k into slices so
//! that about four blocks per multiprocessor run, each writing a partial tile to scratch, and
//! `nsl_split_k_sum` adds the partials in slice order (deterministic, no atomics).
//!
//! Batch items whose C blocks overlap (`stride_c < m·n`, e.g. `stride_c = 0` to sum products
//! into one C) are launched one after the other, in order, like the CPU backend applies them.

use nsl_core::Gemm;

use crate::launch::{blocks, int, pm, Arg, TILE_M, TILE_N};
use crate::{Cuda, CudaBuf, DevMem};

/// Depth of the kernel's shared-memory panels (`BK`); slices are multiples of it.
const PANEL: usize = 16;
/// Shortest slice worth a block of its own.
const MIN_SLICE: usize = 256;
/// Blocks per multiprocessor resident at once (`__launch_bounds__(256, 2)`): a product with
/// fewer tiles than this times the multiprocessors leaves the device partly idle.
const RESIDENT_PER_SM: usize = 2;
/// Blocks per multiprocessor a split product aims for.
const BLOCKS_PER_SM: usize = 4;

/// How a product's k dimension is cut: `splits` slices of `slice` (the last may be shorter).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SplitK {
    pub splits: usize,
    pub slice: usize,
}

/// The split of a k-long product with `tiles` output tiles: none when the tiles alone fill the
/// device once ([`RESIDENT_PER_SM`]) or k is short, else enough slices (of at least
/// [`MIN_SLICE`]) for [`BLOCKS_PER_SM`] blocks per multiprocessor.
pub(crate) fn split_k(be: &Cuda, tiles: usize, k: usize) -> SplitK {
    let target = BLOCKS_PER_SM * be.sm_count();
    let most = k / MIN_SLICE;
    if tiles >= RESIDENT_PER_SM * be.sm_count() || most < 2 {
        return SplitK { splits: 1, slice: k };
    }
    let slice = k.div_ceil(target.div_ceil(tiles).min(most)).next_multiple_of(PANEL);
    SplitK { splits: k.div_ceil(slice), slice }
}

/// `c[..len] = alpha·Σ_z part[z·len ..][..len] + beta·c[..len]` over `parts` partials, in order.
pub(crate) fn sum_split_k(be: &Cuda, len: usize, parts: usize, part: &DevMem<f32>, alpha: f32, beta: f32, c: u64) {
    be.launch_1d(
        "nsl_split_k_sum",
        len,
        &[int(len), int(parts), pm(part), Arg::F32(alpha), Arg::F32(beta), Arg::Ptr(c)],
    );
}
const MAX_GRID_YZ: usize = 65_535;

/// See [`nsl_core::Backend::gemm`].
pub(crate) fn gemm(be: &Cuda, g: &Gemm, a: &CudaBuf, b: &CudaBuf, c: &mut CudaBuf) {
    let Gemm { m, n, k, batch, .. } = *g;
    if batch == 0 || m == 0 || n == 0 {
        return;
    }
    let kernel = match (g.trans_a, g.trans_b) {
        (false, false) => "nsl_gemm_nn",
        (false, true) => "nsl_gemm_nt",
        (true, false) => "nsl_gemm_tn",
        (true, true) => "nsl_gemm_tt",
    };
    let grid_n = n.div_ceil(TILE_N);
    assert!(grid_n <= MAX_GRID_YZ, "nsl-cuda: gemm: n = {n} is too large for one launch");
    let args = |a: u64, b: u64, c: u64, alpha: f32, beta: f32, split: SplitK| {
        [
            int(m),
            int(n),
            int(k),
            Arg::F32(alpha),
            Arg::F32(beta),
            Arg::Ptr(a),
            Arg::Ptr(b),
            Arg::Ptr(c),
            Arg::I64(g.stride_a as i64),
            Arg::I64(g.stride_b as i64),
            Arg::I64(g.stride_c as i64),
            int(split.splits),
            int(split.slice),
        ]
    };
    let split = split_k(be, blocks(m, TILE_M) as usize * grid_n, k);
    if batch == 1 && split.splits > 1 {
        let part = be.scratch::<f32>("gemm (split-k partials)", split.splits * m * n);
        let grid = (blocks(m, TILE_M), grid_n as u32, split.splits as u32);
        be.launch(
            kernel,
            grid,
            (crate::launch::THREADS, 1, 1),
            0,
            &args(a.ptr(), b.ptr(), part.ptr(), 1.0, 0.0, split),
        );
        sum_split_k(be, m * n, split.splits, &part, g.alpha, g.beta, c.ptr());
        return;
    }
    let whole = SplitK { splits: 1, slice: k };
    let overlap = batch > 1 && g.stride_c < m * n;
    let per_launch = if overlap { 1 } else { MAX_GRID_YZ };
    let offset = |base: u64, z: usize, stride: usize| base + (z * stride * 4) as u64;
    let mut z0 = 0;
    while z0 < batch {
        let zc = per_launch.min(batch - z0);
        be.launch(
            kernel,
            (blocks(m, TILE_M), grid_n as u32, zc as u32),
            (crate::launch::THREADS, 1, 1),
            0,
            &args(
                if k > 0 { offset(a.ptr(), z0, g.stride_a) } else { a.ptr() },
                if k > 0 { offset(b.ptr(), z0, g.stride_b) } else { b.ptr() },
                offset(c.ptr(), z0, g.stride_c),
                g.alpha,
                g.beta,
                whole,
            ),
        );
        z0 += zc;
    }
}
