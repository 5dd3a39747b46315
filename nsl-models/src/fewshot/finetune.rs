//! Test-time fine-tuning of a pretrained network on an episode's support set (spec §5.6):
//! a new N-way head, everything frozen but the chosen parameters, PyTorch SGD with dampening on
//! the whole support set as one batch, batch norm on its running statistics.

use nsl_core::nn::{Layer, Mode};

use crate::train::step::{apply_update, loss_and_gradients, Loss};
use nsl_core::optim::{Optimizer, OptimizerKind};
use nsl_core::{Backend, Rng, Tensor};

use super::episode::HostBatch;
use super::model::{accuracy, feature_shape, features, new_head, restore_frozen, restore_head, swap_head, FlatParams};
use crate::nets::Network;

/// The fine-tuning optimiser: `g' = g + wd·w`; `v = g'` on the first step, else
/// `v = momentum·v + (1 − dampening)·g'`; `w −= lr·v` (PyTorch `SGD`), `steps` times on the whole
/// support set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FineTune {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub weight_decay: f32,
    pub steps: usize,
}

impl FineTune {
    /// lr 0.01, momentum 0.9, dampening 0.9, weight decay 1e-3, 100 steps (paper appendix).
    pub const PAPER: FineTune = FineTune { lr: 0.01, momentum: 0.9, dampening: 0.9, weight_decay: 1e-3, steps: 100 };

    fn optimizer<B: Backend>(&self) -> Optimizer<B> {
        Optimizer::new(OptimizerKind::Sgd { momentum: self.momentum, dampening: self.dampening })
    }
}

/// What one episode's fine-tuning gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FineTuneResult {
    /// Support-set accuracy before the first and after the last step.
    pub support_acc_before: f64,
    pub support_acc_after: f64,
    /// Support loss before the first step and at the last step.
    pub support_loss_before: f32,
    pub support_loss_after: f32,
    /// Query accuracy after fine-tuning.
    pub query_acc: f64,
}

// Signature boilerplate: `finetune_head` and `finetune_similarity_and_head` are the two
// adaptation methods of one episode, so they take the same arguments.

/// Fine-tune a new head only, on fixed features (the dynamic NSN, spec §5.6): the backbone runs
/// once in inference mode; the head `U(±1/√fan_in)` then takes `cfg.steps` SGD steps. `net` is
/// not changed.
pub fn finetune_head<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    support: &HostBatch,
    query: &HostBatch,
    way: usize,
    cfg: &FineTune,
    rng: &mut Rng,
) -> FineTuneResult {
    let fs = features(be, net, &Tensor::from_vec(be, &support.shape, &support.images));
    let fq = features(be, net, &Tensor::from_vec(be, &query.shape, &query.images));
    let mut head = new_head(be, rng, fs.shape(), way, cfg.weight_decay);
    let steps = support_steps(be, &mut head, &fs, &support.labels, way, cfg, Mode::TRAIN);
    let eval = |head: &mut nsl_core::nn::NslConv<B>, x: &Tensor<B>, n: usize| {
        head.forward(be, x, Mode::EVAL).reshape(&[n, way]).to_vec(be)
    };
    let after = accuracy(&eval(&mut head, &fs, support.labels.len()), &support.labels, way);
    let query_acc = accuracy(&eval(&mut head, &fq, query.labels.len()), &query.labels, way);
    steps.result(after, query_acc)
}

/// Fine-tune every static similarity parameter ([`nsl_core::Role::Similarity`], the DNS
/// diagonals) and a new head
/// (the static NSN, spec §5.6), back-propagating through the frozen backbone with BN on running
/// statistics ([`Mode::ADAPT`]). The similarity parameters get `cfg.weight_decay` during the
/// fine-tuning, as PyTorch's `SGD(weight_decay)` applies it to every parameter it is given.
/// `net` is left as it was (head, similarity values, decay and frozen flags restored).
///
pub fn finetune_similarity_and_head<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    support: &HostBatch,
    query: &HostBatch,
    way: usize,
    cfg: &FineTune,
    rng: &mut Rng,
) -> FineTuneResult {
    let similarity = FlatParams::similarity(net);
    let snapshot = similarity.get(be, net);
    let decays = similarity.set_weight_decay(net, cfg.weight_decay);
    let head = new_head(be, rng, &feature_shape(be, net), way, cfg.weight_decay);
    let old_head = swap_head(net, Box::new(head), way);
    let frozen = FlatParams::similarity_and_head(net).freeze(net, true);

    let result = run_finetune(be, net, support, query, way, cfg);

    restore_frozen(net, &frozen);
    restore_head(net, old_head);
    similarity.set(be, net, &snapshot);
    similarity.restore_weight_decay(net, &decays);
    result
}

fn run_finetune<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    support: &HostBatch,
    query: &HostBatch,
    way: usize,
    cfg: &FineTune,
) -> FineTuneResult {
    let xs = Tensor::from_vec(be, &support.shape, &support.images);
    let steps = support_steps(be, net, &xs, &support.labels, way, cfg, Mode::ADAPT);
    let after = accuracy(&net.forward(be, &xs, Mode::EVAL).to_vec(be), &support.labels, way);
    let xq = Tensor::from_vec(be, &query.shape, &query.images);
    let query_acc = accuracy(&net.forward(be, &xq, Mode::EVAL).to_vec(be), &query.labels, way);
    steps.result(after, query_acc)
}

/// Support `(loss, accuracy)` at the first and the last fine-tuning step.
struct SupportSteps {
    first: (f32, f64),
    last: (f32, f64),
}

impl SupportSteps {
    fn result(&self, support_acc_after: f64, query_acc: f64) -> FineTuneResult {
        FineTuneResult {
            support_acc_before: self.first.1,
            support_acc_after,
            support_loss_before: self.first.0,
            support_loss_after: self.last.0,
            query_acc,
        }
    }
}

/// `cfg.steps` SGD steps of `model` on the whole support set `(x, labels)` as one batch, in
/// `mode`; each step's loss and accuracy are those of the forward pass before its update.
fn support_steps<B: Backend>(
    be: &B,
    model: &mut dyn Layer<B>,
    x: &Tensor<B>,
    labels: &[usize],
    way: usize,
    cfg: &FineTune,
    mode: Mode,
) -> SupportSteps {
    let mut opt = cfg.optimizer::<B>();
    let mut first = None;
    let mut last = (0.0, 0.0);
    for _ in 0..cfg.steps {
        let g = loss_and_gradients(be, model, (x, labels), Loss::PLAIN, mode);
        last = (g.loss, accuracy(&g.logits.to_vec(be), labels, way));
        first.get_or_insert(last);
        apply_update(be, model, &mut opt, cfg.lr);
    }
    SupportSteps { first: first.unwrap_or(last), last }
}
