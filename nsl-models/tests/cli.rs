//! The `nsl` binary end to end: `nsl eval` reports the accuracy the run itself reported.

mod common;

use std::process::Command;

use nsl_models::train::{RunConfig, RunSummary};

#[test]
fn eval_reproduces_the_runs_final_accuracy_with_debiased_statistics() {
    let dir = common::TestDir::new("cli");
    let cfg = RunConfig {
        network: "cnn4".parse().unwrap(),
        similarity: "static-dns".parse().unwrap(),
        dataset: "synthetic".parse().unwrap(),
        synthetic_train: 256,
        synthetic_test: 64,
        iterations: 8,
        batch_size: 32,
        lr: 0.01,
        milestones: vec![],
        eval_every: 8,
        checkpoint_every: 8,
        // after 8 steps the zero-started EMA holds 0.8% of the statistics: raw and debiased
        // evaluations differ, so eval must use the run's choice to agree with it
        bn_debias: true,
        ..RunConfig::code_cifar()
    };
    let config = dir.join("run.toml");
    std::fs::write(&config, cfg.to_toml()).unwrap();
    let nsl = env!("CARGO_BIN_EXE_nsl");
    let run = dir.join("run");
    let out = Command::new(nsl)
        .args(["--threads", "2", "train", "--quiet", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: RunSummary =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();

    let out =
        Command::new(nsl).args(["--threads", "2", "eval"]).arg(run.join("checkpoint.safetensors")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = format!("test accuracy {:.2}%", 100.0 * summary.final_test_acc);
    assert!(text.contains(&expected), "`{text}` does not contain `{expected}`");

    // the run folder works as well as its checkpoint; a folder without one is a clear error
    let out = Command::new(nsl).args(["--threads", "2", "eval"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&expected));
    let out = Command::new(nsl).arg("eval").arg(&dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("without a checkpoint.safetensors"), "{err}");

    // a truncated checkpoint is an error naming the file, not a panic
    let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = Command::new(nsl).arg("eval").arg(&cut).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cut.safetensors") && !err.contains("panicked"), "{err}");
}
