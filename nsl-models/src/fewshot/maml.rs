//! MAML over the static similarity and the head (the "MAML-trained static NSN", spec §5.6).
//!
//! `θ` is the DNS diagonals ([`nsl_core::Role::Similarity`]) and the head weight; the rest of the pretrained
//! network is frozen and batch norm runs on its running statistics ([`Mode::ADAPT`], with its
//! ReLU mask and all: [`loss_and_backward`]).
//!
//! * **Inner loop** on the support loss `L_S`: `θ_{k+1} = θ_k − α·∇L_S(θ_k)`, `k = 0..K`
//!   (`K = 5`, `α = 0.2`).
//! * **Outer loss** `L_Q(θ_K)` on the query set; its gradient with respect to the *initial*
//!   `θ_0`, since `∂θ_{k+1}/∂θ_k = I − α·H_k` with `H_k = ∇²L_S(θ_k)` symmetric, is
//!   `g = (I − αH_0)(I − αH_1)···(I − αH_{K−1}) ∇L_Q(θ_K)`,
//!   evaluated right to left (`v ← v − α·H_k v` for `k = K−1 … 0`) with Hessian-vector
//!   products. Our layers give first derivatives only, so each `H_k v` is a central difference
//!   of gradients, `H v ≈ (∇L_S(θ + εv) − ∇L_S(θ − εv)) / 2ε` with `ε = δ/‖v‖` (a step of norm
//!   `δ` in parameter space; exact up to `O(δ²)` where the loss is smooth). First-order MAML
//!   drops the `H_k` terms: `g = ∇L_Q(θ_K)`.
//! * **Outer optimiser**: Adam (lr 1e-3) on `θ_0`, the gradient averaged over a meta-batch of tasks.
//! * **Test**: `K` inner steps on `θ`, then 20 more on the head only (same `α`).
//!
//! Long meta-trainings (the spec's ~60k second-order outer steps are hours) can checkpoint and
//! resume ([`meta_train_with`], [`MetaTrainOptions`]): the state after outer step `i` is the
//! network (θ_0 and the frozen rest), the Adam moments and the loss history, and task `t` of
//! step `i` is episode `i·meta_batch + t` of the seed, so a resumed run continues exactly where
//! the killed one stopped.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use nsl_core::nn::{Layer, Mode};
use nsl_core::optim::{zero_grads, Optimizer, OptimizerKind};
use nsl_core::{Backend, Rng, Tensor};

use super::episode::{EpisodeSampler, EpisodeSpec, HostBatch};
use super::model::{
    accuracy, debias_bn_statistics, feature_shape, loss_and_backward, new_head, restore_frozen, swap_head, FlatParams,
};
use crate::checkpoint::{self, Meta};
use crate::data::augment::Normalize;
use crate::data::Dataset;
use crate::nets::Network;
use crate::Error;

/// Which outer gradient MAML uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MamlOrder {
    /// `∇L_Q(θ_K)`: no back-propagation through the inner steps.
    First,
    /// The full `Π_k (I − αH_k) ∇L_Q(θ_K)` with finite-difference Hessian-vector products.
    Second,
}

/// MAML's inner loop and outer gradient settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Maml {
    /// `K`, inner SGD steps on (similarity, head).
    pub inner_steps: usize,
    /// `α`, the inner step size.
    pub inner_lr: f32,
    /// Extra head-only inner steps at test time.
    pub test_head_steps: usize,
    pub order: MamlOrder,
    /// `δ`, the norm of the parameter perturbation of each finite-difference Hessian-vector product.
    pub hvp_step: f32,
}

impl Maml {
    /// 5 steps of 0.2 on (M, head), 20 more on the head at test (paper appendix); second order
    /// (the MAML default, spec §5.6 \[ASSUMPTION\]).
    pub const PAPER: Maml =
        Maml { inner_steps: 5, inner_lr: 0.2, test_head_steps: 20, order: MamlOrder::Second, hvp_step: 1e-3 };
}

/// `θ ← θ − lr·g` on the coordinates where `mask` is true (all when `None`).
pub fn sgd_update(theta: &mut [f32], grad: &[f32], lr: f32, mask: Option<&[bool]>) {
    assert_eq!(theta.len(), grad.len());
    for (i, (t, g)) in theta.iter_mut().zip(grad).enumerate() {
        if mask.is_none_or(|m| m[i]) {
            *t -= lr * g;
        }
    }
}

/// Set `θ` and return the mean cross-entropy of `batch` and `∇_θ` of it.
pub fn loss_grad<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    params: &FlatParams,
    theta: &[f32],
    batch: &HostBatch,
) -> (f32, Vec<f32>) {
    params.set(be, net, theta);
    let loss = loss_and_backward(be, net, batch);
    (loss, params.grad(be, net))
}

/// The inner loop from `θ_0`: `steps` updates `θ_{k+1} = θ_k − lr·∇L(θ_k)` (on the `mask`
/// coordinates) on `batch`. Returns `[θ_0, …, θ_steps]` and leaves the model at `θ_steps`.
pub fn inner_loop<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    params: &FlatParams,
    theta0: &[f32],
    batch: &HostBatch,
    (steps, lr): (usize, f32),
    mask: Option<&[bool]>,
) -> Vec<Vec<f32>> {
    let mut trajectory = vec![theta0.to_vec()];
    for _ in 0..steps {
        let theta = trajectory.last().expect("starts with θ_0");
        let (_, grad) = loss_grad(be, net, params, theta, batch);
        let mut next = theta.clone();
        sgd_update(&mut next, &grad, lr, mask);
        trajectory.push(next);
    }
    params.set(be, net, trajectory.last().expect("starts with θ_0"));
    trajectory
}

/// `H v` at `θ` for the loss of `batch`, by the central difference
/// `(∇L(θ + εv) − ∇L(θ − εv)) / 2ε`, `ε = step/‖v‖`.
pub fn hessian_vector<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    params: &FlatParams,
    theta: &[f32],
    batch: &HostBatch,
    v: &[f32],
    step: f32,
) -> Vec<f32> {
    let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 {
        return vec![0.0; v.len()];
    }
    let eps = f64::from(step) / norm;
    let shifted = |sign: f64| -> Vec<f32> {
        theta.iter().zip(v).map(|(t, x)| (f64::from(*t) + sign * eps * f64::from(*x)) as f32).collect()
    };
    let (_, plus) = loss_grad(be, net, params, &shifted(1.0), batch);
    let (_, minus) = loss_grad(be, net, params, &shifted(-1.0), batch);
    plus.iter().zip(&minus).map(|(p, m)| ((f64::from(*p) - f64::from(*m)) / (2.0 * eps)) as f32).collect()
}

/// MAML's outer gradient for one task.
#[derive(Clone, Debug, PartialEq)]
pub struct OuterGradient {
    /// `∂L_Q(θ_K)/∂θ_0` (second order) or `∇L_Q(θ_K)` (first order).
    pub grad: Vec<f32>,
    /// `L_Q(θ_K)`.
    pub query_loss: f32,
    /// Which one `grad` is.
    pub order: MamlOrder,
}

/// The outer gradient of one task `(support, query)` at `θ_0`, see the module doc. The model is
/// left at `θ_K`.
pub fn outer_gradient<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    params: &FlatParams,
    theta0: &[f32],
    (support, query): (&HostBatch, &HostBatch),
    cfg: &Maml,
) -> OuterGradient {
    let trajectory = inner_loop(be, net, params, theta0, support, (cfg.inner_steps, cfg.inner_lr), None);
    let (query_loss, mut v) = loss_grad(be, net, params, trajectory.last().expect("θ_K"), query);
    if cfg.order == MamlOrder::Second {
        for theta in trajectory[..cfg.inner_steps].iter().rev() {
            let hv = hessian_vector(be, net, params, theta, support, &v, cfg.hvp_step);
            sgd_update(&mut v, &hv, cfg.inner_lr, None);
        }
        params.set(be, net, trajectory.last().expect("θ_K"));
    }
    OuterGradient { grad: v, query_loss, order: cfg.order }
}

/// Meta-training settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetaTrain {
    pub maml: Maml,
    pub spec: EpisodeSpec,
    /// Adam learning rate on `θ_0`.
    pub outer_lr: f32,
    /// Tasks per outer step.
    pub meta_batch: usize,
    /// Outer steps.
    pub iterations: usize,
}

impl MetaTrain {
    /// Adam 1e-3, 4 tasks per meta-batch, 15 queries (the MAML defaults of spec §5.6) for
    /// `iterations` outer steps of 5-way `shot`-shot tasks.
    pub fn paper(shot: usize, iterations: usize) -> Self {
        MetaTrain { maml: Maml::PAPER, spec: EpisodeSpec::paper(shot), outer_lr: 1e-3, meta_batch: 4, iterations }
    }
}

/// Checkpointing and progress of [`meta_train_with`].
#[derive(Clone, Debug, Default)]
pub struct MetaTrainOptions {
    /// Checkpoint file (safetensors, written atomically): the network, the Adam state and the
    /// loss history. When it exists, meta-training resumes from it.
    pub checkpoint: Option<PathBuf>,
    /// Save every this many outer steps, and after the last one (0: after the last only).
    pub checkpoint_every: usize,
    /// Show a progress bar (it stays hidden when stderr is not a terminal; a line per
    /// checkpoint is printed instead).
    pub progress: bool,
    /// Stop after this many outer steps in total (saving a checkpoint), as if killed; for tests.
    pub stop_at: Option<usize>,
    /// Identifies the job: a checkpoint written under another key (or another [`MetaTrain`] or
    /// seed) is refused rather than resumed.
    pub key: String,
}

/// What meta-training did.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaTrainReport {
    /// The outer-gradient order that ran.
    pub order: MamlOrder,
    /// Per outer step done so far (including steps before a resume): the mean post-adaptation
    /// query loss `L_Q(θ_K)` of its tasks.
    pub query_loss: Vec<f32>,
    /// The outer step the run resumed from, if it did.
    pub resumed_from: Option<usize>,
}

/// Meta-learn the similarity and a new `way`-way head initialisation of a pretrained static NSN
/// on episodes of `classes` of `data` (episode `i·meta_batch + t` of `seed` is task `t` of outer
/// step `i`). The network keeps the learned `θ_0` and its new head (`net.classes = way`), ready
/// for [`maml_evaluate`]. BN statistics are debiased first ([`debias_bn_statistics`]).
///
/// # Errors
/// If episodes cannot be drawn.
pub fn meta_train<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    (data, classes, normalize): (&Dataset, &[usize], &Normalize),
    cfg: &MetaTrain,
    seed: u64,
) -> Result<MetaTrainReport, Error> {
    meta_train_with(be, net, (data, classes, normalize), cfg, seed, &MetaTrainOptions::default())
}

/// [`meta_train`] with checkpoints, resume and progress as `opts` says. Stopped early by
/// `opts.stop_at`, it returns the report so far and leaves `net` at the last `θ_0`.
///
/// # Errors
/// As [`meta_train`], and if the checkpoint cannot be written, read, or was written by another job.
pub fn meta_train_with<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    (data, classes, normalize): (&Dataset, &[usize], &Normalize),
    cfg: &MetaTrain,
    seed: u64,
    opts: &MetaTrainOptions,
) -> Result<MetaTrainReport, Error> {
    let sampler = EpisodeSampler::new(data, classes)?;
    debias_bn_statistics(be, net);
    let mut rng = Rng::new(seed).fork(super::HEAD_STREAM);
    let head = new_head(be, &mut rng, &feature_shape(be, net), cfg.spec.way, 0.0);
    swap_head(net, Box::new(head), cfg.spec.way);
    let frozen = FlatParams::similarity_and_head(net).freeze(net, true);
    let result = run_meta_train(be, net, (&sampler, data, normalize), cfg, seed, opts);
    restore_frozen(net, &frozen);
    result
}

fn run_meta_train<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    (sampler, data, normalize): (&EpisodeSampler, &Dataset, &Normalize),
    cfg: &MetaTrain,
    seed: u64,
    opts: &MetaTrainOptions,
) -> Result<MetaTrainReport, Error> {
    let mut opt = Optimizer::<B>::new(OptimizerKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 });
    let mut report =
        MetaTrainReport { order: cfg.maml.order, query_loss: Vec::with_capacity(cfg.iterations), resumed_from: None };
    let fingerprint = format!("{cfg:?} seed {seed} {}", opts.key);
    if let Some(path) = opts.checkpoint.as_ref().filter(|p| p.exists()) {
        let meta = checkpoint::load(be, path, net, Some(&mut opt))?;
        if meta.extra.get("maml") != Some(&fingerprint) {
            let problem = "written by another MAML job".into();
            return Err(Error::StaleCheckpoint { path: path.clone(), problem });
        }
        if let Some(warning) = checkpoint::backend_change_warning(be, path, &meta) {
            eprintln!("{warning}");
        }
        report.query_loss = meta
            .extra
            .get("query_loss")
            .and_then(|t| t.split_whitespace().map(|v| v.parse().ok()).collect::<Option<Vec<f32>>>())
            .ok_or_else(|| Error::StaleCheckpoint {
                path: path.clone(),
                problem: "no loss history in the metadata".into(),
            })?;
        if report.query_loss.len() as u64 != meta.step {
            let problem = format!("the loss history does not match step {}", meta.step);
            return Err(Error::StaleCheckpoint { path: path.clone(), problem });
        }
        report.resumed_from = Some(meta.step as usize);
    }
    let params = FlatParams::similarity_and_head(net);
    let start = report.query_loss.len();
    let stop = opts.stop_at.unwrap_or(cfg.iterations).min(cfg.iterations);
    let bar = if opts.progress { ProgressBar::new(cfg.iterations as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("MAML ({:?} order)", cfg.maml.order).to_lowercase());
    bar.set_position(start as u64);
    let save = |net: &mut Network<B>, opt: &mut Optimizer<B>, report: &MetaTrainReport| {
        let Some(path) = &opts.checkpoint else { return Ok(()) };
        let mut meta = Meta { step: report.query_loss.len() as u64, ..Meta::default() };
        meta.extra.insert("maml".into(), fingerprint.clone());
        // space-separated shortest round-trip decimals (NaN included, which JSON cannot hold)
        let history: Vec<String> = report.query_loss.iter().map(f32::to_string).collect();
        meta.extra.insert("query_loss".into(), history.join(" "));
        checkpoint::save(be, path, net, Some(opt), &meta)?;
        if opts.progress && bar.is_hidden() {
            let loss = report.query_loss.last().copied().unwrap_or(f32::NAN);
            eprintln!("MAML outer step {}/{}: query loss {loss:.4}", report.query_loss.len(), cfg.iterations);
        }
        Ok::<(), Error>(())
    };
    for it in start..stop {
        let theta0 = params.get(be, net);
        let mut meta_grad = vec![0f32; params.len()];
        let mut loss = 0.0;
        for t in 0..cfg.meta_batch {
            let episode = sampler.sample(cfg.spec, seed, (it * cfg.meta_batch + t) as u64)?;
            let (support, query) = (episode.support_batch(data, normalize), episode.query_batch(data, normalize));
            let g = outer_gradient(be, net, &params, &theta0, (&support, &query), &cfg.maml);
            meta_grad.iter_mut().zip(&g.grad).for_each(|(m, g)| *m += g / cfg.meta_batch as f32);
            loss += g.query_loss / cfg.meta_batch as f32;
        }
        be.status()?;
        params.set(be, net, &theta0);
        zero_grads(be, net);
        params.set_grad(be, net, &meta_grad);
        opt.step(be, cfg.outer_lr, net);
        report.query_loss.push(loss);
        bar.set_position(it as u64 + 1);
        bar.set_message(format!("query loss {loss:.4}"));
        if it + 1 == stop || (opts.checkpoint_every > 0 && (it + 1) % opts.checkpoint_every == 0) {
            save(net, &mut opt, &report)?;
        }
    }
    bar.finish();
    Ok(report)
}

/// One test episode of the MAML-trained model: `inner_steps` on (similarity, head) then
/// `test_head_steps` on the head, all of size `inner_lr`, on the support set; returns the query
/// accuracy. `net` (whose head must be `way`-way, from [`meta_train`]) is left as it was.
///
/// # Errors
/// If the head is not `way`-way.
pub fn maml_evaluate<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    (support, query): (&HostBatch, &HostBatch),
    way: usize,
    cfg: &Maml,
) -> Result<f64, Error> {
    if net.classes != way {
        return Err(Error::FewShot(format!(
            "{} has a {}-way head; MAML evaluation needs the {way}-way head of `meta_train`",
            net.name, net.classes
        )));
    }
    let params = FlatParams::similarity_and_head(net);
    let frozen = params.freeze(net, true);
    let theta0 = params.get(be, net);
    let adapted = inner_loop(be, net, &params, &theta0, support, (cfg.inner_steps, cfg.inner_lr), None);
    let head_only = params.head_mask();
    let theta = adapted.last().expect("θ_K");
    inner_loop(be, net, &params, theta, support, (cfg.test_head_steps, cfg.inner_lr), Some(&head_only));
    let xq = Tensor::from_vec(be, &query.shape, &query.images);
    let logits = net.forward(be, &xq, Mode::EVAL).to_vec(be);
    params.set(be, net, &theta0);
    restore_frozen(net, &frozen);
    Ok(accuracy(&logits, &query.labels, way))
}
