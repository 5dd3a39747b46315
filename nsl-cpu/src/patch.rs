//! DNS / UNS patch transforms on im2col rows: `patch_scale`, `patch_matmul` and their
//! backwards (formulas on [`nsl_core::Backend`]). Every row is independent; rows run in
//! parallel chunks.

use crate::par::{self, axpy_slice, dot_f32};
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
            for (a, o) in orow.chunks_exact_mut(c).enumerate() {
                o.fill(0.0);
                for (q, xq) in x.chunks_exact(c).enumerate() {
                    axpy_slice(mr[a * taps + q], xq, o);
                }
            }
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
            for (q, d) in dcr.chunks_exact_mut(c).enumerate() {
                d.fill(0.0);
                for (a, ga) in g.chunks_exact(c).enumerate() {
                    axpy_slice(mr[a * taps + q], ga, d);
                }
            }
            for (a, ga) in g.chunks_exact(c).enumerate() {
                for (q, xq) in x.chunks_exact(c).enumerate() {
                    dmr[a * taps + q] = dot_f32(ga, xq);
                }
            }
        }
    });
}
