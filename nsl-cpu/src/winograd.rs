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
//! scale (SphereConv's `1/‖x‖`, [`nsl_core::Backend::conv2d_rows_scaled`]) multiplies `Y` as it
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

// ---- 1-D transforms over channel vectors ------------------------------------------------------
//
// Written against the explicit vectors of [`Simd`] (`L` channels at a time) with multiplies and
// adds only, never fused, in the same order on every instruction set: results are identical
// whatever the vector width.

/// `Bᵀ·d` (the input transform, 6 → 6).
#[inline(always)]
unsafe fn bt<S: Simd>(d: [S::V; T]) -> [S::V; T] {
    let [a0, a1, a2, a3, a4, a5] = d;
    // SAFETY (whole block): the CPU has the features of `S` (caller's contract).
    unsafe {
        let (two, four, five) = (S::splat(2.0), S::splat(4.0), S::splat(5.0));
        let (a42, a13) = (S::sub(a4, a2), S::sub(a1, a3));
        [
            S::add(S::sub(S::mul(four, a0), S::mul(five, a2)), a4),
            S::sub(S::add(a3, a4), S::mul(four, S::add(a1, a2))),
            S::add(S::sub(a4, a3), S::mul(four, S::sub(a1, a2))),
            S::add(a42, S::mul(two, S::sub(a3, a1))),
            S::add(a42, S::mul(two, a13)),
            S::add(S::sub(S::mul(four, a1), S::mul(five, a3)), a5),
        ]
    }
}

/// `B·v` (adjoint of [`bt`], 6 → 6).
#[inline(always)]
unsafe fn b<S: Simd>(v: [S::V; T]) -> [S::V; T] {
    let [a0, a1, a2, a3, a4, a5] = v;
    // SAFETY (whole block): the CPU has the features of `S` (caller's contract).
    unsafe {
        let (two, four, m5, five) = (S::splat(2.0), S::splat(4.0), S::splat(-5.0), S::splat(5.0));
        [
            S::mul(four, a0),
            S::add(S::mul(four, S::add(S::sub(a2, a1), a5)), S::mul(two, S::sub(a4, a3))),
            S::sub(S::sub(S::mul(m5, a0), S::mul(four, S::add(a1, a2))), S::add(a3, a4)),
            S::sub(S::add(S::sub(a1, a2), S::mul(two, S::sub(a3, a4))), S::mul(five, a5)),
            S::add(S::add(S::add(S::add(a0, a1), a2), a3), a4),
            a5,
        ]
    }
}

/// `Aᵀ·m` (the output transform, 6 → 4).
#[inline(always)]
unsafe fn at<S: Simd>(m: [S::V; T]) -> [S::V; M] {
    let [m0, m1, m2, m3, m4, m5] = m;
    // SAFETY (whole block): the CPU has the features of `S` (caller's contract).
    unsafe {
        let (two, four, eight) = (S::splat(2.0), S::splat(4.0), S::splat(8.0));
        let (s12, d12, s34, d34) = (S::add(m1, m2), S::sub(m1, m2), S::add(m3, m4), S::sub(m3, m4));
        [
            S::add(S::add(m0, s12), s34),
            S::add(d12, S::mul(two, d34)),
            S::add(s12, S::mul(four, s34)),
            S::add(S::add(d12, S::mul(eight, d34)), m5),
        ]
    }
}

/// `A·y` (adjoint of [`at`], 4 → 6).
#[inline(always)]
unsafe fn a<S: Simd>(y: [S::V; M]) -> [S::V; T] {
    let [y0, y1, y2, y3] = y;
    // SAFETY (whole block): the CPU has the features of `S` (caller's contract).
    unsafe {
        let (two, four, eight) = (S::splat(2.0), S::splat(4.0), S::splat(8.0));
        let (s02, d13) = (S::add(y0, y2), S::add(y1, y3));
        let (s02w, d13w) = (S::add(y0, S::mul(four, y2)), S::add(S::mul(two, y1), S::mul(eight, y3)));
        [y0, S::add(s02, d13), S::sub(s02, d13), S::add(s02w, d13w), S::sub(s02w, d13w), y3]
    }
}

/// `G` of F(4, 3): `u = G·g` maps 3 filter taps to 6 points.
const G: [[f32; 3]; T] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// `U[ξ = i·6 + j][ch][o] = Σ_{ky,kx} G[i][ky]·G[j][kx]·w[(ky·3 + kx)·c + ch][o]` (36 × c × n).
fn transform_weights(c: usize, n: usize, w: &[f32]) -> CpuBuf {
    let cn = c * n;
    // First along ky: half[i][kx] (6 × 3 blocks of c·n).
    let mut half = CpuBuf::zeros(T * 3 * cn);
    for (i, gi) in G.iter().enumerate() {
        for kx in 0..3 {
            let out = &mut half[(i * 3 + kx) * cn..][..cn];
            for (ky, &gk) in gi.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(&w[(ky * 3 + kx) * cn..][..cn]) {
                    *o += gk * v;
                }
            }
        }
    }
    let mut u = CpuBuf::zeros(XI * cn);
    for i in 0..T {
        for (j, gj) in G.iter().enumerate() {
            let out = &mut u[(i * T + j) * cn..][..cn];
            for (kx, &gk) in gj.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(&half[(i * 3 + kx) * cn..][..cn]) {
                    *o += gk * v;
                }
            }
        }
    }
    u
}

/// `dw[(ky·3 + kx)·c + ch][o] += Σ_{i,j} G[i][ky]·G[j][kx]·dU[i·6 + j][ch][o]`.
fn weight_grad_from_points(c: usize, n: usize, du: &[f32], dw: &mut [f32]) {
    let cn = c * n;
    let mut half = CpuBuf::zeros(T * 3 * cn); // half[i][kx] = Σ_j G[j][kx]·dU[i][j]
    for i in 0..T {
        for kx in 0..3 {
            let out = &mut half[(i * 3 + kx) * cn..][..cn];
            for (j, gj) in G.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(&du[(i * T + j) * cn..][..cn]) {
                    *o += gj[kx] * v;
                }
            }
        }
    }
    for ky in 0..3 {
        for kx in 0..3 {
            let out = &mut dw[(ky * 3 + kx) * cn..][..cn];
            for (i, gi) in G.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(&half[(i * 3 + kx) * cn..][..cn]) {
                    *o += gi[ky] * v;
                }
            }
        }
    }
}

// ---- per-tile transforms ----------------------------------------------------------------------

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

/// The indices `i < side` with `0 ≤ o + i < len`.
fn span(o: isize, len: usize, side: usize) -> (usize, usize) {
    ((-o).clamp(0, side as isize) as usize, (len as isize - o).clamp(0, side as isize) as usize)
}

/// A square window of channel vectors in an NHWC map: entry `(i, j)` starts `origin + i·rs +
/// j·cs` floats into the map and is present for `i ∈ rows`, `j ∈ cols`; absent entries (padding,
/// past the map's edge) read as zero and are never written.
#[derive(Clone, Copy)]
struct Patch {
    origin: isize,
    rs: usize,
    cs: usize,
    rows: (usize, usize),
    cols: (usize, usize),
}

impl Patch {
    /// The `side × side` window from pixel `(y0, x0)` of image `b` of a `h × w × c` map.
    fn new(b: usize, (y0, x0): (isize, isize), (h, w, c): (usize, usize, usize), side: usize) -> Self {
        let origin = (((b * h) as isize + y0) * w as isize + x0) * c as isize;
        Patch { origin, rs: w * c, cs: c, rows: span(y0, h, side), cols: span(x0, w, side) }
    }

    #[inline(always)]
    fn has(&self, i: usize, j: usize) -> bool {
        (self.rows.0..self.rows.1).contains(&i) && (self.cols.0..self.cols.1).contains(&j)
    }

    /// Whether every entry of the `side × side` window is present (no padding, not past the
    /// edge): the tile transforms are then instantiated without per-entry checks.
    fn full(&self, side: usize) -> bool {
        self.rows == (0, side) && self.cols == (0, side)
    }

    /// Offset of channel `ch` of entry `(i, j)`; non-negative for a present entry.
    #[inline(always)]
    fn at(&self, i: usize, j: usize, ch: usize) -> usize {
        (self.origin + (i * self.rs + j * self.cs + ch) as isize) as usize
    }
}

/// The 36 points `P = F·D·Fᵀ` (`ξ = i·6 + k`) of an `N × N` window `D` of channel vectors
/// (`d(r, col)`), `f` the 1-D transform `F` (`N → 6`), each point handed to `put(ξ, P[ξ])`.
///
/// # Safety
/// The CPU has the features of `S` (so do `d`, `f` and `put`, which are inlined here).
#[inline(always)]
unsafe fn window_to_points<S: Simd, const N: usize>(
    d: impl Fn(usize, usize) -> S::V,
    f: impl Fn([S::V; N]) -> [S::V; T],
    mut put: impl FnMut(usize, S::V),
) {
    // Columns: t[i][col] = Σ_r F[i][r]·D[r][col]; rows: P[i·6 + k] = Σ_col F[k][col]·t[i][col].
    // SAFETY (whole block): the caller's contract.
    unsafe {
        let mut t = [[S::zero(); N]; T];
        for col in 0..N {
            for (ti, o) in t.iter_mut().zip(f(std::array::from_fn(
                #[inline(always)]
                |r| d(r, col),
            ))) {
                ti[col] = o;
            }
        }
        for (i, ti) in t.iter().enumerate() {
            for (k, o) in f(*ti).into_iter().enumerate() {
                put(i * T + k, o);
            }
        }
    }
}

/// The `N × N` window `W = F·P·Fᵀ` of 36 points (`pt(ξ)`), `f` the 1-D transform `F`
/// (`6 → N`): each entry of the window's rows `rows` handed to `put(r, col, W[r][col])`.
///
/// # Safety
/// As [`window_to_points`].
#[inline(always)]
unsafe fn points_to_window<S: Simd, const N: usize>(
    pt: impl Fn(usize) -> S::V,
    f: impl Fn([S::V; T]) -> [S::V; N],
    rows: (usize, usize),
    mut put: impl FnMut(usize, usize, S::V),
) {
    // Columns: t[r][k] = Σ_i F[r][i]·P[i·6 + k]; rows: W[r][col] = Σ_k F[col][k]·t[r][k].
    // SAFETY (whole block): the caller's contract.
    unsafe {
        let mut t = [[S::zero(); T]; N];
        for k in 0..T {
            for (tr, o) in t.iter_mut().zip(f(std::array::from_fn(
                #[inline(always)]
                |i| pt(i * T + k),
            ))) {
                tr[k] = o;
            }
        }
        for (r, tr) in t.iter().enumerate().take(rows.1).skip(rows.0) {
            for (col, o) in f(*tr).into_iter().enumerate() {
                put(r, col, o);
            }
        }
    }
}

/// `v[ξ] = (Bᵀ d B)[ξ]` for channels `ch..ch + L`: `d` is the 6×6 window `p` of `x` (zero where
/// absent), `v[ξ]` at `v + ξ·xs`. `full` (a literal, see [`by_chunks_full!`]): `p.full(6)`.
///
/// # Safety
/// The CPU has the features of `S`; present entries of `p` and `v[ξ]` are in bounds.
#[inline(always)]
unsafe fn input_tile<S: Simd>(x: *const f32, p: Patch, v: *mut f32, xs: usize, full: bool, ch: usize) {
    // SAFETY (whole block): the caller's contract.
    unsafe {
        window_to_points::<S, T>(
            #[inline(always)]
            |r, col| if full || p.has(r, col) { S::load(x.add(p.at(r, col, ch))) } else { S::zero() },
            #[inline(always)]
            |d| bt::<S>(d),
            #[inline(always)]
            |xi, o| S::store(v.add(xi * xs + ch), o),
        )
    }
}

/// A per-output-row scale `q[pixel]` over the 4×4 output window of a tile (`p` indexes the
/// pixels: a window of a one-channel map), applied as outputs are written or gradients read.
#[derive(Clone, Copy)]
struct RowScale {
    q: *const f32,
    p: Patch,
}

impl RowScale {
    /// `v · q[pixel (r, col)]`, or `v` without a scale.
    ///
    /// # Safety
    /// The CPU has the features of `S`; pixel `(r, col)` is present and `q` holds it.
    #[inline(always)]
    unsafe fn apply<S: Simd>(q: Option<RowScale>, r: usize, col: usize, v: S::V) -> S::V {
        match q {
            // SAFETY: the caller's contract.
            Some(q) => unsafe { S::mul(v, S::splat(*q.q.add(q.p.at(r, col, 0)))) },
            None => v,
        }
    }
}

/// `M = A dY Aᵀ` for channels `ch..ch + L`: `dY` is the 4×4 window `p` of `dy` (zero where
/// absent; rows times `q` with a row scale), `M[ξ]` goes to `m + ξ·xs`. `full`: `p.full(4)`.
///
/// # Safety
/// As [`input_tile`], and `q` holds the window's present pixels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_grad_tile<S: Simd>(
    dy: *const f32,
    p: Patch,
    q: Option<RowScale>,
    m: *mut f32,
    xs: usize,
    full: bool,
    ch: usize,
) {
    // SAFETY (whole block): the caller's contract.
    unsafe {
        window_to_points::<S, M>(
            #[inline(always)]
            |r, col| {
                if full || p.has(r, col) {
                    RowScale::apply::<S>(q, r, col, S::load(dy.add(p.at(r, col, ch))))
                } else {
                    S::zero()
                }
            },
            #[inline(always)]
            |y| a::<S>(y),
            #[inline(always)]
            |xi, o| S::store(m.add(xi * xs + ch), o),
        )
    }
}

/// `Y = Aᵀ M A` for channels `ch..ch + L` (`M[ξ]` at `m + ξ·xs`), written to the present
/// entries of the 4×4 window `p` of `y` (rows times `q` with a row scale). `full`: `p.full(4)`.
///
/// # Safety
/// As [`output_grad_tile`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_tile<S: Simd>(
    m: *const f32,
    xs: usize,
    y: *mut f32,
    p: Patch,
    q: Option<RowScale>,
    full: bool,
    ch: usize,
) {
    // SAFETY (whole block): the caller's contract.
    unsafe {
        points_to_window::<S, M>(
            #[inline(always)]
            |xi| S::load(m.add(xi * xs + ch)),
            #[inline(always)]
            |v| at::<S>(v),
            p.rows,
            #[inline(always)]
            |r, col, o| {
                if full || p.has(r, col) {
                    S::store(y.add(p.at(r, col, ch)), RowScale::apply::<S>(q, r, col, o))
                }
            },
        )
    }
}

/// Adds `B dV Bᵀ` for channels `ch..ch + L` (`dV[ξ]` at `v + ξ·xs`) into the present entries
/// of the 6×6 window `p` of `dx`: into the window's first `seen.0` rows and first `seen.1`
/// columns, which earlier tiles wrote, and over whatever the others hold (so `dx` needs no
/// zeroing). `full`: `p.full(6)`.
///
/// # Safety
/// As [`input_tile`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn input_grad_tile<S: Simd>(
    v: *const f32,
    xs: usize,
    dx: *mut f32,
    p: Patch,
    seen: (usize, usize),
    full: bool,
    ch: usize,
) {
    // SAFETY (whole block): the caller's contract.
    unsafe {
        points_to_window::<S, T>(
            #[inline(always)]
            |xi| S::load(v.add(xi * xs + ch)),
            #[inline(always)]
            |w| b::<S>(w),
            p.rows,
            #[inline(always)]
            |r, col, o| {
                if full || p.has(r, col) {
                    let q = dx.add(p.at(r, col, ch));
                    S::store(q, if r < seen.0 || col < seen.1 { S::add(S::load(q), o) } else { o });
                }
            },
        )
    }
}

/// Calls `$f::<V>(args…, ch)` over the channels `0..len`: vectors of `$s`, then of `$h`, then
/// single lanes.
macro_rules! by_chunks {
    ($len:expr, $s:ty, $h:ty, $f:ident($($arg:expr),*)) => {{
        let len = $len;
        let mut ch = 0;
        while ch + <$s as Simd>::L <= len {
            $f::<$s>($($arg,)* ch);
            ch += <$s as Simd>::L;
        }
        while ch + <$h as Simd>::L <= len {
            $f::<$h>($($arg,)* ch);
            ch += <$h as Simd>::L;
        }
        while ch < len {
            $f::<Lane1>($($arg,)* ch);
            ch += 1;
        }
    }};
}

/// [`by_chunks!`] with one more argument before `ch`, a literal `full`: `true` where `$full`
/// holds, so that the tile transforms compile without their per-entry checks, else `false`.
macro_rules! by_chunks_full {
    ($full:expr, $len:expr, $s:ty, $h:ty, $f:ident($($arg:expr),*)) => {
        if $full {
            by_chunks!($len, $s, $h, $f($($arg,)* true))
        } else {
            by_chunks!($len, $s, $h, $f($($arg,)* false))
        }
    };
}

// ---- per-block transforms ---------------------------------------------------------------------
//
// Generic over the vector `S` (and `H`, half as wide, for the channels left over); [`wide!`]
// instantiates them for the widest instruction set the CPU has.

/// `(b, ty, tx)` of the `j`-th tile from global tile row `tr0`.
#[inline(always)]
fn tile_at(tl: &Tiles, tr0: usize, j: usize) -> (usize, usize, usize) {
    let tr = tr0 + j / tl.tw;
    (tr / tl.th, tr % tl.th, j % tl.tw)
}

/// The 6×6 input window of tile `(b, ty, tx)` in the `h × w × c` maps (image `b` counted from
/// the slice's first).
fn input_patch(g: &Window, (b, ty, tx): (usize, usize, usize)) -> Patch {
    let (y0, x0) = ((ty * M) as isize - g.pad_top as isize, (tx * M) as isize - g.pad_left as isize);
    Patch::new(b, (y0, x0), (g.h, g.w, g.c), T)
}

/// The 4×4 output window of tile `(b, ty, tx)` in `ho × wo × n` maps.
fn output_patch(g: &Window, n: usize, (b, ty, tx): (usize, usize, usize)) -> Patch {
    Patch::new(b, ((ty * M) as isize, (tx * M) as isize), (g.ho, g.wo, n), M)
}

/// Input transform of the `tiles` tiles (whole tile rows) from tile row `tr0` into `v`.
#[inline(always)]
fn input_block<S: Simd, H: Simd>(g: &Window, x: &[f32], tl: &Tiles, tr0: usize, tiles: usize, v: &mut [f32]) {
    let (c, vs) = (g.c, tl.stride(g.c));
    assert!(x.len() >= g.input_len() && v.len() >= XI * vs && tiles <= tl.block_len());
    for j in 0..tiles {
        let p = input_patch(g, tile_at(tl, tr0, j));
        let (x, v) = (x.as_ptr(), v.as_mut_ptr().wrapping_add(j * c));
        // SAFETY: present window entries lie in image b of x, v[ξ][j] in v (asserted above);
        // the caller ([`wide!`]) runs this with the features of S and H.
        unsafe { by_chunks_full!(p.full(T), c, S, H, input_tile(x, p, v, vs)) }
    }
}

/// Output transform of `m` into `y`, the block's output rows (from tile row `tr0`), times the
/// row scale `q` (all rows) if given.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_block<S: Simd, H: Simd>(
    g: &Window,
    n: usize,
    tl: &Tiles,
    tr0: usize,
    tiles: usize,
    m: &[f32],
    q: Option<&[f32]>,
    y: &mut [f32],
) {
    let ms = tl.stride(n);
    let (b0, ty0, _) = tile_at(tl, tr0, 0);
    // `y` starts at output row `ty0·4` of image `b0`.
    let skip = (b0 * g.ho + ty0 * M) * g.wo * n;
    assert!(m.len() >= XI * ms && tiles <= tl.block_len() && q.is_none_or(|q| q.len() >= g.rows()));
    for j in 0..tiles {
        let tile = tile_at(tl, tr0, j);
        let p = output_patch(g, n, tile);
        let end = p.at(p.rows.1 - 1, p.cols.1 - 1, n);
        assert!(p.at(0, 0, 0) >= skip && end <= skip + y.len());
        let yp = y.as_mut_ptr().wrapping_sub(skip);
        let q = q.map(|q| RowScale { q: q.as_ptr(), p: output_patch(g, 1, tile) });
        let m = m.as_ptr().wrapping_add(j * n);
        // SAFETY: the window's present entries lie in y (asserted above), its pixels in q,
        // m[ξ][j] in m.
        unsafe { by_chunks_full!(p.full(M), n, S, H, output_tile(m, ms, yp, p, q)) }
    }
}

/// `m = A·dY·Aᵀ` of the block's tiles, `dY` rows times the row scale `q` if given.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_grad_block<S: Simd, H: Simd>(
    g: &Window,
    n: usize,
    dy: &[f32],
    q: Option<&[f32]>,
    tl: &Tiles,
    tr0: usize,
    tiles: usize,
    m: &mut [f32],
) {
    let ms = tl.stride(n);
    assert!(dy.len() >= g.rows() * n && m.len() >= XI * ms && tiles <= tl.block_len());
    assert!(q.is_none_or(|q| q.len() >= g.rows()));
    for j in 0..tiles {
        let tile = tile_at(tl, tr0, j);
        let p = output_patch(g, n, tile);
        let q = q.map(|q| RowScale { q: q.as_ptr(), p: output_patch(g, 1, tile) });
        let (dy, m) = (dy.as_ptr(), m.as_mut_ptr().wrapping_add(j * n));
        // SAFETY: present entries lie in image b of dy, their pixels in q, m[ξ][j] in m
        // (asserted above).
        unsafe { by_chunks_full!(p.full(M), n, S, H, output_grad_tile(dy, p, q, m, ms)) }
    }
}

/// Adds `B·dV·Bᵀ` (`dV` in `v`) of the block's tiles, in order, into `dx` (images from `b0`);
/// the entries that no earlier tile of their image wrote are overwritten. Every input entry
/// lies in some tile's window (stride 1, 3×3), so the image's tiles, in order, write all of
/// it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn input_grad_block<S: Simd, H: Simd>(
    g: &Window,
    tl: &Tiles,
    tr0: usize,
    b0: usize,
    tiles: usize,
    v: &[f32],
    dx: &mut [f32],
) {
    let (c, vs) = (g.c, tl.stride(g.c));
    let (b_last, ..) = tile_at(tl, tr0, tiles.max(1) - 1);
    assert!(v.len() >= XI * vs && tiles <= tl.block_len() && dx.len() >= (b_last + 1 - b0) * g.h * g.w * c);
    for j in 0..tiles {
        let (b, ty, tx) = tile_at(tl, tr0, j);
        let p = input_patch(g, (b - b0, ty, tx));
        // Windows overlap their neighbours' by T − M = 2 rows and columns; the tiles above
        // and to the left came first.
        let seen = (if ty > 0 { T - M } else { 0 }, if tx > 0 { T - M } else { 0 });
        let (v, dx) = (v.as_ptr().wrapping_add(j * c), dx.as_mut_ptr());
        // SAFETY: present entries lie in image b − b0 of dx (asserted above), v[ξ][j] in v.
        unsafe { by_chunks_full!(p.full(T), c, S, H, input_grad_tile(v, vs, dx, p, seen)) }
    }
}

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

/// `y = conv(x, w)` (see [`nsl_core::Backend::conv2d`], no patch scale) by F(4×4, 3×3), rows
/// times `q` if given ([`nsl_core::Backend::conv2d_rows_scaled`]).
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
