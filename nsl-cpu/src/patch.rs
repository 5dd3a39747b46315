//! DNS / UNS patch transforms on im2col rows: `patch_scale`, `patch_matmul` and their
//! backwards (formulas on [`nsl_core::Backend`]). Every row is independent; rows run in
//! parallel chunks.

use crate::par::{self, dot_f32};
use crate::Cpu;

// Boilerplate: each op below takes its `Kernels` method's parameters (less `Checked`, the
// `Patch` fields spelled out), so the forwards' and the backwards' parameter lists repeat.

/// See [`nsl_core::Backend::patch_scale`].
pub(crate) fn patch_scale(cpu: &Cpu, rows: usize, taps: usize, c: usize, cols: &[f32], m: &[f32], out: &mut [f32]) {
    let pl = taps * c;
    let (cols, m) = (&cols[..rows * pl], &m[..rows * taps]);
    par::rows_mut(cpu, &mut out[..rows * pl], pl, rows * pl, |r0, out| {
        let src = &cols[r0 * pl..];
        let ms = &m[r0 * taps..];
        if c == 0 {
            return;
        }
        for ((o, x), &s) in out.chunks_exact_mut(c).zip(src.chunks_exact(c)).zip(ms) {
            for (o, x) in o.iter_mut().zip(x) {
                *o = s * x;
            }
        }
    });
}

/// See [`nsl_core::Backend::patch_scale_backward`] (overwrites `dcols` and `dm`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch_scale_backward(
    cpu: &Cpu,
    rows: usize,
    taps: usize,
    c: usize,
    cols: &[f32],
    m: &[f32],
    dout: &[f32],
    dcols: &mut [f32],
    dm: &mut [f32],
) {
    let pl = taps * c;
    let (cols, m, dout) = (&cols[..rows * pl], &m[..rows * taps], &dout[..rows * pl]);
    if c == 0 {
        dm[..rows * taps].fill(0.0);
        return;
    }
    par::rows_mut2(cpu, rows, dcols, pl, dm, taps, 2 * rows * pl, |r0, dc, dmo| {
        let (x, ms, g) = (&cols[r0 * pl..], &m[r0 * taps..], &dout[r0 * pl..]);
        for ((((dc, x), g), &s), dmo) in
            dc.chunks_exact_mut(c).zip(x.chunks_exact(c)).zip(g.chunks_exact(c)).zip(ms).zip(dmo.iter_mut())
        {
            for (d, g) in dc.iter_mut().zip(g) {
                *d = s * g;
            }
            *dmo = dot_f32(x, g);
        }
    });
}

/// See [`nsl_core::Backend::patch_matmul`]: per row, `out[a,:] = Σ_q M[a,q]·cols[q,:]`.
pub(crate) fn patch_matmul(cpu: &Cpu, rows: usize, taps: usize, c: usize, cols: &[f32], m: &[f32], out: &mut [f32]) {
    let pl = taps * c;
    let tt = taps * taps;
    let (cols, m) = (&cols[..rows * pl], &m[..rows * tt]);
    par::rows_mut(cpu, &mut out[..rows * pl], pl, rows * pl * taps, |r0, out| {
        for (i, orow) in out.chunks_exact_mut(pl).enumerate() {
            let r = r0 + i;
            let (x, mr) = (&cols[r * pl..(r + 1) * pl], &m[r * tt..(r + 1) * tt]);
            mix_taps(taps, c, |a, q| mr[a * taps + q], x, orow);
        }
    });
}

/// See [`nsl_core::Backend::patch_matmul_backward`] (overwrites `dcols` and `dm`):
/// `dcols[q,:] = Σ_a M[a,q]·dout[a,:]`, `dM[a,q] = dout[a,:]·cols[q,:]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch_matmul_backward(
    cpu: &Cpu,
    rows: usize,
    taps: usize,
    c: usize,
    cols: &[f32],
    m: &[f32],
    dout: &[f32],
    dcols: &mut [f32],
    dm: &mut [f32],
) {
    let pl = taps * c;
    let tt = taps * taps;
    let (cols, m, dout) = (&cols[..rows * pl], &m[..rows * tt], &dout[..rows * pl]);
    if taps == 0 {
        return;
    }
    if c == 0 {
        dm[..rows * tt].fill(0.0);
        return;
    }
    let work = 2 * rows * pl * taps;
    par::rows_mut2(cpu, rows, dcols, pl, dm, tt, work, |r0, dc, dmo| {
        for (i, (dcr, dmr)) in dc.chunks_exact_mut(pl).zip(dmo.chunks_exact_mut(tt)).enumerate() {
            let r = r0 + i;
            let x = &cols[r * pl..(r + 1) * pl];
            let g = &dout[r * pl..(r + 1) * pl];
            let mr = &m[r * tt..(r + 1) * tt];
            mix_taps(taps, c, |q, a| mr[a * taps + q], g, dcr);
            for (a, ga) in g.chunks_exact(c).enumerate() {
                for (q, xq) in x.chunks_exact(c).enumerate() {
                    dmr[a * taps + q] = dot_f32(ga, xq);
                }
            }
        }
    });
}

/// `out[a,:] = Σ_q coef(a, q)·x[q,:]` over one row's `taps` blocks of `c` values, the sum over
/// `q` in order. Columns go 16, then 8, then 1 at a time with the partial sums in registers (one
/// load per multiply-add; `y += α·x` per tap would load and store `out` every time); each
/// output's sum is the same on every path, so the bits do not depend on `c`'s split.
#[inline(always)]
fn mix_taps(taps: usize, c: usize, coef: impl Fn(usize, usize) -> f32, x: &[f32], out: &mut [f32]) {
    let mut j = 0;
    while j + 16 <= c {
        mix_columns::<16>(taps, c, j, &coef, x, out);
        j += 16;
    }
    if j + 8 <= c {
        mix_columns::<8>(taps, c, j, &coef, x, out);
        j += 8;
    }
    while j < c {
        mix_columns::<1>(taps, c, j, &coef, x, out);
        j += 1;
    }
}

/// [`mix_taps`] on the `N` columns from `j`.
#[inline(always)]
fn mix_columns<const N: usize>(
    taps: usize,
    c: usize,
    j: usize,
    coef: &impl Fn(usize, usize) -> f32,
    x: &[f32],
    out: &mut [f32],
) {
    for a in 0..taps {
        let mut acc = [0f32; N];
        for q in 0..taps {
            let s = coef(a, q);
            let xq: &[f32; N] = x[q * c + j..q * c + j + N].try_into().unwrap();
            for l in 0..N {
                acc[l] += s * xq[l];
            }
        }
        out[a * c + j..a * c + j + N].copy_from_slice(&acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Σ_q coef(a, q)·x[q, ch]` summed in `f32` in the order `q = 0, 1, …`.
    fn ordered_sums(taps: usize, c: usize, coef: impl Fn(usize, usize) -> f32, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; taps * c];
        for a in 0..taps {
            for ch in 0..c {
                let mut s = 0f32;
                for q in 0..taps {
                    s += coef(a, q) * x[q * c + ch];
                }
                out[a * c + ch] = s;
            }
        }
        out
    }

    /// The register-blocked `patch_matmul` and the `dcols` of its backward equal the ordered sum
    /// bit for bit for channel counts that take the 16-, 8- and 1-column paths, on 1 and 2 threads.
    #[test]
    fn patch_matmul_sums_taps_in_order_on_every_column_path() {
        let mut rng = nsl_core::Rng::new(7);
        for threads in [1, 2] {
            let cpu = Cpu::with_threads(threads);
            for (taps, c) in [(9, 1), (9, 7), (9, 8), (9, 16), (9, 41), (4, 24), (1, 33)] {
                let rows = 37;
                let (pl, tt) = (taps * c, taps * taps);
                let cols = rng.normal_vec(rows * pl, 1.0);
                let m = rng.normal_vec(rows * tt, 1.0);
                let dout = rng.normal_vec(rows * pl, 1.0);
                let mut out = vec![f32::NAN; rows * pl];
                patch_matmul(&cpu, rows, taps, c, &cols, &m, &mut out);
                let (mut dcols, mut dm) = (vec![f32::NAN; rows * pl], vec![f32::NAN; rows * tt]);
                patch_matmul_backward(&cpu, rows, taps, c, &cols, &m, &dout, &mut dcols, &mut dm);
                for r in 0..rows {
                    let (x, g, mr) = (&cols[r * pl..][..pl], &dout[r * pl..][..pl], &m[r * tt..][..tt]);
                    let want = ordered_sums(taps, c, |a, q| mr[a * taps + q], x);
                    let want_dcols = ordered_sums(taps, c, |q, a| mr[a * taps + q], g);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    let what = format!("taps {taps}, c {c}, row {r}, {threads} threads");
                    assert_eq!(bits(&out[r * pl..][..pl]), bits(&want), "out: {what}");
                    assert_eq!(bits(&dcols[r * pl..][..pl]), bits(&want_dcols), "dcols: {what}");
                }
            }
        }
    }
}
