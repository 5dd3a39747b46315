//! Label-smoothed cross-entropy with a floor inside the log (see [`nsl_core::CrossEntropy`]).

use nsl_core::CrossEntropy;

use crate::par;
use crate::Cpu;

/// See [`nsl_core::Backend::cross_entropy`].
///
/// With `p = softmax(z)`, `ỹ = (1−s)·onehot + s/K` and `w_k = ỹ_k·p_k/(p_k + floor)`:
/// `L_b = −Σ_k ỹ_k·log(p_k + floor)` and, differentiating `log(p_k + floor)` exactly,
/// `∂L/∂z_j = (1/B)·(p_j·Σ_k w_k − w_j)` (which is `p − ỹ` only when `floor = 0`).
/// Computed in `f64` per row; the mean loss sums the rows in order.
pub(crate) fn cross_entropy(cpu: &Cpu, d: &CrossEntropy, logits: &[f32], labels: &[u32], dlogits: &mut [f32]) -> f32 {
    let (bsz, k) = (d.batch, d.classes);
    let logits = &logits[..bsz * k];
    let dlogits = &mut dlogits[..bsz * k];
    let s = d.smoothing as f64;
    let floor = d.floor as f64;
    let inv_b = 1.0 / bsz.max(1) as f64;
    let rpt = par::rows_per_task(k * 8);
    // Per-chunk loss partials (fixed chunking); each chunk also writes its rows of dlogits.
    let partials = par::rows_map_collect(cpu, dlogits, k, rpt, bsz * k * 8, |b0, out| {
        let mut p = vec![0f64; k];
        let mut w = vec![0f64; k];
        let mut loss = 0f64;
        for (b, dz) in (b0..).zip(out.chunks_exact_mut(k)) {
            let z = &logits[b * k..(b + 1) * k];
            let label = labels[b] as usize;
            let mx = z.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
            let mut sum = 0f64;
            for (p, &v) in p.iter_mut().zip(z) {
                *p = (v as f64 - mx).exp();
                sum += *p;
            }
            let mut wsum = 0f64;
            for (j, (p, w)) in p.iter_mut().zip(w.iter_mut()).enumerate() {
                *p /= sum;
                let yt = s / k as f64 + if j == label { 1.0 - s } else { 0.0 };
                loss -= yt * (*p + floor).ln();
                *w = yt * *p / (*p + floor);
                wsum += *w;
            }
            for ((dz, p), w) in dz.iter_mut().zip(&p).zip(&w) {
                *dz = ((p * wsum - w) * inv_b) as f32;
            }
        }
        loss
    });
    (partials.iter().sum::<f64>() * inv_b) as f32
}
