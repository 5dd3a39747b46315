//! The experiment registry and the report writer.

mod common;

use nsl_models::repro::stats::{t_975, Paired, Verdict};
use nsl_models::repro::{experiments, summary_table, write_report, Job, ReportHeader, RowResult, Scale, TABLES};

#[test]
fn every_table_has_rows_at_every_scale_and_ids_are_consistent() {
    for scale in [Scale::Smoke, Scale::Real, Scale::Paper] {
        let rows = experiments(scale);
        for (table, _) in TABLES {
            // the real tier is Fashion-MNIST: it has no stand-in for ImageNet or mini-ImageNet
            let expected = scale != Scale::Real || !["table5", "table6"].contains(table);
            assert_eq!(rows.iter().any(|r| r.table == *table), expected, "{table} at {scale:?}");
        }
        // rows with the same job share a run folder; different jobs never do
        for a in &rows {
            for b in &rows {
                assert_eq!(a.job == b.job, a.run_id(0) == b.run_id(0), "{} / {}", a.label, b.label);
            }
            assert_ne!(a.run_id(0), a.run_id(1), "seeds get their own folders");
            assert!(!a.label.contains(','), "{}: `--rows` splits its labels at commas", a.label);
        }
    }
}

#[test]
fn smoke_runs_use_embedded_data_and_paper_runs_the_spec_recipe() {
    for row in experiments(Scale::Smoke) {
        if let Job::Train(c) = &row.job {
            // real images wherever the paper's data has a stand-in; synthetic for CIFAR-100
            let expected = if row.column == "CIFAR-100" { "synthetic100" } else { "fashion-mnist-embedded" };
            assert_eq!(c.dataset.to_string(), expected, "{} {}", row.label, row.column);
            assert!(c.iterations / c.eval_every >= 10, "{}: at least 10 points per curve", row.label);
        }
    }
    let paper = experiments(Scale::Paper);
    let baseline = paper.iter().find(|r| r.table == "table4" && r.column == "CIFAR-10").unwrap();
    let Job::Train(c) = &baseline.job else { panic!("table 4 is a training run") };
    assert_eq!((c.iterations, c.batch_size, c.lr), (42_500, 128, 0.1));
    assert_eq!(c.milestones, vec![20_000, 30_000, 37_500]);
    assert_eq!(c.dataset.to_string(), "cifar10");
    let t8 = paper.iter().find(|r| r.table == "table8").unwrap();
    let Job::Train(c) = &t8.job else { panic!() };
    assert_eq!(
        (c.optimizer.to_string().as_str(), c.iterations, c.augment.to_string().as_str()),
        ("adam", 64_001, "flip")
    );
}

#[test]
fn terminal_summary_lists_every_row_aligned() {
    let rows = experiments(Scale::Smoke);
    let result = |i: usize, values: Vec<f64>, note: Option<&str>| RowResult {
        row: rows[i].clone(),
        seeds: (0..values.len() as u64).collect(),
        values,
        top5_errors: vec![],
        ci95: None,
        params: Some(10),
        weights: Some(8),
        wall_seconds: 1.0,
        runs: vec![],
        note: note.map(String::from),
    };
    let text = summary_table(
        &[result(0, vec![76.4], None), result(1, vec![70.0, 72.0], None), result(2, vec![], Some("x"))],
        |_| true,
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("table") && lines[0].ends_with("verdict"), "{text}");
    assert!(lines[2].contains(" 76.40  ") && lines[2].ends_with("baseline"), "{text}");
    assert!(lines[3].contains(" 71.00 ± 1.41  ") && lines[3].contains("-6.40 (1 seed)"), "{text}");
    assert!(lines[4].contains("not run (see report)"), "{text}");
    let column = |l: &str, text: &str| l.find(text).unwrap() + text.chars().count();
    assert_eq!(column(lines[2], "76.40"), column(lines[3], "71.00 ± 1.41"), "right-aligned numbers:\n{text}");
    assert!(lines[2].contains(&rows[0].label), "{text}");
}

#[test]
fn real_tier_follows_the_recipe() {
    let rows = experiments(Scale::Real);
    assert!(rows.iter().all(|r| r.column == "CIFAR-10"), "only the CIFAR-10 rows have a stand-in");
    let gamma0: Vec<_> = rows.iter().filter(|r| r.label.contains("γ = 0")).map(|r| r.table).collect();
    assert_eq!(gamma0, ["table1"], "one γ = 0 row, beside the CNN predictor's γ = 1 row");
    for row in &rows {
        let Job::Train(c) = &row.job else { panic!("{}: the real tier trains", row.label) };
        assert_eq!(
            (c.dataset.to_string().as_str(), c.width, c.batch_size, c.iterations),
            ("fashion-mnist", 1.0, 128, 3_000)
        );
        assert_eq!(
            (c.eval_every, c.bn_decay, c.bn_debias, c.normalize.to_string().as_str()),
            (300, 0.99, true, "centered")
        );
        if row.table == "table8" {
            assert_eq!(
                (c.optimizer.to_string().as_str(), c.lr, c.augment.to_string().as_str(), c.warmup),
                ("adam", 1e-3, "flip", 0)
            );
            assert_eq!(c.milestones, vec![1_593, 2_531], "34K and 54K of 64,001 scaled to 3,000");
        } else {
            assert_eq!(
                (c.optimizer.to_string().as_str(), c.lr, c.augment.to_string().as_str(), c.warmup),
                ("sgd", 0.1, "pad-crop-flip", 500)
            );
            assert_eq!(c.milestones, vec![1_500, 2_250]);
            // the code's predictor init, but for the CNN predictor's own γ = 0 row
            let gamma = if row.label == "Dynamic NSN (CNN) w/ predictor γ = 0" { 0.0 } else { 1.0 };
            assert_eq!(c.predictor_gamma, gamma, "{}", row.label);
        }
    }
    // the warm-up ramps linearly to lr, then the milestones divide it
    let Job::Train(c) = &rows[0].job else { unreachable!() };
    assert_eq!((c.lr_at(0), c.lr_at(249), c.lr_at(499), c.lr_at(1_499)), (0.1 / 500.0, 0.05, 0.1, 0.1));
    assert!((c.lr_at(1_500) - 0.01).abs() < 1e-9 && (c.lr_at(2_999) - 0.001).abs() < 1e-9);
}

#[test]
fn t_quantiles_and_verdicts() {
    assert_eq!((t_975(1), t_975(4), t_975(30)), (12.706, 2.776, 2.042));
    assert!((t_975(60) - 2.000).abs() < 1e-3 && (t_975(1000) - 1.962).abs() < 1e-3);
    // three seeds, differences −1, −0.9, −1.1: mean −1, sd 0.1, half-width 4.303·0.1/√3
    let p = Paired::of(&[(0, 9.0), (1, 10.1), (2, 10.9), (7, 0.0)], &[(0, 10.0), (1, 11.0), (2, 12.0)]).unwrap();
    assert_eq!(p.n, 3, "only seeds both rows have are paired");
    assert!((p.mean + 1.0).abs() < 1e-12 && (p.half_width.unwrap() - 4.303 * 0.1 / 3f64.sqrt()).abs() < 1e-9);
    assert_eq!(Verdict::of(Some(&p), Some(-0.74)), Verdict::Holds);
    assert_eq!(Verdict::of(Some(&p), Some(0.3)), Verdict::Reversed);
    let wide = Paired::of(&[(0, 10.5), (1, 10.0), (2, 12.5)], &[(0, 10.0), (1, 11.0), (2, 12.0)]).unwrap();
    assert_eq!(Verdict::of(Some(&wide), Some(-0.74)), Verdict::NotShown);
    let one = Paired::of(&[(0, 9.0)], &[(0, 10.0)]).unwrap();
    assert_eq!((one.half_width, Verdict::of(Some(&one), Some(-0.74))), (None, Verdict::Undecided));
    assert_eq!(Verdict::of(Some(&p), None), Verdict::Undecided, "no paper difference, no verdict");
}

/// The header of a real-scale test report.
fn real_header(seeds: u64) -> ReportHeader {
    ReportHeader {
        command: "t".into(),
        git_revision: "r".into(),
        scale: "real".into(),
        seeds,
        backend: "cpu".into(),
        machine: "m".into(),
        wall_seconds: 0.0,
    }
}

/// A fake finished run: `metrics.jsonl` with 300 steps of loss and 10 evaluations.
fn fake_run(dir: &std::path::Path, acc: f64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = String::new();
    for step in 1..=300u64 {
        let loss = 2.0 * (-(step as f64) / 100.0).exp() + 0.1 * (step as f64).sin().abs();
        text.push_str(&format!("{{\"step\":{step},\"loss\":{loss},\"reg\":0.0,\"lr\":0.1,\"train_acc\":0.5}}\n"));
        if step % 30 == 0 {
            let a = acc * (1.0 - (-(step as f64) / 60.0).exp());
            text.push_str(&format!("{{\"step\":{step},\"test_acc\":{a},\"test_top5\":0.99,\"best_test_acc\":{a}}}\n"));
        }
    }
    std::fs::write(dir.join("metrics.jsonl"), text).unwrap();
}

#[test]
fn report_shows_paired_differences_verdicts_and_readable_plots() {
    let out = common::TestDir::new("report-stats");
    let rows: Vec<_> = experiments(Scale::Real).into_iter().filter(|r| r.table == "table1").collect();
    // error % per seed: the SN predictor beats the baseline on every seed, the CNN one does not
    let errors = [[10.0, 11.0, 12.0], [10.5, 10.0, 12.5], [9.0, 10.1, 10.9]];
    let results: Vec<RowResult> = rows
        .iter()
        .zip(errors)
        .map(|(row, values)| {
            let runs: Vec<String> = (0..3).map(|s| format!("runs/{}", row.run_id(s))).collect();
            for (run, v) in runs.iter().zip(values) {
                fake_run(&out.join(run), 1.0 - v / 100.0);
            }
            RowResult {
                row: row.clone(),
                values: values.to_vec(),
                seeds: vec![0, 1, 2],
                top5_errors: vec![],
                ci95: None,
                params: Some(1),
                weights: Some(1),
                wall_seconds: 1.0,
                runs,
                note: None,
            }
        })
        .collect();
    let header = real_header(3);
    let md = std::fs::read_to_string(write_report(&out, &header, &results).unwrap()).unwrap();
    let line = |label: &str| md.lines().find(|l| l.starts_with(&format!("| {label} |"))).unwrap().to_string();
    let sn = line("Dynamic NSN (SN)");
    assert!(sn.contains("| 10.00 ± 0.95 | 3 | -1.00 [-1.25, -0.75] | -0.93 | holds |"), "{sn}");
    let cnn = line("Dynamic NSN (CNN)");
    assert!(cnn.contains("| not shown |"), "{cnn}");
    assert!(line("Baseline CNN").contains("| baseline |"));
    assert!(md.contains("ours: Fashion-MNIST") && !md.contains("ours: CIFAR"), "the data set is named");
    for name in ["acc", "loss", "diff"] {
        let png = out.join(format!("plots/table1-cifar10-{name}.png"));
        let image = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display())).to_rgb8();
        let size = if name == "diff" { (1120, 560) } else { (1120, 840) };
        assert_eq!(image.dimensions(), size, "{name}");
        let inked = image.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(inked > 10_000, "{name}: only {inked} pixels drawn");
        let svg = std::fs::read_to_string(out.join(format!("plots/table1-cifar10-{name}.svg"))).unwrap();
        assert!(svg.contains("Dynamic NSN (SN)") && svg.contains("Fashion-MNIST"), "{name}: legend and data set");
        if name != "diff" {
            assert!(svg.contains("the last third (iteration ≥ "), "{name}: the zoomed panel");
        }
        assert!(md.contains(&format!("plots/table1-cifar10-{name}.png")), "{name} is linked");
        if let Some(keep) = std::env::var_os("NSL_KEEP_PLOTS") {
            std::fs::copy(&png, std::path::Path::new(&keep).join(format!("{name}.png"))).unwrap();
        }
    }
    // each plot file is written whole through a temporary that is renamed into place
    let plot_files = std::fs::read_dir(out.join("plots")).unwrap().map(|e| e.unwrap().file_name());
    let names: Vec<String> = plot_files.map(|n| n.to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n.ends_with(".png") || n.ends_with(".svg")), "{names:?}");
    let diff = std::fs::read_to_string(out.join("plots/table1-cifar10-diff.svg")).unwrap();
    assert!(diff.contains("the paper&apos;s difference"), "the key of the paper's differences");
    assert!(diff.contains("our 95% CI over seed pairs"), "interval key");
    let table = summary_table(&results, |_| true);
    let only_sn = summary_table(&results, |r| r.label == "Dynamic NSN (SN)");
    assert!(only_sn.contains("holds") && !only_sn.contains("Dynamic NSN (CNN)"), "{only_sn}");
    assert!(table.contains("holds") && table.contains("not shown"), "{table}");

    // a row with no finished run has no curve, so no legend entry
    let mut unrun = results.clone();
    let cnn_row = &mut unrun[1];
    (cnn_row.values, cnn_row.seeds, cnn_row.runs) = (vec![], vec![], vec![]);
    write_report(&out, &header, &unrun).unwrap();
    let svg = std::fs::read_to_string(out.join("plots/table1-cifar10-acc.svg")).unwrap();
    assert!(svg.contains("Dynamic NSN (SN)") && !svg.contains("Dynamic NSN (CNN)"), "legend of rows without runs");
}

/// The extensions are compared with Table 4's CNN-9: their section shows that baseline as its
/// first row and draws its curve, like every other table.
#[test]
fn the_extensions_show_their_baseline() {
    let out = common::TestDir::new("report-extensions");
    let rows: Vec<_> = experiments(Scale::Real)
        .into_iter()
        .filter(|r| r.table == "extensions" || (r.table == "table4" && r.label == "Baseline CNN"))
        .collect();
    let results: Vec<RowResult> = rows
        .iter()
        .map(|row| {
            let run = format!("runs/{}", row.run_id(0));
            fake_run(&out.join(&run), 0.9);
            RowResult {
                row: row.clone(),
                values: vec![10.0],
                seeds: vec![0],
                top5_errors: vec![],
                ci95: None,
                params: Some(1),
                weights: Some(1),
                wall_seconds: 1.0,
                runs: vec![run],
                note: None,
            }
        })
        .collect();
    let header = real_header(1);
    let md = std::fs::read_to_string(write_report(&out, &header, &results).unwrap()).unwrap();
    let extensions = md.split("## Extensions").nth(1).expect("an extensions section");
    let first = extensions.lines().find(|l| l.starts_with("| ") && !l.starts_with("| method")).unwrap();
    assert!(first.starts_with("| Baseline CNN |") && first.contains("| baseline |"), "{first}");
    let svg = std::fs::read_to_string(out.join("plots/extensions-cifar10-acc.svg")).unwrap();
    assert!(svg.contains("Baseline CNN") && svg.contains("Extensions (CIFAR-10 in the paper)"), "legend and title");
    // one seed and no paper numbers: the key lists neither intervals nor the paper's differences
    let diff = std::fs::read_to_string(out.join("plots/extensions-cifar10-diff.svg")).unwrap();
    assert!(
        diff.contains("Static NSN w/ PSD") && !diff.contains("the paper&apos;s difference") && !diff.contains("95% CI")
    );
}

#[test]
fn overrides_and_the_paper_schedule_reach_every_row() {
    use nsl_models::repro::{apply_overrides, use_paper_schedule};
    let mut rows = experiments(Scale::Paper);
    let ids: Vec<String> = rows.iter().map(|r| r.run_id(0)).collect();
    apply_overrides(&mut rows, &["uns_identity=false".into(), "shared_bn_stats=pooled".into()]).unwrap();
    for (row, id) in rows.iter_mut().zip(&ids) {
        let c = row.config_mut().clone();
        assert!(!c.uns_identity && c.shared_bn_stats == nsl_models::nets::SharedBnStats::Pooled, "{}", row.label);
        assert_ne!(&row.run_id(0), id, "{}: an overridden row trains into its own folder", row.label);
    }
    let err = apply_overrides(&mut rows, &["no_such_field=1".into()]).unwrap_err();
    assert!(err.contains("no_such_field"), "{err}");
    let err = apply_overrides(&mut rows, &["predictor_hidden=\"wide\"".into()]).unwrap_err();
    assert!(err.contains("predictor_hidden"), "{err}");
    assert!(apply_overrides(&mut rows, &["missing-equals".into()]).unwrap_err().contains("key=value"));

    let mut rows = experiments(Scale::Paper);
    let changed = use_paper_schedule(&mut rows);
    let cifar = rows.iter().filter(|r| ["table1", "table2", "table3", "table4", "extensions"].contains(&r.table));
    assert_eq!(changed, cifar.count(), "every CIFAR row runs the code's schedule by default");
    let Job::Train(c) = &rows[0].job else { panic!() };
    assert_eq!((c.iterations, c.milestones.clone()), (64_000, vec![34_000, 54_000]));
    let t8 = rows.iter().find(|r| r.table == "table8").unwrap();
    let Job::Train(c) = &t8.job else { panic!() };
    assert_eq!(c.iterations, 64_001, "Table 8 keeps its own schedule");
}

/// A finished run whose summary predates the weight count (like the real tier's first runs):
/// the report counts the weights from the row's config and shows the run's own training time.
#[test]
fn reused_old_summaries_get_their_weights_counted_and_their_training_time_shown() {
    use nsl_models::repro::{run_all, RunnerOptions};
    use nsl_models::train::{build_network, load_test, RunConfig};

    let out = common::TestDir::new("old-summary");
    let row = experiments(Scale::Smoke).into_iter().find(|r| r.label == "Baseline CNN").unwrap();
    let dir = out.join("runs").join(row.run_id(0));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("summary.json"),
        r#"{"network":"cnn9","similarity":"conv","dataset":"fashion-mnist-embedded","params":1,"steps":2,
        "final_test_acc":0.5,"best_test_acc":0.5,"best_step":2,"final_train_loss":1.0,"wall_seconds":7.0,
        "train_images_per_second":0.0,"backend":"cpu","resumed_from":null}"#,
    )
    .unwrap();
    let opts = RunnerOptions { out: out.to_path_buf(), data: "data".into(), seeds: 1, progress: false, train: false };
    let be = nsl_cpu::Cpu::with_threads(1);
    let results = run_all(&be, std::slice::from_ref(&row), &opts, |_, _, _| unreachable!());
    let Job::Train(cfg) = &row.job else { panic!("a training row") };
    let cfg = RunConfig { data_dir: "data".into(), ..cfg.clone() };
    let test = load_test(&cfg).unwrap();
    let mut net = build_network(&be, &cfg, test.classes(), test.shape(), &mut nsl_core::Rng::new(0)).unwrap();
    assert_eq!(results[0].weights, Some(net.weight_count()));
    assert_eq!(results[0].wall_seconds, 7.0);
}

/// A report gathers every seed that finished, not only the `--seeds` it was asked to run: seeds
/// 0–2 of a row count when one seed is asked for, and the scan stops at the first gap.
#[test]
fn the_report_gathers_every_finished_seed_up_to_the_first_gap() {
    use nsl_models::repro::{run_all, RunnerOptions};

    let out = common::TestDir::new("more-seeds");
    let row = experiments(Scale::Smoke).into_iter().find(|r| r.label == "Baseline CNN").unwrap();
    for (seed, acc) in [(0, 0.5), (1, 0.6), (2, 0.7), (4, 0.9)] {
        let dir = out.join("runs").join(row.run_id(seed));
        std::fs::create_dir_all(&dir).unwrap();
        let summary = format!(
            r#"{{"network":"cnn9","similarity":"conv","dataset":"fashion-mnist-embedded","params":1,"weights":1,
            "steps":2,"final_test_acc":{acc},"best_test_acc":{acc},"best_step":2,"final_train_loss":1.0,
            "wall_seconds":1.0,"train_images_per_second":0.0,"backend":"cpu","resumed_from":null}}"#
        );
        std::fs::write(dir.join("summary.json"), summary).unwrap();
    }
    let be = nsl_cpu::Cpu::with_threads(1);
    for train in [false, true] {
        let opts = RunnerOptions { out: out.to_path_buf(), data: "data".into(), seeds: 1, progress: false, train };
        let results = run_all(&be, std::slice::from_ref(&row), &opts, |_, _, _| unreachable!());
        assert_eq!(results[0].seeds, vec![0, 1, 2], "train = {train}");
        let errors: Vec<i64> = results[0].values.iter().map(|v| v.round() as i64).collect();
        assert_eq!(errors, vec![50, 40, 30]);
    }
}
