//! Table 6 rows: pretrain CNN-4 on base classes, then adapt to 5-way 5-shot episodes of novel
//! classes with the row's strategy (spec §5.6), writing `summary.json` and `ci95.txt`.
//!
//! On mini-ImageNet the non-MAML networks pretrain as 80-way classifiers on train + val; the
//! MAML model pretrains and meta-trains on the 64 train classes only (the paper's appendix);
//! episodes come from the 20 test classes.
//!
//! Inputs are normalised as the pretraining config's `normalize` says: `centered` (smoke) or
//! `mean-std`, the per-channel mean and standard deviation of the training split's pixels (the
//! spec's per-channel normalisation, §5.6 \[ASSUMPTION\]; paper scale).
//!
//! A row survives being killed: the pretrained network is saved to `pretrained.safetensors` and
//! reused, and MAML checkpoints its meta-training to `maml.safetensors` every
//! [`MAML_CHECKPOINT_EVERY`] outer steps and resumes from there.

use std::path::Path;
use std::time::Instant;

use nsl_core::{Backend, Rng};

use super::registry::{FewShotMethod, Job, Row};
use crate::checkpoint::{self, Meta};
use crate::data::augment::Normalize;
use crate::data::mini_imagenet::load_mini_imagenet;
use crate::data::synthetic::synthetic_many;
use crate::data::Dataset;
use crate::fewshot::{
    evaluate_episodes, meta_train_with, pretrain, EpisodeSpec, FineTune, Maml, MetaTrain, MetaTrainOptions, Method,
};
use crate::nets::Network;
use crate::train::{
    build_network, normalize_of, write_file, DatasetChoice, NormalizeChoice, RunConfig, RunDir, RunSummary,
};
use crate::Error;

/// Base (pretraining) and novel (episode) classes of the smoke few-shot set: 30 + 10 synthetic
/// classes of 60 images, the shape of mini-ImageNet's 64 (+16) / 20 split at small scale.
const SMOKE_BASE: usize = 30;
const SMOKE_NOVEL: usize = 10;
const SMOKE_PER_CLASS: usize = 60;
/// MAML saves its state every this many outer steps (and after the last).
pub const MAML_CHECKPOINT_EVERY: usize = 100;

/// A few-shot data set and its class roles.
struct FewShotData {
    data: Dataset,
    /// Classes of the pretrained classifier.
    pretrain: Vec<usize>,
    /// Classes MAML meta-trains on: the training split, whose pixels also give the `mean-std`
    /// statistics.
    meta: Vec<usize>,
    /// Classes episodes are drawn from.
    novel: Vec<usize>,
}

fn few_shot_data(cfg: &RunConfig) -> Result<FewShotData, Error> {
    match cfg.dataset {
        DatasetChoice::SyntheticFewshot => Ok(FewShotData {
            data: synthetic_many(SMOKE_BASE + SMOKE_NOVEL, SMOKE_PER_CLASS, 0),
            pretrain: (0..SMOKE_BASE).collect(),
            meta: (0..SMOKE_BASE).collect(),
            novel: (SMOKE_BASE..SMOKE_BASE + SMOKE_NOVEL).collect(),
        }),
        DatasetChoice::MiniImagenet => {
            let m = load_mini_imagenet(Path::new(&cfg.data_dir).join("mini-imagenet"))?;
            Ok(FewShotData {
                pretrain: (m.train.start..m.val.end).collect(),
                meta: m.train.collect(),
                novel: m.test.collect(),
                data: m.data,
            })
        }
        other => Err(Error::FewShot(format!(
            "{other} is not a few-shot data set; expected mini-imagenet or synthetic-fewshot"
        ))),
    }
}

/// Run one Table 6 row for `seed` into `dir`; returns the summary (accuracy as a fraction) and
/// the 95% interval half-width in percent.
pub fn run_fewshot_row<B: Backend>(be: &B, row: &Row, seed: u64, dir: &Path) -> Result<(RunSummary, f64), Error> {
    let Job::FewShot { pretrain: cfg, method, way, shot, queries, episodes, meta_steps, meta_batch } = &row.job else {
        return Err(Error::FewShot(format!("{} is not a few-shot row", row.label)));
    };
    cfg.validate()?;
    let started = Instant::now();
    let FewShotData { data, pretrain: base, meta: meta_classes, novel } = few_shot_data(cfg)?;
    // the MAML model meta-trains on the train split and is pretrained on it alone (the paper's
    // appendix); the other rows pretrain on train + val (spec §5.6)
    let base = if *method == FewShotMethod::MetaLearnedStaticNsn { meta_classes.clone() } else { base };
    let normalize = few_shot_normalize(cfg.normalize, &data, &meta_classes)?;
    let mut net = build_network(be, cfg, base.len(), data.shape, &mut Rng::new(seed))?;
    let (params, weights) = (net.param_count(), net.weight_count());
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let key = row.run_id(seed);
    let final_loss = pretrained(be, &mut net, &dir.join("pretrained.safetensors"), &key, |net| {
        let schedule = (cfg.iterations as usize, cfg.batch_size, cfg.lr);
        pretrain(be, net, &data, &base, &normalize, schedule, seed).map(|r| r.final_loss)
    })?;
    let spec = EpisodeSpec { way: *way, shot: *shot, queries: *queries };
    let adapt = match method {
        FewShotMethod::FineTuneBaseline | FewShotMethod::DynamicNsn => Method::FineTuneHead(FineTune::PAPER),
        FewShotMethod::StaticNsn => Method::FineTuneSimilarityAndHead(FineTune::PAPER),
        FewShotMethod::MetaLearnedStaticNsn => {
            let meta = MetaTrain { spec, meta_batch: *meta_batch, ..MetaTrain::paper(*shot, *meta_steps) };
            let opts = MetaTrainOptions {
                checkpoint: Some(dir.join("maml.safetensors")),
                checkpoint_every: MAML_CHECKPOINT_EVERY,
                progress: true,
                stop_at: None,
                key: key.clone(),
            };
            let m = meta_train_with(be, &mut net, (&data, &meta_classes, &normalize), &meta, seed, &opts)?;
            let order = format!("{:?}\nouter steps {} x {} tasks\n", m.order, m.query_loss.len(), meta.meta_batch);
            write_file(&dir.join("maml_order.txt"), order.as_bytes())?;
            Method::MamlAdapted(Maml::PAPER)
        }
    };
    let stats = evaluate_episodes(be, &mut net, (&data, &novel, &normalize), spec, *episodes, &adapt, seed ^ 0xe915)?;
    let summary = RunSummary {
        network: net.name.clone(),
        similarity: format!("{} ({})", cfg.similarity, adapt.name()),
        dataset: cfg.dataset.to_string(),
        params,
        weights: Some(weights),
        steps: cfg.iterations,
        final_test_acc: stats.mean as f32,
        final_test_top5: None,
        best_test_acc: stats.mean as f32,
        best_step: cfg.iterations,
        final_train_loss: final_loss,
        wall_seconds: started.elapsed().as_secs_f64(),
        train_images_per_second: 0.0,
        backend: be.name(),
        resumed_from: None,
    };
    let ci = 100.0 * stats.ci95;
    write_file(&dir.join("ci95.txt"), format!("{ci}\n").as_bytes())?;
    write_file(&dir.join("episodes.json"), serde_json::to_string(&stats.accuracies).expect("json").as_bytes())?;
    RunDir::new(dir).write_summary(&summary)?;
    Ok((summary, ci))
}

/// The input normalisation of a few-shot row: `mean-std` is computed from the pixels of the
/// training split (`train_classes`), anything else as [`parse_normalize`] reads it.
fn few_shot_normalize(choice: NormalizeChoice, data: &Dataset, train_classes: &[usize]) -> Result<Normalize, Error> {
    if choice == NormalizeChoice::MeanStd {
        let mut in_split = vec![false; data.classes];
        train_classes.iter().for_each(|&c| in_split[c] = true);
        return Ok(Normalize::mean_std_of_images(data, (0..data.len()).filter(|&i| in_split[data.label(i)])));
    }
    normalize_of(choice)
}

/// Load the pretrained `net` from `path` if a run of the same `key` saved it there; otherwise run
/// `train` and save the result. Returns the last pretraining loss.
fn pretrained<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    path: &Path,
    key: &str,
    train: impl FnOnce(&mut Network<B>) -> Result<f32, Error>,
) -> Result<f32, Error> {
    if path.exists() {
        let meta = checkpoint::load(be, path, net, None)?;
        if meta.extra.get("job").map(String::as_str) != Some(key) {
            let problem = "pretrained for another job".into();
            return Err(Error::StaleCheckpoint { path: path.to_path_buf(), problem });
        }
        return meta.extra.get("final_loss").and_then(|l| l.parse().ok()).ok_or_else(|| Error::StaleCheckpoint {
            path: path.to_path_buf(),
            problem: "no final_loss in the metadata".into(),
        });
    }
    let loss = train(net)?;
    let mut meta = Meta::default();
    meta.extra.insert("job".into(), key.to_string());
    meta.extra.insert("final_loss".into(), loss.to_string());
    checkpoint::save(be, path, net, None, &meta)?;
    Ok(loss)
}
