//! The training loop (spec §1): smoothed cross-entropy + coupled L2, momentum SGD or Adam with
//! a step schedule, test accuracy every `eval_every` iterations (final and best both logged),
//! atomic checkpoints, bit-exact `--resume`, and a stop with a named culprit on NaN/inf.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use nsl_core::nn::{cross_entropy, Layer, Mode};
use nsl_core::optim::{apply_regularizers, Optimizer};
use nsl_core::{Backend, Rng, Tensor};
use serde::Serialize;

use super::metrics::{to_line, EvalLine, Metrics, TrainLine};
use super::{RunConfig, TrainError};
use crate::checkpoint::{self, Meta};
use crate::data::augment::{Augment, Normalize};
use crate::data::imagenet::load_imagenet;
use crate::data::loader::{eval_batches, Position, TrainConfig, TrainLoader};
use crate::data::{cifar, fashion_mnist, synthetic, DataError, Dataset, ImageSource};
use crate::nets::{
    cnn10, cnn4, cnn9, cnn9_plus_plus_of, spherenet9, Cnn10Config, Cnn4Config, Cnn9Config, Network, SimilarityChoice,
    SphereNetConfig,
};

/// Where and how a run writes.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Run folder: `config.toml`, `metrics.jsonl`, `checkpoint.safetensors`, `summary.json`.
    pub out_dir: PathBuf,
    /// Continue from `out_dir/checkpoint.safetensors` if it exists.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Stop (with a checkpoint) after this many iterations in total, as if killed; for tests.
    pub stop_at: Option<u64>,
}

/// What a finished (or stopped) run reports; also written to `summary.json`.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct RunSummary {
    pub network: String,
    pub similarity: String,
    pub dataset: String,
    /// Trainable values, batch-norm γ/β and similarity parameters included.
    pub params: usize,
    /// Convolution and fully connected weights only (predictors' included): what the paper's
    /// parameter counts count. Absent in summaries written before it was recorded.
    #[serde(default)]
    pub weights: Option<usize>,
    pub steps: u64,
    pub final_test_acc: f32,
    /// Top-5 accuracy at the final evaluation (training runs; absent in few-shot rows and in
    /// summaries written before it was recorded).
    #[serde(default)]
    pub final_test_top5: Option<f32>,
    pub best_test_acc: f32,
    pub best_step: u64,
    pub final_train_loss: f32,
    pub wall_seconds: f64,
    pub train_images_per_second: f64,
    pub backend: String,
    pub resumed_from: Option<u64>,
}

impl RunSummary {
    /// The summary a finished run wrote to `dir/summary.json`, if there is a readable one.
    pub fn read(dir: &Path) -> Option<RunSummary> {
        let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Load the run's in-memory dataset: `(train, test)`. ImageNet is streamed from disk instead:
/// [`load_sources`] opens every dataset.
pub fn load_data(cfg: &RunConfig) -> Result<(Dataset, Dataset), TrainError> {
    let dir = Path::new(&cfg.data_dir);
    match cfg.dataset.as_str() {
        "synthetic" => Ok(synthetic::synthetic_cifar(cfg.synthetic_train, cfg.synthetic_test, cfg.seed)),
        "synthetic100" => {
            // 100 classes, train and test split per class from one draw of the many-class set
            let per_class = (cfg.synthetic_train + cfg.synthetic_test) / 100;
            let all = synthetic::synthetic_many(100, per_class, cfg.seed);
            let test_per_class = (cfg.synthetic_test / 100).max(1);
            let (test, train): (Vec<usize>, Vec<usize>) = (0..all.len()).partition(|i| i % per_class < test_per_class);
            Ok((all.subset("synthetic100-train", &train), all.subset("synthetic100-test", &test)))
        }
        "fashion-mnist" => Ok(fashion_mnist::load(dir)?),
        fashion_mnist::EMBEDDED_NAME => Ok(fashion_mnist::embedded()),
        "cifar10" => Ok(cifar::load_cifar10(dir.join("cifar-10"))?),
        "cifar100" => Ok(cifar::load_cifar100(dir.join("cifar-100"))?),
        "imagenet" => Err(TrainError::Config(
            "imagenet is streamed from disk, not held in memory: open it with train::load_sources".into(),
        )),
        other => Err(TrainError::Config(format!(
            "unknown dataset `{other}`; expected fashion-mnist-embedded, fashion-mnist, synthetic, synthetic100, \
             cifar10, cifar100 or imagenet"
        ))),
    }
}

/// A training or test set, in memory or streamed from files.
pub type Source = Arc<dyn ImageSource>;

/// Open the run's dataset, `(train, test)`: ImageNet's class folders under
/// `data_dir/imagenet/{train,val}` (streamed), anything else as [`load_data`] loads it.
pub fn load_sources(cfg: &RunConfig) -> Result<(Source, Source), TrainError> {
    if cfg.dataset == "imagenet" {
        let (train, val) = load_imagenet(Path::new(&cfg.data_dir).join("imagenet"))?;
        return Ok((Arc::new(train), Arc::new(val)));
    }
    let (train, test) = load_data(cfg)?;
    Ok((Arc::new(train), Arc::new(test)))
}

/// Build the run's network for `classes` classes and square `[H, W, C]` input images (the
/// data's `ImageSource::shape`), with every batch norm's EMA decay set to `cfg.bn_decay`.
pub fn build_network<B: Backend>(
    be: &B,
    cfg: &RunConfig,
    classes: usize,
    input: [usize; 3],
    rng: &mut Rng,
) -> Result<Network<B>, TrainError> {
    let sim: SimilarityChoice = cfg.similarity.parse().map_err(TrainError::Config)?;
    let [input_hw, _, input_channels] = input;
    let sphere = |rng: &mut Rng, sphere, attention| {
        let paper = SphereNetConfig::paper(classes, sphere, attention);
        let weight_decay = cfg.weight_decay.unwrap_or(paper.weight_decay);
        let c = SphereNetConfig { input_hw, input_channels, weight_decay, ..paper }.scaled(cfg.width);
        spherenet9(be, rng, &c)
    };
    let mut net = match cfg.network.as_str() {
        "cnn9" => {
            let paper = Cnn9Config::paper(classes, sim);
            let c = Cnn9Config {
                input_hw,
                input_channels,
                l1: cfg.l1,
                weight_decay: cfg.weight_decay.unwrap_or(paper.weight_decay),
                predictor_hidden: cfg.predictor_hidden.unwrap_or(paper.predictor_hidden),
                uns_identity: cfg.uns_identity,
                shared_stats: cfg.shared_bn_stats,
                hidden_fc: cfg.hidden_fc,
                ..paper
            };
            cnn9(be, rng, &c.scaled(cfg.width))
        }
        "cnn9pp" => {
            let paper = Cnn9Config::plus_plus(classes);
            let weight_decay = cfg.weight_decay.unwrap_or(paper.weight_decay);
            cnn9_plus_plus_of(
                be,
                rng,
                &Cnn9Config { input_hw, input_channels, weight_decay, ..paper }.scaled(cfg.width),
            )
        }
        "spherenet9" => sphere(rng, true, false),
        "spherenet9-attention" => sphere(rng, true, true),
        "cnn9-wide" => sphere(rng, false, false),
        "cnn9-wide-attention" => sphere(rng, false, true),
        "cnn10" | "cnn10pp" => {
            let paper = if cfg.network == "cnn10pp" {
                Cnn10Config::plus_plus(classes)
            } else {
                Cnn10Config::paper(classes, sim)
            };
            let c = Cnn10Config {
                input,
                width: cfg.width,
                weight_decay: cfg.weight_decay.unwrap_or(paper.weight_decay),
                predictor_hidden: cfg.predictor_hidden.unwrap_or(paper.predictor_hidden),
                ..paper
            };
            cnn10(be, rng, &c)
        }
        "cnn4" => {
            let paper = Cnn4Config::paper(classes, sim);
            let weight_decay = cfg.weight_decay.unwrap_or(paper.weight_decay);
            cnn4(be, rng, &Cnn4Config { input, width: cfg.width, weight_decay, ..paper })
        }
        other => {
            return Err(TrainError::Config(format!(
                "unknown network `{other}`; expected cnn9, cnn9pp, spherenet9, spherenet9-attention, cnn9-wide, \
                 cnn9-wide-attention, cnn10, cnn10pp or cnn4"
            )))
        }
    };
    if cfg.predictor_gamma != 1.0 {
        net.set_predictor_output_gamma(be, cfg.predictor_gamma);
    }
    net.set_bn_decay(cfg.bn_decay);
    if let Some(eps) = cfg.bn_eps {
        net.visit_batch_norms(&mut |bn| bn.eps = eps);
    }
    Ok(net)
}

fn parse_augment(s: &str) -> Result<Augment, TrainError> {
    match s {
        "pad-crop-flip" => Ok(Augment::CIFAR),
        "flip" => Ok(Augment::Flip),
        "crop-flip" => Ok(Augment::IMAGENET),
        "none" => Ok(Augment::None),
        o => Err(TrainError::Config(format!("unknown augment `{o}`; expected pad-crop-flip, flip, crop-flip or none"))),
    }
}

/// The input normalisation named by a run config's `normalize`.
pub fn parse_normalize(s: &str) -> Result<Normalize, TrainError> {
    match s {
        "raw" => Ok(Normalize::Raw),
        "centered" => Ok(Normalize::Centered),
        "imagenet-mean" => Ok(Normalize::imagenet_mean()),
        "mean-std" => Err(TrainError::Config(
            "normalize `mean-std` is computed from a few-shot row's training split (cargo xtask repro); training \
             runs take raw, centered or imagenet-mean"
                .into(),
        )),
        o => Err(TrainError::Config(format!("unknown normalize `{o}`; expected raw, centered or imagenet-mean"))),
    }
}

fn make_optimizer<B: Backend>(cfg: &RunConfig) -> Result<Optimizer<B>, TrainError> {
    match cfg.optimizer.as_str() {
        "sgd" => Ok(Optimizer::momentum(0.9)),
        "adam" => Ok(Optimizer::adam(0.9, 0.999)),
        o => Err(TrainError::Config(format!("unknown optimizer `{o}`; expected sgd or adam"))),
    }
}

/// Top-1 and top-5 accuracy (fractions) of a classifier on a test set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    pub top1: f32,
    pub top5: f32,
}

/// Test accuracy of `net` on `data` (BN in inference mode), in batches of `batch`.
/// With `debias`, the BN statistics are debiased ([`crate::fewshot::debias_bn_statistics`]) on
/// copies for the evaluation, and the originals are put back afterwards.
pub fn evaluate_debiased<B: Backend, S: ImageSource + ?Sized>(
    be: &B,
    net: &mut Network<B>,
    data: &S,
    normalize: &Normalize,
    batch: usize,
    debias: bool,
) -> Result<f32, DataError> {
    evaluate_debiased_accuracy(be, net, data, normalize, batch, debias).map(|a| a.top1)
}

/// [`evaluate_debiased`] with top-1 and top-5 accuracy.
pub fn evaluate_debiased_accuracy<B: Backend, S: ImageSource + ?Sized>(
    be: &B,
    net: &mut Network<B>,
    data: &S,
    normalize: &Normalize,
    batch: usize,
    debias: bool,
) -> Result<Accuracy, DataError> {
    if !debias {
        return evaluate_accuracy(be, net, data, normalize, batch);
    }
    let mut saved = Vec::new();
    net.visit_batch_norms(&mut |bn| {
        let copies = bn.running_statistics().map(|t| t.duplicate(be));
        saved.push(bn.replace_running_statistics(copies));
        bn.debias_running_statistics(be);
    });
    let acc = evaluate_accuracy(be, net, data, normalize, batch);
    let mut saved = saved.into_iter();
    net.visit_batch_norms(&mut |bn| {
        bn.replace_running_statistics(saved.next().expect("one saved set per batch norm"));
    });
    acc
}

/// Test accuracy (top-1) of `net` on `data` (BN in inference mode), in batches of `batch`.
///
/// # Errors
/// If an image of `data` cannot be loaded.
pub fn evaluate<B: Backend, S: ImageSource + ?Sized>(
    be: &B,
    net: &mut Network<B>,
    data: &S,
    normalize: &Normalize,
    batch: usize,
) -> Result<f32, DataError> {
    evaluate_accuracy(be, net, data, normalize, batch).map(|a| a.top1)
}

/// Top-1 and top-5 test accuracy of `net` on `data` (BN in inference mode), in batches of
/// `batch` (ImageNet reports both, spec §5.5); see [`count_top_k`] for ties.
///
/// # Errors
/// If an image of `data` cannot be loaded.
pub fn evaluate_accuracy<B: Backend, S: ImageSource + ?Sized>(
    be: &B,
    net: &mut Network<B>,
    data: &S,
    normalize: &Normalize,
    batch: usize,
) -> Result<Accuracy, DataError> {
    let (mut top1, mut top5) = (0usize, 0usize);
    for b in eval_batches(data, batch, normalize) {
        let b = b?;
        let x = Tensor::from_vec(be, &b.shape, &b.images);
        let logits = net.forward(be, &x, Mode::EVAL).to_vec(be);
        top1 += count_top_k(&logits, &b.labels, net.classes, 1);
        top5 += count_top_k(&logits, &b.labels, net.classes, 5);
    }
    let n = data.len().max(1) as f32;
    Ok(Accuracy { top1: top1 as f32 / n, top5: top5 as f32 / n })
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

fn count_correct(logits: &[f32], labels: &[usize], classes: usize) -> usize {
    count_top_k(logits, labels, classes, 1)
}

/// Keep only the metric lines of steps `≤ step` (a resumed run rewrites what followed its checkpoint).
fn truncate_metrics(path: &Path, step: u64) -> Result<(), TrainError> {
    if !path.exists() {
        return Ok(());
    }
    checkpoint::write_atomic(path, Metrics::text_up_to(path, step).as_bytes()).map_err(TrainError::Checkpoint)
}

/// Train a network as `cfg` says, writing into `opts.out_dir`.
pub fn train<B: Backend>(be: &B, cfg: &RunConfig, opts: &RunOptions) -> Result<RunSummary, TrainError> {
    let started = Instant::now();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    let augment = parse_augment(&cfg.augment)?;
    let normalize = parse_normalize(&cfg.normalize)?;
    let (train_set, test_set) = load_sources(cfg)?;
    let mut rng = Rng::new(cfg.seed);
    let mut net = build_network(be, cfg, train_set.classes(), train_set.shape(), &mut rng)?;
    let mut opt = make_optimizer::<B>(cfg)?;
    let (params, weights) = (net.param_count(), net.weight_count());

    std::fs::create_dir_all(&opts.out_dir).map_err(io(&opts.out_dir))?;
    let ckpt_path = opts.out_dir.join("checkpoint.safetensors");
    let metrics_path = opts.out_dir.join("metrics.jsonl");
    let config_text = cfg.to_toml();

    let mut step = 0;
    let mut best = (0.0f32, 0u64);
    let mut resumed_from = None;
    if opts.resume && ckpt_path.exists() {
        let meta = checkpoint::load(be, &ckpt_path, &mut net, Some(&mut opt))?;
        if meta.extra.get("config").map(String::as_str) != Some(config_text.as_str()) {
            return Err(TrainError::Config(format!(
                "{} was written by a run with a different config; use another --out folder or drop --resume",
                ckpt_path.display()
            )));
        }
        step = meta.step;
        let num = |k: &str| meta.extra.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        best = (num("best_test_acc") as f32, num("best_step") as u64);
        resumed_from = Some(step);
        truncate_metrics(&metrics_path, step)?;
    } else {
        let _ = std::fs::remove_file(&metrics_path);
    }
    checkpoint::write_atomic(&opts.out_dir.join("config.toml"), config_text.as_bytes())?;
    let stop = opts.stop_at.unwrap_or(cfg.iterations).min(cfg.iterations);
    if resumed_from.is_some_and(|s| s >= stop) {
        // Nothing left to train: a finished run reports what it recorded (not NaN metrics and
        // 0 img/s of an empty loop, which would also overwrite its summary).
        if let Some(done) = RunSummary::read(&opts.out_dir).filter(|d| d.steps == step) {
            return Ok(done);
        }
    }
    let mut metrics = std::io::BufWriter::new(
        std::fs::OpenOptions::new().create(true).append(true).open(&metrics_path).map_err(io(&metrics_path))?,
    );

    let loader_cfg =
        TrainConfig { batch_size: cfg.batch_size, augment, normalize: normalize.clone(), seed: cfg.seed, prefetch: 3 };
    let batches_per_epoch = (train_set.len() / cfg.batch_size.max(1)).max(1);
    if train_set.len() < cfg.batch_size {
        return Err(TrainError::Config(format!(
            "batch size {} is larger than the {} training images",
            cfg.batch_size,
            train_set.len()
        )));
    }
    let mut loader = TrainLoader::new(train_set, loader_cfg, Position::of_iteration(step, batches_per_epoch));

    let bar = if opts.progress { ProgressBar::new(cfg.iterations) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} {}", cfg.network, cfg.similarity));
    bar.set_position(step);

    let mut last_saved: Option<(PathBuf, u64)> = resumed_from.map(|s| (ckpt_path.clone(), s));
    // A resumed run starts from what its metrics recorded up to the checkpoint.
    let (mut final_loss, mut final_acc, mut final_top5) =
        if resumed_from.is_some() { Metrics::read(&metrics_path).last() } else { (f32::NAN, f32::NAN, f32::NAN) };
    let mut images = 0usize;
    let loop_start = Instant::now();
    let save = |net: &mut Network<B>, opt: &mut Optimizer<B>, step: u64, best: (f32, u64)| {
        let mut meta = Meta { step, ..Meta::default() };
        meta.extra.insert("config".into(), config_text.clone());
        meta.extra.insert("network".into(), net.name.clone());
        meta.extra.insert("best_test_acc".into(), best.0.to_string());
        meta.extra.insert("best_step".into(), best.1.to_string());
        checkpoint::save(be, &ckpt_path, net, Some(opt), &meta)
    };

    while step < stop {
        let batch = loader.try_next()?;
        let x = Tensor::from_vec(be, &batch.shape, &batch.images);
        let logits = net.forward(be, &x, Mode::TRAIN);
        let (loss, dlogits) = cross_entropy(be, &logits, &batch.labels, cfg.smoothing, cfg.log_floor);
        if !loss.is_finite() {
            let culprit = match net.forward_checked(be, &x, Mode::EVAL) {
                Err(layer) => format!("loss is {loss}; {layer}"),
                Ok(_) => {
                    format!("loss is {loss} although every layer output is finite (the logits overflow the softmax)")
                }
            };
            bar.abandon();
            return Err(TrainError::NonFinite { step, culprit, last_checkpoint: last_saved });
        }
        let train_acc =
            count_correct(&logits.to_vec(be), &batch.labels, net.classes) as f32 / batch.labels.len() as f32;
        net.backward(be, &dlogits);
        let reg = apply_regularizers(be, &mut net);
        let lr = cfg.lr_at(step);
        opt.step(be, lr, &mut net);
        step += 1;
        images += batch.labels.len();
        final_loss = loss;
        let line = TrainLine { step, loss, reg, lr, train_acc };
        writeln!(metrics, "{}", to_line(&line)).map_err(io(&metrics_path))?;

        if step % cfg.eval_every.max(1) == 0 || step == cfg.iterations {
            let acc = evaluate_debiased_accuracy(be, &mut net, &*test_set, &normalize, cfg.eval_batch, cfg.bn_debias)?;
            (final_acc, final_top5) = (acc.top1, acc.top5);
            if final_acc > best.0 {
                best = (final_acc, step);
            }
            let line = EvalLine { step, test_acc: final_acc, test_top5: final_top5, best_test_acc: best.0 };
            writeln!(metrics, "{}", to_line(&line)).map_err(io(&metrics_path))?;
            if !opts.progress {
                log_eval(cfg, step, loss, final_acc, best.0);
            }
        }
        if step % cfg.checkpoint_every.max(1) == 0 || step == stop {
            metrics.flush().map_err(io(&metrics_path))?;
            save(&mut net, &mut opt, step, best)?;
            last_saved = Some((ckpt_path.clone(), step));
        }
        let rate = images as f64 / loop_start.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(step);
        bar.set_message(format!(
            "loss {loss:.3} acc {:.1}% test {:.1}% (best {:.1}%) {rate:.0} img/s",
            100.0 * train_acc,
            100.0 * final_acc.max(0.0),
            100.0 * best.0
        ));
    }
    bar.finish();
    metrics.flush().map_err(io(&metrics_path))?;
    let summary = RunSummary {
        network: net.name.clone(),
        similarity: cfg.similarity.clone(),
        dataset: cfg.dataset.clone(),
        params,
        weights: Some(weights),
        steps: step,
        final_test_acc: final_acc,
        final_test_top5: final_top5.is_finite().then_some(final_top5),
        best_test_acc: best.0,
        best_step: best.1,
        final_train_loss: final_loss,
        wall_seconds: started.elapsed().as_secs_f64(),
        train_images_per_second: images as f64 / loop_start.elapsed().as_secs_f64().max(1e-9),
        backend: be.name(),
        resumed_from,
    };
    let json = serde_json::to_string_pretty(&summary).expect("json");
    checkpoint::write_atomic(&opts.out_dir.join("summary.json"), json.as_bytes())?;
    Ok(summary)
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
