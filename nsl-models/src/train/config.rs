//! A training run, fully described: the TOML file a run writes into its folder and can be
//! started from (`nsl train --config run.toml`), and its validation.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::choices::{AugmentChoice, DatasetChoice, NetworkChoice, NormalizeChoice, OptimizerChoice};
use crate::nets::{SharedBnStats, SimilarityChoice};

/// The reference code's batch-norm EMA decay.
pub const CODE_BN_DECAY: f32 = 0.999;

// Fields added after runs were first made: a run file without them means their value of that
// time (the field-level defaults below), and the run id leaves them out at that value
// ([`RunConfig::id_toml`]), so the ids of older runs stay the same.
fn code_bn_decay() -> f32 {
    CODE_BN_DECAY
}
fn yes() -> bool {
    true
}

/// The fields added after the first runs were made (see [`RunConfig::id_toml`]). `None`-valued
/// options never appear in TOML, so `weight_decay`, `bn_eps` and `predictor_hidden` need no line.
const LATER_FIELDS: [&str; 5] = ["warmup", "bn_decay", "uns_identity", "shared_bn_stats", "hidden_fc"];

/// Everything that determines a run. With the same config and seed the CPU backend reproduces
/// a run bit for bit, on any number of threads. A TOML file may give any subset of the fields; the
/// rest take [`RunConfig::default`]'s values (what a bare `nsl train` runs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub network: NetworkChoice,
    /// Similarity of the NSL slots of CNN-9, CNN-10 and CNN-4 (the other networks are fixed).
    pub similarity: SimilarityChoice,
    /// Every layer width times this (1.0 = the paper's networks; smoke runs use less).
    pub width: f32,
    /// Fashion-MNIST's 28×28 grayscale images are zero-padded to 32×32×1.
    pub dataset: DatasetChoice,
    /// Folder holding `cifar-10/`, `cifar-100/` and `fashion-mnist/` (from `cargo xtask
    /// fetch-data`) and `imagenet/{train,val}/<wnid>/`.
    pub data_dir: String,
    /// Training / test images of the synthetic sets.
    pub synthetic_train: usize,
    pub synthetic_test: usize,
    pub augment: AugmentChoice,
    pub normalize: NormalizeChoice,
    pub iterations: u64,
    pub batch_size: usize,
    pub optimizer: OptimizerChoice,
    pub lr: f32,
    /// Iterations at which the LR is multiplied by `lr_decay` (code: 20000, 30000, 37500).
    pub milestones: Vec<u64>,
    pub lr_decay: f32,
    /// Linear LR warm-up over the first `warmup` iterations, `lr·(t+1)/warmup` (0 = none, the
    /// reference code). On Fashion-MNIST the code's lr 0.1 from step 0 wrecks CNN-9 in one step,
    /// so the real tier warms up over 500 iterations (README, "Faithfulness and choices").
    #[serde(default)]
    pub warmup: u64,
    /// Evaluate on the test set every this many iterations (and after the last).
    pub eval_every: u64,
    /// Test batch size (code: 100).
    pub eval_batch: usize,
    /// Save a checkpoint every this many iterations (and after the last).
    pub checkpoint_every: u64,
    /// Label smoothing `s` and log floor of the loss (code: 0.01, 1e-4).
    pub smoothing: f32,
    pub log_floor: f32,
    /// Evaluate with debiased BN statistics `s / (1 − d^n)` instead of the raw zero-started
    /// EMA shadows (the code's behaviour, biased early in a run).
    pub bn_debias: bool,
    /// EMA decay `d` of every batch norm's running statistics, `s ← d·s + (1−d)·batch`
    /// (code: 0.999, a ~1,000-step time constant). Training is the same for any value; only
    /// the statistics evaluation reads change. Runs much shorter than `1/(1−d)` read their
    /// evaluations from statistics still dominated by early steps: `nsl train` warns.
    #[serde(default = "code_bn_decay")]
    pub bn_decay: f32,
    /// ℓ1 on static similarity parameters (paper §3.4; 0 = off).
    pub l1: f32,
    /// Coupled L2 weight decay on the filters, BN γ/β and predictors. Unset: each network's own
    /// value, 5e-4 for CNN-9, CNN-9++ and the SphereNet-9 family (the reference code's CIFAR
    /// value; static UNS keeps its 5e-3, SphereConvs none), 1e-4 for CNN-10 (DCNets' ImageNet
    /// value, spec §5.5 \[ASSUMPTION\]), 0 for CNN-4.
    #[serde(default)]
    pub weight_decay: Option<f32>,
    /// Batch-norm ε of the network. Unset: its own (1e-3, the TF code's, for the CIFAR and
    /// ImageNet networks; 1e-5, PyTorch's, for the few-shot CNN-4).
    #[serde(default)]
    pub bn_eps: Option<f32>,
    /// Hidden width of the DNS predictor (UNS: twice). Unset: 64, the code's (Table 5's CNN-10
    /// weight count agrees; its appendix says 32).
    #[serde(default)]
    pub predictor_hidden: Option<usize>,
    /// Dynamic UNS adds `I` to the predicted matrix (the code, the default) or not (the paper's
    /// appendix).
    #[serde(default = "yes")]
    pub uns_identity: bool,
    /// Running statistics of the shared predictor trunk (Table 3): `per-layer` (each layer its
    /// own, as each trains on its own batch statistics) or `pooled` (one set for all layers, as
    /// a TF graph reusing one BN layer would keep).
    #[serde(default)]
    pub shared_bn_stats: SharedBnStats,
    /// CNN-9's hidden fully connected layer before the classifier: 0 (the code) or the paper's
    /// Table 7 width, 256.
    #[serde(default)]
    pub hidden_fc: usize,
    /// Initial γ of the dynamic DNS predictor's output BN: 1 = the reference code, 0 = zero-init
    /// residual (`M` starts at exactly `I`; see `Network::set_predictor_output_gamma`). Smoke runs
    /// use 0: with 1 the dynamic networks sit near chance for their first few hundred iterations.
    pub predictor_gamma: f32,
    pub seed: u64,
}

impl Default for RunConfig {
    /// What a bare `nsl train` runs: CNN-9 on the embedded Fashion-MNIST, 1,000 iterations of
    /// batch 128 (about 18 epochs of its 7,000 images; minutes on two cores) with the real tier's
    /// recipe: SGD lr 0.1 after a 200-iteration warm-up, ÷10 at 600 and 850, the code's
    /// augmentation, loss and L2, a debiased BN EMA of decay 0.99, an evaluation every 100.
    fn default() -> Self {
        RunConfig {
            dataset: DatasetChoice::FashionMnistEmbedded,
            normalize: NormalizeChoice::Centered,
            iterations: 1_000,
            milestones: vec![600, 850],
            warmup: 200,
            eval_every: 100,
            checkpoint_every: 100,
            bn_decay: 0.99,
            bn_debias: true,
            ..RunConfig::code_cifar()
        }
    }
}

impl RunConfig {
    /// The reference code's CIFAR-10 recipe (spec §1) for the baseline CNN-9: 42,500 iterations
    /// of batch 128, SGD 0.1 ÷10 at 20K/30K/37.5K, raw pixels, pad-crop-flip, BN EMA 0.999.
    pub fn code_cifar() -> Self {
        RunConfig {
            network: NetworkChoice::Cnn9,
            similarity: SimilarityChoice::Conv,
            width: 1.0,
            dataset: DatasetChoice::Cifar10,
            data_dir: "data".into(),
            synthetic_train: 10_000,
            synthetic_test: 2_000,
            augment: AugmentChoice::PadCropFlip,
            normalize: NormalizeChoice::Raw,
            iterations: 42_500,
            batch_size: 128,
            optimizer: OptimizerChoice::Sgd,
            lr: 0.1,
            milestones: vec![20_000, 30_000, 37_500],
            lr_decay: 0.1,
            warmup: 0,
            eval_every: 500,
            eval_batch: 100,
            checkpoint_every: 500,
            smoothing: 0.01,
            log_floor: 1e-4,
            bn_debias: false,
            bn_decay: CODE_BN_DECAY,
            l1: 0.0,
            weight_decay: None,
            bn_eps: None,
            predictor_hidden: None,
            uns_identity: true,
            shared_bn_stats: SharedBnStats::PerLayer,
            hidden_fc: 0,
            predictor_gamma: 1.0,
            seed: 0,
        }
    }
    /// The paper's CIFAR schedule instead of the code's: ÷10 at 34K and 54K, stop at 64K.
    pub fn with_paper_schedule(mut self) -> Self {
        self.milestones = vec![34_000, 54_000];
        self.iterations = 64_000;
        self
    }
    /// The Table 8 recipe (spec §7): Adam 1e-3, ÷10 at 34K/54K, 64,001 iterations, flip only, centred input.
    pub fn self_attention_recipe(mut self) -> Self {
        self.optimizer = OptimizerChoice::Adam;
        self.lr = 1e-3;
        self.milestones = vec![34_000, 54_000];
        self.iterations = 64_001;
        self.augment = AugmentChoice::Flip;
        self.normalize = NormalizeChoice::Centered;
        self
    }
    /// Learning rate at iteration `step` (0-based): `lr · decay^(number of milestones ≤ step)`,
    /// times `(step+1)/warmup` during the warm-up.
    pub fn lr_at(&self, step: u64) -> f32 {
        let passed = self.milestones.iter().filter(|&&m| step >= m).count();
        let ramp = if step < self.warmup { (step + 1) as f32 / self.warmup as f32 } else { 1.0 };
        self.lr * self.lr_decay.powi(passed as i32) * ramp
    }
    /// Parse a run's TOML file as nsl writes it (`config.toml`, a checkpoint's metadata): every
    /// field is there, except in files from before a field existed, which mean its value of
    /// that time.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
    /// Parse a TOML file a user wrote (`nsl train --config`): the fields it leaves out take
    /// [`RunConfig::default`]'s values, so an empty file is a bare `nsl train`. A complete file
    /// (a run's `config.toml`) reads the same as with [`RunConfig::from_toml`].
    pub fn from_user_toml(text: &str) -> Result<Self, String> {
        let user: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut table = toml::Table::try_from(RunConfig::default()).expect("a run config serialises");
        table.extend(user);
        table.try_into().map_err(|e: toml::de::Error| e.to_string())
    }
    /// Render every field as TOML (what `config.toml` and checkpoints hold).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a run config serialises")
    }
    /// The TOML a run id hashes: [`RunConfig::to_toml`] without the lines of fields that are at
    /// the value they had before they existed, so runs made before a field was added keep
    /// their folders.
    pub fn id_toml(&self) -> String {
        let legacy = RunConfig::code_cifar().to_toml();
        let legacy: Vec<&str> =
            legacy.lines().filter(|l| LATER_FIELDS.iter().any(|f| l.starts_with(&format!("{f} = ")))).collect();
        self.to_toml().lines().filter(|l| !legacy.contains(l)).map(|l| format!("{l}\n")).collect()
    }

    /// Check every field against its range and the fields against each other, so a run that
    /// starts can finish. The CLI, `--config` files and the experiment registry all pass here.
    ///
    /// # Errors
    /// The first field out of range, named, with the allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &'static str, problem: String| Err(ConfigError { field, problem });
        let finite_in = |field, v: f32, lo: f32, hi: f32, what: &str| {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                err(field, format!("is {v}; it must be {what}"))
            }
        };
        let at_least = |field, v: u64, lo: u64| {
            if v >= lo {
                Ok(())
            } else {
                err(field, format!("is {v}; it must be at least {lo}"))
            }
        };
        // TOML integers are i64: a larger count or seed could not be written to config.toml.
        let toml_ints = [
            ("seed", self.seed),
            ("iterations", self.iterations),
            ("warmup", self.warmup),
            ("eval_every", self.eval_every),
            ("checkpoint_every", self.checkpoint_every),
        ];
        let milestones = self.milestones.iter().map(|&m| ("milestones", m));
        if let Some((field, v)) = toml_ints.into_iter().chain(milestones).find(|&(_, v)| v > i64::MAX as u64) {
            return err(field, format!("is {v}; config files hold integers up to {}", i64::MAX));
        }
        finite_in("width", self.width, 1e-3, 16.0, "a finite multiplier in [0.001, 16]")?;
        at_least("iterations", self.iterations, 1)?;
        at_least("batch_size", self.batch_size as u64, 1)?;
        if self.batch_size > 1 << 16 {
            return err("batch_size", format!("is {}; at most {} images fit a batch", self.batch_size, 1 << 16));
        }
        at_least("eval_batch", self.eval_batch as u64, 1)?;
        if self.eval_batch > 1 << 16 {
            return err("eval_batch", format!("is {}; at most {} images fit a batch", self.eval_batch, 1 << 16));
        }
        at_least("eval_every", self.eval_every, 1)?;
        at_least("checkpoint_every", self.checkpoint_every, 1)?;
        finite_in("lr", self.lr, f32::MIN_POSITIVE, f32::MAX, "a positive, finite learning rate")?;
        finite_in("lr_decay", self.lr_decay, f32::MIN_POSITIVE, 1.0, "a factor in (0, 1]")?;
        if let Some(w) = self.milestones.windows(2).find(|w| w[0] >= w[1]) {
            return err("milestones", format!("{:?} are not increasing ({} then {})", self.milestones, w[0], w[1]));
        }
        finite_in("smoothing", self.smoothing, 0.0, 0.999, "a label-smoothing weight in [0, 1)")?;
        finite_in("log_floor", self.log_floor, 0.0, 1.0, "a floor in [0, 1]")?;
        finite_in("bn_decay", self.bn_decay, 0.0, 0.999_999, "an EMA decay in [0, 1)")?;
        finite_in("l1", self.l1, 0.0, 1e3, "a non-negative coefficient")?;
        if let Some(wd) = self.weight_decay {
            finite_in("weight_decay", wd, 0.0, 1e3, "a non-negative coefficient")?;
        }
        if let Some(eps) = self.bn_eps {
            finite_in("bn_eps", eps, 1e-12, 1.0, "a positive ε (at most 1)")?;
        }
        if let Some(h) = self.predictor_hidden {
            at_least("predictor_hidden", h as u64, 1)?;
        }
        if self.hidden_fc > 1 << 16 {
            return err("hidden_fc", format!("is {}; at most {}", self.hidden_fc, 1 << 16));
        }
        finite_in("predictor_gamma", self.predictor_gamma, -1e3, 1e3, "a finite initial γ")?;
        if matches!(self.dataset, DatasetChoice::Synthetic | DatasetChoice::Synthetic100) {
            let classes = if self.dataset == DatasetChoice::Synthetic100 { 100 } else { 10 };
            at_least("synthetic_train", self.synthetic_train as u64, classes)?;
            at_least("synthetic_test", self.synthetic_test as u64, classes)?;
            if self.synthetic_train + self.synthetic_test > 1_000_000 {
                return err("synthetic_train", "with synthetic_test draws more than 1,000,000 images".into());
            }
        }
        if self.normalize == NormalizeChoice::MeanStd
            && !matches!(self.dataset, DatasetChoice::MiniImagenet | DatasetChoice::SyntheticFewshot)
        {
            return err(
                "normalize",
                "is mean-std, which only the few-shot rows compute (from their training split); use raw, centered or \
                 imagenet-mean"
                    .into(),
            );
        }
        if self.normalize == NormalizeChoice::ImagenetMean
            && matches!(self.dataset, DatasetChoice::FashionMnist | DatasetChoice::FashionMnistEmbedded)
        {
            return err(
                "normalize",
                format!("is imagenet-mean, the ImageNet RGB mean, but {} images have one channel", self.dataset),
            );
        }
        let imagenet = self.dataset == DatasetChoice::Imagenet;
        if imagenet != (self.augment == AugmentChoice::CropFlip) && self.augment != AugmentChoice::None {
            let fix = if imagenet { "use crop-flip (or none)" } else { "crop-flip is ImageNet's (224 of 256²)" };
            return err("augment", format!("is {} for {}: {fix}", self.augment, self.dataset));
        }
        Ok(())
    }
}

/// A run-config field out of range: `field` and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.field, self.problem)
    }
}

impl std::error::Error for ConfigError {}
