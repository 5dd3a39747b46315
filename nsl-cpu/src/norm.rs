//! Window L2 norm and batch normalisation (formulas on [`nsl_core::Backend`]).
//!
//! Per-channel batch-norm statistics are `f64` partial sums over fixed row chunks (size set
//! by the channel count only) added in chunk order, so they are bitwise reproducible.

use nsl_core::{BatchNormDims, Window};

use crate::conv::{reader, window_rows};
use crate::par::{self, sum_sq_f32};
use crate::{Cpu, CpuBuf};

/// See [`nsl_core::Backend::window_norm`]: first `q[p] = Σ_ch x[p, ch]²` per input pixel, then
/// each window sums its `k²` pixels' `q` (row by row, in order) — `c + k²` operations per output
/// instead of `k²·c`.
pub(crate) fn window_norm(cpu: &Cpu, g: &Window, x: &[f32], eps: f32, n: &mut [f32]) {
    let c = g.c;
    let pixels = g.batch * g.h * g.w;
    let x = &x[..pixels * c];
    let mut q = CpuBuf::recycled(pixels);
    par::rows_mut(cpu, &mut q[..pixels], 1, pixels * c, |p0, out| {
        for (o, xp) in out.iter_mut().zip(x[p0 * c..].chunks_exact(c)) {
            *o = sum_sq_f32(xp);
        }
    });
    let q = &q[..];
    let hw = g.ho * g.wo;
    par::rows_mut(cpu, &mut n[..g.rows()], 1, g.rows() * g.taps(), |r0, out| {
        for (i, o) in out.iter_mut().enumerate() {
            let r = r0 + i;
            let (b, oy, ox) = (r / hw, (r % hw) / g.wo, r % g.wo);
            let mut s = 0f32;
            window_rows(g, oy, ox, |y, xs| {
                let row = (b * g.h + y) * g.w;
                s += q[row + xs.start..row + xs.end].iter().sum::<f32>();
            });
            *o = (s + eps).sqrt();
        }
    });
}

/// See [`nsl_core::Backend::window_norm_backward`]: `dx[p, ch] += x[p, ch] · Σ dn[r]/n[r]`
/// over the windows `r` covering pixel `p`, gathered per input row (deterministic).
pub(crate) fn window_norm_backward(cpu: &Cpu, g: &Window, x: &[f32], n: &[f32], dn: &[f32], dx: &mut [f32]) {
    let (c, k) = (g.c, g.k);
    let x = &x[..g.input_len()];
    let (n, dn) = (&n[..g.rows()], &dn[..g.rows()]);
    let row_len = g.w * c;
    let work = g.input_len() + g.w * g.h * g.batch * k * k;
    par::rows_mut(cpu, &mut dx[..g.input_len()], row_len, work, |r0, out| {
        for (i, row) in out.chunks_exact_mut(row_len).enumerate() {
            let (b, y) = ((r0 + i) / g.h, (r0 + i) % g.h);
            let xrow = &x[(r0 + i) * row_len..(r0 + i + 1) * row_len];
            for (xi, (dst, src)) in row.chunks_exact_mut(c).zip(xrow.chunks_exact(c)).enumerate() {
                let mut s = 0f32;
                for ky in 0..k {
                    let Some(oy) = reader(y, g.pad_top, ky, g.stride, g.ho) else {
                        continue;
                    };
                    for kx in 0..k {
                        if let Some(ox) = reader(xi, g.pad_left, kx, g.stride, g.wo) {
                            let r = (b * g.ho + oy) * g.wo + ox;
                            s += dn[r] / n[r];
                        }
                    }
                }
                if s != 0.0 {
                    par::axpy_slice(s, src, dst);
                }
            }
        }
    });
}

/// Per-channel `f64` sums of `f(x_row, ch_accumulators)` over all rows, with a fixed row
/// chunking; `width` accumulators per channel group (`acc.len() = width`).
fn channel_sums<F>(cpu: &Cpu, rows: usize, c: usize, width: usize, f: F) -> Vec<f64>
where
    F: Fn(usize, &mut [f64]) + Sync + Send,
{
    let rpt = par::rows_per_task(c);
    let chunks = rows.div_ceil(rpt);
    let partials = par::map_collect(cpu, chunks, rows * c, |i| {
        let mut acc = vec![0f64; width];
        sum_rows(&f, i * rpt..((i + 1) * rpt).min(rows), &mut acc);
        acc
    });
    let mut total = vec![0f64; width];
    for p in &partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

/// `f(r, acc)` for the rows `rs`, compiled for AVX-512 or AVX2 where the CPU has them: the `f64`
/// accumulation is compute-bound with the baseline's 2-lane SSE2 vectors (AVX-512 halved the
/// batch-norm forward at 32 channels). Rust never fuses a multiply and an add on its own, and
/// each channel's sum runs over the rows in order: the same sums on every instruction set.
fn sum_rows<F: Fn(usize, &mut [f64])>(f: &F, rs: std::ops::Range<usize>, acc: &mut [f64]) {
    #[inline(always)]
    fn body<F: Fn(usize, &mut [f64])>(f: &F, rs: std::ops::Range<usize>, acc: &mut [f64]) {
        for r in rs {
            f(r, acc);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<F: Fn(usize, &mut [f64])>(f: &F, rs: std::ops::Range<usize>, acc: &mut [f64]) {
            body(f, rs, acc)
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<F: Fn(usize, &mut [f64])>(f: &F, rs: std::ops::Range<usize>, acc: &mut [f64]) {
            body(f, rs, acc)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { avx512(f, rs, acc) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { avx2(f, rs, acc) };
        }
    }
    body(f, rs, acc)
}

/// `1/sqrt(var + eps)` per channel, in `f64`.
fn inv_std(var: &[f32], eps: f32) -> Vec<f64> {
    var.iter().map(|&v| 1.0 / (v as f64 + eps as f64).sqrt()).collect()
}

/// `y = (x − μ)·scale + β` per channel, then `max(y, 0)` with `d.relu`, rows in parallel.
/// (Centring before scaling keeps `y` accurate when `σ` is tiny and `|μ|` is not: the folded
/// `x·scale + (β − μ·scale)` loses `|μ|·scale·2⁻²⁴` to cancellation.)
#[allow(clippy::too_many_arguments)]
fn affine_rows(cpu: &Cpu, d: &BatchNormDims, x: &[f32], mean: &[f32], scale: &[f32], beta: &[f32], y: &mut [f32]) {
    let (c, relu) = (d.c, d.relu);
    par::rows_mut(cpu, &mut y[..d.rows * c], c, d.rows * c, |r0, out| {
        for (yr, xr) in out.chunks_exact_mut(c).zip(x[r0 * c..].chunks_exact(c)) {
            for ((y, &x), ((&m, &s), &b)) in yr.iter_mut().zip(xr).zip(mean.iter().zip(scale).zip(beta)) {
                let v = bn_affine(x, m, s, b);
                *y = if relu { v.max(0.0) } else { v };
            }
        }
    });
}

/// One normalised value, `(x − μ)·scale + β`, the same expression in forward and backward.
#[inline(always)]
fn bn_affine(x: f32, mean: f32, scale: f32, beta: f32) -> f32 {
    (x - mean) * scale + beta
}

/// `dy` where the ReLU's input `y` (and so its output) is positive, else `+0` (as
/// [`crate::activation::relu_backward`]).
#[inline(always)]
fn relu_masked(dy: f32, y: f32) -> f32 {
    f32::from_bits(dy.to_bits() & ((y > 0.0) as u32).wrapping_neg())
}

/// Per-channel `scale = γ/σ`.
fn scale(gamma: &[f32], inv: &[f64]) -> Vec<f32> {
    gamma.iter().zip(inv).map(|(&g, &i)| (g as f64 * i) as f32).collect()
}

// Boilerplate: the three batch-norm ops take their `Kernels` methods' parameters (less
// `Checked`), so their parameter lists repeat each other's.

/// See [`nsl_core::Backend::batch_norm_train`] (with `d.relu`, the ReLU fused into the write of
/// `y`). One-pass `f64` statistics of the values shifted by the first row; the biased variance
/// is written to `var`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_train(
    cpu: &Cpu,
    d: &BatchNormDims,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    y: &mut [f32],
    mean: &mut [f32],
    var: &mut [f32],
) {
    let (rows, c) = (d.rows, d.c);
    let x = &x[..rows * c];
    let inv_rows = 1.0 / rows.max(1) as f64;
    // One pass over x for both moments, of the values shifted by the first row (`k`) so that
    // `Σe² − (Σe)²/N` does not cancel when |μ| ≫ σ: acc[0..c] = Σ e, acc[c..2c] = Σ e², e = x − k.
    let k: Vec<f64> = x[..c.min(x.len())].iter().map(|&v| v as f64).collect();
    let sums = channel_sums(cpu, rows, c, 2 * c, |r, acc| {
        let (s1, s2) = acc.split_at_mut(c);
        for (((a, b), &v), &k) in s1.iter_mut().zip(s2.iter_mut()).zip(&x[r * c..(r + 1) * c]).zip(&k) {
            let e = v as f64 - k;
            *a += e;
            *b += e * e;
        }
    });
    let (s1, s2) = sums.split_at(c);
    for ch in 0..c {
        let m = s1[ch] * inv_rows;
        mean[ch] = (k.get(ch).copied().unwrap_or(0.0) + m) as f32;
        var[ch] = ((s2[ch] * inv_rows - m * m).max(0.0)) as f32;
    }
    let inv = inv_std(&var[..c], d.eps);
    affine_rows(cpu, d, x, &mean[..c], &scale(&gamma[..c], &inv), &beta[..c], y);
}

/// See [`nsl_core::Backend::batch_norm_eval`] (with `d.relu`, the ReLU fused).
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_eval(
    cpu: &Cpu,
    d: &BatchNormDims,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    y: &mut [f32],
) {
    let c = d.c;
    let inv = inv_std(&var[..c], d.eps);
    affine_rows(cpu, d, &x[..d.rows * c], &mean[..c], &scale(&gamma[..c], &inv), &beta[..c], y);
}

/// See [`nsl_core::Backend::batch_norm_backward`]: overwrites `dx`, accumulates `dgamma`,
/// `dbeta`. With `d.relu`, of `dy` masked by the ReLU, the mask recomputed on the fly from `x`
/// exactly as [`batch_norm_train`] computed its output (`(x − μ)·scale + β > 0`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_backward(
    cpu: &Cpu,
    d: &BatchNormDims,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let (rows, c) = (d.rows, d.c);
    if rows == 0 || c == 0 {
        return;
    }
    let (x, dy) = (&x[..rows * c], &dy[..rows * c]);
    let mean = &mean[..c];
    let inv = inv_std(&var[..c], d.eps);
    // The gradient reaching the batch norm is `dy` where the ReLU's output was positive.
    let relu = d.relu;
    let (scale, beta) = (scale(&gamma[..c], &inv), &beta[..c]);
    let masked =
        |g: f32, xv: f32, m: f32, s: f32, b: f32| if relu { relu_masked(g, bn_affine(xv, m, s, b)) } else { g };
    let mean64: Vec<f64> = mean.iter().map(|&m| m as f64).collect();
    // acc[0..c] = Σ dy, acc[c..2c] = Σ dy·x̂
    let sums = channel_sums(cpu, rows, c, 2 * c, |r, acc| {
        let (sdy, sdyx) = acc.split_at_mut(c);
        let (xr, dyr) = (&x[r * c..(r + 1) * c], &dy[r * c..(r + 1) * c]);
        for ((((a, b), (&xv, &g)), ((&m, &m64), &i)), (&s, &t)) in sdy
            .iter_mut()
            .zip(sdyx.iter_mut())
            .zip(xr.iter().zip(dyr))
            .zip(mean.iter().zip(&mean64).zip(&inv))
            .zip(scale.iter().zip(beta))
        {
            let g = masked(g, xv, m, s, t) as f64;
            *a += g;
            *b += g * (xv as f64 - m64) * i;
        }
    });
    let (sdy, sdyx) = sums.split_at(c);
    for ch in 0..c {
        dbeta[ch] += sdy[ch] as f32;
        dgamma[ch] += sdyx[ch] as f32;
    }
    let n = rows as f64;
    let mdy: Vec<f32> = sdy.iter().map(|s| (s / n) as f32).collect();
    let mdyx: Vec<f32> = sdyx.iter().map(|s| (s / n) as f32).collect();
    let inv32: Vec<f32> = inv.iter().map(|&v| v as f32).collect();
    par::rows_mut(cpu, &mut dx[..rows * c], c, rows * c, |r0, out| {
        let rows_in = x[r0 * c..].chunks_exact(c).zip(dy[r0 * c..].chunks_exact(c));
        for (dxr, (xr, dyr)) in out.chunks_exact_mut(c).zip(rows_in) {
            // dx = (γ/σ)·(dy − mean(dy) − x̂·mean(dy·x̂)), γ/σ being `scale`.
            for ((((dx, &xv), &g), ((&m, &i), (&s, &t))), (&a, &b)) in dxr
                .iter_mut()
                .zip(xr)
                .zip(dyr)
                .zip(mean.iter().zip(&inv32).zip(scale.iter().zip(beta)))
                .zip(mdy.iter().zip(&mdyx))
            {
                let xh = (xv - m) * i;
                *dx = s * (masked(g, xv, m, s, t) - a - xh * b);
            }
        }
    });
}
