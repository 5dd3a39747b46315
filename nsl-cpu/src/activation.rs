//! ReLU, max-pooling and row softmax (formulas on [`nsl_core::Backend`]).

use nsl_core::Window;

use crate::conv::window_rows;
use crate::par::{self, dot_f64};
use crate::Cpu;

/// See [`nsl_core::Backend::relu`].
pub(crate) fn relu(cpu: &Cpu, x: &[f32], y: &mut [f32]) {
    par::zip_mut(cpu, x, y, |x, y| {
        for (y, x) in y.iter_mut().zip(x) {
            *y = x.max(0.0);
        }
    });
}

/// See [`nsl_core::Backend::relu_backward`]. `dy` is masked bitwise (`dy` or `+0`), which
/// vectorises where the branchy select did not.
pub(crate) fn relu_backward(cpu: &Cpu, y: &[f32], dy: &[f32], dx: &mut [f32]) {
    par::zip2_mut(cpu, y, dy, dx, |y, dy, dx| {
        for ((dx, y), dy) in dx.iter_mut().zip(y).zip(dy) {
            let keep = ((*y > 0.0) as u32).wrapping_neg();
            *dx = f32::from_bits(dy.to_bits() & keep);
        }
    });
}

/// See [`nsl_core::Backend::max_pool`]. Only taps inside the map take part, so padding never
/// wins (a window entirely in the padding would give `-inf`).
pub(crate) fn max_pool(cpu: &Cpu, g: &Window, x: &[f32], y: &mut [f32]) {
    let c = g.c;
    let x = &x[..g.input_len()];
    let hw = g.ho * g.wo;
    let work = g.rows() * g.patch_len();
    par::rows_mut(cpu, &mut y[..g.rows() * c], c, work, |r0, out| {
        for (i, yr) in out.chunks_exact_mut(c).enumerate() {
            let r = r0 + i;
            let (b, oy, ox) = (r / hw, (r % hw) / g.wo, r % g.wo);
            yr.fill(f32::NEG_INFINITY);
            window_rows(g, oy, ox, |yy, xs| {
                for xx in xs {
                    let s = ((b * g.h + yy) * g.w + xx) * c;
                    for (o, v) in yr.iter_mut().zip(&x[s..s + c]) {
                        *o = o.max(*v);
                    }
                }
            });
        }
    });
}

/// See [`nsl_core::Backend::max_pool_backward`]: each `dy` goes to the first (row-major)
/// window input equal to `y`. Images run in parallel; within an image the scatter is
/// sequential in output order, so overlapping windows add up deterministically.
pub(crate) fn max_pool_backward(cpu: &Cpu, g: &Window, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
    let c = g.c;
    let img = g.h * g.w * c;
    let (x, y, dy) = (&x[..g.input_len()], &y[..g.rows() * c], &dy[..g.rows() * c]);
    let work = g.rows() * g.patch_len();
    par::rows_mut(cpu, &mut dx[..g.input_len()], img, work, |b0, out| {
        // Per channel, all ones until the window's max has been found (branch-free, so the
        // channel loop vectorises); a masked-off `dy` adds `+0`.
        let mut pending = vec![0u32; c];
        for (i, dxi) in out.chunks_exact_mut(img).enumerate() {
            let b = b0 + i;
            let xi = &x[b * img..(b + 1) * img];
            dxi.fill(0.0);
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let r = (b * g.ho + oy) * g.wo + ox;
                    let (yr, dyr) = (&y[r * c..(r + 1) * c], &dy[r * c..(r + 1) * c]);
                    pending.fill(u32::MAX);
                    window_rows(g, oy, ox, |yy, cols| {
                        for xx in cols {
                            let s = (yy * g.w + xx) * c;
                            let (xs, ds) = (&xi[s..s + c], &mut dxi[s..s + c]);
                            for ((((d, &xv), &yv), &g), p) in
                                ds.iter_mut().zip(xs).zip(yr).zip(dyr).zip(pending.iter_mut())
                            {
                                let hit = *p & ((xv == yv) as u32).wrapping_neg();
                                *d += f32::from_bits(g.to_bits() & hit);
                                *p &= !hit;
                            }
                        }
                    });
                }
            }
        }
    });
}

/// See [`nsl_core::Backend::softmax_rows`]. The normaliser is summed in `f64`.
pub(crate) fn softmax_rows(cpu: &Cpu, x: &[f32], rows: usize, cols: usize, y: &mut [f32]) {
    let x = &x[..rows * cols];
    par::rows_mut(cpu, &mut y[..rows * cols], cols, rows * cols * 4, |r0, out| {
        for (yr, xr) in out.chunks_exact_mut(cols).zip(x[r0 * cols..].chunks_exact(cols)) {
            softmax_row(xr, yr);
        }
    });
}

/// One row of softmax: `y = exp(x − max) / Σ exp(x − max)`.
#[inline]
pub(crate) fn softmax_row(x: &[f32], y: &mut [f32]) {
    let mx = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = 0f64;
    for (y, x) in y.iter_mut().zip(x) {
        *y = (x - mx).exp();
        sum += *y as f64;
    }
    let inv = (1.0 / sum) as f32;
    for y in y.iter_mut() {
        *y *= inv;
    }
}

/// See [`nsl_core::Backend::softmax_rows_backward`].
pub(crate) fn softmax_rows_backward(cpu: &Cpu, y: &[f32], dy: &[f32], rows: usize, cols: usize, dx: &mut [f32]) {
    let (y, dy) = (&y[..rows * cols], &dy[..rows * cols]);
    par::rows_mut(cpu, &mut dx[..rows * cols], cols, rows * cols * 2, |r0, out| {
        for (i, dxr) in out.chunks_exact_mut(cols).enumerate() {
            let r = (r0 + i) * cols..(r0 + i + 1) * cols;
            let (yr, dyr) = (&y[r.clone()], &dy[r]);
            let s = dot_f64(dyr, yr) as f32;
            for ((dx, y), dy) in dxr.iter_mut().zip(yr).zip(dyr) {
                *dx = y * (dy - s);
            }
        }
    });
}
