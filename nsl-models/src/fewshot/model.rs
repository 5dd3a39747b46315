//! What few-shot adaptation needs from a pretrained [`Network`]: a loss gradient with batch norm
//! on its running statistics, a new N-way head, a flat view of a parameter subset, and unbiased
//! BN statistics.

use std::collections::HashMap;

use nsl_core::nn::{cross_entropy, Layer, Mode, NslConv, Padding};
use nsl_core::optim::zero_grads;
use nsl_core::similarity::InnerProduct;
use nsl_core::{Backend, Param, Rng, Tensor};

use crate::nets::Network;

use super::episode::HostBatch;

/// Name of the last layer's weight in every network of [`crate::nets`].
pub const HEAD_WEIGHT: &str = "classifier.weight";

/// Suffix of every static similarity's parameter (`<layer>.sim.theta`, e.g. the DNS diagonal).
pub const SIMILARITY_SUFFIX: &str = ".sim.theta";

/// Cross-entropy as PyTorch's `F.cross_entropy`: no label smoothing, no floor in the log.
pub fn plain_cross_entropy<B: Backend>(be: &B, logits: &Tensor<B>, labels: &[usize]) -> (f32, Tensor<B>) {
    cross_entropy(be, logits, labels, 0.0, 0.0)
}

/// Mean cross-entropy of `batch` and the gradients of every parameter of `net` (left in
/// `Param::grad`, zeroed first): one forward and backward with batch norm on its running
/// statistics ([`Mode::ADAPT`]), as few-shot adaptation runs ("BN uses running stats", spec §5.6).
pub fn loss_and_backward<B: Backend>(be: &B, net: &mut Network<B>, batch: &HostBatch) -> f32 {
    zero_grads(be, net);
    let x = Tensor::from_vec(be, &batch.shape, &batch.images);
    let logits = net.forward(be, &x, Mode::ADAPT);
    let (loss, dlogits) = plain_cross_entropy(be, &logits, &batch.labels);
    net.backward(be, &dlogits);
    loss
}

/// The penultimate activations of `net` for `x` (every body layer but the last), BN on running
/// statistics: the fixed input of a head-only fine-tuning.
pub fn features<B: Backend>(be: &B, net: &mut Network<B>, x: &Tensor<B>) -> Tensor<B> {
    let (_, backbone) = net.body.layers.split_last_mut().expect("a network has layers");
    backbone.iter_mut().fold(x.clone(), |h, layer| layer.forward(be, &h, Mode::EVAL))
}

/// A new `way`-way head for features of shape `[_, k, k, c]`: a VALID `k×k` conv named
/// `classifier` (a linear layer on the flattened features) with PyTorch's default `nn.Linear`
/// weight init `U(−1/√fan_in, 1/√fan_in)`, `fan_in = k²c`. Our convs have no bias, so the head
/// has none either (PyTorch's head has one, initialised from the same range).
pub fn new_head<B: Backend>(
    be: &B,
    rng: &mut Rng,
    feature_shape: &[usize],
    way: usize,
    weight_decay: f32,
) -> NslConv<B> {
    let (k, c) = (feature_shape[1], feature_shape[3]);
    assert_eq!(feature_shape[2], k, "head needs square features, got {feature_shape:?}");
    let mut head =
        NslConv::new(be, rng, "classifier", (c, way), (k, 1, Padding::Valid), 1.0, weight_decay, InnerProduct::boxed());
    let fan_in = k * k * c;
    let bound = 1.0 / (fan_in as f32).sqrt();
    let w: Vec<f32> = (0..fan_in * way).map(|_| (2.0 * rng.uniform() - 1.0) * bound).collect();
    head.weight.value = Tensor::from_vec(be, &[fan_in, way], &w);
    head
}

/// The shape of [`features`] for one input image.
pub fn feature_shape<B: Backend>(be: &B, net: &mut Network<B>) -> Vec<usize> {
    let [h, w, c] = net.input;
    features(be, net, &Tensor::zeros(be, &[1, h, w, c])).shape().to_vec()
}

/// Put `head` (with `classes` outputs) in place of `net`'s last layer; returns the old layer and
/// class count, for [`restore_head`].
///
/// # Panics
/// If the last layer's only parameter is not [`HEAD_WEIGHT`].
pub fn swap_head<B: Backend>(
    net: &mut Network<B>,
    head: Box<dyn Layer<B>>,
    classes: usize,
) -> (Box<dyn Layer<B>>, usize) {
    let last = net.body.layers.last_mut().expect("a network has layers");
    let mut names = Vec::new();
    last.visit_params(&mut |p| names.push(p.name.clone()));
    assert_eq!(names, [HEAD_WEIGHT], "{}: the last layer is not a `classifier` conv", net.name);
    let old = std::mem::replace(last, head);
    let old_classes = std::mem::replace(&mut net.classes, classes);
    (old, old_classes)
}

/// Undo [`swap_head`].
pub fn restore_head<B: Backend>(net: &mut Network<B>, (head, classes): (Box<dyn Layer<B>>, usize)) {
    *net.body.layers.last_mut().expect("a network has layers") = head;
    net.classes = classes;
}

/// Debias every batch norm's running statistics ([`nsl_core::nn::BatchNorm::debias_running_statistics`]:
/// divided by `1 − d^n`, idempotent).
pub fn debias_bn_statistics<B: Backend>(be: &B, net: &mut Network<B>) {
    net.visit_batch_norms(&mut |bn| bn.debias_running_statistics(be));
}

/// A fixed subset of a model's parameters, by name, viewed as one flat host vector in the
/// model's visit order (MAML's `θ`, a fine-tuning snapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatParams {
    names: Vec<String>,
    /// `offsets[i]..offsets[i+1]` is parameter `i`.
    offsets: Vec<usize>,
}

impl FlatParams {
    /// The trainable parameters of `model` whose name satisfies `select`.
    pub fn select<B: Backend>(model: &mut dyn Layer<B>, select: impl Fn(&str) -> bool) -> Self {
        let (mut names, mut offsets) = (Vec::new(), vec![0]);
        model.visit_params(&mut |p| {
            if p.trainable && select(&p.name) {
                names.push(p.name.clone());
                offsets.push(offsets.last().copied().unwrap_or(0) + p.value.numel());
            }
        });
        FlatParams { names, offsets }
    }
    /// The DNS diagonals (every `*.sim.theta`) and the head: what MAML adapts (spec §5.6).
    pub fn similarity_and_head<B: Backend>(model: &mut dyn Layer<B>) -> Self {
        Self::select(model, |n| n.ends_with(SIMILARITY_SUFFIX) || n == HEAD_WEIGHT)
    }
    /// The parameter names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
    /// Total number of values.
    pub fn len(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }
    /// True when no parameter is selected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Per value: whether it belongs to a parameter whose name satisfies `pred`.
    pub fn mask(&self, pred: impl Fn(&str) -> bool) -> Vec<bool> {
        let mut m = Vec::with_capacity(self.len());
        for (i, name) in self.names.iter().enumerate() {
            m.extend(std::iter::repeat_n(pred(name), self.offsets[i + 1] - self.offsets[i]));
        }
        m
    }
    fn for_each<B: Backend>(&self, model: &mut dyn Layer<B>, mut f: impl FnMut(&mut Param<B>, std::ops::Range<usize>)) {
        let index: HashMap<&str, usize> = self.names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let mut seen = 0;
        model.visit_params(&mut |p| {
            if let Some(&i) = index.get(p.name.as_str()).filter(|_| p.trainable) {
                f(p, self.offsets[i]..self.offsets[i + 1]);
                seen += 1;
            }
        });
        assert_eq!(seen, self.names.len(), "the model lacks some of the parameters {:?}", self.names);
    }
    /// The current values.
    pub fn get<B: Backend>(&self, be: &B, model: &mut dyn Layer<B>) -> Vec<f32> {
        let mut out = vec![0.0; self.len()];
        self.for_each(model, |p, r| out[r].copy_from_slice(&p.value.to_vec(be)));
        out
    }
    /// Overwrite the values.
    pub fn set<B: Backend>(&self, be: &B, model: &mut dyn Layer<B>, values: &[f32]) {
        assert_eq!(values.len(), self.len());
        self.for_each(model, |p, r| p.value = Tensor::from_vec(be, p.value.shape(), &values[r]));
    }
    /// The current gradients.
    pub fn grad<B: Backend>(&self, be: &B, model: &mut dyn Layer<B>) -> Vec<f32> {
        let mut out = vec![0.0; self.len()];
        self.for_each(model, |p, r| out[r].copy_from_slice(&p.grad.to_vec(be)));
        out
    }
    /// Overwrite the gradients.
    pub fn set_grad<B: Backend>(&self, be: &B, model: &mut dyn Layer<B>, grad: &[f32]) {
        assert_eq!(grad.len(), self.len());
        self.for_each(model, |p, r| p.grad = Tensor::from_vec(be, p.grad.shape(), &grad[r]));
    }
}

/// Freeze every trainable parameter of `model` except those whose name satisfies `train`;
/// returns the previous flags (in visit order) for [`restore_frozen`].
pub fn freeze_all_but<B: Backend>(model: &mut dyn Layer<B>, train: impl Fn(&str) -> bool) -> Vec<bool> {
    let mut saved = Vec::new();
    model.visit_params(&mut |p| {
        saved.push(p.frozen);
        p.frozen = p.trainable && !train(&p.name);
    });
    saved
}

/// Undo [`freeze_all_but`].
pub fn restore_frozen<B: Backend>(model: &mut dyn Layer<B>, saved: &[bool]) {
    let mut saved = saved.iter();
    model.visit_params(&mut |p| p.frozen = *saved.next().expect("same parameters as when frozen"));
}

/// Index of the largest value of each `classes`-wide row.
pub fn argmax_rows(logits: &[f32], classes: usize) -> Vec<usize> {
    logits
        .chunks_exact(classes)
        .map(|row| row.iter().enumerate().fold(0, |b, (i, v)| if *v > row[b] { i } else { b }))
        .collect()
}

/// Fraction of rows whose argmax is the label.
pub fn accuracy(logits: &[f32], labels: &[usize], classes: usize) -> f64 {
    let correct = argmax_rows(logits, classes).iter().zip(labels).filter(|(p, l)| p == l).count();
    correct as f64 / labels.len().max(1) as f64
}
