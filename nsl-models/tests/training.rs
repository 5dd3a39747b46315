//! Training runs: bit-exact resume, clear errors on bad checkpoints and divergence, folding.

mod common;

use std::path::Path;

use nsl_core::nn::Layer;
use nsl_core::Rng;
use nsl_cpu::Cpu;
use nsl_models::checkpoint;
use nsl_models::train::{build_network, train, Error, Resume, RunConfig, RunDir, RunOptions};

fn tiny(similarity: &str) -> RunConfig {
    RunConfig {
        network: "cnn4".parse().unwrap(),
        similarity: similarity.parse().unwrap(),
        dataset: "synthetic".parse().unwrap(),
        synthetic_train: 256,
        synthetic_test: 64,
        iterations: 6,
        batch_size: 32,
        lr: 0.01,
        milestones: vec![4],
        eval_every: 3,
        checkpoint_every: 2,
        ..RunConfig::code_cifar()
    }
}

fn opts(dir: &Path, resume: bool, stop_at: Option<u64>) -> RunOptions {
    let resume = if resume { Resume::IfPresent } else { Resume::No };
    RunOptions { out_dir: dir.to_path_buf(), resume, progress: false, stop_at }
}

fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, t)| (n, t.data().to_vec())).collect();
    v.sort();
    v
}

fn tempdir(name: &str) -> common::TestDir {
    common::TestDir::new(name)
}

#[test]
fn resume_equals_uninterrupted_run_bitwise() {
    let be = Cpu::with_threads(2);
    for similarity in ["dynamic-dns", "static-uns"] {
        let cfg = tiny(similarity);
        let straight = tempdir(&format!("straight-{similarity}"));
        let killed = tempdir(&format!("killed-{similarity}"));
        let a = train(&be, &cfg, &opts(&straight, false, None)).unwrap();
        let stopped = train(&be, &cfg, &opts(&killed, false, Some(3))).unwrap();
        assert_eq!(stopped.steps, 3);
        let b = train(&be, &cfg, &opts(&killed, true, None)).unwrap();
        assert_eq!(b.resumed_from, Some(3));
        assert_eq!(a.final_test_acc, b.final_test_acc);
        // top-5 is recorded next to top-1 (10 classes: at least as high)
        let top5 = a.final_test_top5.expect("training runs record top-5");
        assert!(top5 >= a.final_test_acc && top5 <= 1.0 && b.final_test_top5 == Some(top5));
        let metrics = std::fs::read_to_string(straight.join("metrics.jsonl")).unwrap();
        assert!(metrics.lines().filter(|l| l.contains("test_acc")).all(|l| l.contains("\"test_top5\"")));
        let (ta, tb) =
            (tensors(&straight.join("checkpoint.safetensors")), tensors(&killed.join("checkpoint.safetensors")));
        assert_eq!(ta.len(), tb.len());
        for ((na, da), (nb, db)) in ta.iter().zip(&tb) {
            assert_eq!(na, nb);
            assert!(da == db, "{similarity}: tensor {na} differs after resume");
        }
        // the metrics of the resumed run hold each step once
        let metrics = std::fs::read_to_string(killed.join("metrics.jsonl")).unwrap();
        assert_eq!(metrics.lines().filter(|l| l.contains("\"loss\"")).count(), 6);
    }
}

/// Checkpoints record what decides a run's bits besides its config (the backend without its
/// thread count); resuming on a backend that computes differently (here: flushing subnormals)
/// still trains, with a warning on stderr, and the next checkpoint records the new backend.
#[test]
fn checkpoints_record_the_backend_and_a_changed_one_still_resumes() {
    let cfg = tiny("conv");
    let dir = tempdir("backend-change");
    let ckpt = dir.join("checkpoint.safetensors");
    train(&Cpu::with_threads(2), &cfg, &opts(&dir, false, Some(4))).unwrap();
    let backend = checkpoint::read_meta(&ckpt).unwrap().extra["backend"].clone();
    assert!(backend.starts_with("cpu (") && !backend.contains("thread"), "{backend}");
    let flushing = Cpu::with_threads(1).with_flush_denormals(true);
    let resumed = train(&flushing, &cfg, &opts(&dir, true, None)).unwrap();
    assert_eq!(resumed.resumed_from, Some(4));
    let now = checkpoint::read_meta(&ckpt).unwrap().extra["backend"].clone();
    assert_eq!(now.ends_with(", subnormals flushed)"), nsl_cpu::float_mode::SUPPORTED, "{now}");
}

/// Running a finished run again (e.g. `nsl quickstart` twice) trains nothing and reports what
/// the run recorded; without its summary, the final metrics come from its metrics log.
/// A resumed run's wall time counts the time before the kill, as `time.json` recorded it beside
/// the checkpoint; a `time.json` of another step (a kill between the two writes) counts nothing.
#[test]
fn a_resumed_run_counts_its_earlier_training_time() {
    let be = Cpu::with_threads(2);
    let cfg = tiny("conv");
    for (recorded_step, counted) in [(4, true), (3, false)] {
        let dir = tempdir(&format!("time-{recorded_step}"));
        train(&be, &cfg, &opts(&dir, false, Some(4))).unwrap();
        let time: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("time.json")).unwrap()).unwrap();
        assert_eq!(time["step"], 4, "time.json is written with the checkpoint");
        RunDir::new(&*dir).write_time(recorded_step, 1e6).unwrap();
        let resumed = train(&be, &cfg, &opts(&dir, true, None)).unwrap();
        assert_eq!(resumed.resumed_from, Some(4));
        assert_eq!(resumed.wall_seconds >= 1e6, counted, "step {recorded_step}: {}", resumed.wall_seconds);
        assert_eq!(RunDir::new(&*dir).read_summary().unwrap().wall_seconds, resumed.wall_seconds);
    }
}

#[test]
fn rerunning_a_finished_run_reports_its_results() {
    let be = Cpu::with_threads(2);
    let cfg = tiny("conv");
    let dir = tempdir("rerun-finished");
    let first = train(&be, &cfg, &opts(&dir, true, None)).unwrap();
    assert!(first.final_test_acc.is_finite() && first.train_images_per_second > 0.0);
    let again = train(&be, &cfg, &opts(&dir, true, None)).unwrap();
    assert_eq!(again, first);
    assert_eq!(RunDir::new(&*dir).read_summary(), Some(first.clone()), "summary.json kept");
    std::fs::remove_file(dir.join("summary.json")).unwrap();
    let from_log = train(&be, &cfg, &opts(&dir, true, None)).unwrap();
    assert_eq!(from_log.resumed_from, Some(cfg.iterations));
    assert_eq!(
        (from_log.final_test_acc, from_log.final_test_top5, from_log.final_train_loss, from_log.best_test_acc),
        (first.final_test_acc, first.final_test_top5, first.final_train_loss, first.best_test_acc)
    );
}

#[test]
fn truncated_checkpoint_gives_a_clear_error_and_changes_nothing() {
    let be = Cpu::with_threads(1);
    let dir = tempdir("truncated");
    train(&be, &tiny("conv"), &opts(&dir, false, Some(2))).unwrap();
    let path = dir.join("checkpoint.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let cfg = tiny("conv");
    let mut net = build_network(&be, &cfg, 10, [32, 32, 3], &mut Rng::new(0)).unwrap();
    let before: Vec<f32> = {
        let mut v = vec![];
        net.visit_params(&mut |p| v.extend(p.value.to_vec(&be)));
        v
    };
    let err = checkpoint::load(&be, &path, &mut net, None).unwrap_err().to_string();
    assert!(err.contains("checkpoint.safetensors") && err.contains("truncated"), "{err}");
    let mut after = vec![];
    net.visit_params(&mut |p| after.extend(p.value.to_vec(&be)));
    assert_eq!(before, after, "a failed load must leave the network untouched");
    // resume from it: the run reports the file, it does not panic
    let err = train(&be, &cfg, &opts(&dir, true, None)).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn wrong_shape_checkpoint_names_the_tensor() {
    let be = Cpu::with_threads(1);
    let dir = tempdir("shape");
    train(&be, &tiny("conv"), &opts(&dir, false, Some(1))).unwrap();
    let mut other = build_network(
        &be,
        &RunConfig { network: "cnn9".parse().unwrap(), ..tiny("conv") },
        10,
        [32, 32, 3],
        &mut Rng::new(0),
    )
    .unwrap();
    let err = checkpoint::load(&be, &dir.join("checkpoint.safetensors"), &mut other, None).unwrap_err().to_string();
    assert!(err.contains("has no tensor") || err.contains("has shape"), "{err}");
}

#[test]
fn divergence_stops_with_step_and_layer_and_keeps_the_last_checkpoint() {
    let be = Cpu::with_threads(1);
    let dir = tempdir("nan");
    let cfg = RunConfig { lr: f32::MAX, warmup: 0, iterations: 40, checkpoint_every: 1, ..tiny("conv") };
    match train(&be, &cfg, &opts(&dir, false, None)) {
        Err(Error::NonFinite { step, culprit, last_checkpoint }) => {
            assert!(step >= 1, "step 0 cannot diverge: weights are finite at init");
            // the loss, or (caught at the checkpoint) a weight the update made non-finite
            assert!(culprit.contains("loss is") || culprit.contains("after the update tensor"), "{culprit}");
            let (path, at) = last_checkpoint.expect("a checkpoint was written before divergence");
            assert!(at <= step && at + 1 >= step, "checkpoint {at}, divergence {step}");
            // the last good checkpoint is intact, loadable and finite
            let mut net = build_network(&be, &cfg, 10, [32, 32, 3], &mut Rng::new(0)).unwrap();
            checkpoint::load(&be, &path, &mut net, None).unwrap();
            assert_eq!(nsl_models::train::first_non_finite(&be, &mut net), None);
        }
        other => panic!("expected divergence, got {other:?}"),
    }
}

#[test]
fn folded_static_network_has_identical_accuracy() {
    let be = Cpu::with_threads(1);
    let cfg = RunConfig { iterations: 3, ..tiny("static-uns") };
    let dir = tempdir("fold");
    train(&be, &cfg, &opts(&dir, false, None)).unwrap();
    let (_, test) = nsl_models::train::load_data(&cfg).unwrap();
    let mut net = build_network(&be, &cfg, 10, [32, 32, 3], &mut Rng::new(0)).unwrap();
    checkpoint::load(&be, &dir.join("checkpoint.safetensors"), &mut net, None).unwrap();
    let norm = nsl_models::data::augment::Normalize::Raw;
    let before = nsl_models::train::evaluate(&be, &mut net, &test, &norm, 16, false).unwrap();
    net.fold(&be).unwrap();
    let after = nsl_models::train::evaluate(&be, &mut net, &test, &norm, 16, false).unwrap();
    assert_eq!(before, after);
    // and the folded network is a plain CNN: it loads into one
    let path = dir.join("folded.safetensors");
    checkpoint::save(&be, &path, &mut net, None, &checkpoint::Meta::default()).unwrap();
    let mut plain = build_network(&be, &tiny("conv"), 10, [32, 32, 3], &mut Rng::new(5)).unwrap();
    checkpoint::load(&be, &path, &mut plain, None).unwrap();
    assert_eq!(nsl_models::train::evaluate(&be, &mut plain, &test, &norm, 16, false).unwrap(), before);
}

#[test]
fn dynamic_network_cannot_fold() {
    let be = Cpu::with_threads(1);
    let mut net = build_network(&be, &tiny("dynamic-dns"), 10, [32, 32, 3], &mut Rng::new(0)).unwrap();
    let err = net.fold(&be).unwrap_err();
    assert!(err.contains("dynamic DNS") && err.contains("cannot fold"), "{err}");
}

#[test]
fn debiased_evaluation_restores_the_shadows() {
    use nsl_core::nn::{Layer, Mode};
    let be = Cpu::with_threads(1);
    let cfg = tiny("dynamic-dns");
    let (train_set, test) = nsl_models::train::load_data(&cfg).unwrap();
    let mut net = build_network(&be, &cfg, 10, [32, 32, 3], &mut Rng::new(0)).unwrap();
    let batch = nsl_models::data::loader::eval_batches(&train_set, 32, &nsl_models::data::augment::Normalize::Raw)
        .next()
        .unwrap()
        .unwrap();
    let x = nsl_core::Tensor::from_vec(&be, &batch.shape, &batch.images);
    net.forward(&be, &x, Mode::TRAIN); // one EMA update: shadows hold 0.1% of the batch statistics
    let snapshot = |net: &mut nsl_models::nets::Network<Cpu>| {
        let mut v = vec![];
        net.visit_params(&mut |p| v.extend(p.value.to_vec(&be)));
        v
    };
    let before = snapshot(&mut net);
    let norm = nsl_models::data::augment::Normalize::Raw;
    let raw = nsl_models::train::evaluate(&be, &mut net, &test, &norm, 16, false).unwrap();
    let debiased = nsl_models::train::evaluate(&be, &mut net, &test, &norm, 16, true).unwrap();
    assert_eq!(before, snapshot(&mut net), "evaluation must leave every tensor as it was");
    let counts: Vec<f32> = {
        let mut c = vec![];
        net.visit_params(&mut |p| {
            if p.name.ends_with(".ema_count") {
                c.push(p.value.to_vec(&be)[0])
            }
        });
        c
    };
    assert!(counts.iter().all(|&n| n == 1.0), "{counts:?}");
    assert!(raw.top1.is_finite() && debiased.top1.is_finite());
}

#[test]
fn zero_predictor_gamma_makes_every_dynamic_layer_start_as_plain_conv() {
    use nsl_core::nn::Mode;
    use nsl_core::Tensor;
    let be = Cpu::with_threads(2);
    let x: Vec<f32> = (0..2 * 32 * 32 * 3).map(|i| ((i * 37) % 251) as f32).collect();
    let x = Tensor::from_vec(&be, &[2, 32, 32, 3], &x);
    for (network, similarity, predictors) in
        [("cnn9", "dynamic-dns", 9), ("cnn9", "shared-dns", 1), ("cnn4", "dynamic-dns-full-sphere", 4)]
    {
        let cfg =
            RunConfig { network: network.parse().unwrap(), predictor_gamma: 0.0, width: 0.25, ..tiny(similarity) };
        let mut net = build_network(&be, &cfg, 10, [32, 32, 3], &mut Rng::new(1)).unwrap();
        let mut set = 0;
        net.visit_params(&mut |p| {
            if p.name.ends_with("pred.bn2.gamma") {
                assert!(p.value.to_vec(&be).iter().all(|&g| g == 0.0), "{}", p.name);
                set += 1;
            }
        });
        assert_eq!(set, predictors, "{network} {similarity}");
        // with γ = 0 the predictor's output is ignored (M = I): scrambling m2 changes nothing
        let before = net.forward(&be, &x, Mode::TRAIN).to_vec(&be);
        net.visit_params(&mut |p| {
            if p.name.contains("pred.m2") {
                let v: Vec<f32> = (0..p.value.numel()).map(|i| (i % 7) as f32 - 3.0).collect();
                p.value = Tensor::from_vec(&be, p.value.shape(), &v);
            }
        });
        assert_eq!(before, net.forward(&be, &x, Mode::TRAIN).to_vec(&be), "{network} {similarity}");
        // and with the code's γ = 1 it does not
        net.set_predictor_output_gamma(&be, 1.0);
        assert_ne!(before, net.forward(&be, &x, Mode::TRAIN).to_vec(&be), "{network} {similarity}");
    }
}

#[test]
fn similarity_variants_share_the_backbone_init_of_their_seed() {
    use nsl_core::nn::Mode;
    use nsl_core::Tensor;
    // Direct convolutions only: the plain network's would otherwise run as Winograd convolutions
    // and the dynamic ones (patch-scaled) directly, equal up to rounding but not bit for bit.
    // The dynamic ones still differ by rounding on maps at least 32 wide, where the scaled
    // convolution sums each tap's product on its own before scaling it (`Σ_t s_t·(Σ_c x·w)`,
    // `Cpu::sums_scaled_taps_separately`): those are compared to 1e-5 of the largest logit,
    // far below what a different backbone init would change.
    let be = Cpu::with_threads(2).with_winograd(false);
    let x: Vec<f32> = (0..2 * 32 * 32 * 3).map(|i| ((i * 53) % 241) as f32).collect();
    let x = Tensor::from_vec(&be, &[2, 32, 32, 3], &x);
    for network in ["cnn9", "cnn4"] {
        let output = |similarity: &str| {
            let cfg =
                RunConfig { network: network.parse().unwrap(), predictor_gamma: 0.0, width: 0.25, ..tiny(similarity) };
            let mut net = build_network(&be, &cfg, 10, [32, 32, 3], &mut Rng::new(7)).unwrap();
            net.forward(&be, &x, Mode::TRAIN).to_vec(&be)
        };
        let plain = output("conv");
        // all-ones static DNS, identity static UNS and γ = 0 dynamic DNS are the identity at init
        for similarity in ["static-dns-ones", "static-uns", "dynamic-dns", "dynamic-dns-cnn", "shared-dns"] {
            if network == "cnn4" && similarity == "shared-dns" {
                continue;
            }
            let out = output(similarity);
            if similarity.starts_with("static") {
                assert_eq!(plain, out, "{network} {similarity}");
            } else {
                let scale = plain.iter().fold(0f32, |m, v| m.max(v.abs()));
                let worst = plain.iter().zip(&out).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(worst <= 1e-5 * scale, "{network} {similarity}: {worst} off ({plain:?} vs {out:?})");
            }
        }
        assert_ne!(
            plain,
            output("static-dns"),
            "{network}: the code's DNS init [1,0,0,0,1,0,0,0,1] is not the identity"
        );
    }
}

#[test]
fn identical_runs_write_identical_checkpoint_bytes() {
    let be = Cpu::with_threads(2);
    let (a, b) = (tempdir("bytes-a"), tempdir("bytes-b"));
    for dir in [&a, &b] {
        train(&be, &tiny("static-dns"), &opts(dir, false, None)).unwrap();
    }
    let read = |d: &Path| std::fs::read(d.join("checkpoint.safetensors")).unwrap();
    assert!(read(&a) == read(&b), "two identical runs must write the same bytes");
    // and the file is a valid safetensors file with the metadata
    let bytes = read(&a);
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(file.tensor("conv0.weight").is_ok());
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(header.metadata().as_ref().unwrap()["step"], "6");
}

/// The CPU backend chunks work by problem size only, so a whole run — Winograd and direct
/// convolutions, the dynamic predictor, batch-norm statistics, the optimiser — gives the same
/// bits on 1 and 3 threads.
#[test]
fn runs_are_bitwise_identical_for_any_thread_count() {
    for similarity in ["conv", "dynamic-dns"] {
        let run = |threads: usize| {
            let dir = tempdir(&format!("threads-{similarity}-{threads}"));
            train(&Cpu::with_threads(threads), &tiny(similarity), &opts(&dir, false, None)).unwrap();
            (tensors(&dir.join("checkpoint.safetensors")), std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap())
        };
        let ((w1, m1), (w3, m3)) = (run(1), run(3));
        let losses = |m: &str| m.lines().filter(|l| l.contains("\"loss\"")).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(losses(&m1), losses(&m3), "{similarity}: losses differ between 1 and 3 threads");
        assert_eq!(w1.len(), w3.len());
        for ((n1, d1), (_, d3)) in w1.iter().zip(&w3) {
            assert!(d1 == d3, "{similarity}: tensor {n1} differs between 1 and 3 threads");
        }
    }
}

#[test]
fn a_failed_write_leaves_no_temp_file() {
    let dir = tempdir("atomic");
    let target = dir.join("occupied");
    std::fs::create_dir(&target).unwrap(); // a folder where the file should go: the rename fails
    std::fs::write(target.join("keep"), b"x").unwrap();
    let err = nsl_models::files::write_atomic(&target, b"data").unwrap_err();
    assert!(!dir.join("occupied.tmp").exists(), "{err}");
    assert!(target.join("keep").exists());
}

#[test]
fn summaries_round_trip_exactly() {
    let be = Cpu::with_threads(1);
    let dir = tempdir("summary-roundtrip");
    let mut s = train(&be, &tiny("conv"), &opts(&dir, false, None)).unwrap();
    // a measured rate whose shortest decimal form needs 17 digits to read back the same f64
    s.train_images_per_second = 9947.272811253963; // read back as …964 without float_roundtrip
    s.wall_seconds = 0.1 + 0.2;
    let rd = RunDir::new(&*dir);
    rd.write_summary(&s).unwrap();
    assert_eq!(rd.read_summary(), Some(s));
}

/// A device failure mid-run (here injected at the fifth status check: the step check of step 4,
/// after the checkpoint of step 2) stops the run with an error that names the cause and the way
/// on, writes no checkpoint after it, and the run resumes from the last good checkpoint to the
/// same weights as a run that never failed. Without the per-step check the run would finish.
#[test]
fn a_device_failure_stops_the_run_and_keeps_the_last_checkpoint() {
    use nsl_core::conformance::FailingDevice;
    let cfg = RunConfig { eval_every: 100, ..tiny("static-dns") };
    let straight = tempdir("device-straight");
    let failed = tempdir("device-failed");
    let good = Cpu::with_threads(2);
    train(&good, &cfg, &opts(&straight, false, None)).unwrap();

    let failing = FailingDevice::new(Cpu::with_threads(2), 5);
    let err = train(&failing, &cfg, &opts(&failed, false, None)).expect_err("the failure stops the run");
    let msg = err.to_string();
    assert!(matches!(err, Error::Backend(_)), "{msg}");
    assert!(msg.contains("device failed") && msg.contains("--resume"), "{msg}");
    let ckpt = failed.join("checkpoint.safetensors");
    assert_eq!(checkpoint::read_meta(&ckpt).unwrap().step, 2, "the checkpoint of step 2 is the last one");
    let metrics = std::fs::read_to_string(failed.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("\"loss\"")).count(), 3, "steps 1-3 were logged, not 4");

    let resumed = train(&good, &cfg, &opts(&failed, true, None)).unwrap();
    assert_eq!(resumed.resumed_from, Some(2));
    assert_eq!(tensors(&ckpt), tensors(&straight.join("checkpoint.safetensors")));
}

/// A checkpoint is never written from a failed device's read-backs: the file there is unchanged.
#[test]
fn a_failed_device_writes_no_checkpoint() {
    use nsl_core::conformance::FailingDevice;
    let dir = tempdir("device-no-checkpoint");
    let cfg = tiny("conv");
    let be = FailingDevice::new(Cpu::with_threads(1), 1);
    let mut net = build_network(&be, &cfg, 10, [32, 32, 3], &mut Rng::new(0)).unwrap();
    let path = dir.join("checkpoint.safetensors");
    std::fs::write(&path, b"the previous checkpoint").unwrap();
    let err = checkpoint::save(&be, &path, &mut net, None, &checkpoint::Meta::default()).expect_err("refused");
    assert!(matches!(err, checkpoint::CheckpointError::Device { .. }), "{err}");
    assert!(err.to_string().contains("not written"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"the previous checkpoint");
}
