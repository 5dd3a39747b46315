//! Convolution geometry: `im2col` and its adjoint `col2im` (see [`nsl_core::Backend::im2col`]).
//!
//! Column index is `t·c + ch` with tap `t = ky·k + kx`, so for a fixed `ky` the `k` taps of a
//! window row are one contiguous span of `k·c` columns and read one contiguous span of the
//! NHWC input: both directions copy/add whole spans.

use nsl_core::Window;

use crate::par::{self, axpy_slice, dot_f32};
use crate::Cpu;

/// Valid `kx` range `lo..hi` for output column `ox` (taps inside the map).
#[inline]
pub(crate) fn tap_range(g: &Window, ox: usize) -> (usize, usize) {
    let start = (ox * g.stride) as isize - g.pad_left as isize; // input x of kx = 0
    let lo = (-start).clamp(0, g.k as isize) as usize;
    let hi = (g.w as isize - start).clamp(0, g.k as isize) as usize;
    (lo, hi.max(lo))
}

/// Input row `y` read by window row `ky` of output row `oy`, if inside the map.
#[inline]
pub(crate) fn src_row(g: &Window, oy: usize, ky: usize) -> Option<usize> {
    let y = (oy * g.stride + ky) as isize - g.pad_top as isize;
    (y >= 0 && (y as usize) < g.h).then_some(y as usize)
}

/// The part of output `(oy, ox)`'s window inside the map, row by row: `f(y, xs)` for each
/// window row (`ky` ascending) on input row `y`, whose taps inside the map read input columns
/// `xs` (one range for all rows, given by [`tap_range`]; no call when it is empty).
#[inline(always)]
pub(crate) fn window_rows(g: &Window, oy: usize, ox: usize, mut f: impl FnMut(usize, std::ops::Range<usize>)) {
    let (lo, hi) = tap_range(g, ox);
    if hi <= lo {
        return;
    }
    let x0 = ox * g.stride + lo - g.pad_left;
    for ky in 0..g.k {
        if let Some(y) = src_row(g, oy, ky) {
            f(y, x0..x0 + (hi - lo));
        }
    }
}

/// Output index `o < n_out` whose window tap `kk` reads input coordinate `i`, if any.
#[inline]
pub(crate) fn reader(i: usize, pad: usize, kk: usize, stride: usize, n_out: usize) -> Option<usize> {
    let v = (i + pad).checked_sub(kk)?;
    (v % stride == 0 && v / stride < n_out).then_some(v / stride)
}

/// `(b, oy, ox)` of output rows `r0, r0 + 1, …` (one division up front, then increments).
fn positions(g: &Window, r0: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let (ho, wo) = (g.ho, g.wo);
    let (mut b, mut oy, mut ox) = (r0 / (ho * wo), (r0 % (ho * wo)) / wo, r0 % wo);
    std::iter::from_fn(move || {
        let here = (b, oy, ox);
        ox += 1;
        if ox == wo {
            (ox, oy) = (0, oy + 1);
            if oy == ho {
                (oy, b) = (0, b + 1);
            }
        }
        Some(here)
    })
}

/// Rows `r0..r0 + out.len()/k²c` of the im2col matrix of `x` into `out`, each tap's `c`
/// values times `scale[r·k² + t]` when a scale (`rows × k²`, whole batch) is given.
pub(crate) fn im2col_rows(g: &Window, x: &[f32], r0: usize, out: &mut [f32], scale: Option<&[f32]>) {
    let (c, k, pl) = (g.c, g.k, g.patch_len());
    for (i, (row, (b, oy, ox))) in out.chunks_exact_mut(pl).zip(positions(g, r0)).enumerate() {
        let (lo, hi) = tap_range(g, ox);
        for ky in 0..k {
            let dst = &mut row[ky * k * c..(ky + 1) * k * c];
            match src_row(g, oy, ky) {
                Some(y) if hi > lo => {
                    let x0 = ox * g.stride + lo - g.pad_left;
                    let src = &x[((b * g.h + y) * g.w + x0) * c..][..(hi - lo) * c];
                    dst[..lo * c].fill(0.0);
                    match scale {
                        None => dst[lo * c..hi * c].copy_from_slice(src),
                        Some(s) => {
                            let s = &s[(r0 + i) * k * k + ky * k..][lo..hi];
                            for ((d, xs), &s) in dst[lo * c..hi * c].chunks_exact_mut(c).zip(src.chunks_exact(c)).zip(s)
                            {
                                for (d, &v) in d.iter_mut().zip(xs) {
                                    *d = s * v;
                                }
                            }
                        }
                    }
                    dst[hi * c..].fill(0.0);
                }
                _ => dst.fill(0.0),
            }
        }
    }
}

/// `dx += col2im` of rows `r0..r0 + dcols.len()/k²c` of a patch-matrix gradient, each tap's
/// `c` values times `scale[r·k² + t]` when a scale (`rows × k²`, whole batch) is given; `dx`
/// holds the images from `b0` on (every row's image must be in it). Rows are added in order.
pub(crate) fn col2im_add_rows(g: &Window, dcols: &[f32], r0: usize, b0: usize, scale: Option<&[f32]>, dx: &mut [f32]) {
    let (c, k, pl) = (g.c, g.k, g.patch_len());
    for (i, (row, (b, oy, ox))) in dcols.chunks_exact(pl).zip(positions(g, r0)).enumerate() {
        let (lo, hi) = tap_range(g, ox);
        if hi <= lo {
            continue;
        }
        let x0 = ox * g.stride + lo - g.pad_left;
        for ky in 0..k {
            if let Some(y) = src_row(g, oy, ky) {
                let dst = &mut dx[(((b - b0) * g.h + y) * g.w + x0) * c..][..(hi - lo) * c];
                let src = &row[(ky * k + lo) * c..(ky * k + hi) * c];
                match scale {
                    None => axpy_slice(1.0, src, dst),
                    Some(s) => {
                        let s = &s[(r0 + i) * k * k + ky * k..][lo..hi];
                        for ((d, v), &s) in dst.chunks_exact_mut(c).zip(src.chunks_exact(c)).zip(s) {
                            axpy_slice(s, v, d);
                        }
                    }
                }
            }
        }
    }
}

/// `out[i·k² + t] = Σ_ch x[src(r,t), ch] · dcols[r, t·c + ch]` for rows `r = r0 + i` (0 for taps
/// in the padding): the patch-scale gradient, read from `x` without an im2col copy.
pub(crate) fn patch_dots_rows(g: &Window, x: &[f32], dcols: &[f32], r0: usize, out: &mut [f32]) {
    let (c, k, pl) = (g.c, g.k, g.patch_len());
    let rows = out.chunks_exact_mut(k * k).zip(dcols.chunks_exact(pl));
    for ((o, row), (b, oy, ox)) in rows.zip(positions(g, r0)) {
        let (lo, hi) = tap_range(g, ox);
        o.fill(0.0);
        for ky in 0..k {
            if let Some(y) = src_row(g, oy, ky).filter(|_| hi > lo) {
                let x0 = ox * g.stride + lo - g.pad_left;
                let src = &x[((b * g.h + y) * g.w + x0) * c..][..(hi - lo) * c];
                let taps = row[(ky * k + lo) * c..(ky * k + hi) * c].chunks_exact(c);
                for ((o, d), xs) in o[ky * k + lo..ky * k + hi].iter_mut().zip(taps).zip(src.chunks_exact(c)) {
                    *o = dot_f32(xs, d);
                }
            }
        }
    }
}

/// Rows `hp = (ho−1)·s + k` and pixels per row `wp = (wo−1)·s + k` of the zero-padded map a
/// window reads (see [`pad_map`]).
pub(crate) fn padded_size(g: &Window) -> (usize, usize) {
    ((g.ho - 1) * g.stride + g.k, (g.wo - 1) * g.stride + g.k)
}

/// The zero-padded map of `x` under `g`: `xp[b, py, px] = x[b, py − pad_top, px − pad_left]`
/// (zero outside `x`), `batch × hp × wp × c` (see [`padded_size`]). Every window is then
/// inside it, and a window row's `k` taps are `k·c` contiguous values.
pub(crate) fn pad_map(cpu: &Cpu, g: &Window, x: &[f32], xp: &mut [f32]) {
    let (hp, wp) = padded_size(g);
    let c = g.c;
    let x = &x[..g.input_len()];
    let len = g.batch * hp * wp * c;
    par::rows_mut(cpu, &mut xp[..len], wp * c, len, |r0, out| {
        for (i, row) in out.chunks_exact_mut(wp * c).enumerate() {
            pad_row(g, x, (r0 + i) / hp, (r0 + i) % hp, row);
        }
    });
}

/// Padded row `py` of image `b`: `row[px] = x[b, py − pad_top, px − pad_left]` (zero outside
/// `x`), as many columns as `row` holds.
#[inline]
pub(crate) fn pad_row(g: &Window, x: &[f32], b: usize, py: usize, row: &mut [f32]) {
    let c = g.c;
    let wp = row.len() / c;
    let (lo, hi) = (g.pad_left.min(wp), (g.pad_left + g.w).min(wp)); // padded columns holding x
    match py.checked_sub(g.pad_top).filter(|&y| y < g.h) {
        Some(y) => {
            row[..lo * c].fill(0.0);
            row[lo * c..hi * c].copy_from_slice(&x[(b * g.h + y) * g.w * c..][..(hi - lo) * c]);
            row[hi * c..].fill(0.0);
        }
        None => row.fill(0.0),
    }
}

/// See [`nsl_core::Backend::im2col`].
pub(crate) fn im2col(cpu: &Cpu, g: &Window, x: &[f32], cols: &mut [f32]) {
    let pl = g.patch_len();
    let x = &x[..g.input_len()];
    par::rows_mut(cpu, &mut cols[..g.rows() * pl], pl, g.rows() * pl, |r0, out| im2col_rows(g, x, r0, out, None));
}

/// See [`nsl_core::Backend::col2im`]. Written as a gather: each input row `(b, y)` sums, in
/// the fixed order (ky, x, kx), every column entry that read it, so rows are independent and
/// the result is deterministic without atomics.
pub(crate) fn col2im(cpu: &Cpu, g: &Window, dcols: &[f32], dx: &mut [f32]) {
    let (c, k, pl) = (g.c, g.k, g.patch_len());
    let dcols = &dcols[..g.rows() * pl];
    let row_len = g.w * c;
    let work = g.rows() * pl + g.input_len();
    par::rows_mut(cpu, &mut dx[..g.input_len()], row_len, work, |r0, out| {
        for (i, row) in out.chunks_exact_mut(row_len).enumerate() {
            let (b, y) = ((r0 + i) / g.h, (r0 + i) % g.h);
            row.fill(0.0);
            for ky in 0..k {
                let Some(oy) = reader(y, g.pad_top, ky, g.stride, g.ho) else {
                    continue;
                };
                let orow = (b * g.ho + oy) * g.wo;
                for (xi, dst) in row.chunks_exact_mut(c).enumerate() {
                    for kx in 0..k {
                        if let Some(ox) = reader(xi, g.pad_left, kx, g.stride, g.wo) {
                            let s = (orow + ox) * pl + (ky * k + kx) * c;
                            axpy_slice(1.0, &dcols[s..s + c], dst);
                        }
                    }
                }
            }
        }
    });
}
