use crate::{Backend, CrossEntropy, Tensor};

/// Smoothed cross-entropy of the reference code (spec §1):
/// `L = mean_b −Σ_k ỹ_k·log(softmax(z_b)_k + floor)`, `ỹ = (1−s)·onehot + s/K`.
/// Returns the loss and `∂L/∂z`. `logits` is `[B, K]` (or `[B,1,1,K]`), `labels` holds class indices.
pub fn cross_entropy<B: Backend>(
    be: &B,
    logits: &Tensor<B>,
    labels: &[usize],
    smoothing: f32,
    floor: f32,
) -> (f32, Tensor<B>) {
    let classes = *logits.shape().last().expect("logits need a class axis");
    let batch = logits.numel() / classes;
    // (the backend contract checks the count and range of the labels)
    let labels: Vec<u32> = labels.iter().map(|&l| u32::try_from(l).unwrap_or(u32::MAX)).collect();
    let mut dlogits = logits.zeros_like(be);
    let d = CrossEntropy { batch, classes, smoothing, floor };
    let loss = be.cross_entropy(&d, logits.buf(), &labels, dlogits.buf_mut());
    (loss, dlogits)
}
