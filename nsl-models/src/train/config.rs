//! A training run, fully described: the TOML file a run writes into its folder and can be
//! started from (`nsl train --config run.toml`).

use serde::{Deserialize, Serialize};

use crate::nets::SharedBnStats;

/// The reference code's batch-norm EMA decay.
pub const CODE_BN_DECAY: f32 = 0.999;

// Fields at their old default are left out of the TOML, so the ids of runs made before the
// field existed (a hash of the TOML) stay the same and their folders are reused.
fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_code_bn_decay(v: &f32) -> bool {
    *v == CODE_BN_DECAY
}
fn is_true(v: &bool) -> bool {
    *v
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

/// Everything that determines a run. With the same config, seed and thread count the CPU
/// backend reproduces a run bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// `cnn9`, `cnn9pp`, `spherenet9`, `spherenet9-attention`, `cnn9-wide`, `cnn9-wide-attention`, `cnn10`, `cnn4`.
    pub network: String,
    /// Similarity of the NSL slots (see `nsl train --help`); ignored by the SphereNet family.
    pub similarity: String,
    /// Every layer width times this (1.0 = the paper's networks; smoke runs use less).
    pub width: f32,
    /// `fashion-mnist-embedded` (7,000 + 2,000 real images compiled in, no download),
    /// `fashion-mnist` (the full set: `<data_dir>/fashion-mnist/` or Debian's
    /// `/usr/share/datasets/fashion-mnist/`), `synthetic` (procedural, 10 classes),
    /// `synthetic100` (100 classes), `cifar10`, `cifar100`, `imagenet` (class folders of JPEGs,
    /// streamed). Fashion-MNIST's 28×28 grayscale images are zero-padded to 32×32×1.
    pub dataset: String,
    /// Folder holding `cifar-10/`, `cifar-100/` and `fashion-mnist/` (from `cargo xtask
    /// fetch-data`) and `imagenet/{train,val}/<wnid>/`.
    pub data_dir: String,
    /// Training / test images of the synthetic set.
    pub synthetic_train: usize,
    pub synthetic_test: usize,
    /// `pad-crop-flip` (CIFAR recipe), `flip` (self-attention recipe), `crop-flip` (ImageNet
    /// recipe: random 224 crop of the 256² image, flip), `none`.
    pub augment: String,
    /// `raw` (0..255, NSL code), `centered` ((x−127.5)/128, SphereNet code), `imagenet-mean`
    /// (0..255 minus the ImageNet channel mean), `mean-std` (few-shot rows only: per-channel
    /// mean and std of the training split's pixels).
    pub normalize: String,
    pub iterations: u64,
    pub batch_size: usize,
    /// `sgd` (TF heavy-ball momentum 0.9) or `adam` (β = 0.9, 0.999).
    pub optimizer: String,
    pub lr: f32,
    /// Iterations at which the LR is multiplied by `lr_decay` (code: 20000, 30000, 37500).
    pub milestones: Vec<u64>,
    pub lr_decay: f32,
    /// Linear LR warm-up over the first `warmup` iterations, `lr·(t+1)/warmup` (0 = none, the
    /// reference code). On Fashion-MNIST the code's lr 0.1 from step 0 wrecks CNN-9 in one step,
    /// so the real tier warms up over 500 iterations (README, "Faithfulness and choices").
    #[serde(skip_serializing_if = "is_zero")]
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
    /// Evaluate with debiased BN statistics `s / (1 − 0.999^n)` instead of the raw zero-started
    /// EMA shadows (the code's behaviour, biased early in a run). On for short smoke runs.
    pub bn_debias: bool,
    /// EMA decay `d` of every batch norm's running statistics, `s ← d·s + (1−d)·batch`
    /// (code: 0.999, a ~1,000-step time constant). Training is the same for any value; only
    /// the statistics evaluation reads change. Runs much shorter than `1/(1−d)` read their
    /// evaluations from statistics still dominated by early steps: `nsl train` warns.
    #[serde(skip_serializing_if = "is_code_bn_decay")]
    pub bn_decay: f32,
    /// ℓ1 on static similarity parameters (paper §3.4; 0 = off).
    pub l1: f32,
    /// Coupled L2 weight decay on the filters and BN γ/β. Unset (the default, and what configs
    /// written before this field read as): each network's own value, 5e-4 for CNN-9, CNN-9++
    /// and the SphereNet-9 family (the reference code's CIFAR value; static UNS keeps its 5e-3,
    /// SphereConvs none), 1e-4 for CNN-10 (DCNets' ImageNet value, spec §5.5 \[ASSUMPTION\]),
    /// 0 for CNN-4. Unset values are left out of the TOML, so run ids from before the field
    /// existed stay the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f32>,
    /// Batch-norm ε of the network. Unset: its own (1e-3, the TF code's, for the CIFAR and
    /// ImageNet networks; 1e-5, PyTorch's, for the few-shot CNN-4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bn_eps: Option<f32>,
    /// Hidden width of the DNS predictor (UNS: twice). Unset: 64, the code's (Table 5's CNN-10
    /// weight count agrees; its appendix says 32).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictor_hidden: Option<usize>,
    /// Dynamic UNS adds `I` to the predicted matrix (the code, the default) or not (the paper's
    /// appendix).
    #[serde(skip_serializing_if = "is_true")]
    pub uns_identity: bool,
    /// Running statistics of the shared predictor trunk (Table 3): `per-layer` (each layer its
    /// own, as each trains on its own batch statistics) or `pooled` (one set for all layers, as
    /// a TF graph reusing one BN layer would keep).
    #[serde(skip_serializing_if = "is_default")]
    pub shared_bn_stats: SharedBnStats,
    /// CNN-9's hidden fully connected layer before the classifier: 0 (the code) or the paper's
    /// Table 7 width, 256.
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub hidden_fc: usize,
    /// Initial γ of the dynamic DNS predictor's output BN: 1 = the reference code, 0 = zero-init
    /// residual (`M` starts at exactly `I`; see `Network::set_predictor_output_gamma`). Smoke runs
    /// use 0: with 1 the dynamic networks sit near chance for their first few hundred iterations.
    pub predictor_gamma: f32,
    pub seed: u64,
}

impl Default for RunConfig {
    /// The reference code's CIFAR-10 recipe (spec §1) for the baseline CNN-9.
    fn default() -> Self {
        RunConfig {
            network: "cnn9".into(),
            similarity: "conv".into(),
            width: 1.0,
            dataset: "cifar10".into(),
            data_dir: "data".into(),
            synthetic_train: 10_000,
            synthetic_test: 2_000,
            augment: "pad-crop-flip".into(),
            normalize: "raw".into(),
            iterations: 42_500,
            batch_size: 128,
            optimizer: "sgd".into(),
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
}

impl RunConfig {
    /// The paper's CIFAR schedule instead of the code's: ÷10 at 34K and 54K, stop at 64K.
    pub fn with_paper_schedule(mut self) -> Self {
        self.milestones = vec![34_000, 54_000];
        self.iterations = 64_000;
        self
    }
    /// The Table 8 recipe (spec §7): Adam 1e-3, ÷10 at 34K/54K, 64,001 iterations, flip only, centred input.
    pub fn self_attention_recipe(mut self) -> Self {
        self.optimizer = "adam".into();
        self.lr = 1e-3;
        self.milestones = vec![34_000, 54_000];
        self.iterations = 64_001;
        self.augment = "flip".into();
        self.normalize = "centered".into();
        self
    }
    /// Learning rate at iteration `step` (0-based): `lr · decay^(number of milestones ≤ step)`,
    /// times `(step+1)/warmup` during the warm-up.
    pub fn lr_at(&self, step: u64) -> f32 {
        let passed = self.milestones.iter().filter(|&&m| step >= m).count();
        let ramp = if step < self.warmup { (step + 1) as f32 / self.warmup as f32 } else { 1.0 };
        self.lr * self.lr_decay.powi(passed as i32) * ramp
    }
    /// Parse a TOML run file.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
    /// Render as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a run config serialises")
    }
}
