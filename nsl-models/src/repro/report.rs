//! `report.md`: one table per paper table (paper number, ours, difference, seeds, parameters,
//! wall time), plots of every run's training loss and test accuracy, and how it was made.

use std::fmt::Write as _;
use std::path::Path;

use super::registry::{Job, Metric, TABLES};
use super::runner::RowResult;
use super::svg::line_chart;

/// Facts about the invocation, printed at the top of the report.
#[derive(Clone, Debug)]
pub struct ReportHeader {
    pub command: String,
    pub git_revision: String,
    pub scale: String,
    pub seeds: u64,
    pub backend: String,
    pub wall_seconds: f64,
}

/// `(x, y)` points of one curve.
type Curve = Vec<(f64, f64)>;

/// Training loss and test accuracy of a run, from its `metrics.jsonl`.
fn curves(run_dir: &Path) -> (Curve, Curve) {
    let mut loss = Vec::new();
    let mut acc = Vec::new();
    for line in std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap_or_default().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let step = v.get("step").and_then(|s| s.as_f64()).unwrap_or(f64::NAN);
        if let Some(l) = v.get("loss").and_then(|x| x.as_f64()) {
            loss.push((step, l));
        }
        if let Some(a) = v.get("test_acc").and_then(|x| x.as_f64()) {
            acc.push((step, 100.0 * a));
        }
    }
    (loss, acc)
}

/// Moving average over `k` points, so noisy per-step losses read as a curve.
fn smooth(points: &[(f64, f64)], k: usize) -> Vec<(f64, f64)> {
    (0..points.len())
        .map(|i| {
            let lo = i.saturating_sub(k - 1);
            let window = &points[lo..=i];
            (points[i].0, window.iter().map(|p| p.1).sum::<f64>() / window.len() as f64)
        })
        .collect()
}

fn fmt_value(r: &RowResult) -> String {
    match (r.mean_std(), r.ci95) {
        (None, _) => "—".into(),
        (Some((m, _)), Some(ci)) if r.values.len() == 1 => format!("{m:.2} ± {ci:.2}"),
        (Some((m, _)), _) if r.values.len() == 1 => format!("{m:.2}"),
        (Some((m, s)), _) => format!("{m:.2} ± {s:.2}"),
    }
}

/// The results as an aligned plain-text table for the terminal: table, method, data, metric,
/// the paper's number and ours (mean ± std over seeds, or ± the 95% interval for one seed).
pub fn summary_table(results: &[RowResult]) -> String {
    let head = ["table", "method", "data", "metric", "paper", "ours"].map(String::from);
    let mut lines = vec![head];
    for r in results {
        let data = match &r.row.job {
            Job::Train(c) => c.dataset.clone(),
            Job::FewShot { pretrain, .. } => pretrain.dataset.clone(),
        };
        let paper = r.row.paper.map(|p| format!("{p:.2}")).unwrap_or_else(|| "—".into());
        let ours = if r.note.is_some() { "not run (see report)".into() } else { fmt_value(r) + &fmt_top5(r) };
        lines.push([r.row.table.into(), r.row.label.clone(), data, r.row.metric.header().into(), paper, ours]);
    }
    let widths: Vec<usize> = (0..6).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| if i >= 4 { format!("{c:>w$}") } else { format!("{c:<w$}") })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        if n == 0 {
            let _ = writeln!(out, "{}", widths.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>().join("  "));
        }
    }
    out
}

/// ` (top-5 error)` after a Table 5 value: the mean over seeds, when every seed recorded one.
fn fmt_top5(r: &RowResult) -> String {
    if r.top5_errors.is_empty() || r.top5_errors.len() != r.values.len() {
        return String::new();
    }
    format!(" ({:.2})", r.top5_errors.iter().sum::<f64>() / r.top5_errors.len() as f64)
}

/// Write `report.md` and `plots/*.svg` under `out`. Returns the report's path.
pub fn write_report(out: &Path, header: &ReportHeader, results: &[RowResult]) -> std::io::Result<std::path::PathBuf> {
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots)?;
    let mut md = String::new();
    let _ = writeln!(md, "# nsl reproduction report\n");
    let _ = writeln!(md, "- command: `{}`", header.command);
    let _ = writeln!(md, "- git revision: `{}`", header.git_revision);
    let _ = writeln!(md, "- scale: **{}**, seeds per row: {}", header.scale, header.seeds);
    let _ = writeln!(md, "- backend: {}", header.backend);
    let _ = writeln!(md, "- wall time: {:.0} s\n", header.wall_seconds);
    if header.scale == "smoke" {
        let _ = writeln!(
            md,
            "Smoke scale trains narrow networks for a few hundred iterations on the embedded synthetic \
             images (no downloads), so the numbers show the pipeline working end to end, not the \
             paper's accuracy; `--scale paper --data DIR` runs the spec's exact settings on real data. \
             The CIFAR-backbone smoke runs start the dynamic predictors' output BN at γ = 0 (M = I at \
             init, `predictor_gamma`); the code's γ = 1 turns M into identity plus unit-variance noise \
             after the first step and leaves 100-iteration runs near chance.\n"
        );
    }
    for (table, title) in TABLES {
        let rows: Vec<&RowResult> = results.iter().filter(|r| r.row.table == *table).collect();
        if rows.is_empty() {
            continue;
        }
        let metric = rows[0].row.metric;
        let _ = writeln!(md, "## {title}\n");
        let _ = writeln!(md, "Metric: {}.\n", metric.header());
        let _ = writeln!(
            md,
            "| method | paper's data | our data | paper | ours | ours − paper | seeds | params | wall s | plots |"
        );
        let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---|");
        let mut acc_series = Vec::new();
        for r in &rows {
            let mut paper = r.row.paper.map(|p| format!("{p:.2}")).unwrap_or_else(|| "—".into());
            if let Some(top5) = r.row.paper_top5 {
                paper.push_str(&format!(" ({top5:.2})"));
            }
            let diff = match (r.mean_std(), r.row.paper) {
                (Some((m, _)), Some(p)) => format!("{:+.2}", m - p),
                _ => "—".into(),
            };
            let params = r.params.map(|p| p.to_string()).unwrap_or_else(|| "—".into());
            let mut links = Vec::new();
            for run in &r.runs {
                let dir = out.join(run);
                let (loss, acc) = curves(&dir);
                if loss.is_empty() {
                    continue;
                }
                let id = run.trim_start_matches("runs/");
                let label = format!("{} ({})", r.row.label, r.row.column);
                let loss_svg = line_chart(
                    &format!("{label}: train loss"),
                    "iteration",
                    "loss",
                    &[("loss (moving avg 10)".into(), smooth(&loss, 10))],
                );
                let acc_svg = line_chart(
                    &format!("{label}: test accuracy"),
                    "iteration",
                    "accuracy %",
                    &[("test".into(), acc.clone())],
                );
                std::fs::write(plots.join(format!("{id}-loss.svg")), loss_svg)?;
                std::fs::write(plots.join(format!("{id}-acc.svg")), acc_svg)?;
                links.push(format!("[loss](plots/{id}-loss.svg) [acc](plots/{id}-acc.svg)"));
                if acc_series.len() < 8 && !acc.is_empty() && run == &r.runs[0] {
                    acc_series.push((label, acc));
                }
            }
            let ours = match &r.note {
                Some(note) => format!("not run: {}", note.replace('|', "/").replace('\n', " ")),
                None => fmt_value(r) + &fmt_top5(r),
            };
            let data = match &r.row.job {
                Job::Train(c) => &c.dataset,
                Job::FewShot { pretrain, .. } => &pretrain.dataset,
            };
            let _ = writeln!(
                md,
                "| {} | {} | {data} | {paper} | {ours} | {diff} | {} | {params} | {:.0} | {} |",
                r.row.label,
                r.row.column,
                r.values.len(),
                r.wall_seconds,
                links.join(" ")
            );
        }
        if !acc_series.is_empty() && metric != Metric::FewShotAccuracy {
            let chart = line_chart(&format!("{title}: test accuracy"), "iteration", "accuracy %", &acc_series);
            std::fs::write(plots.join(format!("{table}.svg")), chart)?;
            let _ = writeln!(md, "\n![{table} test accuracy](plots/{table}.svg)");
        }
        md.push('\n');
    }
    let path = out.join("report.md");
    crate::checkpoint::write_atomic(&path, md.as_bytes()).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(path)
}
