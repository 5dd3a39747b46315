//! The training loop (spec §1): smoothed cross-entropy + coupled L2, momentum SGD or Adam with
//! a step schedule and optional warm-up, test accuracy every `eval_every` iterations (final and
//! best both logged), atomic checkpoints, bit-exact resume, and a stop with a named culprit when
//! the loss, the regulariser or a weight becomes NaN or infinite.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use nsl_core::nn::{Layer, Mode};
use nsl_core::optim::Optimizer;
use nsl_core::{Backend, Rng, Tensor};

use super::build::{augment_of, build_network, load_sources, normalize_of, optimizer_of};
use super::evaluate::{count_top_k, evaluate};
use super::metrics::{EvalLine, TrainLine};
use super::run_dir::{RunDir, RunSummary};
use super::step::{apply_update, loss_and_gradients, Loss};
use super::{Error, RunConfig};
use crate::checkpoint::{self, Meta};
use crate::data::loader::{Position, TrainConfig, TrainLoader};
use crate::nets::Network;

/// What to do with a run folder that already holds a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Start a new run; refuse a folder that holds one.
    No,
    /// Continue the folder's run from its checkpoint; refuse a folder without one.
    Required,
    /// Continue it if there is a checkpoint, else start (`cargo xtask repro`, `nsl quickstart`).
    IfPresent,
}

/// Where and how a run writes.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Run folder: `config.toml`, `metrics.jsonl`, `checkpoint.safetensors`, `summary.json`.
    pub out_dir: PathBuf,
    pub resume: Resume,
    /// Show a progress bar (a line per evaluation instead when stderr is not a terminal).
    pub progress: bool,
    /// Stop (with a checkpoint) after this many iterations in total, as if killed; for tests.
    pub stop_at: Option<u64>,
}

/// The settings that may differ between a run and its resumption: they change how long it
/// runs, its learning rate from the resumed step on, and how often it reports, not what was
/// trained so far. Everything else must match the checkpoint's config.
pub const RESUME_OVERRIDES: [&str; 9] = [
    "iterations",
    "lr",
    "milestones",
    "lr_decay",
    "warmup",
    "eval_every",
    "checkpoint_every",
    "eval_batch",
    "data_dir",
];

/// The first key (outside [`RESUME_OVERRIDES`]) whose value differs between two configs, with
/// both values as TOML.
fn changed_key(saved: &RunConfig, asked: &RunConfig) -> Option<(String, String, String)> {
    let table = |c: &RunConfig| toml::Table::try_from(c).expect("a run config serialises");
    let (a, b) = (table(saved), table(asked));
    let keys: std::collections::BTreeSet<String> = a.keys().chain(b.keys()).cloned().collect();
    let show = |t: &toml::Table, k: &str| t.get(k).map_or("(unset)".to_string(), |v| v.to_string());
    keys.into_iter()
        .filter(|k| !RESUME_OVERRIDES.contains(&k.as_str()))
        .find(|k| a.get(k) != b.get(k))
        .map(|k| (k.clone(), show(&a, &k), show(&b, &k)))
}

/// The first parameter of `net` holding a NaN or an infinity, with its name.
pub fn first_non_finite<B: Backend>(be: &B, net: &mut dyn Layer<B>) -> Option<String> {
    let mut bad = None;
    net.visit_params(&mut |p| {
        if bad.is_none() {
            let values = p.value.to_vec(be);
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                bad = Some(format!("tensor `{}` holds {} at index {i}", p.name, values[i]));
            }
        }
    });
    bad
}

/// Train a network as `cfg` says, writing into `opts.out_dir` (see [`RunDir`]).
///
/// # Errors
/// An invalid config (the field named), data that cannot be read, a folder that holds another
/// run (or none to resume), a checkpoint that does not fit, a non-finite loss, regulariser or
/// weight, an I/O failure.
pub fn train<B: Backend>(be: &B, cfg: &RunConfig, opts: &RunOptions) -> Result<RunSummary, Error> {
    cfg.validate()?;
    let started = Instant::now();
    let dir = RunDir::new(&opts.out_dir);
    let resume = match opts.resume {
        Resume::No if dir.holds_a_run() => {
            return Err(Error::RunExists { dir: dir.path().into(), finished: dir.read_summary().is_some() })
        }
        Resume::Required if !dir.has_checkpoint() => return Err(Error::NothingToResume { dir: dir.path().into() }),
        Resume::No => false,
        Resume::Required | Resume::IfPresent => dir.has_checkpoint(),
    };
    let augment = augment_of(cfg.augment);
    let normalize = normalize_of(cfg.normalize)?;
    let (train_set, test_set) = load_sources(cfg)?;
    if train_set.len() < cfg.batch_size {
        return Err(Error::Unsupported(format!(
            "batch size {} is larger than the {} training images of {}",
            cfg.batch_size,
            train_set.len(),
            cfg.dataset
        )));
    }
    let mut rng = Rng::new(cfg.seed);
    let mut net = build_network(be, cfg, train_set.classes(), train_set.shape(), &mut rng)?;
    let mut opt = optimizer_of::<B>(cfg.optimizer);
    let (params, weights) = (net.param_count(), net.weight_count());
    let ckpt_path = dir.checkpoint();

    let mut step = 0;
    let mut best = (0.0f32, 0u64);
    let mut resumed_from = None;
    // wall time the run spent before this resume, up to its checkpoint
    let mut earlier_seconds = 0.0;
    if resume {
        // the run's settings first, so a changed one is named rather than a tensor that misfits
        let saved = checkpoint::read_meta(&ckpt_path)?.extra.get("config").map(|t| RunConfig::from_toml(t)).transpose();
        let saved = saved.map_err(|problem| Error::BadFile {
            path: ckpt_path.clone(),
            problem: format!("its run config: {problem}"),
        })?;
        if let Some((key, saved, asked)) = saved.and_then(|saved| changed_key(&saved, cfg)) {
            return Err(Error::ChangedOnResume { checkpoint: ckpt_path, key, saved, asked });
        }
        let meta = checkpoint::load(be, &ckpt_path, &mut net, Some(&mut opt))?;
        if let Some(culprit) = first_non_finite(be, &mut net) {
            return Err(Error::NonFinite {
                step: meta.step,
                culprit: format!("the checkpoint's {culprit}"),
                last_checkpoint: None,
            });
        }
        if let Some(warning) = checkpoint::backend_change_warning(be, &ckpt_path, &meta) {
            eprintln!("{warning}");
        }
        step = meta.step;
        let num = |k: &str| meta.extra.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        best = (num("best_test_acc") as f32, num("best_step") as u64);
        resumed_from = Some(step);
        earlier_seconds = dir.read_time_at(step).unwrap_or(0.0);
    }
    let stop = opts.stop_at.unwrap_or(cfg.iterations).min(cfg.iterations);
    if resumed_from.is_some_and(|s| s >= stop) {
        // Nothing left to train: a finished run reports what it recorded (not NaN metrics and
        // 0 img/s of an empty loop, which would also overwrite its summary).
        if let Some(done) = dir.read_summary().filter(|d| d.steps == step) {
            return Ok(done);
        }
    }
    dir.write_config(cfg)?;
    dir.clear_summary()?;
    // A resumed run starts from what its log recorded up to the checkpoint.
    let (mut final_loss, mut final_acc, mut final_top5) =
        if resume { dir.metrics().last() } else { (f32::NAN, f32::NAN, f32::NAN) };
    let mut log = dir.open_metrics(resumed_from)?;

    let loader_cfg =
        TrainConfig { batch_size: cfg.batch_size, augment, normalize: normalize.clone(), seed: cfg.seed, prefetch: 3 };
    let batches_per_epoch = train_set.len() / cfg.batch_size;
    let mut loader = TrainLoader::new(train_set, loader_cfg, Position::of_iteration(step, batches_per_epoch));

    // a line per evaluation when there is no bar to show (quiet, or stderr is a file or a pipe)
    let lines = !opts.progress || !std::io::stderr().is_terminal();
    let bar = if opts.progress { ProgressBar::new(cfg.iterations) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} {}", cfg.network, cfg.similarity));
    bar.set_position(step);
    bar.set_message("starting");

    let mut last_saved: Option<(PathBuf, u64)> = resumed_from.map(|s| (ckpt_path.clone(), s));
    let config_text = cfg.to_toml();
    let mut images = 0usize;
    let loop_start = Instant::now();
    let first = step;
    let save = |net: &mut Network<B>, opt: &mut Optimizer<B>, step: u64, best: (f32, u64)| {
        let mut meta = Meta { step, ..Meta::default() };
        meta.extra.insert("config".into(), config_text.clone());
        meta.extra.insert("network".into(), net.name.clone());
        meta.extra.insert("best_test_acc".into(), best.0.to_string());
        meta.extra.insert("best_step".into(), best.1.to_string());
        checkpoint::save(be, &ckpt_path, net, Some(opt), &meta)?;
        dir.write_time(step, earlier_seconds + started.elapsed().as_secs_f64())
    };
    let diverged = |step, culprit, last_checkpoint: &Option<(PathBuf, u64)>| {
        bar.abandon();
        Error::NonFinite { step, culprit, last_checkpoint: last_checkpoint.clone() }
    };

    while step < stop {
        let batch = loader.try_next()?;
        let x = Tensor::from_vec(be, &batch.shape, &batch.images);
        let grads = loss_and_gradients(be, &mut net, (&x, &batch.labels), Loss::of(cfg), Mode::TRAIN);
        // A device failure anywhere in this step (the loss read waited for all of it) stops the
        // run before its numbers are used; the last checkpoint stays the good one.
        be.status().inspect_err(|_| bar.abandon())?;
        let loss = grads.loss;
        if !grads.is_finite() {
            let culprit = match net.forward_checked(be, &x, Mode::EVAL) {
                Err(layer) => format!("loss is {loss}; {layer}"),
                Ok(_) => {
                    format!("loss is {loss} although every layer output is finite (the logits overflow the softmax)")
                }
            };
            return Err(diverged(step, culprit, &last_saved));
        }
        let train_acc =
            count_top_k(&grads.logits.to_vec(be), &batch.labels, net.classes, 1) as f32 / batch.labels.len() as f32;
        let lr = cfg.lr_at(step);
        let reg = apply_update(be, &mut net, &mut opt, lr);
        if !reg.is_finite() {
            return Err(diverged(step, format!("the regulariser (L2, ℓ1, orthogonality) is {reg}"), &last_saved));
        }
        step += 1;
        images += batch.labels.len();
        final_loss = loss;
        log.write(&TrainLine { step, loss, reg, lr, train_acc })?;

        if step % cfg.eval_every == 0 || step == cfg.iterations {
            let acc = evaluate(be, &mut net, &*test_set, &normalize, cfg.eval_batch, cfg.bn_debias)?;
            (final_acc, final_top5) = (acc.top1, acc.top5);
            if final_acc > best.0 {
                best = (final_acc, step);
            }
            log.write(&EvalLine { step, test_acc: final_acc, test_top5: final_top5, best_test_acc: best.0 })?;
            if lines {
                log_eval(cfg, step, loss, final_acc, best.0);
            }
        }
        if step % cfg.checkpoint_every == 0 || step == stop {
            // never replace a good checkpoint with weights that went non-finite
            if let Some(culprit) = first_non_finite(be, &mut net) {
                return Err(diverged(step, format!("after the update {culprit}"), &last_saved));
            }
            save(&mut net, &mut opt, step, best)?;
            last_saved = Some((ckpt_path.clone(), step));
        }
        let elapsed = loop_start.elapsed().as_secs_f64().max(1e-9);
        let eta = (stop - step) as f64 * elapsed / (step - first) as f64;
        bar.set_position(step);
        bar.set_message(progress_message(loss, train_acc, (final_acc, best.0), images as f64 / elapsed, eta));
    }
    bar.finish();
    let summary = RunSummary {
        network: net.name.clone(),
        similarity: cfg.similarity.to_string(),
        dataset: cfg.dataset.to_string(),
        params,
        weights: Some(weights),
        steps: step,
        final_test_acc: final_acc,
        final_test_top5: final_top5.is_finite().then_some(final_top5),
        best_test_acc: best.0,
        best_step: best.1,
        final_train_loss: final_loss,
        wall_seconds: earlier_seconds + started.elapsed().as_secs_f64(),
        train_images_per_second: images as f64 / loop_start.elapsed().as_secs_f64().max(1e-9),
        backend: be.name(),
        resumed_from,
    };
    if step == cfg.iterations {
        dir.write_summary(&summary)?;
    }
    Ok(summary)
}

/// The progress bar's text after a step: the batch's loss and accuracy, the last test accuracy
/// (— before the first evaluation), throughput and the time left.
fn progress_message(loss: f32, train_acc: f32, (test, best): (f32, f32), rate: f64, eta_seconds: f64) -> String {
    let test =
        if test.is_finite() { format!("{:.1}% (best {:.1}%)", 100.0 * test, 100.0 * best) } else { "—".into() };
    let eta = indicatif::HumanDuration(std::time::Duration::from_secs_f64(eta_seconds.max(0.0)));
    format!("loss {loss:.3} acc {:.1}% test {test} {rate:.0} img/s eta {eta}", 100.0 * train_acc)
}

fn log_eval(cfg: &RunConfig, step: u64, loss: f32, acc: f32, best: f32) {
    eprintln!(
        "{} {} step {step}/{}: loss {loss:.4}, test {:.2}% (best {:.2}%)",
        cfg.network,
        cfg.similarity,
        cfg.iterations,
        100.0 * acc,
        100.0 * best
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_shows_no_test_accuracy_before_the_first_evaluation() {
        let before = progress_message(2.3, 0.1, (f32::NAN, 0.0), 512.0, 90.0);
        assert!(before.contains("test —") && !before.contains("0.0%)") && before.contains("eta 2 minutes"), "{before}");
        let after = progress_message(0.3, 0.9, (0.875, 0.9), 512.0, 5.0);
        assert!(after.contains("test 87.5% (best 90.0%)") && after.contains("eta 5 seconds"), "{after}");
    }

    #[test]
    fn only_the_safe_settings_may_change_on_resume() {
        let saved = RunConfig::default();
        let longer =
            RunConfig { iterations: 5_000, lr: 0.01, milestones: vec![4_000], eval_every: 50, ..saved.clone() };
        assert_eq!(changed_key(&saved, &longer), None);
        let wider = RunConfig { width: 0.5, ..saved.clone() };
        let (key, was, asked) = changed_key(&saved, &wider).unwrap();
        assert_eq!((key.as_str(), was.as_str(), asked.as_str()), ("width", "1.0", "0.5"));
        let other_seed = RunConfig { seed: 3, ..saved.clone() };
        assert_eq!(changed_key(&saved, &other_seed).unwrap().0, "seed");
    }
}
