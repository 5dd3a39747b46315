//! Winograd convolution F(4×4, 3×3) (Lavin & Gray 2016) for unscaled, stride-1 3×3 windows:
//! each 4×4 block of outputs ("tile") reads a 6×6 window `d` of the input and
//!
//! `Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A`,
//!
//! so the products run in a 36-point transformed domain: per point `ξ`, one GEMM
//! `M[ξ] = V[ξ]·U[ξ]` of (tiles × c) by (c × n), 36 multiplies per tile and channel pair
//! instead of the direct convolution's 144. The transforms (`Bᵀ·d·B`, `Aᵀ·M·A`, `G·g·Gᵀ`) are
//! additions and small constant multiples, vectorised along channels (NHWC).
//!
//! The backward is the adjoint of the same three steps: `dM = A·dY·Aᵀ`, then per point
//! `dU[ξ] = V[ξ]ᵀ·dM[ξ]` (the weight gradient, `dg = Gᵀ·dU·G`) and `dV[ξ] = dM[ξ]·U[ξ]ᵀ`
//! (the input gradient, `dd = B·dV·Bᵀ`, added into the overlapping 6×6 windows). A per-output-row
//! scale (SphereConv's `1/‖x‖`, [`nsl_core::ConvScale::Rows`]) multiplies `Y` as it
//! is written and `dY` as it is read, so no scaled copy of either is made.
//!
//! Tiles are processed in blocks of whole tile rows whose transformed values stay in L2; their
//! 6×6 windows are read in place from the input (entries in the padding read as zero). Each
//! tile's transforms run on explicit vectors of 16, 8 or 4 channels (AVX-512, AVX2, baseline,
//! picked at run time), the leftover channels one at a time.
//! The forward's blocks own disjoint rows of `y`; backward tasks own whole images (a count
//! fixed by the batch, never by the thread count), write `dd` into their images of `dx` in tile
//! order (adding where an earlier tile's window overlaps, so `dx` is never zeroed first) and
//! accumulate `dU` into private copies summed in task order, so results are bitwise
//! reproducible and independent of the number of threads. Results differ from the direct
//! convolution by f32 rounding only: at CNN-9's shapes with inputs and weights uniform in
//! [−1, 1] the largest error against an f64 reference was 2–4e-6 of the largest output (direct:
//! 0.6–0.9e-6); `tests/conv2d.rs` checks both paths against that reference on random shapes.
//! `Cpu::with_winograd(false)` or `NSL_CPU_WINOGRAD=0` turns this path off.

mod tiles;
mod transforms;

use tiles::*;
use transforms::*;

use nsl_core::Window;
use rayon::prelude::*;

use crate::gemm::kernels::{Kernels, Lane1, Simd, Xmm};
#[cfg(target_arch = "x86_64")]
use crate::gemm::kernels::{Ymm, Zmm};
use crate::gemm::{OuterPlan, PackedB};
use crate::par::{backward_tasks, with_scratch, MAX_BACKWARD_TASKS, PAR_MIN_FLOPS};
use crate::{Cpu, CpuBuf};

/// Outputs per tile side (`m` of F(m, r)) and input window side (`m + r − 1`).
const M: usize = 4;
const T: usize = 6;
/// Transformed points per tile.
const XI: usize = T * T;
/// Fewest input channels (and outputs) for the Winograd path: with fewer, the 36 products
/// per tile are too shallow to beat the direct convolution's 9·c-deep ones. A guess (the first
/// CNN layer, c = 3, stays direct).
const MIN_C: usize = 8;
const MIN_N: usize = 8;
/// Transformed values (inputs and outputs, floats) of one block of tiles: ~640 KiB, in L2.
const BLOCK_FLOATS: usize = 160 * 1024;
/// Tiles per block are rounded to this (a multiple of the GEMM tiles' 6, 8 and 12 rows).
const BLOCK_ALIGN: usize = 24;
/// Floats between consecutive points' matrices of a block beyond their size. A tile's
/// transforms touch all 36 points; at strides that are multiples of 4 KiB (e.g. 48 tiles × 64
/// channels) those 36 cache lines all fall in one L1 set and evict each other.
const POINT_PAD: usize = 16;
/// Floats of all backward tasks' private `dU` copies together (16 MiB).
const PARTS_BUDGET: usize = 1 << 22;
/// Fewest tiles per backward task: each block reloads the task's `dU` copy, so a task needs
/// enough tiles for its products to outweigh that traffic.
const MIN_TASK_TILES: usize = 64;
/// Whether [`crate::Cpu`]'s `conv2d` of `g` with `n` outputs (and a patch scale or not) takes
/// the Winograd path: 3×3 windows at stride 1, no scale, at least 8 input and output channels.
pub(crate) fn applies(g: &Window, n: usize, scaled: bool) -> bool {
    !scaled && g.k == 3 && g.stride == 1 && g.c >= MIN_C && n >= MIN_N && g.ho > 0 && g.wo > 0
}

/// The tiling of the output maps: `th × tw` tiles per image.
#[derive(Clone, Copy)]
struct Tiles {
    th: usize,
    tw: usize,
    /// Tile rows per block.
    rows_per_block: usize,
}

impl Tiles {
    fn new(g: &Window, n: usize) -> Self {
        let (th, tw) = (g.ho.div_ceil(M), g.wo.div_ceil(M));
        // Per tile: transformed inputs and outputs (36·(c + n)), and about as much again for
        // the input rows its window reads (at most 6·6·c).
        let per_block = (BLOCK_FLOATS / (XI * (2 * g.c + n))).next_multiple_of(BLOCK_ALIGN);
        Tiles { th, tw, rows_per_block: (per_block / tw).max(1) }
    }

    /// Most tiles in one block.
    fn block_len(&self) -> usize {
        self.rows_per_block * self.tw
    }

    /// Floats from point `ξ`'s matrix (`block_len × channels`) of a block to point `ξ + 1`'s.
    fn stride(&self, channels: usize) -> usize {
        self.block_len() * channels + POINT_PAD
    }

    /// First output row (over the whole batch, `b·ho + oy`) of global tile row `tr`.
    fn first_out_row(&self, g: &Window, tr: usize) -> usize {
        (tr / self.th) * g.ho + (tr % self.th) * M
    }
}

/// Scratch of one block: transformed inputs `v` (36 × tiles × c) and outputs `m` (36 × tiles × n).
struct Block<'a> {
    v: &'a mut [f32],
    m: &'a mut [f32],
}

impl<'a> Block<'a> {
    fn floats(tl: &Tiles, c: usize, n: usize) -> usize {
        XI * (tl.stride(c) + tl.stride(n))
    }

    fn split(s: &'a mut [f32], tl: &Tiles, c: usize, n: usize) -> Self {
        let (v, m) = s.split_at_mut(XI * tl.stride(c));
        Block { v, m: &mut m[..XI * tl.stride(n)] }
    }
}

// ---- dispatch ----------------------------------------------------------------------------

/// Runs a block transform instantiated for the instruction set of the GEMM tiles `$ks` (the
/// widest the CPU has, or what `NSL_CPU_GEMM` asked for): AVX-512, AVX2, else the baseline's 4
/// lanes, compiled with those features (no `-C target-cpu` needed).
macro_rules! wide {
    ($ks:expr, $f:ident($($arg:expr),*)) => {{
        match $ks.name {
            // SAFETY: `kernels::mode` picks the AVX-512 tiles only on a CPU with AVX-512F.
            #[cfg(target_arch = "x86_64")]
            "avx512" => unsafe { isa::avx512::$f($($arg),*) },
            // SAFETY: and the AVX2 tiles only with AVX2.
            #[cfg(target_arch = "x86_64")]
            "avx2" => unsafe { isa::avx2::$f($($arg),*) },
            _ => $f::<Xmm, Xmm>($($arg),*),
        }
    }};
}

/// The block transforms compiled with wider vector extensions (see [`wide!`]).
#[cfg(target_arch = "x86_64")]
mod isa {
    // Boilerplate: `#[target_feature]` needs a non-generic function per instruction set, so each
    // block step of `tiles.rs` is wrapped here with its parameter list repeated; the logic is
    // the generic step's.
    macro_rules! variants {
        ($name:ident, $feat:literal, $s:ty, $h:ty) => {
            pub(super) mod $name {
                use super::super::*;

                #[target_feature(enable = $feat)]
                pub(in super::super) unsafe fn input_block(
                    g: &Window,
                    x: &[f32],
                    tl: &Tiles,
                    tr0: usize,
                    tiles: usize,
                    v: &mut [f32],
                ) {
                    super::super::input_block::<$s, $h>(g, x, tl, tr0, tiles, v)
                }
                #[target_feature(enable = $feat)]
                #[allow(clippy::too_many_arguments)]
                pub(in super::super) unsafe fn output_block(
                    g: &Window,
                    n: usize,
                    tl: &Tiles,
                    tr0: usize,
                    tiles: usize,
                    m: &[f32],
                    q: Option<&[f32]>,
                    y: &mut [f32],
                ) {
                    super::super::output_block::<$s, $h>(g, n, tl, tr0, tiles, m, q, y)
                }
                #[target_feature(enable = $feat)]
                #[allow(clippy::too_many_arguments)]
                pub(in super::super) unsafe fn output_grad_block(
                    g: &Window,
                    n: usize,
                    dy: &[f32],
                    q: Option<&[f32]>,
                    tl: &Tiles,
                    tr0: usize,
                    tiles: usize,
                    m: &mut [f32],
                ) {
                    super::super::output_grad_block::<$s, $h>(g, n, dy, q, tl, tr0, tiles, m)
                }
                #[target_feature(enable = $feat)]
                pub(in super::super) unsafe fn input_grad_block(
                    g: &Window,
                    tl: &Tiles,
                    tr0: usize,
                    b0: usize,
                    tiles: usize,
                    v: &[f32],
                    dx: &mut [f32],
                ) {
                    super::super::input_grad_block::<$s, $h>(g, tl, tr0, b0, tiles, v, dx)
                }
            }
        };
    }
    variants!(avx512, "avx512f", Zmm, Ymm);
    variants!(avx2, "avx2", Ymm, Xmm);
}

// ---- forward and backward ---------------------------------------------------------------------

// Boilerplate: `forward` and `backward` are `conv2d.rs`'s `conv2d` and `conv2d_backward` on this
// path and take their parameters (less the tap scale), so the parameter lists repeat.

/// `y = conv(x, w)` (see [`nsl_core::Backend::conv2d`], no patch scale) by F(4×4, 3×3), rows
/// times `q` if given ([`nsl_core::ConvScale::Rows`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    cpu: &Cpu,
    ks: &Kernels,
    g: &Window,
    n: usize,
    x: &[f32],
    w: &[f32],
    q: Option<&[f32]>,
    y: &mut [f32],
) {
    let c = g.c;
    let tl = Tiles::new(g, n);
    let u = transform_weights(c, n, w);
    let packs: Vec<PackedB> = (0..XI).map(|xi| PackedB::new(ks, &u[xi * c * n..], c, n, false)).collect();
    // Blocks of whole tile rows, each owning its output rows of y.
    let tile_rows = g.batch * tl.th;
    let mut blocks = Vec::with_capacity(tile_rows.div_ceil(tl.rows_per_block));
    let mut rest = &mut y[..g.rows() * n];
    for tr0 in (0..tile_rows).step_by(tl.rows_per_block) {
        let tr1 = (tr0 + tl.rows_per_block).min(tile_rows);
        let end = if tr1 == tile_rows { g.batch * g.ho } else { tl.first_out_row(g, tr1) };
        let (yb, r) = std::mem::take(&mut rest).split_at_mut((end - tl.first_out_row(g, tr0)) * g.wo * n);
        blocks.push((tr0, (tr1 - tr0) * tl.tw, yb));
        rest = r;
    }
    let run = |(tr0, tiles, yb): (usize, usize, &mut [f32])| {
        with_scratch(Block::floats(&tl, c, n), |scratch| {
            let s = Block::split(scratch, &tl, c, n);
            let (vs, ms) = (tl.stride(c), tl.stride(n));
            wide!(ks, input_block(g, x, &tl, tr0, tiles, s.v));
            for (xi, p) in packs.iter().enumerate() {
                // SAFETY: m[ξ] holds `block_len ≥ tiles` rows of n values, borrowed mutably.
                unsafe { p.times(ks, &s.v[xi * vs..], tiles, s.m[xi * ms..].as_mut_ptr(), 1.0, 0.0) };
            }
            wide!(ks, output_block(g, n, &tl, tr0, tiles, s.m, q, yb));
        })
    };
    if g.rows() * g.patch_len() * n < PAR_MIN_FLOPS || blocks.len() == 1 {
        blocks.into_iter().for_each(run);
    } else {
        cpu.install(|| blocks.into_par_iter().for_each(run));
    }
}

/// Backward of [`forward`]: `dx = ∂L/∂x` (overwritten) and `dw += ∂L/∂w`, with `dy`'s rows
/// times `q` if given.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    cpu: &Cpu,
    ks: &Kernels,
    g: &Window,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    q: Option<&[f32]>,
    dx: &mut [f32],
    dw: &mut [f32],
) {
    let c = g.c;
    let tl = Tiles::new(g, n);
    let u = transform_weights(c, n, w);
    let packs: Vec<PackedB> = (0..XI).map(|xi| PackedB::new(ks, &u[xi * c * n..], n, c, true)).collect();
    let plan = OuterPlan::new(ks, c, n);
    let part = plan.part_len();
    let flops = g.rows() * g.patch_len() * n;
    // Each task zeroes, accumulates into and later sums its own 36·c·n copy of dU, which only
    // pays with enough tiles per task and within a memory budget (the 128-channel layers):
    // fewer tasks then, a power of two so that they split evenly over 2ᵏ threads.
    let tiles = g.batch * tl.th * tl.tw;
    let fit = (PARTS_BUDGET / (XI * part)).min(tiles / MIN_TASK_TILES).max(1);
    let max_tasks = MAX_BACKWARD_TASKS.min(1 << fit.ilog2());
    let (imgs, tasks) = backward_tasks(g.batch, flops, max_tasks);
    // parts[task][ξ]: the task's copy of dU[ξ].
    let mut parts = CpuBuf::zeros(tasks * XI * part);
    let img_len = g.h * g.w * c;
    let jobs: Vec<(usize, &mut [f32], &mut [f32])> = dx[..g.batch * img_len]
        .chunks_mut(imgs * img_len)
        .zip(parts.chunks_mut(XI * part))
        .enumerate()
        .map(|(t, (dx, p))| (t * imgs, dx, p))
        .collect();
    let run = |(b0, dx, parts): (usize, &mut [f32], &mut [f32])| {
        let b1 = (b0 + imgs).min(g.batch);
        with_scratch(Block::floats(&tl, c, n) + plan.tail_len(), |scratch| {
            let (scratch, tail) = scratch.split_at_mut(Block::floats(&tl, c, n));
            let s = Block::split(scratch, &tl, c, n);
            let (vs, ms) = (tl.stride(c), tl.stride(n));
            for tr0 in (b0 * tl.th..b1 * tl.th).step_by(tl.rows_per_block) {
                let tiles = (b1 * tl.th - tr0).min(tl.rows_per_block) * tl.tw;
                wide!(ks, input_block(g, x, &tl, tr0, tiles, s.v));
                wide!(ks, output_grad_block(g, n, dy, q, &tl, tr0, tiles, s.m));
                for xi in 0..XI {
                    let (v, m) = (&s.v[xi * vs..], &s.m[xi * ms..]);
                    plan.accumulate(ks, v, m, tiles, &mut parts[xi * part..(xi + 1) * part], tail);
                }
                for (xi, p) in packs.iter().enumerate() {
                    // SAFETY: v[ξ] holds `block_len ≥ tiles` rows of c values, borrowed mutably (its
                    // transformed inputs were consumed above).
                    unsafe { p.times(ks, &s.m[xi * ms..], tiles, s.v[xi * vs..].as_mut_ptr(), 1.0, 0.0) };
                }
                wide!(ks, input_grad_block(g, &tl, tr0, b0, tiles, s.v, dx));
            }
        });
    };
    if jobs.len() == 1 {
        jobs.into_iter().for_each(run);
    } else {
        cpu.install(|| jobs.into_par_iter().for_each(run));
    }
    let mut du = CpuBuf::recycled(XI * c * n);
    for (xi, d) in du.chunks_exact_mut(c * n).enumerate() {
        plan.finish_strided(cpu, &mut parts[xi * part..], tasks, XI * part, 1.0, 0.0, d);
    }
    weight_grad_from_points(c, n, &du, dw);
}
