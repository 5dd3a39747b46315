//! Direct convolution, [`nsl_core::Backend::conv2d`] and its backward, without a whole-batch
//! patch matrix. (Unscaled stride-1 3×3 windows with enough channels go to `winograd.rs`
//! instead, see [`crate::Cpu::uses_winograd`].) Forwards on maps of at least
//! [`PADDED_MIN_WO`] columns ([`SCALED_PADDED_MIN_WO`] with a tap scale) read the windows in
//! place from a zero-padded copy of the input; with a dynamic-DNS tap scale each tap's product
//! `Σ_c x·w` is summed in registers and added in times its scale (`y = Σ_t s_t·(Σ_c x·w)`), so
//! no scaled patch is ever written. Otherwise output rows are cut into tiles of about
//! [`TILE_ELEMS`] patch values whose patches are gathered (and scaled) into a per-thread scratch
//! buffer that stays in L2. Either way they go straight through the skinny-GEMM tiles of `gemm`
//! (single-threaded there: the parallelism is over tiles, never nested). A row scale
//! ([`nsl_core::ConvScale::Rows`]) is applied after the product here, and inside the
//! transforms on the Winograd path.
//!
//! **Backward.** For unscaled stride-1 windows on maps ≥ [`PADDED_MIN_WO`] wide with fewer
//! outputs than inputs (`n < c`, e.g. the DNS predictor's 64→9), `dx` is the im2col-free
//! convolution of `dy` with the flipped kernel: `dP = dy·wᵀ` would run only `n` steps deep
//! per tile (measured: 64→9 backward 77–99 → 112–135 GFLOP/s; 32→32 and 3→32 were slower). Tasks own whole images (a count
//! fixed by the batch size, never by the thread count). Per tile of rows: scaled patches
//! `s⊙P` go into the task's private copy of `dw` ([`OuterPlan`]); unless `dx` came from the
//! convolution above, `dP = dy·wᵀ`, `ds[r,t] = Σ_c x[src(r,t),c]·dP[r,t,c]` (read from `x`) and
//! `s⊙dP` is added into the task's images of `dx`, rows in order. The copies of `dw` are
//! summed in task order, so results are bitwise reproducible and independent of the number of
//! threads. `dP`'s elements, and those of the forward except the in-place scaled one, are each
//! one sequential chain over the inner dimension, so they equal the unfused path's bit for bit.

use nsl_core::Window;
use rayon::prelude::*;

use crate::conv::{col2im_add_rows, im2col_rows, pad_map, padded_size, patch_dots_rows};
use crate::gemm::kernels::Kernels;
use crate::gemm::{OuterPlan, PackedB};
use crate::par::{backward_tasks, with_scratch, MAX_BACKWARD_TASKS, PAR_MIN_FLOPS};
use crate::winograd;
use crate::{elementwise, Cpu, CpuBuf};

/// Patch values per tile (128 KiB: the tile, its gradient and a panel of `w` stay in L2).
const TILE_ELEMS: usize = 1 << 15;
/// Bounds on the rows of a tile.
const TILE_ROWS: (usize, usize) = (16, 1024);
/// Narrowest output map for the im2col-free forward: it runs register tiles along one output
/// row, and on narrower maps the short leftover tiles cost more than gathering (measured:
/// faster from 16 columns, slower at 8).
const PADDED_MIN_WO: usize = 16;
/// Narrowest output map for the im2col-free forward with a tap scale. Its tiles have half the
/// rows of the unscaled ones (each tap needs accumulators of its own), so short output rows
/// cost more (measured on CNN-9's layers, in-place vs gathered: 32→32 on 32×32 about 30%
/// faster, 32→64 and 64→64 on 16×16 15–20% slower).
const SCALED_PADDED_MIN_WO: usize = 32;
/// Rows per tile for patches of `pl` values.
fn tile_rows(pl: usize) -> usize {
    (TILE_ELEMS / pl.max(1)).clamp(TILE_ROWS.0, TILE_ROWS.1)
}

/// See [`nsl_core::Backend::conv2d`], and with a row scale `q`,
/// [`nsl_core::ConvScale::Rows`] (applied as Winograd writes its outputs, else
/// after the product).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d(
    cpu: &Cpu,
    ks: &Kernels,
    g: &Window,
    n: usize,
    x: &[f32],
    w: &[f32],
    scale: Option<&[f32]>,
    q: Option<&[f32]>,
    y: &mut [f32],
) {
    let (rows, pl) = (g.rows(), g.patch_len());
    let y = &mut y[..rows * n];
    if pl == 0 || n == 0 || rows == 0 {
        y.fill(0.0);
        return;
    }
    let (x, w) = (&x[..g.input_len()], &w[..pl * n]);
    if cpu.uses_winograd(g, n, scale.is_some()) {
        return winograd::forward(cpu, ks, g, n, x, w, q, y);
    }
    let wp = PackedB::new(ks, w, pl, n, false);
    let scale = scale.map(|s| &s[..rows * g.taps()]);
    if forward_in_place(g, scale.is_some()) {
        forward_padded(cpu, ks, g, n, x, &wp, scale, y)
    } else {
        forward_gathered(cpu, ks, g, n, x, &wp, scale, y)
    }
    if let Some(q) = q {
        elementwise::mul_rows_in_place(cpu, y, q, n);
    }
}

/// Whether the forward of window `g` (with a tap scale or not) reads its windows in place
/// ([`forward_padded`]) rather than gathering them per tile.
pub(crate) fn forward_in_place(g: &Window, scaled: bool) -> bool {
    g.wo >= if scaled { SCALED_PADDED_MIN_WO } else { PADDED_MIN_WO }
}

/// Runs `f(first_row, block)` over `y` (`rows × n`, the output of window `g`) in blocks of
/// `block_rows` rows, in parallel when the convolution is large enough (`rows·k²c·n` flops).
fn for_row_blocks(
    cpu: &Cpu,
    g: &Window,
    y: &mut [f32],
    n: usize,
    block_rows: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    if g.rows() * g.patch_len() * n < PAR_MIN_FLOPS {
        y.chunks_mut(block_rows * n).enumerate().for_each(|(i, yt)| f(i * block_rows, yt));
    } else {
        cpu.install(|| y.par_chunks_mut(block_rows * n).enumerate().for_each(|(i, yt)| f(i * block_rows, yt)));
    }
}

// Boilerplate: `forward_gathered` and `forward_padded` are the two ways `conv2d` runs its
// forward, picked by `forward_in_place`; they take the same parameters.

/// Forward through gathered patches: each tile's (scaled) patches are copied into scratch.
#[allow(clippy::too_many_arguments)]
fn forward_gathered(
    cpu: &Cpu,
    ks: &Kernels,
    g: &Window,
    n: usize,
    x: &[f32],
    wp: &PackedB,
    s: Option<&[f32]>,
    y: &mut [f32],
) {
    let pl = g.patch_len();
    for_row_blocks(cpu, g, y, n, tile_rows(pl), |r0, yt| {
        let tr = yt.len() / n;
        with_scratch(tr * pl, |p| {
            im2col_rows(g, x, r0, p, s);
            // SAFETY: `yt` is this tile's `tr × n` block of y, borrowed mutably.
            unsafe { wp.times(ks, p, tr, yt.as_mut_ptr(), 1.0, 0.0) }
        })
    });
}

/// Forward im2col-free: the input is zero-padded once ([`pad_map`]) and each output row's
/// windows are read from it in place, at a row stride of `stride·c`. Unscaled, as one stretch
/// of `k·c` values per window row ([`PackedB::times_stretches`]); with a tap scale `s`, as `k²`
/// taps of `c` values, each tap's product times `s[r·k² + t]` ([`PackedB::times_scaled_taps`]).
#[allow(clippy::too_many_arguments)]
fn forward_padded(
    cpu: &Cpu,
    ks: &Kernels,
    g: &Window,
    n: usize,
    x: &[f32],
    wp: &PackedB,
    s: Option<&[f32]>,
    y: &mut [f32],
) {
    let (hp, wpx) = padded_size(g);
    let (c, k, taps) = (g.c, g.k, g.taps());
    let mut xp = CpuBuf::recycled(g.batch * hp * wpx * c);
    pad_map(cpu, g, x, &mut xp);
    let xp = &xp[..];
    let block = (tile_rows(g.patch_len()) / g.wo).max(1) * g.wo; // whole output rows
    for_row_blocks(cpu, g, y, n, block, |r0, yt| {
        let mut stretches = Vec::with_capacity(k);
        let mut scaled_taps = Vec::with_capacity(taps);
        for (j, yrow) in yt.chunks_mut(g.wo * n).enumerate() {
            let row = r0 / g.wo + j;
            let (b, oy) = (row / g.ho, row % g.ho);
            // window row ky of output (b, oy, ox) is xp[((b·hp + oy·s + ky)·wp + ox·s)·c..][..k·c]
            let window_row = |ky: usize| &xp[((b * hp + oy * g.stride + ky) * wpx) * c..];
            match s {
                None => {
                    stretches.clear();
                    stretches.extend((0..k).map(|ky| (window_row(ky).as_ptr(), ky * k * c)));
                    // SAFETY: the windows lie inside xp by `padded_size`; `yrow` is this output
                    // row's `wo × n` block of y.
                    unsafe { wp.times_stretches(ks, &stretches, k * c, g.stride * c, g.wo, yrow.as_mut_ptr()) }
                }
                Some(s) => {
                    scaled_taps.clear();
                    let s_row = &s[row * g.wo * taps..(row + 1) * g.wo * taps];
                    for ky in 0..k {
                        let wr = window_row(ky);
                        scaled_taps.extend((0..k).map(|kx| (wr[kx * c..].as_ptr(), s_row[ky * k + kx..].as_ptr())));
                    }
                    // SAFETY: as above; the row's scales are s_row[ox·k² + t] for ox < wo.
                    unsafe { wp.times_scaled_taps(ks, &scaled_taps, c, g.stride * c, taps, g.wo, yrow.as_mut_ptr()) }
                }
            }
        }
    });
}

/// What one backward task owns: its images `b0..b1`, their part of `dx` (unless `dx` is
/// computed as a convolution of `dy`), its copy of `dw`, its rows of `ds`.
struct Task<'a> {
    b0: usize,
    b1: usize,
    dx: Option<&'a mut [f32]>,
    part: &'a mut [f32],
    ds: Option<&'a mut [f32]>,
}

/// `n` chunks of `len` values of `v` (the last may be short), or `n` times `None`.
fn chunks_or_none(v: Option<&mut [f32]>, len: usize, n: usize) -> Vec<Option<&mut [f32]>> {
    match v {
        Some(v) => v.chunks_mut(len).map(Some).collect(),
        None => std::iter::repeat_with(|| None).take(n).collect(),
    }
}

// Boilerplate: `conv2d` and `conv2d_backward` take their `Kernels` methods' parameters (less
// `Checked`, the scale split into taps and rows), so the backward's list starts as the forward's.

/// See [`nsl_core::Backend::conv2d_backward`], and with a row scale `q` of `dy`,
/// [`nsl_core::ConvScale::Rows`] (applied as Winograd reads `dy`, else to
/// a copy).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward(
    cpu: &Cpu,
    ks: &Kernels,
    g: &Window,
    n: usize,
    x: &[f32],
    w: &[f32],
    scale: Option<&[f32]>,
    dy: &[f32],
    q: Option<&[f32]>,
    dx: &mut [f32],
    dw: &mut [f32],
    dscale: Option<&mut [f32]>,
) {
    let (rows, pl, taps) = (g.rows(), g.patch_len(), g.taps());
    let dx = &mut dx[..g.input_len()];
    let mut dscale = dscale.map(|d| &mut d[..rows * taps]);
    if pl == 0 || n == 0 || rows == 0 {
        dx.fill(0.0);
        dscale.iter_mut().for_each(|d| d.fill(0.0));
        return;
    }
    let (x, w, dy) = (&x[..g.input_len()], &w[..pl * n], &dy[..rows * n]);
    if cpu.uses_winograd(g, n, scale.is_some()) {
        return winograd::backward(cpu, ks, g, n, x, w, dy, q, dx, dw);
    }
    let dy_q = q.map(|q| {
        let mut d = CpuBuf::recycled(rows * n);
        elementwise::mul_rows(cpu, dy, q, rows, n, &mut d);
        d
    });
    let dy = dy_q.as_deref().unwrap_or(dy);
    let scale = scale.map(|s| &s[..rows * taps]);
    let dscale = if scale.is_some() { dscale } else { None };
    let dx = if scale.is_none() && g.stride == 1 && g.w >= PADDED_MIN_WO && n < g.c {
        input_grad_by_conv(cpu, ks, g, n, w, dy, dx);
        None
    } else {
        Some(dx)
    };
    let wt = PackedB::new(ks, w, n, pl, true);
    let plan = OuterPlan::new(ks, pl, n);
    let flops = rows * pl * n;
    let (imgs, tasks) = backward_tasks(g.batch, flops, MAX_BACKWARD_TASKS);
    let (per_img_out, per_img_in) = (g.ho * g.wo, g.h * g.w * g.c);
    let mut parts = CpuBuf::zeros(tasks * plan.part_len());
    let ds_chunks = chunks_or_none(dscale, imgs * per_img_out * taps, tasks);
    let dx_chunks = chunks_or_none(dx, imgs * per_img_in, tasks);
    let jobs: Vec<Task> = parts
        .chunks_mut(plan.part_len())
        .zip(dx_chunks)
        .zip(ds_chunks)
        .enumerate()
        .map(|(t, ((part, dx), ds))| Task { b0: t * imgs, b1: ((t + 1) * imgs).min(g.batch), dx, part, ds })
        .collect();

    let tile = tile_rows(pl);
    let run = |job: Task| {
        let Task { b0, b1, mut dx, part, mut ds } = job;
        let (r0, r1) = (b0 * per_img_out, b1 * per_img_out);
        dx.iter_mut().for_each(|d| d.fill(0.0));
        let bufs = if dx.is_some() { 2 } else { 1 };
        with_scratch(bufs * tile * pl + plan.tail_len(), |buf| {
            let (p_all, rest) = buf.split_at_mut(tile * pl);
            let (dp_all, tail) = rest.split_at_mut((bufs - 1) * tile * pl);
            for t0 in (r0..r1).step_by(tile) {
                let tr = tile.min(r1 - t0);
                let p = &mut p_all[..tr * pl];
                let dyt = &dy[t0 * n..(t0 + tr) * n];
                im2col_rows(g, x, t0, p, scale);
                plan.accumulate(ks, p, dyt, tr, part, tail);
                if let Some(dx) = dx.as_deref_mut() {
                    let dp = &mut dp_all[..tr * pl];
                    // SAFETY: `dp` is a `tr × pl` slice borrowed mutably.
                    unsafe { wt.times(ks, dyt, tr, dp.as_mut_ptr(), 1.0, 0.0) };
                    if let Some(ds) = ds.as_deref_mut() {
                        patch_dots_rows(g, x, dp, t0, &mut ds[(t0 - r0) * taps..(t0 - r0 + tr) * taps]);
                    }
                    col2im_add_rows(g, dp, t0, b0, scale, dx);
                }
            }
        });
    };
    if jobs.len() == 1 || flops < PAR_MIN_FLOPS {
        jobs.into_iter().for_each(run);
    } else {
        cpu.install(|| jobs.into_par_iter().for_each(run));
    }
    plan.finish(cpu, &mut parts, 1.0, 1.0, dw);
}

/// `dx = col2im(dy·wᵀ)` of a stride-1 window as the im2col-free convolution of `dy` (an
/// `ho × wo × n` map, padded by `k − 1 − pad` before) with the flipped, transposed kernel
/// `w'[t'·n + o, c] = w[(k² − 1 − t')·c_in + c, o]`: no `dP` and no scatter.
fn input_grad_by_conv(cpu: &Cpu, ks: &Kernels, g: &Window, n: usize, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (k, c, taps) = (g.k, g.c, g.taps());
    let gt = Window {
        batch: g.batch,
        h: g.ho,
        w: g.wo,
        c: n,
        k,
        stride: 1,
        pad_top: k - 1 - g.pad_top,
        pad_left: k - 1 - g.pad_left,
        ho: g.h,
        wo: g.w,
    };
    let mut flipped = vec![0f32; taps * n * c];
    for (t, block) in flipped.chunks_exact_mut(n * c).enumerate() {
        for (o, row) in block.chunks_exact_mut(c).enumerate() {
            for (ch, v) in row.iter_mut().enumerate() {
                *v = w[((taps - 1 - t) * c + ch) * n + o];
            }
        }
    }
    let wp = PackedB::new(ks, &flipped, taps * n, c, false);
    forward_padded(cpu, ks, &gt, c, dy, &wp, None, dx);
}
