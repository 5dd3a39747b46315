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
//! (the input gradient, `dd = B·dV·Bᵀ`, added into the overlapping 6×6 windows).
//!
//! Tiles are processed in blocks of whole tile rows whose transformed values stay in L2; their
//! 6×6 windows are read in place from a zero-padded copy of the block's input rows.
//! The forward's blocks own disjoint rows of `y`; backward tasks own whole images (a count
//! fixed by the batch, never by the thread count), add `dd` into their images of `dx` in tile
//! order and accumulate `dU` into private copies summed in task order, so results are bitwise
//! reproducible and independent of the number of threads. Results differ from the direct
//! convolution by f32 rounding only: at CNN-9's shapes with inputs and weights uniform in
//! [−1, 1] the largest error against an f64 reference was 2–4e-6 of the largest output (direct:
//! 0.6–0.9e-6); `tests/conv2d.rs` checks both paths against that reference on random shapes.
//! `Cpu::with_winograd(false)` or `NSL_CPU_WINOGRAD=0` turns this path off.

use nsl_core::Window;
use rayon::prelude::*;

use crate::conv::pad_row;
use crate::conv2d::{backward_tasks, with_scratch, MAX_BACKWARD_TASKS, PAR_MIN_FLOPS};
use crate::gemm::kernels::Kernels;
use crate::gemm::{OuterPlan, PackedB};
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
    /// Columns of a padded input row ([`pad_rows`]).
    wp: usize,
    /// Tile rows per block.
    rows_per_block: usize,
}

impl Tiles {
    fn new(g: &Window, n: usize) -> Self {
        let (th, tw) = (g.ho.div_ceil(M), g.wo.div_ceil(M));
        // Per tile: padded input rows (at most 6·6·c), transformed inputs and outputs.
        let per_block = (BLOCK_FLOATS / (XI * (2 * g.c + n))).next_multiple_of(BLOCK_ALIGN);
        Tiles { th, tw, wp: tw * M + 2, rows_per_block: (per_block / tw).max(1) }
    }

    /// Most tiles in one block.
    fn block_len(&self) -> usize {
        self.rows_per_block * self.tw
    }

    /// First output row (over the whole batch, `b·ho + oy`) of global tile row `tr`.
    fn first_out_row(&self, g: &Window, tr: usize) -> usize {
        (tr / self.th) * g.ho + (tr % self.th) * M
    }
}

// ---- 1-D transforms over channel vectors ------------------------------------------------------

/// Six rows of `len` values at `off + i·stride` of `s`.
#[inline(always)]
fn six(s: &[f32], off: usize, stride: usize, len: usize) -> [&[f32]; T] {
    let r = |i: usize| &s[off + i * stride..][..len];
    [r(0), r(1), r(2), r(3), r(4), r(5)]
}

/// The next row of `len` values of `rest`, advancing it by `stride` (or to its end).
#[inline(always)]
fn next_row<'a>(rest: &mut &'a mut [f32], stride: usize, len: usize) -> &'a mut [f32] {
    let s = std::mem::take(rest);
    let (row, tail) = s.split_at_mut(stride.min(s.len()));
    *rest = tail;
    &mut row[..len]
}

/// Four and six disjoint rows of `len` values at `off + i·stride` of `s` (`stride ≥ len`).
#[inline(always)]
fn rows4(s: &mut [f32], off: usize, stride: usize, len: usize) -> [&mut [f32]; M] {
    let mut r = &mut s[off..];
    [
        next_row(&mut r, stride, len),
        next_row(&mut r, stride, len),
        next_row(&mut r, stride, len),
        next_row(&mut r, stride, len),
    ]
}

#[inline(always)]
fn rows6(s: &mut [f32], off: usize, stride: usize, len: usize) -> [&mut [f32]; T] {
    let mut r = &mut s[off..];
    let (r0, r1, r2) = (next_row(&mut r, stride, len), next_row(&mut r, stride, len), next_row(&mut r, stride, len));
    let (r3, r4, r5) = (next_row(&mut r, stride, len), next_row(&mut r, stride, len), next_row(&mut r, stride, len));
    [r0, r1, r2, r3, r4, r5]
}

/// `o = Bᵀ·d` (the input transform, 6 → 6), elementwise over channel vectors.
#[inline(always)]
fn bt(d: [&[f32]; T], o: [&mut [f32]; T]) {
    let [o0, o1, o2, o3, o4, o5] = o;
    let [d0, d1, d2, d3, d4, d5] = d;
    bt_k(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5)
}

// The kernels take each vector as its own argument: `&mut` arguments are `noalias`, which the
// loop vectoriser needs (a runtime check of 50 pointer pairs is past its limit), and slicing
// every vector to the same length removes the bounds checks.

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bt_k(
    d0: &[f32],
    d1: &[f32],
    d2: &[f32],
    d3: &[f32],
    d4: &[f32],
    d5: &[f32],
    o0: &mut [f32],
    o1: &mut [f32],
    o2: &mut [f32],
    o3: &mut [f32],
    o4: &mut [f32],
    o5: &mut [f32],
) {
    let c = o0.len();
    let (d0, d1, d2, d3, d4, d5) = (&d0[..c], &d1[..c], &d2[..c], &d3[..c], &d4[..c], &d5[..c]);
    let (o1, o2, o3, o4, o5) = (&mut o1[..c], &mut o2[..c], &mut o3[..c], &mut o4[..c], &mut o5[..c]);
    for i in 0..c {
        let (a0, a1, a2, a3, a4, a5) = (d0[i], d1[i], d2[i], d3[i], d4[i], d5[i]);
        o0[i] = 4.0 * a0 - 5.0 * a2 + a4;
        o1[i] = (a3 + a4) - 4.0 * (a1 + a2);
        o2[i] = (a4 - a3) + 4.0 * (a1 - a2);
        o3[i] = (a4 - a2) + 2.0 * (a3 - a1);
        o4[i] = (a4 - a2) + 2.0 * (a1 - a3);
        o5[i] = 4.0 * a1 - 5.0 * a3 + a5;
    }
}

/// `o = B·v` (adjoint of [`bt`], 6 → 6).
#[inline(always)]
fn b(v: [&[f32]; T], o: [&mut [f32]; T]) {
    let [o0, o1, o2, o3, o4, o5] = o;
    let [v0, v1, v2, v3, v4, v5] = v;
    b_k(v0, v1, v2, v3, v4, v5, o0, o1, o2, o3, o4, o5)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn b_k(
    v0: &[f32],
    v1: &[f32],
    v2: &[f32],
    v3: &[f32],
    v4: &[f32],
    v5: &[f32],
    o0: &mut [f32],
    o1: &mut [f32],
    o2: &mut [f32],
    o3: &mut [f32],
    o4: &mut [f32],
    o5: &mut [f32],
) {
    let c = o0.len();
    let (v0, v1, v2, v3, v4, v5) = (&v0[..c], &v1[..c], &v2[..c], &v3[..c], &v4[..c], &v5[..c]);
    let (o1, o2, o3, o4, o5) = (&mut o1[..c], &mut o2[..c], &mut o3[..c], &mut o4[..c], &mut o5[..c]);
    for i in 0..c {
        let (a0, a1, a2, a3, a4, a5) = (v0[i], v1[i], v2[i], v3[i], v4[i], v5[i]);
        o0[i] = 4.0 * a0;
        o1[i] = 4.0 * (a2 - a1 + a5) + 2.0 * (a4 - a3);
        o2[i] = -5.0 * a0 - 4.0 * (a1 + a2) - (a3 + a4);
        o3[i] = (a1 - a2) + 2.0 * (a3 - a4) - 5.0 * a5;
        o4[i] = a0 + a1 + a2 + a3 + a4;
        o5[i] = a5;
    }
}

/// `o = Aᵀ·m` (the output transform, 6 → 4).
#[inline(always)]
fn at(m: [&[f32]; T], o: [&mut [f32]; M]) {
    let [o0, o1, o2, o3] = o;
    let [m0, m1, m2, m3, m4, m5] = m;
    at_k(m0, m1, m2, m3, m4, m5, o0, o1, o2, o3)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn at_k(
    m0: &[f32],
    m1: &[f32],
    m2: &[f32],
    m3: &[f32],
    m4: &[f32],
    m5: &[f32],
    o0: &mut [f32],
    o1: &mut [f32],
    o2: &mut [f32],
    o3: &mut [f32],
) {
    let c = o0.len();
    let (m0, m1, m2, m3, m4, m5) = (&m0[..c], &m1[..c], &m2[..c], &m3[..c], &m4[..c], &m5[..c]);
    let (o1, o2, o3) = (&mut o1[..c], &mut o2[..c], &mut o3[..c]);
    for i in 0..c {
        let (s12, d12, s34, d34) = (m1[i] + m2[i], m1[i] - m2[i], m3[i] + m4[i], m3[i] - m4[i]);
        o0[i] = m0[i] + s12 + s34;
        o1[i] = d12 + 2.0 * d34;
        o2[i] = s12 + 4.0 * s34;
        o3[i] = d12 + 8.0 * d34 + m5[i];
    }
}

/// `o = A·y` (adjoint of [`at`], 4 → 6).
#[inline(always)]
fn a(y: [&[f32]; M], o: [&mut [f32]; T]) {
    let [o0, o1, o2, o3, o4, o5] = o;
    let [y0, y1, y2, y3] = y;
    a_k(y0, y1, y2, y3, o0, o1, o2, o3, o4, o5)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn a_k(
    y0: &[f32],
    y1: &[f32],
    y2: &[f32],
    y3: &[f32],
    o0: &mut [f32],
    o1: &mut [f32],
    o2: &mut [f32],
    o3: &mut [f32],
    o4: &mut [f32],
    o5: &mut [f32],
) {
    let c = o0.len();
    let (y0, y1, y2, y3) = (&y0[..c], &y1[..c], &y2[..c], &y3[..c]);
    let (o1, o2, o3, o4, o5) = (&mut o1[..c], &mut o2[..c], &mut o3[..c], &mut o4[..c], &mut o5[..c]);
    for i in 0..c {
        let (s02, d13, s02w, d13w) = (y0[i] + y2[i], y1[i] + y3[i], y0[i] + 4.0 * y2[i], 2.0 * y1[i] + 8.0 * y3[i]);
        o0[i] = y0[i];
        o1[i] = s02 + d13;
        o2[i] = s02 - d13;
        o3[i] = s02w + d13w;
        o4[i] = s02w - d13w;
        o5[i] = y3[i];
    }
}

/// Four rows of `len` values at `off + i·stride` of `s`.
#[inline(always)]
fn four(s: &[f32], off: usize, stride: usize, len: usize) -> [&[f32]; M] {
    let r = |i: usize| &s[off + i * stride..][..len];
    [r(0), r(1), r(2), r(3)]
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

/// Scratch of one block: its padded input rows `rows` (6 per tile row, see [`pad_rows`]),
/// transformed inputs `v` (36 × tiles × c), transformed outputs `m` (36 × tiles × n) and two
/// 6×6 tiles of channel vectors.
struct Block<'a> {
    rows: &'a mut [f32],
    v: &'a mut [f32],
    m: &'a mut [f32],
    d: &'a mut [f32],
    tmp: &'a mut [f32],
}

impl<'a> Block<'a> {
    fn floats(tl: &Tiles, c: usize, n: usize) -> usize {
        tl.rows_per_block * T * tl.wp * c + XI * tl.block_len() * (c + n) + 2 * XI * c.max(n)
    }

    fn split(s: &'a mut [f32], tl: &Tiles, c: usize, n: usize) -> Self {
        let (rows, rest) = s.split_at_mut(tl.rows_per_block * T * tl.wp * c);
        let (v, rest) = rest.split_at_mut(XI * tl.block_len() * c);
        let (m, rest) = rest.split_at_mut(XI * tl.block_len() * n);
        let (d, tmp) = rest.split_at_mut(XI * c.max(n));
        Block { rows, v, m, d, tmp }
    }
}

/// `v[ξ][j][..] = (Bᵀ d B)[ξ]` for tile `j` of a block of `bl` tiles, in tile row `row` of the
/// block and column `tx`: `d` is its 6×6 window, read in place from the block's padded rows.
#[inline(always)]
fn input_tile(tl: &Tiles, c: usize, (row, tx): (usize, usize), j: usize, bl: usize, s: &mut Block) {
    let d0 = (row * T * tl.wp + tx * M) * c;
    // Columns: tmp[i][s] = Σ_r Bᵀ[i][r]·d[r][s]; rows: v[i·6 + k][j] = Σ_s Bᵀ[k][s]·tmp[i][s].
    for col in 0..T {
        bt(six(s.rows, d0 + col * c, tl.wp * c, c), rows6(s.tmp, col * c, T * c, c));
    }
    for i in 0..T {
        bt(six(s.tmp, i * T * c, c, c), rows6(s.v, (i * T * bl + j) * c, bl * c, c));
    }
}

/// The six zero-padded input rows of each of the `count` tile rows from global tile row `tr0`
/// (`rows[j][r][px] = x[b, 4·ty + r − pad_top, px − pad_left]`, zero outside the map, for
/// tile row `tr0 + j` = image `b`, row `ty`): copied per block so that they stay in L2 and the
/// input is read once, with no padded copy of the whole batch.
#[inline(always)]
fn pad_rows(g: &Window, tl: &Tiles, x: &[f32], tr0: usize, count: usize, rows: &mut [f32]) {
    let row_len = tl.wp * g.c;
    for (i, row) in rows[..count * T * row_len].chunks_exact_mut(row_len).enumerate() {
        let tr = tr0 + i / T;
        pad_row(g, x, tr / tl.th, (tr % tl.th) * M + i % T, row);
    }
}

/// Row pass of the output transform of tile `j` (of a block of `bl`):
/// `tmp[a][jj] = Σ_i Aᵀ[a][i]·m[i·6 + jj][j]` (4×6 vectors of `n`); [`output_cols`] finishes it.
#[inline(always)]
fn output_rows(n: usize, j: usize, bl: usize, s: &mut Block) {
    for jj in 0..T {
        at(six(s.m, (jj * bl + j) * n, T * bl * n, n), rows4(s.tmp, jj * n, T * n, n));
    }
}

/// Row `a` of the tile's outputs, `out[bb] = Σ_jj Aᵀ[bb][jj]·tmp[a][jj]`, into four vectors of
/// `n` at `off + bb·n` of `out`.
#[inline(always)]
fn output_cols(n: usize, a: usize, tmp: &[f32], out: &mut [f32], off: usize) {
    at(six(tmp, a * T * n, n, n), rows4(out, off, n, n));
}

/// `m[ξ][j] = (A dY Aᵀ)[ξ]` for tile `(b, ty, tx)` of `dy` (zero past the map's edge).
#[inline(always)]
fn output_grad_tile(
    g: &Window,
    n: usize,
    dy: &[f32],
    (b, ty, tx): (usize, usize, usize),
    j: usize,
    bl: usize,
    s: &mut Block,
) {
    let (oy0, ox0) = (ty * M, tx * M);
    let cols = (g.wo - ox0).min(M);
    for a in 0..M {
        let row = &mut s.d[a * M * n..(a + 1) * M * n];
        if oy0 + a < g.ho {
            let src = ((b * g.ho + oy0 + a) * g.wo + ox0) * n;
            row[..cols * n].copy_from_slice(&dy[src..src + cols * n]);
            row[cols * n..].fill(0.0);
        } else {
            row.fill(0.0);
        }
    }
    // Columns: tmp[i][bb] = Σ_a A[i][a]·dY[a][bb]; rows: m[i·6 + k][j] = Σ_bb A[k][bb]·tmp[i][bb].
    for bb in 0..M {
        a(four(s.d, bb * n, M * n, n), rows6(s.tmp, bb * n, M * n, n));
    }
    for i in 0..T {
        a(four(s.tmp, i * M * n, n, n), rows6(s.m, (i * T * bl + j) * n, bl * n, n));
    }
}

/// Adds `(B dV Bᵀ)` of tile `j` (`s.v` holds `dV`) into the image's `dx` at tile `(ty, tx)`.
#[inline(always)]
fn input_grad_tile(g: &Window, (ty, tx): (usize, usize), j: usize, bl: usize, s: &mut Block, dx_img: &mut [f32]) {
    let c = g.c;
    // Rows: tmp[i][col] = Σ_k B[col][k]·dV[i·6 + k][j]; columns: dd[r][col] = Σ_i B[r][i]·tmp[i][col].
    for i in 0..T {
        b(six(s.v, (i * T * bl + j) * c, bl * c, c), rows6(s.tmp, i * T * c, c, c));
    }
    for col in 0..T {
        b(six(s.tmp, col * c, T * c, c), rows6(s.d, col * c, T * c, c));
    }
    let (iy0, ix0) = ((ty * M) as isize - g.pad_top as isize, (tx * M) as isize - g.pad_left as isize);
    let (s0, s1) = ((-ix0).clamp(0, T as isize) as usize, (g.w as isize - ix0).clamp(0, T as isize) as usize);
    for r in 0..T {
        let iy = iy0 + r as isize;
        if iy < 0 || iy >= g.h as isize || s0 >= s1 {
            continue;
        }
        let dst = ((iy as usize * g.w) as isize + ix0 + s0 as isize) as usize;
        let out = &mut dx_img[dst * c..(dst + s1 - s0) * c];
        for (o, v) in out.iter_mut().zip(&s.d[(r * T + s0) * c..(r * T + s1) * c]) {
            *o += v;
        }
    }
}

/// Runs `f` compiled for AVX-512 or AVX2 when the CPU has them, so that the transforms'
/// auto-vectorised loops use wide vectors without `-C target-cpu` (no FMA contraction: the
/// result is the same on every instruction set).
macro_rules! wide {
    ($f:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F.
                unsafe { isa::avx512::$f($($arg),*) }
            } else if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                unsafe { isa::avx2::$f($($arg),*) }
            } else {
                $f($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f($($arg),*)
        }
    }};
}

/// The block-level transforms compiled with wider vector extensions (see [`wide!`]).
#[cfg(target_arch = "x86_64")]
mod isa {
    macro_rules! variants {
        ($name:ident, $feat:literal) => {
            pub(super) mod $name {
                use super::super::*;

                #[target_feature(enable = $feat)]
                pub(in super::super) unsafe fn input_block(
                    g: &Window,
                    x: &[f32],
                    tl: &Tiles,
                    tr0: usize,
                    tiles: usize,
                    s: &mut Block,
                ) {
                    super::super::input_block(g, x, tl, tr0, tiles, s)
                }
                #[target_feature(enable = $feat)]
                pub(in super::super) unsafe fn output_block(
                    g: &Window,
                    n: usize,
                    tl: &Tiles,
                    tr0: usize,
                    tiles: usize,
                    s: &mut Block,
                    y: &mut [f32],
                ) {
                    super::super::output_block(g, n, tl, tr0, tiles, s, y)
                }
                #[target_feature(enable = $feat)]
                pub(in super::super) unsafe fn output_grad_block(
                    g: &Window,
                    n: usize,
                    dy: &[f32],
                    tl: &Tiles,
                    tr0: usize,
                    tiles: usize,
                    s: &mut Block,
                ) {
                    super::super::output_grad_block(g, n, dy, tl, tr0, tiles, s)
                }
                #[target_feature(enable = $feat)]
                pub(in super::super) unsafe fn input_grad_block(
                    g: &Window,
                    tl: &Tiles,
                    tr0: usize,
                    b0: usize,
                    tiles: usize,
                    s: &mut Block,
                    dx: &mut [f32],
                ) {
                    super::super::input_grad_block(g, tl, tr0, b0, tiles, s, dx)
                }
            }
        };
    }
    variants!(avx512, "avx512f");
    variants!(avx2, "avx2");
}

/// `(b, ty, tx)` of the `j`-th tile from global tile row `tr0`.
#[inline(always)]
fn tile_at(tl: &Tiles, tr0: usize, j: usize) -> (usize, usize, usize) {
    let tr = tr0 + j / tl.tw;
    (tr / tl.th, tr % tl.th, j % tl.tw)
}

/// Input transform of the `tiles` tiles (whole tile rows) from tile row `tr0` into `s.v`.
#[inline(always)]
fn input_block(g: &Window, x: &[f32], tl: &Tiles, tr0: usize, tiles: usize, s: &mut Block) {
    pad_rows(g, tl, x, tr0, tiles / tl.tw, s.rows);
    for j in 0..tiles {
        input_tile(tl, g.c, (j / tl.tw, j % tl.tw), j, tl.block_len(), s);
    }
}

/// Output transform of `s.m` into `y`, the block's output rows (from tile row `tr0`).
#[inline(always)]
fn output_block(g: &Window, n: usize, tl: &Tiles, tr0: usize, tiles: usize, s: &mut Block, y: &mut [f32]) {
    let row0 = tl.first_out_row(g, tr0);
    for j in 0..tiles {
        let (b, ty, tx) = tile_at(tl, tr0, j);
        output_rows(n, j, tl.block_len(), s);
        let (oy0, ox0) = (ty * M, tx * M);
        let (rows, cols) = ((g.ho - oy0).min(M), (g.wo - ox0).min(M));
        let dst = |a: usize| ((b * g.ho + oy0 + a - row0) * g.wo + ox0) * n;
        for a in 0..rows {
            if cols == M {
                output_cols(n, a, s.tmp, y, dst(a));
            } else {
                // A partial tile: through scratch, then its columns inside the map.
                output_cols(n, a, s.tmp, s.d, 0);
                y[dst(a)..dst(a) + cols * n].copy_from_slice(&s.d[..cols * n]);
            }
        }
    }
}

/// `s.m = A·dY·Aᵀ` of the block's tiles.
#[inline(always)]
fn output_grad_block(g: &Window, n: usize, dy: &[f32], tl: &Tiles, tr0: usize, tiles: usize, s: &mut Block) {
    for j in 0..tiles {
        output_grad_tile(g, n, dy, tile_at(tl, tr0, j), j, tl.block_len(), s);
    }
}

/// Adds `B·dV·Bᵀ` (`dV` in `s.v`) of the block's tiles, in order, into `dx` (images from `b0`).
#[inline(always)]
fn input_grad_block(g: &Window, tl: &Tiles, tr0: usize, b0: usize, tiles: usize, s: &mut Block, dx: &mut [f32]) {
    let img = g.h * g.w * g.c;
    for j in 0..tiles {
        let (b, ty, tx) = tile_at(tl, tr0, j);
        input_grad_tile(g, (ty, tx), j, tl.block_len(), s, &mut dx[(b - b0) * img..(b - b0 + 1) * img]);
    }
}

// ---- forward and backward ---------------------------------------------------------------------

/// `y = conv(x, w)` (see [`nsl_core::Backend::conv2d`], no scale) by F(4×4, 3×3).
pub(crate) fn forward(cpu: &Cpu, ks: &Kernels, g: &Window, n: usize, x: &[f32], w: &[f32], y: &mut [f32]) {
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
            let mut s = Block::split(scratch, &tl, c, n);
            let bl = tl.block_len();
            wide!(input_block(g, x, &tl, tr0, tiles, &mut s));
            for (xi, p) in packs.iter().enumerate() {
                // SAFETY: m[ξ] holds `bl ≥ tiles` rows of n values, borrowed mutably.
                unsafe { p.times(ks, &s.v[xi * bl * c..], tiles, s.m[xi * bl * n..].as_mut_ptr(), 1.0, 0.0) };
            }
            wide!(output_block(g, n, &tl, tr0, tiles, &mut s, yb));
        })
    };
    if g.rows() * g.patch_len() * n < PAR_MIN_FLOPS || blocks.len() == 1 {
        blocks.into_iter().for_each(run);
    } else {
        cpu.install(|| blocks.into_par_iter().for_each(run));
    }
}

/// Backward of [`forward`]: `dx = ∂L/∂x` (overwritten) and `dw += ∂L/∂w`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    cpu: &Cpu,
    ks: &Kernels,
    g: &Window,
    n: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
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
        dx.fill(0.0);
        let b1 = (b0 + imgs).min(g.batch);
        with_scratch(Block::floats(&tl, c, n) + plan.tail_len(), |scratch| {
            let (scratch, tail) = scratch.split_at_mut(Block::floats(&tl, c, n));
            let mut s = Block::split(scratch, &tl, c, n);
            let bl = tl.block_len();
            for tr0 in (b0 * tl.th..b1 * tl.th).step_by(tl.rows_per_block) {
                let tiles = (b1 * tl.th - tr0).min(tl.rows_per_block) * tl.tw;
                wide!(input_block(g, x, &tl, tr0, tiles, &mut s));
                wide!(output_grad_block(g, n, dy, &tl, tr0, tiles, &mut s));
                for xi in 0..XI {
                    let (v, m) = (&s.v[xi * bl * c..], &s.m[xi * bl * n..]);
                    plan.accumulate(ks, v, m, tiles, &mut parts[xi * part..(xi + 1) * part], tail);
                }
                for (xi, p) in packs.iter().enumerate() {
                    // SAFETY: v[ξ] holds `bl ≥ tiles` rows of c values, borrowed mutably (its
                    // transformed inputs were consumed above).
                    unsafe { p.times(ks, &s.m[xi * bl * n..], tiles, s.v[xi * bl * c..].as_mut_ptr(), 1.0, 0.0) };
                }
                wide!(input_grad_block(g, &tl, tr0, b0, tiles, &mut s, dx));
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
