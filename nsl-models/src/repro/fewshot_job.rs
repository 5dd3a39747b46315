//! Table 6 rows: pretrain CNN-4 on base classes, then adapt to 5-way 5-shot episodes of novel
//! classes with the row's strategy (spec §5.6), writing `summary.json` and `ci95.txt`.
//!
//! On mini-ImageNet the non-MAML networks pretrain as 80-way classifiers on train + val, MAML
//! meta-trains on the 64 train classes, and episodes come from the 20 test classes.

use std::path::Path;
use std::time::Instant;

use nsl_core::{Backend, Rng};

use super::registry::{FewShotMethod, Job, Row};
use crate::data::augment::Normalize;
use crate::data::mini_imagenet::load_mini_imagenet;
use crate::data::synthetic::synthetic_many;
use crate::data::Dataset;
use crate::fewshot::{evaluate_episodes, meta_train, pretrain, EpisodeSpec, FineTune, Maml, MetaTrain, Method};
use crate::nets::{cnn4, SimilarityChoice};
use crate::train::{RunConfig, RunSummary};

/// Base (pretraining) and novel (episode) classes of the smoke few-shot set: 30 + 10 synthetic
/// classes of 60 images, the shape of mini-ImageNet's 64 (+16) / 20 split at small scale.
const SMOKE_BASE: usize = 30;
const SMOKE_NOVEL: usize = 10;
const SMOKE_PER_CLASS: usize = 60;
/// Outer MAML steps at smoke scale (spec [ASSUMPTION] for paper scale: about 60k).
const SMOKE_META_STEPS: usize = 10;

/// A few-shot data set and its class roles.
struct FewShotData {
    data: Dataset,
    /// Classes of the pretrained classifier.
    pretrain: Vec<usize>,
    /// Classes MAML meta-trains on.
    meta: Vec<usize>,
    /// Classes episodes are drawn from.
    novel: Vec<usize>,
}

fn few_shot_data(cfg: &RunConfig) -> Result<FewShotData, String> {
    match cfg.dataset.as_str() {
        "synthetic-fewshot" => Ok(FewShotData {
            data: synthetic_many(SMOKE_BASE + SMOKE_NOVEL, SMOKE_PER_CLASS, 0),
            pretrain: (0..SMOKE_BASE).collect(),
            meta: (0..SMOKE_BASE).collect(),
            novel: (SMOKE_BASE..SMOKE_BASE + SMOKE_NOVEL).collect(),
        }),
        "mini-imagenet" => {
            let m = load_mini_imagenet(Path::new(&cfg.data_dir).join("mini-imagenet")).map_err(|e| e.to_string())?;
            Ok(FewShotData {
                pretrain: (m.train.start..m.val.end).collect(),
                meta: m.train.collect(),
                novel: m.test.collect(),
                data: m.data,
            })
        }
        other => Err(format!("unknown few-shot dataset `{other}`")),
    }
}

/// Run one Table 6 row for `seed` into `dir`; returns the summary (accuracy as a fraction) and
/// the 95% interval half-width in percent.
pub fn run_fewshot_row<B: Backend>(be: &B, row: &Row, seed: u64, dir: &Path) -> Result<(RunSummary, f64), String> {
    let Job::FewShot { pretrain: cfg, method, way, shot, queries, episodes } = &row.job else {
        return Err(format!("{} is not a few-shot row", row.label));
    };
    let started = Instant::now();
    let FewShotData { data, pretrain: base, meta: meta_classes, novel } = few_shot_data(cfg)?;
    let similarity: SimilarityChoice = cfg.similarity.parse()?;
    let normalize = Normalize::Centered;
    let mut net = cnn4(be, &mut Rng::new(seed), base.len(), similarity, data.shape[0], 0.0);
    if cfg.predictor_gamma != 1.0 {
        net.set_predictor_output_gamma(be, cfg.predictor_gamma);
    }
    let params = net.param_count();
    let report =
        pretrain(be, &mut net, &data, &base, &normalize, (cfg.iterations as usize, cfg.batch_size, cfg.lr), seed)?;
    let spec = EpisodeSpec { way: *way, shot: *shot, queries: *queries };
    let adapt = match method {
        FewShotMethod::FineTuneBaseline | FewShotMethod::DynamicNsn => Method::FineTuneHead(FineTune::PAPER),
        FewShotMethod::StaticNsn => Method::FineTuneSimilarityAndHead(FineTune::PAPER),
        FewShotMethod::MetaLearnedStaticNsn => {
            let meta = MetaTrain { spec, ..MetaTrain::paper(*shot, SMOKE_META_STEPS) };
            let m = meta_train(be, &mut net, (&data, &meta_classes, &normalize), &meta, seed)?;
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let _ = std::fs::write(dir.join("maml_order.txt"), format!("{:?}\n", m.order));
            Method::MamlAdapted(Maml::PAPER)
        }
    };
    let stats = evaluate_episodes(be, &mut net, (&data, &novel, &normalize), spec, *episodes, &adapt, seed ^ 0xe915)?;
    let summary = RunSummary {
        network: net.name.clone(),
        similarity: format!("{} ({})", cfg.similarity, adapt.name()),
        dataset: cfg.dataset.clone(),
        params,
        steps: cfg.iterations,
        final_test_acc: stats.mean as f32,
        best_test_acc: stats.mean as f32,
        best_step: cfg.iterations,
        final_train_loss: report.final_loss,
        wall_seconds: started.elapsed().as_secs_f64(),
        train_images_per_second: 0.0,
        backend: be.name(),
        resumed_from: None,
    };
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let ci = 100.0 * stats.ci95;
    let write = |name: &str, text: String| {
        crate::checkpoint::write_atomic(&dir.join(name), text.as_bytes()).map_err(|e| e.to_string())
    };
    write("ci95.txt", format!("{ci}\n"))?;
    write("episodes.json", serde_json::to_string(&stats.accuracies).expect("json"))?;
    write("summary.json", serde_json::to_string_pretty(&summary).expect("json"))?;
    Ok((summary, ci))
}
