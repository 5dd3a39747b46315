//! `cargo xtask compare-backends`: train one smoke run on the CPU and on CUDA from the same seed
//! and compare their training-loss curves step by step.
//!
//! Step 1 sees identical weights and data on both backends, so its losses may differ only by
//! float rounding (summation order, FMA contraction); later steps drift apart as rounding
//! differences compound through SGD, so the table shows the whole curve and the check is on the
//! first steps.

use std::path::{Path, PathBuf};

use nsl_models::backend_choice::{run_on_backend, BackendJob};
use nsl_models::repro::smoke_cifar;
use nsl_models::train::metrics::Metrics;
use nsl_models::train::{train, NetworkChoice, Resume, RunConfig, RunOptions, RunSummary};

/// One training run on whichever backend it is handed.
struct TrainJob {
    cfg: RunConfig,
    out: PathBuf,
}

impl BackendJob for TrainJob {
    type Output = RunSummary;
    fn run<B: nsl_core::Backend>(self, be: &B) -> Result<RunSummary, String> {
        // a scratch run: a comparison always trains afresh
        let _ = std::fs::remove_dir_all(&self.out);
        let opts = RunOptions { out_dir: self.out, resume: Resume::No, progress: true, stop_at: None };
        train(be, &self.cfg, &opts).map_err(|e| e.to_string())
    }
}

/// Training losses by step from a run's `metrics.jsonl`.
fn losses(dir: &Path) -> Result<Vec<f64>, String> {
    let path = dir.join("metrics.jsonl");
    if !path.exists() {
        return Err(format!("{}: the run wrote no metrics", path.display()));
    }
    Ok(Metrics::read(&path).train.iter().map(|t| f64::from(t.loss)).collect())
}

/// Train `similarity` for `iterations` steps on backends `a` and `b` (e.g. cpu and cuda) under
/// `out` and print the curves; fails when a loss of the first 3 steps differs by more than
/// `tolerance` (relative).
pub fn compare_backends(
    [a, b]: [&str; 2],
    similarity: &str,
    iterations: u64,
    out: &Path,
    tolerance: f64,
) -> Result<(), String> {
    let checked = 3;
    let cfg = RunConfig {
        iterations,
        eval_every: iterations,
        checkpoint_every: iterations,
        ..smoke_cifar(NetworkChoice::Cnn9, similarity)
    };
    let dirs = [out.join(format!("a-{a}")), out.join(format!("b-{b}"))];
    // the second backend first: it is the one likely to be missing (cuda), so a machine without
    // a GPU fails before spending time on the CPU run
    let run = |backend: &str, dir: &Path| {
        let job = TrainJob { cfg: cfg.clone(), out: dir.to_path_buf() };
        run_on_backend(backend, 0, job).map_err(|e| format!("{backend} run: {e}"))
    };
    let second = run(b, &dirs[1])?;
    let summaries = [run(a, &dirs[0])?, second];
    let (la, lb) = (losses(&dirs[0])?, losses(&dirs[1])?);
    println!("| step | {a} loss | {b} loss | relative difference |\n|---:|---:|---:|---:|");
    let every = (la.len() / 20).max(1);
    let mut worst_checked: f64 = 0.0;
    for (i, (x, y)) in la.iter().zip(&lb).enumerate() {
        let rel = (x - y).abs() / x.abs().max(1e-12);
        if i < checked {
            worst_checked = worst_checked.max(rel);
        }
        if i < checked || (i + 1) % every == 0 {
            println!("| {} | {x:.6} | {y:.6} | {rel:.2e} |", i + 1);
        }
    }
    println!(
        "\nfinal test accuracy: {:.2}% on {}, {:.2}% on {}",
        100.0 * summaries[0].final_test_acc,
        summaries[0].backend,
        100.0 * summaries[1].final_test_acc,
        summaries[1].backend
    );
    if la.len() != lb.len() || la.len() as u64 != iterations {
        return Err(format!("the runs logged {} and {} losses, expected {iterations}", la.len(), lb.len()));
    }
    if worst_checked > tolerance {
        return Err(format!(
            "the first {checked} losses differ by up to {worst_checked:.2e} (relative), above the tolerance {tolerance:.0e}"
        ));
    }
    println!("first {checked} steps agree within {worst_checked:.2e} (tolerance {tolerance:.0e})");
    Ok(())
}
