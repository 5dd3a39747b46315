//! The experiment registry and the report writer.

use nsl_models::repro::{experiments, line_chart, summary_table, Job, RowResult, Scale, TABLES};

#[test]
fn every_table_has_rows_at_both_scales_and_ids_are_consistent() {
    for scale in [Scale::Smoke, Scale::Paper] {
        let rows = experiments(scale);
        for (table, _) in TABLES {
            assert!(rows.iter().any(|r| r.table == *table), "{table} has no rows at {scale:?}");
        }
        // rows with the same job share a run folder; different jobs never do
        for a in &rows {
            for b in &rows {
                assert_eq!(a.job == b.job, a.run_id(0) == b.run_id(0), "{} / {}", a.label, b.label);
            }
            assert_ne!(a.run_id(0), a.run_id(1), "seeds get their own folders");
        }
    }
}

#[test]
fn smoke_runs_use_embedded_data_and_paper_runs_the_spec_recipe() {
    for row in experiments(Scale::Smoke) {
        if let Job::Train(c) = &row.job {
            assert!(c.dataset.starts_with("synthetic"), "{}: {}", row.label, c.dataset);
        }
    }
    let paper = experiments(Scale::Paper);
    let baseline = paper.iter().find(|r| r.table == "table4" && r.column == "CIFAR-10").unwrap();
    let Job::Train(c) = &baseline.job else { panic!("table 4 is a training run") };
    assert_eq!((c.iterations, c.batch_size, c.lr), (42_500, 128, 0.1));
    assert_eq!(c.milestones, vec![20_000, 30_000, 37_500]);
    assert_eq!(c.dataset, "cifar10");
    let t8 = paper.iter().find(|r| r.table == "table8").unwrap();
    let Job::Train(c) = &t8.job else { panic!() };
    assert_eq!((c.optimizer.as_str(), c.iterations, c.augment.as_str()), ("adam", 64_001, "flip"));
}

#[test]
fn svg_chart_is_well_formed() {
    let svg = line_chart("t <1>", "x", "y", &[("a".into(), vec![(0.0, 1.0), (1.0, 2.0)]), ("b".into(), vec![])]);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("t &lt;1&gt;"), "titles are escaped");
    assert_eq!(svg.matches("<polyline").count(), 2);
}

#[test]
fn terminal_summary_lists_every_row_aligned() {
    let rows = experiments(Scale::Smoke);
    let result = |i: usize, values: Vec<f64>, note: Option<&str>| RowResult {
        row: rows[i].clone(),
        values,
        top5_errors: vec![],
        ci95: None,
        params: Some(10),
        wall_seconds: 1.0,
        runs: vec![],
        note: note.map(String::from),
    };
    let text =
        summary_table(&[result(0, vec![76.4], None), result(1, vec![70.0, 72.0], None), result(2, vec![], Some("x"))]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("table") && lines[0].ends_with("ours"), "{text}");
    assert!(lines[2].ends_with("76.40"), "{text}");
    assert!(lines[3].ends_with("71.00 ± 1.41"), "{text}");
    assert!(lines[4].ends_with("not run (see report)"), "{text}");
    assert!(lines[2].contains(&rows[0].label), "{text}");
}
