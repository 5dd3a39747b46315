//! Elementwise ops and simple reductions: `fill`, `axpy`, `scale`, `mul`, `map`, `dot`,
//! `mul_rows`, `mul_cols`, `dot_rows`, `dot_cols` (formulas on [`nsl_core::Backend`]).

use nsl_core::Map;

use crate::par::{self, CHUNK};
use crate::Cpu;

/// See [`nsl_core::Backend::fill`].
pub(crate) fn fill(cpu: &Cpu, x: &mut [f32], value: f32) {
    par::each_mut(cpu, x, |x| x.fill(value));
}

/// See [`nsl_core::Backend::axpy`].
pub(crate) fn axpy(cpu: &Cpu, alpha: f32, x: &[f32], y: &mut [f32]) {
    par::zip_mut(cpu, x, y, |x, y| par::axpy_slice(alpha, x, y));
}

/// See [`nsl_core::Backend::scale`].
pub(crate) fn scale(cpu: &Cpu, alpha: f32, x: &mut [f32]) {
    par::each_mut(cpu, x, |x| x.iter_mut().for_each(|v| *v *= alpha));
}

/// See [`nsl_core::Backend::mul`].
pub(crate) fn mul(cpu: &Cpu, a: &[f32], b: &[f32], out: &mut [f32]) {
    par::zip2_mut(cpu, a, b, out, |a, b, o| {
        for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
            *o = a * b;
        }
    });
}

fn map_slice(f: Map, x: &[f32], y: &mut [f32]) {
    let it = y.iter_mut().zip(x);
    match f {
        Map::SqrtEps(eps) => it.for_each(|(y, x)| *y = (x + eps).sqrt()),
        Map::Recip => it.for_each(|(y, x)| *y = 1.0 / x),
        Map::Square => it.for_each(|(y, x)| *y = x * x),
        Map::Sign => it.for_each(|(y, &x)| {
            *y = if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }),
        Map::Affine(a, b) => it.for_each(|(y, x)| *y = a * x + b),
    }
}

/// See [`nsl_core::Backend::map`].
pub(crate) fn map(cpu: &Cpu, f: Map, x: &[f32], out: &mut [f32]) {
    par::zip_mut(cpu, x, out, |x, y| map_slice(f, x, y));
}

/// See [`nsl_core::Backend::dot`]. Accumulates in `f64` over fixed chunks summed in order.
pub(crate) fn dot(cpu: &Cpu, a: &[f32], b: &[f32]) -> f32 {
    let chunks = a.len().div_ceil(CHUNK);
    let partials = par::map_collect(cpu, chunks, a.len(), |i| {
        let r = i * CHUNK..((i + 1) * CHUNK).min(a.len());
        par::dot_f64(&a[r.clone()], &b[r])
    });
    partials.iter().sum::<f64>() as f32
}

/// See [`nsl_core::Backend::mul_rows`].
pub(crate) fn mul_rows(cpu: &Cpu, x: &[f32], s: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    let (x, s) = (&x[..rows * cols], &s[..rows]);
    par::rows_mut(cpu, &mut out[..rows * cols], cols, rows * cols, |r0, o| {
        for ((o, x), &s) in o.chunks_exact_mut(cols).zip(x[r0 * cols..].chunks_exact(cols)).zip(&s[r0..]) {
            for (o, x) in o.iter_mut().zip(x) {
                *o = x * s;
            }
        }
    });
}

/// `y[r,c] *= s[r]` for the rows of `y` (`cols` values each).
pub(crate) fn mul_rows_in_place(cpu: &Cpu, y: &mut [f32], s: &[f32], cols: usize) {
    let rows = y.len() / cols;
    let s = &s[..rows];
    par::rows_mut(cpu, y, cols, rows * cols, |r0, o| {
        for (o, &s) in o.chunks_exact_mut(cols).zip(&s[r0..]) {
            o.iter_mut().for_each(|v| *v *= s);
        }
    });
}

/// See [`nsl_core::Backend::mul_cols`].
pub(crate) fn mul_cols(cpu: &Cpu, x: &[f32], s: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    let (x, s) = (&x[..rows * cols], &s[..cols]);
    par::rows_mut(cpu, &mut out[..rows * cols], cols, rows * cols, |r0, o| {
        for (o, x) in o.chunks_exact_mut(cols).zip(x[r0 * cols..].chunks_exact(cols)) {
            for ((o, x), s) in o.iter_mut().zip(x).zip(s) {
                *o = x * s;
            }
        }
    });
}

/// See [`nsl_core::Backend::dot_rows`]. Each row accumulates in `f64`.
pub(crate) fn dot_rows(cpu: &Cpu, a: &[f32], b: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    let (a, b) = (&a[..rows * cols], &b[..rows * cols]);
    if cols == 0 {
        out[..rows].fill(0.0);
        return;
    }
    par::rows_mut(cpu, &mut out[..rows], 1, rows * cols, |r0, o| {
        for (i, o) in o.iter_mut().enumerate() {
            let r = (r0 + i) * cols..(r0 + i + 1) * cols;
            *o = par::dot_f64(&a[r.clone()], &b[r]) as f32;
        }
    });
}

/// See [`nsl_core::Backend::dot_cols`]. Per-column `f64` partial sums over fixed row
/// chunks, added in chunk order.
pub(crate) fn dot_cols(cpu: &Cpu, a: &[f32], b: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    let out = &mut out[..cols];
    if cols == 0 {
        return;
    }
    let rpt = par::rows_per_task(cols);
    let chunks = rows.div_ceil(rpt);
    let partials = par::map_collect(cpu, chunks, rows * cols, |i| {
        let r = i * rpt * cols..((i + 1) * rpt).min(rows) * cols;
        let mut acc = vec![0f64; cols];
        for (ra, rb) in a[r.clone()].chunks_exact(cols).zip(b[r].chunks_exact(cols)) {
            for ((acc, x), y) in acc.iter_mut().zip(ra).zip(rb) {
                *acc += *x as f64 * *y as f64;
            }
        }
        acc
    });
    let mut total = vec![0f64; cols];
    for p in &partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    for (o, t) in out.iter_mut().zip(&total) {
        *o = *t as f32;
    }
}
