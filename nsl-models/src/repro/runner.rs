//! Runs the registry's rows: each distinct run once per seed, skipping finished runs and
//! resuming killed ones.

use std::path::{Path, PathBuf};

use nsl_core::{Backend, Rng};

use super::registry::{Job, Metric, Row};
use crate::train::{build_network, load_test, train, Resume, RunConfig, RunDir, RunOptions, RunSummary};
use crate::Error;

/// Where runs go and how many seeds.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Output folder: `runs/<run id>/` for every run, the report and plots at the top.
    pub out: PathBuf,
    /// Data root for paper-scale runs (`cifar-10/`, `cifar-100/`, …).
    pub data: PathBuf,
    /// Seeds per row to run (0, 1, …). Rows report mean ± std over these and over any further
    /// seeds that finished earlier (`seeds`, `seeds + 1`, … up to the first one that has not).
    pub seeds: u64,
    pub progress: bool,
    /// Train runs that have not finished; `false` only reports the finished ones.
    pub train: bool,
}

/// A row's outcome over its seeds.
#[derive(Clone, Debug)]
pub struct RowResult {
    pub row: Row,
    /// The metric per seed that finished.
    pub values: Vec<f64>,
    /// The seed of each value.
    pub seeds: Vec<u64>,
    /// Top-5 error per seed, for [`Metric::Top1Error`] rows whose summaries record it.
    pub top5_errors: Vec<f64>,
    /// Few-shot 95% interval (mean over seeds).
    pub ci95: Option<f64>,
    pub params: Option<usize>,
    /// Convolution and FC weights, the paper's count (recorded by the run, or counted from its
    /// config for runs made before summaries recorded it).
    pub weights: Option<usize>,
    /// Training wall time of the finished runs (their summaries'), summed over seeds.
    pub wall_seconds: f64,
    /// Folders of the finished runs, relative to `out`, in the order of `seeds`.
    pub runs: Vec<String>,
    /// Why the row has no number (missing data, failure), if so.
    pub note: Option<String>,
}

impl RowResult {
    /// Mean and (sample) standard deviation of the per-seed values.
    pub fn mean_std(&self) -> Option<(f64, f64)> {
        super::stats::mean_std(&self.values)
    }
}

fn metric_of(metric: Metric, s: &RunSummary) -> f64 {
    match metric {
        Metric::FinalError | Metric::Top1Error => 100.0 * (1.0 - s.final_test_acc as f64),
        Metric::BestAccuracy => 100.0 * s.best_test_acc as f64,
        Metric::FewShotAccuracy | Metric::FinalAccuracy => 100.0 * s.final_test_acc as f64,
    }
}

/// Run (or reuse) every row, `seeds` times each, on backend `be`, and gather any further seeds
/// that finished earlier; `fewshot` runs Table 6 jobs.
pub fn run_all<B: Backend>(
    be: &B,
    rows: &[Row],
    opts: &RunnerOptions,
    mut fewshot: impl FnMut(&Row, u64, &Path) -> Result<(RunSummary, f64), Error>,
) -> Vec<RowResult> {
    let total = rows.len();
    let mut results = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let mut result = RowResult {
            row: row.clone(),
            values: vec![],
            seeds: vec![],
            top5_errors: vec![],
            ci95: None,
            params: None,
            weights: None,
            wall_seconds: 0.0,
            runs: vec![],
            note: None,
        };
        let mut cis = Vec::new();
        for seed in 0.. {
            let id = row.run_id(seed);
            let dir = opts.out.join("runs").join(&id);
            let reused = RunDir::new(&dir).read_summary();
            if seed >= opts.seeds && reused.is_none() {
                break; // past the seeds asked for, only finished runs count, up to the first gap
            }
            let outcome = match (&row.job, reused) {
                (_, None) if !opts.train => continue,
                (_, Some(summary)) => {
                    if opts.train {
                        eprintln!(
                            "[{}/{total}] {} {} (seed {seed}): finished earlier, reused",
                            i + 1,
                            row.table,
                            row.label
                        );
                    }
                    let ci = std::fs::read_to_string(dir.join("ci95.txt")).ok().and_then(|t| t.trim().parse().ok());
                    Ok((summary, ci))
                }
                (Job::Train(cfg), None) => {
                    eprintln!("[{}/{total}] {} {} (seed {seed}) → {}", i + 1, row.table, row.label, dir.display());
                    let cfg = RunConfig { seed, data_dir: opts.data.display().to_string(), ..cfg.clone() };
                    let run = RunOptions {
                        out_dir: dir.clone(),
                        resume: Resume::IfPresent,
                        progress: opts.progress,
                        stop_at: None,
                    };
                    train(be, &cfg, &run).map(|s| (s, None))
                }
                (Job::FewShot { .. }, None) => {
                    eprintln!("[{}/{total}] {} {} (seed {seed}) → {}", i + 1, row.table, row.label, dir.display());
                    fewshot(&row.with_data_dir(&opts.data.display().to_string()), seed, &dir)
                        .map(|(s, ci)| (s, Some(ci)))
                }
            };
            match outcome {
                Ok((summary, ci)) => {
                    result.values.push(metric_of(row.metric, &summary));
                    result.seeds.push(seed);
                    result.runs.push(format!("runs/{id}"));
                    if let (Metric::Top1Error, Some(top5)) = (row.metric, summary.final_test_top5) {
                        result.top5_errors.push(100.0 * (1.0 - f64::from(top5)));
                    }
                    result.params = Some(summary.params);
                    result.wall_seconds += summary.wall_seconds;
                    result.weights = summary.weights.or_else(|| match &row.job {
                        Job::Train(cfg) => {
                            weights_of(be, &RunConfig { data_dir: opts.data.display().to_string(), ..cfg.clone() })
                        }
                        Job::FewShot { .. } => None,
                    });
                    if let Some(ci) = ci {
                        cis.push(ci);
                    }
                }
                Err(e) => {
                    eprintln!("  not run: {e}");
                    result.note = Some(e.to_string());
                    break;
                }
            }
        }
        if !cis.is_empty() {
            result.ci95 = Some(cis.iter().sum::<f64>() / cis.len() as f64);
        }
        results.push(result);
    }
    results
}

/// The convolution and FC weights of `cfg`'s network (its classes and input shape read from the
/// test split), or `None` when the data cannot be read.
fn weights_of<B: Backend>(be: &B, cfg: &RunConfig) -> Option<usize> {
    let test = load_test(cfg).ok()?;
    Some(build_network(be, cfg, test.classes(), test.shape(), &mut Rng::new(0)).ok()?.weight_count())
}
