//! The `nsl` binary fed what a careless or unlucky user feeds it (issue 19's probes; the table
//! in `nsl-models/RELIABILITY.md` lists each with the test here that holds it). Every bad input
//! must end in exit status 1 with a message naming the cause, never a panic.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use nsl_models::train::{RunConfig, RunDir};

fn nsl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nsl")).args(["--threads", "2"]).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `args` fail with status 1 and a message holding every one of `needles`.
fn refused(args: &[&str], needles: &[&str]) -> String {
    let out = nsl(args);
    let err = stderr(&out);
    // 1: nsl refused the input; 2: the argument parser did (unknown flag or value)
    assert!(matches!(out.status.code(), Some(1 | 2)), "{args:?} should fail cleanly: {err}");
    assert!(!err.contains("internal error") && !err.contains("panicked"), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` missing from: {err}");
    }
    err
}

/// A tiny synthetic run (seconds): CNN-4 on 64 synthetic images, with `set` replacing or adding
/// `key = value` lines. Returns the file's path.
fn tiny_toml(dir: &Path, set: &[(&str, &str)]) -> String {
    let mut lines = vec![
        ("network", "\"cnn4\""),
        ("dataset", "\"synthetic\""),
        ("synthetic_train", "64"),
        ("synthetic_test", "32"),
        ("width", "0.25"),
        ("iterations", "4"),
        ("batch_size", "16"),
        ("warmup", "0"),
        ("milestones", "[]"),
        ("eval_every", "2"),
        ("checkpoint_every", "2"),
    ];
    for &(k, v) in set {
        match lines.iter_mut().find(|(key, _)| *key == k) {
            Some(line) => line.1 = v,
            None => lines.push((k, v)),
        }
    }
    let text: String = lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    let path = dir.join(format!("run-{:08x}.toml", text.bytes().fold(0u32, |h, b| h.rotate_left(5) ^ u32::from(b))));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn out_of_range_settings_are_refused_naming_the_field() {
    for (flags, field) in [
        (&["--batch-size", "0"][..], "`batch_size`"),
        (&["--width", "0"], "`width`"),
        (&["--width", "nan"], "`width`"),
        (&["--width=-1"], "`width`"),
        (&["--iterations", "0"], "`iterations`"),
        (&["--eval-every", "0"], "`eval_every`"),
        (&["--checkpoint-every", "0"], "`checkpoint_every`"),
        (&["--milestones", "5,1"], "`milestones`"),
        (&["--l1=-1"], "`l1`"),
        (&["--predictor-gamma", "nan"], "`predictor_gamma`"),
        (&["--bn-decay", "1.5"], "`bn_decay`"),
        (&["--lr", "inf"], "`lr`"),
        // config.toml holds i64 integers (found by tests/fuzz_inputs.rs: it used to panic)
        (&["--seed", "18446744073709551615"], "`seed`"),
        (&["--iterations", "9223372036854775808"], "`iterations`"),
    ] {
        let args: Vec<&str> = ["train", "--out", "/nonexistent/never-written"].iter().chain(flags).copied().collect();
        refused(&args, &[field]);
    }
    // unknown names list the known ones
    refused(&["train", "--network", "resnet"], &["resnet", "cnn9"]);
    refused(&["train", "--similarity", "fancy"], &["fancy", "dynamic-dns"]);
}

#[test]
fn config_files_are_validated_like_flags() {
    let dir = common::TestDir::new("probe-toml");
    let out = dir.join("x").display().to_string();
    for (set, field) in [
        (&[("eval_batch", "0")][..], "`eval_batch`"),
        (&[("smoothing", "5.0")], "`smoothing`"),
        (&[("lr_decay", "-3.0")], "`lr_decay`"),
        (&[("synthetic_test", "0")], "`synthetic_test`"),
        (&[("dataset", "\"imagenet\""), ("augment", "\"pad-crop-flip\"")], "`augment`"),
        (&[("normalize", "\"mean-std\"")], "`normalize`"),
    ] {
        refused(&["train", "--config", &tiny_toml(&dir, set), "--out", &out], &[field]);
    }
    // a file that is not TOML, or is not there, names itself
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "iterations = [oops").unwrap();
    refused(&["train", "--config", &bad.display().to_string()], &["bad.toml"]);
    refused(&["train", "--config", &dir.join("missing.toml").display().to_string()], &["missing.toml", "not found"]);
}

#[test]
fn an_empty_config_means_the_cli_defaults() {
    let dir = common::TestDir::new("probe-empty");
    let empty = dir.join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let out_dir = dir.join("run");
    let out = nsl(&[
        "train",
        "--quiet",
        "--config",
        &empty.display().to_string(),
        "--iterations",
        "2",
        "--width",
        "0.125",
        "--warmup",
        "0",
        "--milestones",
        "1",
        "--eval-every",
        "2",
        "--out",
        &out_dir.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = RunDir::new(&out_dir).read_config().unwrap().unwrap();
    let defaults = RunConfig::default();
    assert_eq!((cfg.dataset, cfg.normalize, cfg.bn_decay), (defaults.dataset, defaults.normalize, defaults.bn_decay));
}

#[test]
fn threads_beyond_the_machine_are_refused_at_once() {
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_nsl")).args(["--threads", "100000", "train"]).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--threads") && err.contains("cores"), "{err}");
    assert!(started.elapsed().as_secs() < 20, "refusing must not hang");
}

#[test]
fn resume_reads_the_run_folder_and_allows_only_safe_changes() {
    let dir = common::TestDir::new("probe-resume");
    let run = dir.join("run").display().to_string();
    let cfg = tiny_toml(&dir, &[]);
    let out = nsl(&["train", "--quiet", "--config", &cfg, "--out", &run]);
    assert!(out.status.success(), "{}", stderr(&out));
    // a bare --resume continues with the folder's own config; more iterations and a lower lr
    // (the advice printed after a divergence) are accepted
    let out = nsl(&["train", "--quiet", "--out", &run, "--resume", "--iterations", "6", "--lr", "0.001"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = RunDir::new(&run).read_summary().unwrap();
    assert_eq!((summary.steps, summary.resumed_from), (6, Some(4)));
    // a setting that would change what was trained is refused, naming it
    refused(&["train", "--out", &run, "--resume", "--width", "0.5"], &["`width`", "0.25", "0.5", "may change"]);
    // --resume where there is nothing to resume, and a new run over a finished one
    let empty = dir.join("empty").display().to_string();
    refused(&["train", "--out", &empty, "--resume"], &["no checkpoint.safetensors", "drop --resume"]);
    refused(&["train", "--config", &cfg, "--out", &run], &["already holds a finished run", "--resume"]);
}

/// Replace the first value of tensor `name` in a safetensors file by NaN.
fn plant_nan(path: &Path, name: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize + 8 + header_len;
    bytes[start..start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn non_finite_weights_in_a_checkpoint_are_refused() {
    let dir = common::TestDir::new("probe-nan");
    let run = dir.join("run");
    let cfg = tiny_toml(&dir, &[]);
    let out = nsl(&["train", "--quiet", "--config", &cfg, "--out", &run.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    plant_nan(&run.join("checkpoint.safetensors"), "conv1.weight");
    let run = run.display().to_string();
    refused(&["eval", &run], &["conv1.weight", "NaN"]);
    refused(&["train", "--out", &run, "--resume", "--iterations", "8"], &["conv1.weight", "NaN"]);
}

#[test]
fn fold_keeps_the_training_checkpoint_and_names_the_plain_network() {
    let dir = common::TestDir::new("probe-fold");
    let run = dir.join("run");
    let cfg = tiny_toml(&dir, &[("similarity", "\"static-dns\"")]);
    let out = nsl(&["train", "--quiet", "--config", &cfg, "--out", &run.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ckpt = run.join("checkpoint.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    refused(&["fold", &ckpt.display().to_string(), "--out", &ckpt.display().to_string()], &["--out", "another"]);
    refused(&["fold", &run.display().to_string(), "--out", &ckpt.display().to_string()], &["--out"]);
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "the training checkpoint is untouched");
    let folded = dir.join("plain.safetensors");
    let out = nsl(&["fold", &ckpt.display().to_string(), "--out", &folded.display().to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&folded).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(meta["network"], "cnn4-conv");
    assert!(meta["folded_from"].contains("cnn4-static-dns"), "{meta:?}");
}

#[test]
fn errors_say_what_to_do() {
    let dir = common::TestDir::new("probe-os");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let cfg = tiny_toml(&dir, &[]);
    // a run folder under a file
    let err =
        refused(&["train", "--quiet", "--config", &cfg, "--out", &file.join("run").display().to_string()], &["a-file"]);
    assert!(err.contains("folder was expected") || err.contains("not found"), "{err}");
    // ImageNet on the command line brings its own augmentation: the error is the missing data
    let err = refused(&["train", "--dataset", "imagenet", "--data-dir", &dir.display().to_string()], &["imagenet"]);
    assert!(!err.contains("PadCropFlip") && !err.contains("augment"), "{err}");
    // a truncated checkpoint: no mention of an option that does not exist
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, b"\x10\0\0\0\0\0\0\0{\"a\":").unwrap();
    let err = refused(&["eval", &cut.display().to_string()], &["cut.safetensors"]);
    assert!(!err.contains("--checkpoint"), "{err}");
}

#[test]
fn help_shows_the_defaults_and_they_are_the_real_ones() {
    let out = nsl(&["train", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    let d = RunConfig::default();
    for shown in [
        format!("[default: {}", d.iterations),
        format!("[default: {}]", d.batch_size),
        format!("[default: {}", d.dataset),
        format!("[default: {}", d.lr),
        format!("[default: {}", d.network),
        format!("[default: {}", d.warmup),
        format!("[default: {}", d.eval_every),
        format!("[default: {}", d.bn_decay),
        format!("[default: {}]", d.seed),
        format!("[default: {}", d.milestones.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(",")),
    ] {
        assert!(help.contains(&shown), "`{shown}` missing from nsl train --help:\n{help}");
    }
    // a bare `nsl train` is minutes, not a 42,500-step full-width run
    assert!(d.iterations <= 2_000 && d.dataset.to_string() == "fashion-mnist-embedded");
}

#[test]
fn without_a_terminal_each_evaluation_prints_a_line() {
    let dir = common::TestDir::new("probe-lines");
    let cfg = tiny_toml(&dir, &[]);
    // no --quiet: the bar is hidden without a terminal, so lines take its place
    let out = nsl(&["train", "--config", &cfg, "--out", &dir.join("run").display().to_string()]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("step 2/4") && err.contains("step 4/4"), "{err}");
}
