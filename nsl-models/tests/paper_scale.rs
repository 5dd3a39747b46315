//! The paper-scale settings of `cargo xtask repro --scale paper` that smoke runs do not
//! exercise: top-5 counting, configurable weight decay, the MAML schedule, the few-shot
//! normalisation, and configs and run ids from before these existed.

mod common;

use nsl_core::nn::Layer;
use nsl_core::Rng;
use nsl_cpu::Cpu;
use nsl_models::data::augment::Normalize;
use nsl_models::data::Dataset;
use nsl_models::repro::{experiments, FewShotMethod, Job, Metric, Scale, PAPER_META_SCHEDULE, SMOKE_META_SCHEDULE};
use nsl_models::train::{build_network, count_top_k, RunConfig, RunSummary};

#[test]
fn top_k_counts_ranks_by_hand() {
    // 3 rows of 6 classes
    #[rustfmt::skip]
    let logits = [
        0.0, 5.0, 4.0, 3.0, 2.0, 1.0, // label 1: rank 0
        6.0, 5.0, 4.0, 3.0, 2.0, 1.0, // label 5: rank 5 (last)
        1.0, 1.0, 1.0, 1.0, 1.0, 0.0, // label 3: ties with 0, 1, 2 → rank 3
    ];
    let labels = [1, 5, 3];
    assert_eq!(count_top_k(&logits, &labels, 6, 1), 1);
    assert_eq!(count_top_k(&logits, &labels, 6, 3), 1);
    assert_eq!(count_top_k(&logits, &labels, 6, 4), 2);
    assert_eq!(count_top_k(&logits, &labels, 6, 5), 2);
    assert_eq!(count_top_k(&logits, &labels, 6, 6), 3);
    // ties go to the lower class, as an argmax does: label 0 of an all-equal row is top-1
    assert_eq!(count_top_k(&[2.0, 2.0], &[0], 2, 1), 1);
    assert_eq!(count_top_k(&[2.0, 2.0], &[1], 2, 1), 0);
    assert_eq!(count_top_k(&[f32::NAN, 0.0], &[0], 2, 2), 0, "a NaN logit never counts");
}

#[test]
fn old_configs_and_summaries_parse_and_keep_their_toml() {
    // a config written before `weight_decay` existed
    let old = RunConfig::code_cifar().to_toml();
    assert!(!old.contains("weight_decay"), "unset weight decay stays out of the TOML (and of run ids)");
    let parsed = RunConfig::from_toml(&old).unwrap();
    assert_eq!(parsed.weight_decay, None);
    assert_eq!(parsed, RunConfig::code_cifar());
    let set = RunConfig { weight_decay: Some(1e-4), ..RunConfig::code_cifar() };
    assert!(set.to_toml().contains("weight_decay = "));
    assert_eq!(RunConfig::from_toml(&set.to_toml()).unwrap(), set);

    let summary = r#"{"network":"n","similarity":"conv","dataset":"d","params":1,"steps":2,"final_test_acc":0.5,
        "best_test_acc":0.5,"best_step":2,"final_train_loss":1.0,"wall_seconds":1.0,
        "train_images_per_second":0.0,"backend":"cpu","resumed_from":null}"#;
    let s: RunSummary = serde_json::from_str(summary).unwrap();
    assert_eq!(s.final_test_top5, None);
}

/// `(name, weight decay)` of every trainable filter and BN γ/β of the network of `cfg`.
fn decays(cfg: &RunConfig, classes: usize, hw: usize) -> Vec<(String, f32)> {
    let be = Cpu::with_threads(1);
    let mut net = build_network(&be, cfg, classes, [hw, hw, 3], &mut Rng::new(0)).unwrap();
    let mut out = Vec::new();
    net.visit_params(&mut |p| {
        let n = &p.name;
        if p.trainable && (n.ends_with(".weight") || n.ends_with(".bn.gamma") || n.ends_with(".bn.beta")) {
            out.push((p.name.clone(), p.weight_decay));
        }
    });
    assert!(!out.is_empty());
    out
}

#[test]
fn weight_decay_reaches_the_parameters() {
    let net = |network: &str, wd: Option<f32>| RunConfig {
        network: network.parse().unwrap(),
        width: 0.125,
        weight_decay: wd,
        ..RunConfig::code_cifar()
    };
    let all = |d: Vec<(String, f32)>, v: f32| assert!(d.iter().all(|(_, w)| *w == v), "{d:?} not all {v}");
    // unset: each network's own value (CNN-10 1e-4, CNN-9 and CNN-9++ 5e-4, CNN-4 none)
    all(decays(&net("cnn10", None), 10, 32), 1e-4);
    all(decays(&net("cnn9", None), 10, 32), 5e-4);
    all(decays(&net("cnn9pp", None), 10, 32), 5e-4);
    all(decays(&net("cnn4", None), 5, 16), 0.0);
    // set: every filter and BN
    for network in ["cnn10", "cnn9", "cnn9pp", "cnn4", "cnn9-wide-attention"] {
        all(decays(&net(network, Some(3e-4)), 10, 32), 3e-4);
    }
    // SphereConv filters never decay; their BNs and the score layer take the value
    let sphere = decays(&net("spherenet9", Some(3e-4)), 10, 32);
    for (name, w) in &sphere {
        let expected =
            if name.starts_with("conv") && name.ends_with(".weight") || name.starts_with("fc6") { 0.0 } else { 3e-4 };
        assert_eq!(*w, expected, "{name}");
    }
    assert!(sphere.iter().any(|(_, w)| *w == 0.0) && sphere.iter().any(|(_, w)| *w == 3e-4));
}

#[test]
fn paper_scale_rows_carry_the_spec_settings_and_smoke_keeps_its_own() {
    for scale in [Scale::Smoke, Scale::Paper] {
        for row in experiments(scale) {
            match (&row.job, row.table) {
                (Job::Train(c), "table5") => {
                    assert_eq!(row.metric, Metric::Top1Error);
                    assert!(row.paper_top5.is_some(), "Table 5 reports top-5 too");
                    let wd = if scale == Scale::Paper { Some(1e-4) } else { None };
                    assert_eq!(c.weight_decay, wd, "{}", row.label);
                }
                (Job::Train(c), _) => assert_eq!(c.weight_decay, None, "{}", row.label),
                (Job::FewShot { pretrain, method, meta_steps, meta_batch, queries, .. }, _) => {
                    let (schedule, normalize) = match scale {
                        Scale::Paper => (PAPER_META_SCHEDULE, "mean-std"),
                        _ => (SMOKE_META_SCHEDULE, "centered"),
                    };
                    assert_eq!((*meta_steps, *meta_batch), schedule, "{}", row.label);
                    assert_eq!(pretrain.normalize.to_string(), normalize);
                    assert_eq!(*queries, 15);
                    if *method == FewShotMethod::MetaLearnedStaticNsn && scale == Scale::Paper {
                        assert_eq!((*meta_steps, *meta_batch), (60_000, 4), "spec §5.6: 4 tasks, about 60k iterations");
                    }
                }
            }
        }
    }
    assert_eq!(SMOKE_META_SCHEDULE, (10, 4));
}

#[test]
fn mean_std_of_a_split_by_hand() {
    // three 1×1 RGB images; the split is images 0 and 2
    let d = Dataset::new("t", vec![0, 10, 20, 99, 99, 99, 4, 10, 40], vec![0, 1, 0], 2, [1, 1, 3]);
    let Normalize::MeanStd(mean, std) = Normalize::mean_std_of_images(&d, [0, 2]) else { panic!() };
    assert_eq!(mean, [2.0, 10.0, 30.0]);
    assert_eq!(std[0], 2.0);
    assert_eq!(std[1], 1e-3, "a constant channel gets a tiny, non-zero std");
    assert_eq!(std[2], 10.0);
    assert_eq!(Normalize::mean_std_of(&d), Normalize::mean_std_of_images(&d, 0..3));
}

#[test]
fn run_ids_stay_stable() {
    // A run's folder is a hash of its config, so finished runs are found and reused: a refactor
    // must not change them. Pinned when the smoke rows moved to the embedded Fashion-MNIST and the
    // few-shot rows to PyTorch's BN momentum, and the real tier's ids when its first runs were made.
    for (scale, rows) in [
        (
            Scale::Smoke,
            &[
                ("table1 CIFAR-10 Baseline CNN", "fashion-mnist-embedded-cnn9-conv-9ee46966"),
                ("table4 CIFAR-100 Baseline CNN++", "synthetic100-cnn9pp-conv-404f9b83"),
                ("table5 ImageNet Baseline CNN", "fashion-mnist-embedded-cnn10-conv-19b0dd61"),
                ("table5 ImageNet Dynamic NSN w/ DNS", "fashion-mnist-embedded-cnn10-dynamic-dns-7eb72504"),
                ("table6 mini-ImageNet Finetuning Baseline", "fewshot-finetunebaseline-90c49316"),
                (
                    "table6 mini-ImageNet Meta-learned static NSN (second-order MAML)",
                    "fewshot-metalearnedstaticnsn-21bdfbd4",
                ),
                ("table6 mini-ImageNet Dynamic NSN", "fewshot-dynamicnsn-9d03844c"),
                (
                    "table8 CIFAR-10 SphereNet w/ self-attention",
                    "fashion-mnist-embedded-spherenet9-attention-conv-0d3ea0fb",
                ),
            ][..],
        ),
        (Scale::Real, &[("table4 CIFAR-10 Baseline CNN", "fashion-mnist-cnn9-conv-cff328bd")][..]),
    ] {
        let ids: Vec<(String, String)> =
            experiments(scale).iter().map(|r| (format!("{} {} {}", r.table, r.column, r.label), r.run_id(0))).collect();
        for (row, id) in rows {
            assert!(ids.iter().any(|(r, i)| r == row && i == id), "{row}: {:?}", ids.iter().find(|(r, _)| r == row));
        }
    }
}

#[test]
fn table5_reports_top5_next_to_top1() {
    use nsl_models::repro::{write_report, ReportHeader, RowResult};
    let row = experiments(Scale::Paper).into_iter().find(|r| r.table == "table5").unwrap();
    let result = RowResult {
        row,
        values: vec![40.0, 42.0],
        seeds: vec![0, 1],
        top5_errors: vec![18.0, 19.0],
        ci95: None,
        params: Some(1),
        weights: None,
        wall_seconds: 0.0,
        runs: vec![],
        note: None,
    };
    let out = common::TestDir::new("top5-report");
    let header = ReportHeader {
        command: "t".into(),
        git_revision: "r".into(),
        scale: "paper".into(),
        seeds: 2,
        backend: "cpu".into(),
        machine: "m".into(),
        wall_seconds: 0.0,
    };
    let md = std::fs::read_to_string(write_report(&out, &header, &[result]).unwrap()).unwrap();
    let line = md.lines().find(|l| l.starts_with("| Baseline CNN |")).unwrap();
    assert!(line.contains("| 42.72 (19.11) |"), "paper top-1 (top-5): {line}");
    assert!(line.contains("| 41.00 ± 1.41 (18.50) |"), "ours: mean ± std (mean top-5): {line}");
    let _ = std::fs::remove_dir_all(&out);
}
