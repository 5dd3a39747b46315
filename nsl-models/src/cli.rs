//! The `nsl` command line: train, evaluate and fold neural similarity networks. The binary
//! (`src/bin/nsl.rs`) is [`main`]; tests drive [`Cli`] and [`run_cli`] in process.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::backend_choice::{run_on_backend, BackendJob};
use crate::checkpoint::{self, Meta};
use crate::export::{checkpoint_config, checkpoint_file, ExportFormat};
use crate::nets::{SharedBnStats, SimilarityChoice};
use crate::predict::PredictFormat;
use crate::train::{
    build_network, evaluate, first_non_finite, load_test, normalize_of, train, AugmentChoice, DatasetChoice, Error,
    NetworkChoice, NormalizeChoice, OptimizerChoice, Resume, RunConfig, RunDir, RunOptions, Source,
};
use clap::{Args, Parser, Subcommand};
use nsl_core::nn::Layer;
use nsl_core::{Backend, Rng};

#[derive(Parser, Debug)]
#[command(name = "nsl", version, about = "Neural similarity learning (Liu et al., NeurIPS 2019) in Rust")]
#[command(long_about = "Train, evaluate and fold neural similarity networks.\n\n\
Runs on the CPU backend, or on CUDA with `--backend cuda` when built with `--features cuda`. Without downloads, the default data set \
`fashion-mnist-embedded` is 7,000 training and 2,000 test Fashion-MNIST images compiled into nsl; `--dataset fashion-mnist` reads the full set \
(Debian's `apt-get install dataset-fashion-mnist`, or `cargo xtask fetch-data fashion-mnist`); `cargo xtask fetch-data` gets CIFAR-10/100 for \
`--dataset cifar10|cifar100`.")]
pub struct Cli {
    /// cpu, or cuda when nsl is built with `--features cuda` (needs the CUDA toolkit and a GPU).
    #[arg(long, global = true, default_value = "cpu")]
    pub backend: String,
    /// Worker threads for the CPU backend (0 = all cores). Results do not depend on the count:
    /// work is split by problem size, never by thread, so runs are bit-identical on any number.
    /// `NSL_CPU_FLUSH_DENORMALS=1` makes these threads flush subnormal floats to zero: faster
    /// where values underflow, different results below 2⁻¹²⁶ (off by default; see the README).
    #[arg(long, global = true, default_value_t = 0)]
    pub threads: usize,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a network; writes config.toml, metrics.jsonl, checkpoint.safetensors (with time.json) and summary.json into --out.
    Train(Box<TrainArgs>),
    /// Test accuracy of a checkpoint on its run's test set.
    Eval {
        /// A checkpoint.safetensors written by `nsl train`, or the run folder that holds it.
        checkpoint: PathBuf,
        /// Override the data folder stored in the checkpoint's config.
        #[arg(long)]
        data_dir: Option<String>,
    },
    /// Fold a static NSN checkpoint into a plain-CNN checkpoint (paper §3.2) and check its accuracy is unchanged.
    Fold {
        /// A checkpoint (or run folder) of a run with a static similarity (static-dns, static-uns, static-psd,
        /// joint-static-dns).
        checkpoint: PathBuf,
        /// Where to write the plain-CNN checkpoint.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a trained network for deployment: `--format onnx` (default) the whole network as an ONNX model that
    /// takes raw 0..255 pixels and gives logits; `--format torch-safetensors` the weights of a static or plain
    /// network in PyTorch's layout and names.
    #[command(long_about = "Write a trained network for deployment.\n\n\
--format onnx (default): the whole network as an ONNX model (opset 13, standard operators only). Static similarities \
are folded into plain convolutions; dynamic similarities, shared predictors, SphereConvs and self-attention are written \
with Conv/MatMul/Mul/Softmax and friends; batch norms use the running statistics `nsl eval` uses. Input `pixels`: \
[N, C, H, W] float32 raw 0..255 values at the data set's stored size (Fashion-MNIST: [N, 1, 28, 28], zero-padded to \
32x32 inside the graph); the run's normalisation is inside the graph; N is free. Output `logits`: [N, classes]. \
metadata_props name the network, similarity, data set, class names and the nsl version and commit.\n\n\
--format torch-safetensors: the weights of a plain or static (folded) network as a safetensors file in PyTorch's \
layout ((O, C, kh, kw) kernels, BatchNorm2d names) with the layer list in its metadata; README.md shows the Python \
that loads it into torch.nn.")]
    Export {
        /// A checkpoint.safetensors written by `nsl train` or `nsl fold`, or the run folder that holds it.
        checkpoint: PathBuf,
        /// onnx or torch-safetensors.
        #[arg(long, default_value = "onnx")]
        format: ExportFormat,
        /// Where to write the model (written atomically).
        #[arg(long)]
        out: PathBuf,
    },
    /// Classify PNG or JPEG images with a trained network: the top-5 classes with their probabilities, and the
    /// latency of each image's forward pass. Images are converted as the run's data set stores its images
    /// (Fashion-MNIST: grayscale, resized to 28x28, light object on a dark background; CIFAR: RGB 32x32).
    Predict {
        /// A checkpoint.safetensors written by `nsl train` or `nsl fold`, or the run folder that holds it.
        checkpoint: PathBuf,
        /// PNG or JPEG files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// text (a table per image) or json (one array, machine-readable).
        #[arg(long, default_value = "text")]
        format: PredictFormat,
        /// How many of the most probable classes to show.
        #[arg(long, default_value_t = 5)]
        top: usize,
    },
    /// Train the baseline CNN-9 and the dynamic-DNS NSN on the embedded Fashion-MNIST subset with the smoke
    /// recipe of `cargo xtask repro` (width ×0.25, batch 32, SGD 0.01, zero-init predictor γ) and print a table.
    Quickstart {
        /// Training iterations per network.
        #[arg(long, default_value_t = 300)]
        iterations: u64,
        #[arg(long, default_value = "runs/quickstart")]
        out: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Start from a TOML run file (as written into every run folder); flags below override it.
    /// Fields it leaves out take the defaults shown here.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The network [default: cnn9].
    #[arg(long)]
    network: Option<NetworkChoice>,
    /// Similarity of the NSL slots of cnn9, cnn10 and cnn4 [default: conv]: conv, static-dns (the code's
    /// init [1,0,0,0,1,0,0,0,1]), static-dns-ones, static-uns, static-psd, dynamic-dns, dynamic-dns-full-sphere,
    /// dynamic-dns-cnn, dynamic-uns, shared-dns, joint-static-dns, joint-static-dns-ones, joint-dynamic-dns.
    #[arg(long)]
    similarity: Option<SimilarityChoice>,
    /// Every layer width times this, in [0.001, 16] [default: 1.0, the paper's networks].
    #[arg(long)]
    width: Option<f32>,
    /// The data set [default: fashion-mnist-embedded, 7,000 + 2,000 real images compiled into nsl]. Choosing
    /// one also picks its augmentation and normalisation unless --augment/--normalize say otherwise.
    #[arg(long)]
    dataset: Option<DatasetChoice>,
    /// Folder with cifar-10/, cifar-100/ and fashion-mnist/ (see `cargo xtask fetch-data`) and
    /// `imagenet/{train,val}/<wnid>/` [default: data].
    #[arg(long)]
    data_dir: Option<String>,
    /// Training iterations [default: 1000; the code's CIFAR run: 42500].
    #[arg(long)]
    iterations: Option<u64>,
    /// Images per batch [default: 128].
    #[arg(long)]
    batch_size: Option<usize>,
    /// The optimiser [default: sgd, heavy-ball momentum 0.9 as TF's MomentumOptimizer].
    #[arg(long)]
    optimizer: Option<OptimizerChoice>,
    /// Base learning rate [default: 0.1].
    #[arg(long)]
    lr: Option<f32>,
    /// Comma-separated, increasing iterations where the LR is divided by 10 [default: 600,850; the code's
    /// CIFAR run: 20000,30000,37500].
    #[arg(long, value_delimiter = ',')]
    milestones: Option<Vec<u64>>,
    /// Linear LR warm-up over the first N iterations [default: 200; the code: 0].
    #[arg(long)]
    warmup: Option<u64>,
    /// Use the paper's schedule (÷10 at 34K and 54K, stop at 64K) instead of the code's.
    #[arg(long)]
    paper_schedule: bool,
    /// Training augmentation [default: the data set's: pad-crop-flip; ImageNet crop-flip; few-shot none].
    #[arg(long)]
    augment: Option<AugmentChoice>,
    /// Input normalisation [default: centered, (x-127.5)/128; ImageNet imagenet-mean; the code's CIFAR run: raw].
    #[arg(long)]
    normalize: Option<NormalizeChoice>,
    /// Evaluate on the test set every N iterations [default: 100].
    #[arg(long)]
    eval_every: Option<u64>,
    /// Checkpoint every N iterations [default: 100].
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Evaluate with the BN running statistics debiased, s/(1-d^n) [default: on; the code: off].
    #[arg(long)]
    bn_debias: Option<bool>,
    /// EMA decay of the batch-norm running statistics, in [0, 1) [default: 0.99; the code: 0.999].
    #[arg(long)]
    bn_decay: Option<f32>,
    /// ℓ1 sparsity on static similarity parameters (paper §3.4) [default: 0].
    #[arg(long)]
    l1: Option<f32>,
    /// Coupled L2 on filters, BN and predictors [default: the network's own: 5e-4 CIFAR networks, 1e-4 CNN-10,
    /// 0 CNN-4].
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Hidden width of the DNS predictor, UNS twice [default: 64, the code's; the paper's CNN-10 appendix: 32].
    #[arg(long)]
    predictor_hidden: Option<usize>,
    /// Dynamic UNS without the identity residual (the paper's appendix; the code adds I).
    #[arg(long)]
    uns_no_identity: bool,
    /// Shared predictor trunk BN statistics [default: per-layer].
    #[arg(long)]
    shared_bn_stats: Option<SharedBnStats>,
    /// CNN-9 hidden FC layer before the classifier [default: 0, the code's none; the paper's Table 7: 256].
    #[arg(long)]
    hidden_fc: Option<usize>,
    /// Batch-norm epsilon [default: the network's own, 1e-3; CNN-4 1e-5].
    #[arg(long)]
    bn_eps: Option<f32>,
    /// Initial γ of the dynamic DNS predictor's output BN [default: 1, the code: M = I + unit-variance noise
    /// after the first step; 0 starts M at exactly I].
    #[arg(long)]
    predictor_gamma: Option<f32>,
    /// Seed of init, data order and augmentation [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Run folder (created; refused if it already holds a run, unless --resume).
    #[arg(long, default_value = "runs/train")]
    out: PathBuf,
    /// Continue the run in --out from its checkpoint, with its config.toml; only iterations, lr, milestones,
    /// lr_decay, warmup, eval_every, checkpoint_every, eval_batch and data_dir may be changed by flags. Unchanged,
    /// the result equals an uninterrupted run bit for bit.
    #[arg(long)]
    resume: bool,
    /// No progress bar; one line per evaluation instead.
    #[arg(long)]
    quiet: bool,
}

impl TrainArgs {
    /// The run's config: the run folder's (with --resume) or the --config file's, or the
    /// defaults, then every flag given.
    pub fn config(&self) -> Result<RunConfig, String> {
        let dir = RunDir::new(&self.out);
        let base = match (&self.config, self.resume) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("--config {}: {}", path.display(), crate::files::io_hint(&e)))?;
                Some(
                    RunConfig::from_user_toml(&text)
                        .map_err(|e| format!("--config {}: {}", path.display(), e.trim()))?,
                )
            }
            (None, true) => dir.read_config().map_err(|e| e.to_string())?,
            (None, false) => None,
        };
        let from_file = base.is_some();
        let mut cfg = base.unwrap_or_default();
        if let Some(dataset) = self.dataset.filter(|_| !from_file) {
            // a data set given on the command line brings its own input pipeline
            (cfg.augment, cfg.normalize) = dataset.default_input();
        }
        if self.paper_schedule {
            cfg = cfg.with_paper_schedule();
        }
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { cfg.$field = v.clone(); } )* };
        }
        set!(network, similarity, width, dataset, data_dir, iterations, batch_size, optimizer, lr, milestones);
        set!(augment, normalize, eval_every, checkpoint_every, l1, predictor_gamma, seed, warmup, bn_decay);
        set!(shared_bn_stats, hidden_fc, bn_debias);
        if self.uns_no_identity {
            cfg.uns_identity = false;
        }
        for (field, value) in [(&mut cfg.predictor_hidden, self.predictor_hidden)] {
            if value.is_some() {
                *field = value;
            }
        }
        for (field, value) in [(&mut cfg.bn_eps, self.bn_eps), (&mut cfg.weight_decay, self.weight_decay)] {
            if value.is_some() {
                *field = value;
            }
        }
        cfg.validate().map_err(|e| format!("{e} (set by a flag or in the config)"))?;
        Ok(cfg)
    }
}

/// A warning for runs short relative to the batch-norm EMA's time constant `1/(1 − d)`: their
/// evaluations read running statistics that still average in early steps (zero-started ones too,
/// without `--bn-debias`), so the test accuracy can sit far below what the weights score.
/// `None` when the run is at least `3/(1 − d)` steps long (e⁻³: 95% of the way). The hint
/// suggests the largest of a few round decays that settles within the run.
fn short_run_bn_hint(cfg: &RunConfig) -> Option<String> {
    let decay = cfg.bn_decay;
    let settle = |d: f64| (3.0 / (1.0 - d)).round() as u64;
    let needed = settle(f64::from(decay));
    (cfg.iterations < needed).then(|| {
        let debias = if cfg.bn_debias { "" } else { " and --bn-debias to correct their zero start" };
        let suggested =
            [0.995, 0.99, 0.98, 0.95, 0.9, 0.8, 0.5].into_iter().find(|&d| settle(d) <= cfg.iterations).unwrap_or(0.5);
        format!(
            "warning: {} step{} is short for the batch-norm running statistics (EMA decay {decay}, ~{needed} \
             steps to settle), so the test accuracy may read low. Use a smaller --bn-decay (e.g. {suggested}){debias}.",
            cfg.iterations,
            if cfg.iterations == 1 { "" } else { "s" }
        )
    })
}

impl BackendJob for Command {
    type Output = ();
    fn run<B: Backend>(self, be: &B) -> Result<(), String> {
        run(be, self)
    }
}

fn run<B: Backend>(be: &B, command: Command) -> Result<(), String> {
    match command {
        Command::Train(args) => {
            let cfg = args.config()?;
            let resume = if args.resume { Resume::Required } else { Resume::No };
            let opts = RunOptions { out_dir: args.out.clone(), resume, progress: !args.quiet, stop_at: None };
            let hint = short_run_bn_hint(&cfg);
            if let Some(hint) = &hint {
                eprintln!("{hint}");
            }
            let s = train(be, &cfg, &opts).map_err(|e| e.to_string())?;
            println!(
                "{} {}: final test accuracy {:.2}%, best {:.2}% (step {}), {} parameters, {:.0} img/s, {:.0} s. Run folder: {}",
                s.network,
                s.similarity,
                100.0 * s.final_test_acc,
                100.0 * s.best_test_acc,
                s.best_step,
                s.params,
                s.train_images_per_second,
                s.wall_seconds,
                args.out.display()
            );
            if let Some(hint) = hint {
                eprintln!("{hint}"); // again, next to the accuracy it qualifies
            }
            Ok(())
        }
        Command::Eval { checkpoint, data_dir } => {
            let (cfg, mut net, test, _) = restore(be, &checkpoint, data_dir)?;
            // as during training: debiased BN statistics when the run evaluated with them
            let normalize = normalize_of(cfg.normalize).map_err(|e| e.to_string())?;
            let acc =
                evaluate(be, &mut net, &*test, &normalize, cfg.eval_batch, cfg.bn_debias).map_err(|e| e.to_string())?;
            println!(
                "{}: test accuracy {:.2}% (top-5 {:.2}%) on {} images",
                checkpoint.display(),
                100.0 * acc.top1,
                100.0 * acc.top5,
                test.len()
            );
            Ok(())
        }
        Command::Fold { checkpoint, out } => {
            let source = checkpoint_file(&checkpoint)?;
            if same_file(&source, &out) {
                return Err(format!(
                    "--out {} is the checkpoint being folded: folding writes a new file and keeps the training \
                     checkpoint; choose another --out",
                    out.display()
                ));
            }
            let (cfg, mut net, test, meta) = restore(be, &checkpoint, None)?;
            let norm = normalize_of(cfg.normalize).map_err(|e| e.to_string())?;
            let eval = |net: &mut crate::nets::Network<B>| {
                evaluate(be, net, &*test, &norm, cfg.eval_batch, cfg.bn_debias)
                    .map(|a| a.top1)
                    .map_err(|e| e.to_string())
            };
            let before = eval(&mut net)?;
            net.fold(be).map_err(|e| format!("{}: cannot fold: {e}", checkpoint.display()))?;
            let after = eval(&mut net)?;
            let original = net.name.clone();
            net.name = net.name.replace(&cfg.similarity.to_string(), &SimilarityChoice::Conv.to_string());
            let plain = RunConfig { similarity: SimilarityChoice::Conv, ..cfg };
            let mut meta = Meta { step: meta.step, extra: meta.extra };
            meta.extra.insert("config".into(), plain.to_toml());
            meta.extra.insert("network".into(), net.name.clone());
            meta.extra.insert("folded_from".into(), format!("{original} ({})", source.display()));
            checkpoint::save(be, &out, &mut net, None, &meta).map_err(|e| e.to_string())?;
            println!(
                "folded {} ({original}) into the plain {} {}: test accuracy {:.2}% before, {:.2}% after",
                source.display(),
                net.name,
                out.display(),
                100.0 * before,
                100.0 * after
            );
            Ok(())
        }
        Command::Export { checkpoint, format, out } => {
            if same_file(&checkpoint_file(&checkpoint)?, &out) {
                return Err(format!("--out {} is the checkpoint being exported; choose another --out", out.display()));
            }
            let summary = crate::export::export(be, &checkpoint, format, &out).map_err(|e| e.to_string())?;
            println!("{summary}");
            Ok(())
        }
        Command::Predict { checkpoint, images, format, top } => {
            let (cfg, mut net) = crate::export::load_for_inference(be, &checkpoint).map_err(|e| e.to_string())?;
            let geometry = crate::export::data_geometry(&cfg)?;
            let predictions = crate::predict::predict(be, &mut net, &cfg, &geometry, &images, top)?;
            print!("{}", crate::predict::render(&predictions, format));
            Ok(())
        }
        Command::Quickstart { iterations, out } => quickstart(be, iterations, &out),
    }
}

/// Whether `a` and `b` name the same file (either may not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| {
        std::fs::canonicalize(p).ok().or_else(|| {
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
        })
    };
    matches!((canon(a), canon(b)), (Some(x), Some(y)) if x == y)
}

type Restored<B> = (RunConfig, crate::nets::Network<B>, Source, Meta);

/// Rebuild a run's network from the config inside its checkpoint (or the checkpoint in the run
/// folder `path`) and load the weights; refuses weights that hold NaN or infinity. Only the test
/// split is read.
fn restore<B: Backend>(be: &B, path: &Path, data_dir: Option<String>) -> Result<Restored<B>, String> {
    let path = &checkpoint_file(path)?;
    let mut cfg = checkpoint_config(path)?;
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    let test = load_test(&cfg).map_err(|e| e.to_string())?;
    let mut net =
        build_network(be, &cfg, test.classes(), test.shape(), &mut Rng::new(cfg.seed)).map_err(|e| e.to_string())?;
    let meta = checkpoint::load(be, path, &mut net, None).map_err(|e| e.to_string())?;
    if let Some(culprit) = first_non_finite(be, &mut net) {
        return Err(format!("checkpoint {}: {culprit}; its results would be meaningless", path.display()));
    }
    Ok((cfg, net, test, meta))
}

fn quickstart<B: Backend>(be: &B, iterations: u64, out: &std::path::Path) -> Result<(), String> {
    let mut rows = Vec::new();
    for similarity in ["conv", "dynamic-dns"] {
        let cfg = RunConfig {
            iterations,
            milestones: vec![iterations * 2 / 3],
            eval_every: (iterations / 10).max(1),
            checkpoint_every: (iterations / 3).max(1),
            ..crate::repro::smoke_cifar(NetworkChoice::Cnn9, similarity)
        };
        let opts =
            RunOptions { out_dir: out.join(similarity), resume: Resume::IfPresent, progress: true, stop_at: None };
        let s = train(be, &cfg, &opts).map_err(|e: Error| e.to_string())?;
        rows.push(s);
    }
    println!("\n| network | similarity | params | iterations | final test acc | best test acc | train img/s |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for s in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2}% | {:.2}% | {:.0} |",
            s.network,
            s.similarity,
            s.params,
            s.steps,
            100.0 * s.final_test_acc,
            100.0 * s.best_test_acc,
            s.train_images_per_second
        );
    }
    println!(
        "\nFashion-MNIST (embedded subset: 7,000 training, 2,000 test images); chance is 10%. One seed of a short run \
         ranks nothing: `cargo xtask repro --scale real --seeds 3` compares the two with confidence intervals. Runs, \
         metrics and checkpoints are in {}.",
        out.display()
    );
    Ok(())
}

/// The `nsl` program: parse the arguments, run the command, print an error naming its cause.
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" ({}:{})", l.file(), l.line())).unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error: {msg}{location}\nThis is a bug in nsl; please report it with the command you ran."
        );
    }));
    match run_cli(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run a parsed command line; the error is the message `nsl` prints.
///
/// # Errors
/// Whatever stops the command: a bad setting (naming it), missing data, a failed run.
pub fn run_cli(cli: Cli) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cli.threads > 4 * cores {
        return Err(format!(
            "--threads {} is more than 4× this machine's {cores} cores; use 0 (all cores) or at most {}",
            cli.threads,
            4 * cores
        ));
    }
    run_on_backend(&cli.backend, cli.threads, cli.command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_short_for_their_batch_norm_decay_get_a_warning() {
        let run =
            |iterations, bn_debias, bn_decay| RunConfig { iterations, bn_debias, bn_decay, ..RunConfig::default() };
        let note = short_run_bn_hint(&run(100, false, 0.999)).expect("100 steps is short");
        assert!(note.contains("100 steps") && note.contains("--bn-debias") && note.contains("3000"), "{note}");
        let debiased = short_run_bn_hint(&run(100, true, 0.999)).expect("debiasing does not make 100 steps enough");
        assert!(!debiased.contains("--bn-debias") && debiased.contains("--bn-decay"), "{debiased}");
        assert_eq!(short_run_bn_hint(&run(3000, false, 0.999)), None);
        assert_eq!(short_run_bn_hint(&run(300, true, 0.99)), None);
        let hint = short_run_bn_hint(&run(299, true, 0.99)).expect("299 steps is short for 0.99");
        assert!(hint.contains("(e.g. 0.98)"), "the suggestion settles within the run: {hint}");
        assert!(short_run_bn_hint(&run(4, true, 0.99)).unwrap().contains("(e.g. 0.5)"));
        assert!(short_run_bn_hint(&run(1, true, 0.99)).unwrap().starts_with("warning: 1 step is short"));
    }
}
