//! The experiment registry: one [`Row`] per table row (and column) of the paper, with the
//! paper's number and the run that reproduces it at `smoke`, `real` or `paper` scale.

use crate::nets::SimilarityChoice;
use crate::nets::CNN10_WEIGHT_DECAY;
use crate::train::{AugmentChoice, DatasetChoice, NetworkChoice, NormalizeChoice, OptimizerChoice, RunConfig};

/// A similarity by its registry name (every name in this file is one of them).
fn sim(name: &str) -> SimilarityChoice {
    name.parse().unwrap_or_else(|e| panic!("registry similarity: {e}"))
}

/// How big the runs are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Every table with narrow networks and short schedules, minutes on 2 CPU cores: the
    /// CIFAR-10 and ImageNet rows on the embedded Fashion-MNIST subset, the CIFAR-100 and
    /// few-shot rows on the procedural synthetic sets. Shows the whole pipeline, not the
    /// paper's accuracy.
    Smoke,
    /// The CIFAR-10 rows of Tables 1–4 and 8 and the extensions on the full Fashion-MNIST at
    /// full width, 3,000 iterations (`real_recipe`): hours on a CPU, minutes on a GPU.
    Real,
    /// The spec's exact settings on real data (`--data`).
    Paper,
}

impl std::str::FromStr for Scale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "smoke" => Ok(Scale::Smoke),
            "real" => Ok(Scale::Real),
            "paper" => Ok(Scale::Paper),
            o => Err(format!("unknown scale `{o}`; expected smoke, real or paper")),
        }
    }
}

/// What a row reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Final test error, `100 − accuracy` (Tables 1–4).
    FinalError,
    /// Best-over-training test accuracy (Table 8, spec §7).
    BestAccuracy,
    /// Final test accuracy (Table 8 at real scale, where verdicts use the final evaluation).
    FinalAccuracy,
    /// Top-1 validation error, with the top-5 error alongside (Table 5).
    Top1Error,
    /// Few-shot accuracy with its 95% interval (Table 6).
    FewShotAccuracy,
}

impl Metric {
    /// Column header of the metric.
    pub fn header(self) -> &'static str {
        match self {
            Metric::FinalError => "error % (final)",
            Metric::BestAccuracy => "accuracy % (best)",
            Metric::FinalAccuracy => "accuracy % (final)",
            Metric::Top1Error => "top-1 error % (top-5 error % in brackets)",
            Metric::FewShotAccuracy => "5-way 5-shot accuracy %",
        }
    }
}

/// How a row is produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Job {
    /// A training run; its result is read from its `summary.json`.
    Train(RunConfig),
    /// A few-shot evaluation (Table 6): pretrain `pretrain`, then `method` on `episodes`
    /// `way`-way `shot`-shot episodes with `queries` query images per class. MAML
    /// ([`FewShotMethod::MetaLearnedStaticNsn`]) meta-trains for `meta_steps` outer steps of
    /// `meta_batch` tasks each; the other methods ignore both.
    FewShot {
        pretrain: RunConfig,
        method: FewShotMethod,
        way: usize,
        shot: usize,
        queries: usize,
        episodes: usize,
        meta_steps: usize,
        meta_batch: usize,
    },
}

/// MAML outer steps and tasks per outer step at smoke scale.
pub const SMOKE_META_SCHEDULE: (usize, usize) = (10, 4);
/// MAML outer steps and tasks per outer step at paper scale: the MAML defaults the spec assumes
/// (§5.6 \[ASSUMPTION\]: Adam 1e-3, 4 tasks per meta-batch, about 60k iterations).
pub const PAPER_META_SCHEDULE: (usize, usize) = (60_000, 4);

/// The Table 6 strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FewShotMethod {
    /// Plain CNN-4, fine-tune a new classifier on the support set.
    FineTuneBaseline,
    /// Static NSN (DNS from ones): fine-tune the diagonals and the classifier.
    StaticNsn,
    /// Static NSN with MAML-learned initial diagonals and classifier.
    MetaLearnedStaticNsn,
    /// Dynamic NSN: retrain the classifier only.
    DynamicNsn,
}

/// One cell of a paper table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Table id, e.g. `table4`.
    pub table: &'static str,
    /// Row label as in the paper.
    pub label: String,
    /// Column (dataset) for tables with several, e.g. `CIFAR-100`.
    pub column: &'static str,
    /// The paper's number in the metric's unit, if the paper has one.
    pub paper: Option<f64>,
    /// The paper's top-5 error, for [`Metric::Top1Error`] rows (Table 5 reports both).
    pub paper_top5: Option<f64>,
    pub metric: Metric,
    pub job: Job,
}

impl Row {
    /// The row's training config (a few-shot row's pretraining config).
    pub fn config_mut(&mut self) -> &mut RunConfig {
        match &mut self.job {
            Job::Train(c) | Job::FewShot { pretrain: c, .. } => c,
        }
    }
    /// The row with its run reading data from `dir` (the data folder is not part of the run id).
    pub fn with_data_dir(&self, dir: &str) -> Row {
        let mut row = self.clone();
        match &mut row.job {
            Job::Train(c) | Job::FewShot { pretrain: c, .. } => c.data_dir = dir.to_string(),
        }
        row
    }
    /// Folder of the run: readable fields plus a hash of the whole job, so rows that share a
    /// run (the baseline of Tables 1–4) share its folder and any change makes a new one.
    pub fn run_id(&self, seed: u64) -> String {
        match &self.job {
            Job::Train(c) => {
                let c = RunConfig { seed, ..c.clone() };
                format!("{}-{}-{}-{:08x}", c.dataset, c.network, c.similarity, fnv1a(&c.id_toml()))
            }
            Job::FewShot { pretrain, method, way, shot, queries, episodes, meta_steps, meta_batch } => {
                let mut key = format!(
                    "{}{method:?}{way}{shot}{queries}{episodes}",
                    RunConfig { seed, ..pretrain.clone() }.id_toml()
                );
                // the MAML schedule joins the key only where it differs from the smoke one, so
                // the ids (and finished runs) from before it was configurable stay valid
                if *method == FewShotMethod::MetaLearnedStaticNsn && (*meta_steps, *meta_batch) != SMOKE_META_SCHEDULE {
                    key.push_str(&format!("meta{meta_steps}x{meta_batch}"));
                }
                format!("fewshot-{method:?}-{:08x}", fnv1a(&key)).to_lowercase()
            }
        }
    }
}

/// 32-bit FNV-1a, a stable short hash for folder names.
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

/// Table ids with their titles, in report order.
pub const TABLES: &[(&str, &str)] = &[
    ("table1", "Table 1: predictor network (CIFAR-10, dynamic DNS)"),
    ("table2", "Table 2: joint learning of kernel shape and similarity (CIFAR-10, DNS)"),
    ("table3", "Table 3: shared vs disjoint predictor (CIFAR-10, DNS)"),
    ("table4", "Table 4: CIFAR-10 and CIFAR-100"),
    ("table5", "Table 5: ImageNet-2012 CNN-10"),
    ("table6", "Table 6: few-shot, mini-ImageNet 5-way 5-shot (CNN-4)"),
    ("table8", "Table 8: self-attention (dynamic GNS) on CIFAR-10"),
    ("extensions", "Extensions the paper only discusses, and an ablation of the code's DNS init (CIFAR-10)"),
];

/// Iterations of a real-scale run.
pub const REAL_ITERATIONS: u64 = 3_000;

/// The real-scale recipe of a CIFAR-10 row (issue 18), applied to the code's CIFAR run `paper`:
/// full Fashion-MNIST (zero-padded to 32×32, `(x − 127.5)/128`) at full width, the code's CIFAR
/// augmentation (symmetric pad 4, random crop, flip), batch 128, 3,000 iterations of momentum
/// SGD at lr 0.1 ÷10 at 1,500 and 2,250 after a 500-iteration linear warm-up, the code's loss
/// and L2, BN running statistics by a debiased EMA of decay 0.99, a test evaluation on all
/// 10,000 images every 300 iterations. Table 8 rows keep their own recipe (Adam 1e-3, flip only)
/// with its milestones scaled to 3,000 iterations and no warm-up.
pub fn real_recipe(paper: RunConfig) -> RunConfig {
    let common = RunConfig {
        dataset: DatasetChoice::FashionMnist,
        width: 1.0,
        normalize: NormalizeChoice::Centered,
        batch_size: 128,
        iterations: REAL_ITERATIONS,
        eval_every: 300,
        checkpoint_every: 300,
        bn_decay: 0.99,
        bn_debias: true,
        ..paper.clone()
    };
    if paper.optimizer == OptimizerChoice::Adam {
        let scale = |m: u64| m * REAL_ITERATIONS / paper.iterations;
        RunConfig { milestones: paper.milestones.iter().map(|&m| scale(m)).collect(), ..common }
    } else {
        RunConfig { lr: 0.1, milestones: vec![1_500, 2_250], warmup: 500, ..common }
    }
}

/// The CIFAR run at a scale.
fn cifar(scale: Scale, dataset_paper: DatasetChoice, network: NetworkChoice, similarity: &str) -> RunConfig {
    let paper = RunConfig { network, similarity: sim(similarity), dataset: dataset_paper, ..RunConfig::code_cifar() };
    match scale {
        Scale::Paper => paper,
        Scale::Real => real_recipe(paper),
        Scale::Smoke => RunConfig {
            dataset: if dataset_paper == DatasetChoice::Cifar100 {
                DatasetChoice::Synthetic100
            } else {
                DatasetChoice::FashionMnistEmbedded
            },
            synthetic_train: 6_000,
            synthetic_test: 500,
            width: 0.25,
            iterations: 100,
            batch_size: 32,
            lr: 0.01,
            milestones: vec![70],
            eval_every: 10,
            checkpoint_every: 50,
            bn_debias: true,
            // a 20-step EMA: the code's 1,000-step one still averages in the first steps at the
            // end of a 100-iteration run (quickstart, 300 iterations: 73% → 79% test accuracy)
            bn_decay: 0.95,
            predictor_gamma: 0.0,
            ..paper
        },
    }
}

/// The smoke-scale CIFAR-backbone run on the embedded data (what `cargo xtask repro` trains for
/// the CIFAR-10 tables and `nsl quickstart` trains): width ×0.25, batch 32, SGD 0.01 for 100
/// iterations, debiased BN statistics with EMA decay 0.95, zero-init predictor output γ.
pub fn smoke_cifar(network: NetworkChoice, similarity: &str) -> RunConfig {
    cifar(Scale::Smoke, DatasetChoice::Cifar10, network, similarity)
}

fn train_row(table: &'static str, column: &'static str, label: &str, paper: Option<f64>, cfg: RunConfig) -> Row {
    Row {
        table,
        label: label.into(),
        column,
        paper,
        paper_top5: None,
        metric: Metric::FinalError,
        job: Job::Train(cfg),
    }
}

/// Every experiment at `scale`.
pub fn experiments(scale: Scale) -> Vec<Row> {
    let c10 = |net: NetworkChoice, sim: &str| cifar(scale, DatasetChoice::Cifar10, net, sim);
    let c100 = |net: NetworkChoice, sim: &str| cifar(scale, DatasetChoice::Cifar100, net, sim);
    let mut rows = Vec::new();
    let t = |rows: &mut Vec<Row>, table, label: &str, paper, cfg| {
        rows.push(train_row(table, "CIFAR-10", label, paper, cfg))
    };

    t(&mut rows, "table1", "Baseline CNN", Some(7.78), c10(NetworkChoice::Cnn9, "conv"));
    t(&mut rows, "table1", "Dynamic NSN (CNN)", Some(7.04), c10(NetworkChoice::Cnn9, "dynamic-dns-cnn"));
    t(&mut rows, "table1", "Dynamic NSN (SN)", Some(6.85), c10(NetworkChoice::Cnn9, "dynamic-dns"));
    if scale == Scale::Real {
        // With the code's γ = 1 the CNN predictor's first warm-up step (lr 2e-4) moves its output
        // conv by 5–17× its norm and the network collapses to a constant output; the issue asks
        // for a γ = 0 row beside it (M = I at init) rather than a silent switch. Smoke runs start
        // every predictor at γ = 0 already.
        let gamma0 = RunConfig { predictor_gamma: 0.0, ..c10(NetworkChoice::Cnn9, "dynamic-dns-cnn") };
        t(&mut rows, "table1", "Dynamic NSN (CNN) w/ predictor γ = 0", None, gamma0);
    }

    t(&mut rows, "table2", "Baseline CNN", Some(7.78), c10(NetworkChoice::Cnn9, "conv"));
    t(&mut rows, "table2", "Static NSN", Some(7.15), c10(NetworkChoice::Cnn9, "static-dns"));
    t(&mut rows, "table2", "Static NSN (J)", Some(6.92), c10(NetworkChoice::Cnn9, "joint-static-dns"));
    t(&mut rows, "table2", "Dynamic NSN", Some(6.85), c10(NetworkChoice::Cnn9, "dynamic-dns"));
    t(&mut rows, "table2", "Dynamic NSN (J)", Some(6.64), c10(NetworkChoice::Cnn9, "joint-dynamic-dns"));

    t(&mut rows, "table3", "Baseline CNN", Some(7.78), c10(NetworkChoice::Cnn9, "conv"));
    t(&mut rows, "table3", "Dynamic NSN (Shared)", Some(7.20), c10(NetworkChoice::Cnn9, "shared-dns"));
    t(&mut rows, "table3", "Dynamic NSN (Disjoint)", Some(6.85), c10(NetworkChoice::Cnn9, "dynamic-dns"));

    for (label, net, sim, p10, p100) in [
        ("Baseline CNN", NetworkChoice::Cnn9, "conv", 7.78, 28.95),
        ("Baseline CNN++", NetworkChoice::Cnn9pp, "conv", 7.29, 28.70),
        ("Static NSN w/ DNS", NetworkChoice::Cnn9, "static-dns", 7.15, 28.35),
        ("Static NSN w/ UNS", NetworkChoice::Cnn9, "static-uns", 7.38, 28.11),
        ("Dynamic NSN w/ DNS", NetworkChoice::Cnn9, "dynamic-dns", 6.85, 27.81),
        ("Dynamic NSN w/ UNS", NetworkChoice::Cnn9, "dynamic-uns", 6.5, 28.02),
    ] {
        rows.push(train_row("table4", "CIFAR-10", label, Some(p10), c10(net, sim)));
        if scale != Scale::Real {
            rows.push(train_row("table4", "CIFAR-100", label, Some(p100), c100(net, sim)));
        }
    }
    if scale != Scale::Real {
        rows.extend(imagenet_and_few_shot_rows(scale));
    }
    rows.extend(self_attention_rows(scale));

    t(&mut rows, "extensions", "Static NSN w/ PSD M = LLᵀ", None, c10(NetworkChoice::Cnn9, "static-psd"));
    t(
        &mut rows,
        "extensions",
        "Static NSN w/ DNS + ℓ1 (1e-4)",
        None,
        RunConfig { l1: 1e-4, ..c10(NetworkChoice::Cnn9, "static-dns") },
    );
    // Ablation of the code's DNS init [1,0,0,0,1,0,0,0,1] (3 of 9 taps live at step 0): with all
    // ones the network starts as exactly the baseline CNN of its seed.
    t(&mut rows, "extensions", "Static NSN w/ DNS (all-ones init)", None, c10(NetworkChoice::Cnn9, "static-dns-ones"));
    rows
}

/// Table 5 (ImageNet, CNN-10) and Table 6 (few-shot, CNN-4) at smoke or paper scale.
fn imagenet_and_few_shot_rows(scale: Scale) -> Vec<Row> {
    let mut rows = Vec::new();

    // Table 5: ImageNet CNN-10, class folders of JPEGs streamed from `data/imagenet` (smoke: the
    // same network, narrow, on the synthetic set)
    let imagenet = |network: NetworkChoice, similarity: &str| match scale {
        Scale::Paper => RunConfig {
            network,
            similarity: sim(similarity),
            dataset: DatasetChoice::Imagenet,
            augment: AugmentChoice::CropFlip,
            normalize: NormalizeChoice::ImagenetMean,
            iterations: 600_000,
            milestones: vec![200_000, 375_000, 550_000],
            eval_every: 10_000,
            checkpoint_every: 2_000,
            eval_batch: 100,
            weight_decay: Some(CNN10_WEIGHT_DECAY),
            ..RunConfig::code_cifar()
        },
        _ => RunConfig { width: 0.125, ..cifar(scale, DatasetChoice::Cifar10, network, similarity) },
    };
    // CNN-10++: deeper and wider, more weights than the dynamic NSN (`Cnn10Config::plus_plus`)
    for (label, network, sim, paper, paper_top5) in [
        ("Baseline CNN", NetworkChoice::Cnn10, "conv", 42.72, 19.11),
        ("Baseline CNN++", NetworkChoice::Cnn10pp, "conv", 42.11, 18.98),
        ("Dynamic NSN w/ DNS", NetworkChoice::Cnn10, "dynamic-dns", 40.61, 18.04),
    ] {
        rows.push(Row {
            table: "table5",
            label: label.into(),
            column: "ImageNet",
            paper: Some(paper),
            paper_top5: Some(paper_top5),
            metric: Metric::Top1Error,
            job: Job::Train(imagenet(network, sim)),
        });
    }

    // Table 6: few-shot on mini-ImageNet from `data/mini-imagenet` (smoke: many-class synthetic set)
    let pretrain = |network: NetworkChoice, similarity: &str| RunConfig {
        network,
        similarity: sim(similarity),
        // the CIFAR backbone of the CNN-9 row at smoke scale is narrowed as every smoke CNN-9
        width: if network == NetworkChoice::Cnn9 && scale != Scale::Paper { 0.25 } else { 1.0 },
        dataset: match scale {
            Scale::Paper => DatasetChoice::MiniImagenet,
            _ => DatasetChoice::SyntheticFewshot,
        },
        optimizer: OptimizerChoice::Adam,
        lr: 1e-3,
        milestones: vec![],
        // per-channel mean/std of the training split (spec §5.6 \[ASSUMPTION\]); smoke keeps
        // the fixed centring it always had
        normalize: match scale {
            Scale::Paper => NormalizeChoice::MeanStd,
            _ => NormalizeChoice::Centered,
        },
        augment: AugmentChoice::None,
        iterations: match scale {
            Scale::Paper => 30_000,
            _ => 100,
        },
        batch_size: 64,
        bn_debias: scale == Scale::Smoke,
        // the few-shot code was PyTorch (spec §5.6): BN momentum 0.1, i.e. EMA decay 0.9
        bn_decay: 0.9,
        ..RunConfig::code_cifar()
    };
    let (episodes, (meta_steps, meta_batch)) = match scale {
        Scale::Paper => (600, PAPER_META_SCHEDULE),
        _ => (10, SMOKE_META_SCHEDULE),
    };
    for (label, network, method, sim, paper) in [
        ("Finetuning Baseline", NetworkChoice::Cnn4, FewShotMethod::FineTuneBaseline, "conv", 49.79),
        ("Static NSN", NetworkChoice::Cnn4, FewShotMethod::StaticNsn, "static-dns-ones", 65.74),
        (
            "Meta-learned static NSN (second-order MAML)",
            NetworkChoice::Cnn4,
            FewShotMethod::MetaLearnedStaticNsn,
            "static-dns-ones",
            66.21,
        ),
        ("Dynamic NSN", NetworkChoice::Cnn4, FewShotMethod::DynamicNsn, "dynamic-dns", 71.26),
        // the paper's CNN-9 backbone is unspecified: the CIFAR CNN-9 at 84×84 (spec §5.6 \[ASSUMPTION\])
        ("Dynamic NSN (CNN-9)", NetworkChoice::Cnn9, FewShotMethod::DynamicNsn, "dynamic-dns", 77.44),
    ] {
        rows.push(Row {
            table: "table6",
            label: label.into(),
            column: "mini-ImageNet",
            paper: Some(paper),
            paper_top5: None,
            metric: Metric::FewShotAccuracy,
            job: Job::FewShot {
                pretrain: pretrain(network, sim),
                method,
                way: 5,
                shot: 5,
                queries: 15,
                episodes,
                meta_steps,
                meta_batch,
            },
        });
    }

    rows
}

/// Table 8: SphereNet-9 ± self-attention and the CNN twins (best accuracy over training; final
/// accuracy at real scale).
fn self_attention_rows(scale: Scale) -> Vec<Row> {
    let mut rows = Vec::new();
    for (label, net, paper) in [
        ("CNN", NetworkChoice::Cnn9Wide, 90.86),
        ("CNN w/ self-attention", NetworkChoice::Cnn9WideAttention, 90.69),
        ("SphereNet", NetworkChoice::Spherenet9, 91.31),
        ("SphereNet w/ self-attention", NetworkChoice::Spherenet9Attention, 91.76),
    ] {
        let base = RunConfig { network: net, ..RunConfig::code_cifar().self_attention_recipe() };
        let cfg = match scale {
            Scale::Paper => RunConfig { dataset: DatasetChoice::Cifar10, ..base },
            Scale::Real => real_recipe(RunConfig { dataset: DatasetChoice::Cifar10, ..base }),
            Scale::Smoke => RunConfig {
                optimizer: OptimizerChoice::Adam,
                lr: 3e-3,
                augment: AugmentChoice::Flip,
                normalize: NormalizeChoice::Centered,
                width: 0.125,
                ..cifar(scale, DatasetChoice::Cifar10, net, "conv")
            },
        };
        rows.push(Row {
            table: "table8",
            label: label.into(),
            column: "CIFAR-10",
            paper: Some(paper),
            paper_top5: None,
            metric: if scale == Scale::Real { Metric::FinalAccuracy } else { Metric::BestAccuracy },
            job: Job::Train(cfg),
        });
    }
    rows
}

/// Apply `key=value` overrides (TOML values, e.g. `uns_identity=false`, `predictor_hidden=32`,
/// `shared_bn_stats="pooled"`) to every row's config. Overridden rows get their own run folders.
///
/// # Errors
/// Naming the override when it is not `key=value`, the key is not a `RunConfig` field, or the
/// value does not fit it.
pub fn apply_overrides(rows: &mut [Row], overrides: &[String]) -> Result<(), String> {
    for o in overrides {
        let (key, value) = o.split_once('=').ok_or_else(|| format!("--set {o}: expected key=value"))?;
        let value: toml::Value = toml::from_str(&format!("v = {value}"))
            .map(|t: toml::Table| t["v"].clone())
            .or_else(|_| Ok::<_, String>(toml::Value::String(value.to_string())))?;
        for row in rows.iter_mut() {
            let cfg = row.config_mut();
            let mut table = toml::Table::try_from(&*cfg).expect("a run config serialises");
            table.insert(key.trim().to_string(), value.clone());
            *cfg = table.try_into().map_err(|e| format!("--set {o}: {e}"))?;
        }
    }
    Ok(())
}

/// The paper's CIFAR schedule (÷10 at 34K and 54K, stop at 64K) for every row that runs the
/// code's (42.5K iterations, ÷10 at 20K/30K/37.5K): the CIFAR rows at paper scale. Returns how
/// many rows changed.
pub fn use_paper_schedule(rows: &mut [Row]) -> usize {
    let code = RunConfig::code_cifar();
    let mut changed = 0;
    for row in rows.iter_mut() {
        let cfg = row.config_mut();
        if cfg.milestones == code.milestones && cfg.iterations == code.iterations {
            *cfg = cfg.clone().with_paper_schedule();
            changed += 1;
        }
    }
    changed
}
