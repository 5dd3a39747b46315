//! Label-smoothed cross-entropy with a floor inside the log (`kernels/loss.cu`; see
//! [`nsl_core::CrossEntropy`]). One warp per example computes, in `f64` like the CPU backend,
//! its loss and `∂L/∂logits` (the exact gradient of `log(p + floor)`); the per-example losses
//! are summed by one block with a fixed tree.

use nsl_core::CrossEntropy;

use crate::launch::{int, need, p, pm, Arg, THREADS};
use crate::{Cuda, CudaBuf};

/// See [`nsl_core::Backend::cross_entropy`]. Synchronises (the loss goes to the host).
///
/// Panics if a label is not an integer in `0..K` (the labels are checked on the host first,
/// with the CPU backend's message).
pub(crate) fn cross_entropy(
    be: &Cuda,
    d: &CrossEntropy,
    logits: &CudaBuf,
    labels: &CudaBuf,
    dlogits: &mut CudaBuf,
) -> f32 {
    let op = "cross_entropy";
    let (bsz, k) = (d.batch, d.classes);
    assert!(k > 0, "cross_entropy: needs at least one class");
    need(op, "labels", labels, bsz);
    need(op, "logits", logits, bsz * k);
    need(op, "dlogits", dlogits, bsz * k);
    if bsz == 0 {
        return 0.0;
    }
    let host_labels = be.download_mem(op, &labels.0, bsz);
    for (b, &l) in host_labels.iter().enumerate() {
        assert!(
            l >= 0.0 && l.fract() == 0.0 && (l as usize) < k,
            "cross_entropy: label {l} of example {b} is out of range for K = {k} classes"
        );
    }
    let row_loss = be.scratch::<f64>(op, bsz);
    be.launch_warps(
        "nsl_cross_entropy_rows",
        bsz,
        &[int(bsz), int(k), Arg::F32(d.smoothing), Arg::F32(d.floor), p(logits), p(labels), p(dlogits), pm(&row_loss)],
    );
    let total = be.scratch::<f64>(op, 1);
    be.launch("nsl_sum_f64", (1, 1, 1), (THREADS, 1, 1), 0, &[int(bsz), pm(&row_loss), pm(&total)]);
    let sum = be.download_mem(op, &total, 1)[0];
    (sum / bsz as f64) as f32
}
