//! Few-shot learning with neural similarity (paper §7.2, Table 6; protocol in spec §5.6).
//!
//! 1. [`pretrain`] a network (e.g. [`crate::nets::cnn4`] with all-ones static DNS, or dynamic
//!    DNS) as an ordinary classifier on the base classes: Adam, plain cross-entropy, static
//!    similarities held at their identity start.
//! 2. Score it on N-way K-shot episodes of the novel classes with [`evaluate_episodes`]:
//!    * [`Method::FineTuneHead`] (dynamic NSN): a new head trained on frozen features;
//!    * [`Method::FineTuneSimilarityAndHead`] (static NSN): the DNS diagonals and a new head;
//!    * [`Method::MamlAdapted`] (MAML-trained static NSN): after [`meta_train`], MAML's test-time
//!      adaptation of the meta-learned similarity and head.
//!
//!    The result is the mean query accuracy and its 95% interval ([`mean_ci95`]).
//!
//! The pretrained classifier (e.g. 80-way) is replaced per episode by a new `way`-way head;
//! batch norm always runs on its running statistics during adaptation ([`nsl_core::nn::Mode::ADAPT`]).

mod episode;
mod finetune;
mod maml;
mod model;

pub use episode::{mean_ci95, Episode, EpisodeSampler, EpisodeSpec, HostBatch};
pub use finetune::{finetune_head, finetune_similarity_and_head, FineTune, FineTuneResult};
pub use maml::{
    hessian_vector, inner_loop, loss_grad, maml_evaluate, meta_train, meta_train_with, outer_gradient, sgd_update,
    Maml, MamlOrder, MetaTrain, MetaTrainOptions, MetaTrainReport, OuterGradient,
};
pub use model::{
    accuracy, debias_bn_statistics, feature_shape, features, loss_and_backward, new_head, plain_cross_entropy,
    restore_frozen, restore_head, swap_head, FlatParams,
};

use nsl_core::nn::Mode;
use nsl_core::optim::Optimizer;
use nsl_core::{Backend, Rng, Tensor};

use crate::data::augment::Normalize;
use crate::data::loader::epoch_permutation;
use crate::data::Dataset;
use crate::nets::Network;
use crate::train::step::{apply_update, loss_and_gradients, Loss};
use crate::Error;

/// `Rng::fork` label of the stream that initialises new heads (episode streams use the episode index).
const HEAD_STREAM: u64 = u64::MAX;

/// How a pretrained network adapts to an episode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// A new head on frozen features (dynamic NSN).
    FineTuneHead(FineTune),
    /// The static similarity parameters and a new head (static NSN).
    FineTuneSimilarityAndHead(FineTune),
    /// MAML's test-time adaptation of a [`meta_train`]ed network.
    MamlAdapted(Maml),
}

impl Method {
    /// A short name for logs and result tables.
    pub fn name(&self) -> &'static str {
        match self {
            Method::FineTuneHead(_) => "finetune-head",
            Method::FineTuneSimilarityAndHead(_) => "finetune-similarity-and-head",
            Method::MamlAdapted(_) => "maml",
        }
    }
}

/// What [`pretrain`] reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PretrainReport {
    /// Cross-entropy of the last batch.
    pub final_loss: f32,
    /// Accuracy on the last `min(100, iterations)` batches, before their updates.
    pub recent_train_acc: f64,
}

/// Train `net` as a `classes.len()`-way classifier on the images of `classes` of `data`
/// (class `classes[i]` is output `i`): Adam (β = 0.9, 0.999, lr `lr`; spec §5.6), plain
/// cross-entropy, each parameter's own coupled L2, batches of `batch` from per-epoch
/// permutations of `seed`, no augmentation. Every static similarity parameter
/// ([`nsl_core::Role::Similarity`]) stays frozen at its start ("M fixed to identity": build the network with the all-ones DNS).
/// Finally the BN statistics are debiased ([`debias_bn_statistics`]).
///
/// # Errors
/// If `net` does not have `classes.len()` outputs, or a class has no image.
pub fn pretrain<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    data: &Dataset,
    classes: &[usize],
    normalize: &Normalize,
    (iterations, batch, lr): (usize, usize, f32),
    seed: u64,
) -> Result<PretrainReport, Error> {
    if net.classes != classes.len() {
        return Err(Error::FewShot(format!("{} has {} outputs for {} classes", net.name, net.classes, classes.len())));
    }
    let mut remap = vec![usize::MAX; data.classes];
    for (i, &c) in classes.iter().enumerate() {
        *remap.get_mut(c).ok_or_else(|| Error::FewShot(format!("class {c} is out of range for {}", data.name)))? = i;
    }
    let pool: Vec<usize> = (0..data.len()).filter(|&i| remap[data.label(i)] != usize::MAX).collect();
    let mut counts = vec![0usize; classes.len()];
    pool.iter().for_each(|&i| counts[remap[data.label(i)]] += 1);
    if let Some(i) = counts.iter().position(|&n| n == 0) {
        return Err(Error::FewShot(format!("class {} has no image in {}", classes[i], data.name)));
    }
    let batch = batch.min(pool.len()).max(1);
    let per_epoch = pool.len() / batch;
    let frozen = FlatParams::similarity(net).freeze(net, false);
    let mut opt = Optimizer::<B>::adam(0.9, 0.999);
    let mut report = PretrainReport { final_loss: f32::NAN, recent_train_acc: 0.0 };
    let recent = iterations.clamp(1, 100);
    let mut order = Vec::new();
    for it in 0..iterations {
        let (epoch, slot) = ((it / per_epoch) as u64, it % per_epoch);
        if slot == 0 {
            order = epoch_permutation(pool.len(), seed, epoch);
        }
        let indices: Vec<usize> = order[slot * batch..(slot + 1) * batch].iter().map(|&j| pool[j]).collect();
        let labels: Vec<usize> = indices.iter().map(|&i| remap[data.label(i)]).collect();
        let host = HostBatch::gather(data, &indices, &labels, normalize);
        let x = Tensor::from_vec(be, &host.shape, &host.images);
        let g = loss_and_gradients(be, net, (&x, &labels), Loss::PLAIN, Mode::TRAIN);
        let failure = match be.status() {
            Err(e) => Some(Error::from(e)),
            Ok(()) if !g.is_finite() => {
                let culprit = format!("{}: the pretraining loss became {}", net.name, g.loss);
                Some(Error::NonFinite { step: it as u64, culprit, last_checkpoint: None })
            }
            Ok(()) => None,
        };
        if let Some(e) = failure {
            restore_frozen(net, &frozen);
            return Err(e);
        }
        if it + recent >= iterations {
            report.recent_train_acc += accuracy(&g.logits.to_vec(be), &labels, net.classes) / recent as f64;
        }
        apply_update(be, net, &mut opt, lr);
        report.final_loss = g.loss;
    }
    restore_frozen(net, &frozen);
    debias_bn_statistics(be, net);
    Ok(report)
}

/// Per-episode query accuracies of a method and their summary.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeStats {
    pub method: &'static str,
    pub accuracies: Vec<f64>,
    /// Mean query accuracy.
    pub mean: f64,
    /// 95% half-width, `1.96·s/√n` ([`mean_ci95`]).
    pub ci95: f64,
}

/// Adapt `net` to `episodes` episodes (episode `e` of `seed`, [`EpisodeSampler::sample`]) of
/// `classes` of `data` with `method` and score each on its queries. The network is left as it
/// was, except that its BN statistics are debiased ([`debias_bn_statistics`], idempotent).
/// New heads are drawn from `Rng::new(seed).fork(u64::MAX).fork(e)`.
///
/// # Errors
/// If episodes cannot be drawn, or the method does not fit the network (static fine-tuning of
/// a network with batch norms inside a layer; MAML without a `way`-way meta-trained head).
pub fn evaluate_episodes<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    (data, classes, normalize): (&Dataset, &[usize], &Normalize),
    spec: EpisodeSpec,
    episodes: usize,
    method: &Method,
    seed: u64,
) -> Result<EpisodeStats, Error> {
    let sampler = EpisodeSampler::new(data, classes)?;
    debias_bn_statistics(be, net);
    let mut accuracies = Vec::with_capacity(episodes);
    for e in 0..episodes as u64 {
        let episode = sampler.sample(spec, seed, e)?;
        let (support, query) = (episode.support_batch(data, normalize), episode.query_batch(data, normalize));
        let mut rng = Rng::new(seed).fork(HEAD_STREAM).fork(e);
        let acc = match method {
            Method::FineTuneHead(cfg) => finetune_head(be, net, &support, &query, spec.way, cfg, &mut rng).query_acc,
            Method::FineTuneSimilarityAndHead(cfg) => {
                finetune_similarity_and_head(be, net, &support, &query, spec.way, cfg, &mut rng).query_acc
            }
            Method::MamlAdapted(cfg) => maml_evaluate(be, net, (&support, &query), spec.way, cfg)?,
        };
        be.status()?;
        accuracies.push(acc);
    }
    let (mean, ci95) = mean_ci95(&accuracies);
    Ok(EpisodeStats { method: method.name(), accuracies, mean, ci95 })
}
