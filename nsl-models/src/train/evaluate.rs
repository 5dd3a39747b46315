//! Test accuracy of a classifier (top-1 and top-5).

use nsl_core::nn::{Layer, Mode};
use nsl_core::{Backend, Tensor};

use crate::data::augment::Normalize;
use crate::data::loader::eval_batches;
use crate::data::ImageSource;
use crate::nets::Network;
use crate::Error;

/// Top-1 and top-5 accuracy (fractions) of a classifier on a test set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    pub top1: f32,
    pub top5: f32,
}

/// Top-1 and top-5 accuracy of `net` on `data` (batch norm on its running statistics), in
/// batches of `batch`; see [`count_top_k`] for ties. With `debias` the running statistics are
/// debiased (`s/(1 − dⁿ)`, [`nsl_core::nn::BatchNorm::debias_running_statistics`]) on copies
/// for the evaluation and the originals put back afterwards.
///
/// # Errors
/// If an image of `data` cannot be loaded, or the device failed ([`Error::Backend`]).
pub fn evaluate<B: Backend, S: ImageSource + ?Sized>(
    be: &B,
    net: &mut Network<B>,
    data: &S,
    normalize: &Normalize,
    batch: usize,
    debias: bool,
) -> Result<Accuracy, Error> {
    let mut saved = Vec::new();
    if debias {
        net.visit_batch_norms(&mut |bn| {
            let copies = bn.running_statistics().map(|t| t.duplicate(be));
            saved.push(bn.replace_running_statistics(copies));
            bn.debias_running_statistics(be);
        });
    }
    let mut count = || {
        let (mut top1, mut top5) = (0usize, 0usize);
        for b in eval_batches(data, batch, normalize) {
            let b = b?;
            let x = Tensor::from_vec(be, &b.shape, &b.images);
            let logits = net.forward(be, &x, Mode::EVAL).to_vec(be);
            top1 += count_top_k(&logits, &b.labels, net.classes, 1);
            top5 += count_top_k(&logits, &b.labels, net.classes, 5);
        }
        be.status()?;
        let n = data.len().max(1) as f32;
        Ok(Accuracy { top1: top1 as f32 / n, top5: top5 as f32 / n })
    };
    let acc = count();
    if debias {
        let mut saved = saved.into_iter();
        net.visit_batch_norms(&mut |bn| {
            bn.replace_running_statistics(saved.next().expect("one saved set per batch norm"));
        });
    }
    acc
}

/// How many rows of `logits` (`classes` per row) rank their label among the top `k`. The rank
/// of label `l` is the number of classes `j` with `logit[j] > logit[l]`, or an equal logit and
/// `j < l` (ties go to the lower class, as the top-1 argmax does); a NaN logit never counts.
/// With `k ≥ classes` every finite row counts.
pub fn count_top_k(logits: &[f32], labels: &[usize], classes: usize, k: usize) -> usize {
    logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &label)| {
            let x = row[label];
            let rank = row.iter().enumerate().filter(|&(j, &v)| v > x || (v == x && j < label)).count();
            !x.is_nan() && rank < k
        })
        .count()
}
