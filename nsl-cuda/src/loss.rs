//! Label-smoothed cross-entropy with a floor inside the log (`kernels/loss.cu`; see
//! [`nsl_core::CrossEntropy`]). One warp per example computes, in `f64` like the CPU backend,
//! its loss and `∂L/∂logits` (the exact gradient of `log(p + floor)`); the per-example losses
//! are summed by one block with a fixed tree.

use nsl_core::CrossEntropy;

use crate::launch::{int, p, pm, Arg, THREADS};
use crate::{Cuda, CudaBuf};

/// See [`nsl_core::Backend::cross_entropy`]. Uploads the (checked) labels, as `f32` class
/// indices, and synchronises (the loss goes to the host).
pub(crate) fn cross_entropy(
    be: &Cuda,
    d: &CrossEntropy,
    logits: &CudaBuf,
    labels: &[u32],
    dlogits: &mut CudaBuf,
) -> f32 {
    let op = "cross_entropy";
    let (bsz, k) = (d.batch, d.classes);
    if bsz == 0 {
        return 0.0;
    }
    let labels: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
    let labels = be.upload_or_fail(op, &labels);
    let row_loss = be.scratch::<f64>(op, bsz);
    be.launch_warps(
        "nsl_cross_entropy_rows",
        bsz,
        &[int(bsz), int(k), Arg::F32(d.smoothing), Arg::F32(d.floor), p(logits), p(&labels), p(dlogits), pm(&row_loss)],
    );
    let total = be.scratch::<f64>(op, 1);
    be.launch("nsl_sum_f64", (1, 1, 1), (THREADS, 1, 1), 0, &[int(bsz), pm(&row_loss), pm(&total)]);
    let sum = be.download_mem(op, &total, 1)[0];
    (sum / bsz as f64) as f32
}
