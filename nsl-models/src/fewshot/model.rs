//! What few-shot adaptation needs from a pretrained [`Network`]: a loss gradient with batch norm
//! on its running statistics, a new N-way head, a flat view of a parameter subset, and unbiased
//! BN statistics.

use nsl_core::nn::{cross_entropy, Layer, Mode, NslConv, Padding};
use nsl_core::similarity::InnerProduct;
use nsl_core::{Backend, Param, Rng, Role, Tensor};

use crate::nets::Network;
use crate::train::step::{loss_and_gradients, Loss};

use super::episode::HostBatch;

/// Cross-entropy as PyTorch's `F.cross_entropy`: no label smoothing, no floor in the log.
pub fn plain_cross_entropy<B: Backend>(be: &B, logits: &Tensor<B>, labels: &[usize]) -> (f32, Tensor<B>) {
    cross_entropy(be, logits, labels, 0.0, 0.0)
}

/// Mean cross-entropy of `batch` and the gradients of every parameter of `net` (left in
/// `Param::grad`, zeroed first): one forward and backward with batch norm on its running
/// statistics ([`Mode::ADAPT`]), as few-shot adaptation runs ("BN uses running stats", spec §5.6).
pub fn loss_and_backward<B: Backend>(be: &B, net: &mut Network<B>, batch: &HostBatch) -> f32 {
    let x = Tensor::from_vec(be, &batch.shape, &batch.images);
    loss_and_gradients(be, net, (&x, &batch.labels), Loss::PLAIN, Mode::ADAPT).loss
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
/// If the last layer is not a classifier: one kernel ([`Role::Weight`]) and nothing else.
pub fn swap_head<B: Backend>(
    net: &mut Network<B>,
    head: Box<dyn Layer<B>>,
    classes: usize,
) -> (Box<dyn Layer<B>>, usize) {
    let last = net.body.layers.last_mut().expect("a network has layers");
    let mut roles = Vec::new();
    last.visit_params(&mut |p| roles.push(p.role));
    assert_eq!(roles, [Role::Weight], "{}: the last layer is not a classifier convolution", net.name);
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

/// A fixed subset of a model's trainable parameters, by their position in the model's visit
/// order, viewed as one flat host vector (MAML's `θ`, a fine-tuning snapshot); which parameters
/// is decided by their [`Role`] and the network's structure, never their names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlatParams {
    /// Visit positions of the selected parameters.
    positions: Vec<usize>,
    /// `offsets[i]..offsets[i+1]` is parameter `i`.
    offsets: Vec<usize>,
    /// Whether parameter `i` belongs to the network's head.
    head: Vec<bool>,
}

impl FlatParams {
    /// The trainable parameters of `model` whose role satisfies `pick`.
    pub fn with_roles<B: Backend>(model: &mut dyn Layer<B>, pick: impl Fn(Role) -> bool) -> Self {
        Self::pick(model, |_, p| pick(p.role))
    }
    /// Every static similarity parameter ([`Role::Similarity`], the DNS diagonals).
    pub fn similarity<B: Backend>(net: &mut Network<B>) -> Self {
        Self::with_roles(net, |r| r == Role::Similarity)
    }
    /// The static similarity parameters and the head (the last layer's parameters): what MAML
    /// adapts (spec §5.6).
    pub fn similarity_and_head<B: Backend>(net: &mut Network<B>) -> Self {
        let (last, before) = net.body.layers.split_last_mut().expect("a network has layers");
        let start: usize = before.iter_mut().map(|l| count_params(&mut **l)).sum();
        let head = start..start + count_params(&mut **last);
        let mut flat = Self::pick(net, |at, p| p.role == Role::Similarity || head.contains(&at));
        flat.head = flat.positions.iter().map(|at| head.contains(at)).collect();
        flat
    }
    fn pick<B: Backend>(model: &mut dyn Layer<B>, pick: impl Fn(usize, &Param<B>) -> bool) -> Self {
        let (mut positions, mut offsets) = (Vec::new(), vec![0]);
        let mut at = 0;
        model.visit_params(&mut |p| {
            if p.trainable && pick(at, p) {
                positions.push(at);
                offsets.push(offsets.last().copied().unwrap_or(0) + p.value.numel());
            }
            at += 1;
        });
        let head = vec![false; positions.len()];
        FlatParams { positions, offsets, head }
    }
    /// Number of parameters selected.
    pub fn count(&self) -> usize {
        self.positions.len()
    }
    /// Total number of values.
    pub fn len(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }
    /// True when no parameter is selected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Per value: whether it belongs to the head ([`FlatParams::similarity_and_head`]).
    pub fn head_mask(&self) -> Vec<bool> {
        let mut m = Vec::with_capacity(self.len());
        for (i, &head) in self.head.iter().enumerate() {
            m.extend(std::iter::repeat_n(head, self.offsets[i + 1] - self.offsets[i]));
        }
        m
    }
    fn for_each<B: Backend>(&self, model: &mut dyn Layer<B>, mut f: impl FnMut(&mut Param<B>, std::ops::Range<usize>)) {
        let (mut at, mut next) = (0, 0);
        model.visit_params(&mut |p| {
            if self.positions.get(next) == Some(&at) {
                f(p, self.offsets[next]..self.offsets[next + 1]);
                next += 1;
            }
            at += 1;
        });
        assert_eq!(next, self.positions.len(), "the model has fewer parameters than when selected");
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
    /// Set every selected parameter's coupled L2 to `weight_decay`; returns the previous values.
    pub fn set_weight_decay<B: Backend>(&self, model: &mut dyn Layer<B>, weight_decay: f32) -> Vec<f32> {
        let mut old = Vec::new();
        self.for_each(model, |p, _| old.push(std::mem::replace(&mut p.weight_decay, weight_decay)));
        old
    }
    /// Undo [`FlatParams::set_weight_decay`].
    pub fn restore_weight_decay<B: Backend>(&self, model: &mut dyn Layer<B>, old: &[f32]) {
        let mut old = old.iter();
        self.for_each(model, |p, _| p.weight_decay = *old.next().expect("one value per parameter"));
    }
    /// Freeze every trainable parameter of `model` that is not selected (`train = true`) or that
    /// is (`train = false`); returns the previous flags, for [`restore_frozen`].
    pub fn freeze<B: Backend>(&self, model: &mut dyn Layer<B>, train: bool) -> Vec<bool> {
        let (mut saved, mut at, mut next) = (Vec::new(), 0, 0);
        model.visit_params(&mut |p| {
            let selected = self.positions.get(next) == Some(&at);
            next += usize::from(selected);
            saved.push(p.frozen);
            p.frozen = p.trainable && selected != train;
            at += 1;
        });
        saved
    }
}

/// Parameters and buffers `layer` visits.
fn count_params<B: Backend>(layer: &mut dyn Layer<B>) -> usize {
    let mut n = 0;
    layer.visit_params(&mut |_| n += 1);
    n
}

/// Undo [`FlatParams::freeze`].
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
