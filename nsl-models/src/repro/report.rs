//! `report.md`: per paper table (and column), each row's result as mean ± std over seeds, its
//! paired difference to the table's baseline with a 95% interval, the paper's difference beside
//! it and a verdict; plots (SVG and PNG) of the test-accuracy curves (mean with the range over
//! seeds), the training loss and the differences; and how the report was made.

use std::fmt::Write as _;
use std::path::Path;

use super::plots::{self, Curve, Difference};
use super::registry::{Job, Metric, Row, TABLES};
use super::runner::RowResult;
use super::stats::{mean_std, Paired, Verdict};
use crate::train::metrics::Metrics;
use crate::train::DatasetChoice;

/// Facts about the invocation, printed at the top of the report.
#[derive(Clone, Debug)]
pub struct ReportHeader {
    pub command: String,
    pub git_revision: String,
    pub scale: String,
    pub seeds: u64,
    pub backend: String,
    /// The machine the runs of this invocation used (CPU model and cores, or the GPU).
    pub machine: String,
    pub wall_seconds: f64,
}

/// The data set a row trains on.
fn dataset(row: &Row) -> DatasetChoice {
    match &row.job {
        Job::Train(c) => c.dataset,
        Job::FewShot { pretrain, .. } => pretrain.dataset,
    }
}

/// What a table (column) is compared against: its first row; the extensions use Table 4's
/// CIFAR-10 baseline.
fn baseline_of<'a>(r: &RowResult, results: &'a [RowResult]) -> Option<&'a RowResult> {
    let (table, column) =
        if r.row.table == "extensions" { ("table4", "CIFAR-10") } else { (r.row.table, r.row.column) };
    results.iter().find(|b| b.row.table == table && b.row.column == column)
}

/// The paper's difference of `row` to `base` (same metric).
fn paper_difference(row: &Row, base: &Row) -> Option<f64> {
    Some(row.paper? - base.paper?)
}

/// A row's comparison with its baseline: our paired difference, the paper's, and the verdict.
/// `None` for the baseline itself and rows without one.
fn comparison(r: &RowResult, results: &[RowResult]) -> Option<(Option<Paired>, Option<f64>, Verdict)> {
    let base = baseline_of(r, results)?;
    if std::ptr::eq(base, r) || base.row.job == r.row.job {
        return None;
    }
    let pairs = |x: &RowResult| x.seeds.iter().copied().zip(x.values.iter().copied()).collect::<Vec<_>>();
    let ours = Paired::of(&pairs(r), &pairs(base));
    let paper = paper_difference(&r.row, &base.row);
    Some((ours, paper, Verdict::of(ours.as_ref(), paper)))
}

fn fmt_value(r: &RowResult) -> String {
    match (mean_std(&r.values), r.ci95) {
        (None, _) => "—".into(),
        (Some((m, _)), Some(ci)) if r.values.len() == 1 => format!("{m:.2} ± {ci:.2}"),
        (Some((m, _)), _) if r.values.len() == 1 => format!("{m:.2}"),
        (Some((m, s)), _) => format!("{m:.2} ± {s:.2}"),
    }
}

fn fmt_paired(p: Option<&Paired>) -> String {
    match p {
        None => "—".into(),
        Some(p) => match p.interval() {
            Some((lo, hi)) => format!("{:+.2} [{lo:+.2}, {hi:+.2}]", p.mean),
            None => format!("{:+.2} (1 seed)", p.mean),
        },
    }
}

/// ` (top-5 error)` after a Table 5 value: the mean over seeds, when every seed recorded one.
fn fmt_top5(r: &RowResult) -> String {
    if r.top5_errors.is_empty() || r.top5_errors.len() != r.values.len() {
        return String::new();
    }
    format!(" ({:.2})", r.top5_errors.iter().sum::<f64>() / r.top5_errors.len() as f64)
}

/// The results as an aligned plain-text table for the terminal: table, method, data, metric,
/// the paper's number, ours (mean ± std over seeds, or ± the 95% interval for one few-shot
/// seed), our paired difference to the baseline with its 95% interval, and the verdict; only
/// the rows `shown` picks, each compared with its baseline among all `results`.
pub fn summary_table(results: &[RowResult], shown: impl Fn(&Row) -> bool) -> String {
    let head = ["table", "method", "data", "metric", "paper", "ours", "Δ vs baseline [95% CI]", "verdict"];
    let mut lines = vec![head.map(String::from).to_vec()];
    for r in results.iter().filter(|r| shown(&r.row)) {
        let paper = r.row.paper.map(|p| format!("{p:.2}")).unwrap_or_else(|| "—".into());
        let ours = if r.note.is_some() { "not run (see report)".into() } else { fmt_value(r) + &fmt_top5(r) };
        let (delta, verdict) = match comparison(r, results) {
            Some((ours, _, v)) => (fmt_paired(ours.as_ref()), v.word().to_string()),
            None => ("baseline".into(), String::new()),
        };
        let data = dataset(&r.row).to_string();
        lines.push(vec![
            r.row.table.into(),
            r.row.label.clone(),
            data,
            r.row.metric.header().into(),
            paper,
            ours,
            delta,
            verdict,
        ]);
    }
    let widths: Vec<usize> =
        (0..head.len()).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| if (4..7).contains(&i) { format!("{c:>w$}") } else { format!("{c:<w$}") })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        if n == 0 {
            let _ = writeln!(out, "{}", widths.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>().join("  "));
        }
    }
    out
}

/// The introduction of a report at `scale`.
fn scale_note(scale: &str) -> &'static str {
    match scale {
        "smoke" => {
            "**Smoke scale**: narrow networks trained for 100 iterations, minutes on two CPU cores. The CIFAR-10 and \
             ImageNet rows train on the Fashion-MNIST subset embedded in nsl (7,000 training and 2,000 test images, \
             real photographs of clothing, zero-padded to 32×32×1); the CIFAR-100 and few-shot rows have no real \
             stand-in here and run on procedural synthetic images. The numbers show the pipeline working end to end, \
             not the paper's accuracy, and one seed of a 100-iteration run ranks nothing: `--scale real` is the tier \
             that tests the paper's claims. The CIFAR-backbone smoke runs start the dynamic predictors' output BN at \
             γ = 0 (`predictor_gamma`, M = I at init)."
        }
        "real" => {
            "**Real scale**: the CIFAR-10 rows of Tables 1–4 and 8 and the extensions on the full Fashion-MNIST \
             (60,000 training and 10,000 test images, zero-padded to 32×32×1, `(x − 127.5)/128`) with full-width \
             networks: batch 128, 3,000 iterations of momentum SGD, lr 0.1 ÷10 at 1,500 and 2,250 after a \
             500-iteration linear warm-up, the code's augmentation (symmetric pad 4, crop, flip), loss and L2, BN \
             running statistics by a debiased EMA of decay 0.99; Table 8 keeps its Adam 1e-3 recipe (flip only) with \
             the milestones scaled to 3,000 iterations. The dynamic predictors' output BN starts at the code's \
             γ = 1; Table 1 adds the CNN predictor at γ = 0 (M = I at init) as a row of its own, because at γ = 1 \
             its first updates can collapse the network to a constant output. Verdicts use the final evaluation \
             on all 10,000 test images; the evaluations during the lr-0.1 phase read the BN statistics of \
             weights that were still moving fast, so the early points of the curves lag the weights."
        }
        _ => "**Paper scale**: the reference code's settings on the paper's data sets (`--data`).",
    }
}

/// Write `report.md` and `plots/*.{svg,png}` under `out`. Returns the report's path.
pub fn write_report(out: &Path, header: &ReportHeader, results: &[RowResult]) -> std::io::Result<std::path::PathBuf> {
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir)?;
    let mut md = String::new();
    let _ = writeln!(md, "# nsl reproduction report\n");
    let _ = writeln!(md, "- command: `{}`", header.command);
    let _ = writeln!(md, "- git revision: `{}`", header.git_revision);
    let _ = writeln!(md, "- scale: **{}**, seeds per row: up to {}", header.scale, header.seeds);
    let _ = writeln!(md, "- backend: {}; machine: {}", header.backend, header.machine);
    let _ = writeln!(md, "- wall time of this invocation: {:.0} s\n", header.wall_seconds);
    let _ = writeln!(md, "{}\n", scale_note(&header.scale));
    let _ = writeln!(
        md,
        "How to read the tables: *ours* is the mean ± standard deviation over the seeds that finished (n). Runs of \
         one seed share the backbone initialisation and the data order across rows, so each row is compared with \
         its table's baseline seed by seed: *Δ ours* is the mean paired difference (row − baseline, in the metric's \
         unit) with its 95% confidence interval (Student's t over the seed pairs), *Δ paper* the paper's difference \
         between the same two rows. *Verdict*: the paper's ordering **holds** (our interval excludes 0 on the \
         paper's side), is **not shown** (our interval contains 0), or is **reversed**; — where there is no \
         interval (one seed) or no paper difference. *Weights* counts convolution and fully connected weights \
         (predictors' included), what the paper's parameter counts count; *all params* adds batch-norm γ/β and \
         similarity parameters; *train s* is the training wall time of the finished runs, summed over seeds \
         (a run resumed from a checkpoint older than nsl's `time.json` counts from that resume only). \
         Curves show the mean over seeds with the range over seeds as a band.\n"
    );
    for (table, title) in TABLES {
        let mut columns: Vec<&str> = Vec::new();
        for r in results.iter().filter(|r| r.row.table == *table) {
            if !columns.contains(&r.row.column) {
                columns.push(r.row.column);
            }
        }
        if columns.is_empty() {
            continue;
        }
        let _ = writeln!(md, "## {title}\n");
        for column in columns {
            let mut rows: Vec<&RowResult> =
                results.iter().filter(|r| r.row.table == *table && r.row.column == column).collect();
            // a group compared with another table's baseline (the extensions) shows it first too
            if let Some(base) = baseline_of(rows[0], results).filter(|b| !rows.iter().any(|r| std::ptr::eq(*r, *b))) {
                rows.insert(0, base);
            }
            write_group(&mut md, &plots_dir, table, column, &rows, results)?;
        }
    }
    let path = out.join("report.md");
    crate::files::write_atomic(&path, md.as_bytes())?;
    Ok(path)
}

/// One table column: its rows, then its plots.
fn write_group(
    md: &mut String,
    plots_dir: &Path,
    table: &str,
    column: &str,
    rows: &[&RowResult],
    results: &[RowResult],
) -> std::io::Result<()> {
    let metric = rows[0].row.metric;
    let data = dataset(&rows[0].row).display_name();
    let base = baseline_of(rows[0], results).map(|b| b.row.label.clone()).unwrap_or_else(|| "—".into());
    let _ = writeln!(md, "### paper: {column}; ours: {data}\n");
    let _ = writeln!(md, "Metric: {}. Baseline: {base}.\n", metric.header());
    let _ = writeln!(
        md,
        "| method | paper | ours | n | Δ ours vs baseline [95% CI] | Δ paper | verdict | weights | all params | train s |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|");
    for r in rows {
        let mut paper = r.row.paper.map(|p| format!("{p:.2}")).unwrap_or_else(|| "—".into());
        if let Some(top5) = r.row.paper_top5 {
            paper.push_str(&format!(" ({top5:.2})"));
        }
        let ours = match &r.note {
            Some(note) => format!("not run: {}", note.replace('|', "/").replace('\n', " ")),
            None => fmt_value(r) + &fmt_top5(r),
        };
        let (delta, paper_delta, verdict) = match comparison(r, results) {
            Some((ours, paper, v)) => (
                fmt_paired(ours.as_ref()),
                paper.map(|p| format!("{p:+.2}")).unwrap_or_else(|| "—".into()),
                v.word().to_string(),
            ),
            None => ("baseline".into(), "".into(), "".into()),
        };
        let count = |n: Option<usize>| n.map(|p| p.to_string()).unwrap_or_else(|| "—".into());
        let (weights, params) = (count(r.weights), count(r.params));
        let _ = writeln!(
            md,
            "| {} | {paper} | {ours} | {} | {delta} | {paper_delta} | {verdict} | {weights} | {params} | {:.0} |",
            r.row.label,
            r.values.len(),
            r.wall_seconds
        );
    }
    if metric == Metric::FewShotAccuracy {
        md.push('\n');
        return Ok(());
    }
    let stem = format!("{table}-{}", column.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), ""));
    let name = match table.strip_prefix("table") {
        Some(number) => format!("Table {number}"),
        None => table[..1].to_uppercase() + &table[1..],
    };
    let title = format!("{name} ({column} in the paper)");
    let (acc, loss) = curves_of(plots_dir.parent().expect("plots/ is in the report folder"), rows);
    let mut links = Vec::new();
    let plot = |name: &str, result: Result<(), String>| -> std::io::Result<String> {
        result.map_err(std::io::Error::other)?;
        Ok(format!("![{name}](plots/{stem}-{name}.png) ([svg](plots/{stem}-{name}.svg))"))
    };
    if acc.iter().any(|c| !c.points.is_empty()) {
        let t = format!("{title}: test accuracy on {data}");
        links.push(plot(
            "acc",
            plots::curves(&plots_dir.join(format!("{stem}-acc")), &t, "iteration", "test accuracy %", &acc),
        )?);
        let t = format!("{title}: training loss on {data} (moving average)");
        links.push(plot(
            "loss",
            plots::curves(&plots_dir.join(format!("{stem}-loss")), &t, "iteration", "loss", &loss),
        )?);
    }
    let diffs: Vec<Difference> = rows
        .iter()
        .enumerate()
        .filter_map(|(colour, r)| {
            let (ours, paper, _) = comparison(r, results)?;
            let ours = ours?;
            Some(Difference { label: r.row.label.clone(), colour, mean: ours.mean, interval: ours.interval(), paper })
        })
        .collect();
    if !diffs.is_empty() {
        let unit = if metric.header().contains("error") { "error" } else { "accuracy" };
        let t = format!("{title}: {unit} difference to {base} on {data}");
        let x = format!("Δ {unit} (percentage points, row − baseline)");
        links.push(plot("diff", plots::differences(&plots_dir.join(format!("{stem}-diff")), &t, &x, &diffs))?);
    }
    let _ = writeln!(md);
    for l in links {
        let _ = writeln!(md, "{l}\n");
    }
    Ok(())
}

/// Each row's test-accuracy curve (% per evaluation: mean and range over seeds) and its
/// training-loss curve (moving average, mean over seeds), from the runs' `metrics.jsonl`.
fn curves_of(out: &Path, rows: &[&RowResult]) -> (Vec<Curve>, Vec<Curve>) {
    let mut acc = Vec::new();
    let mut loss = Vec::new();
    for (colour, r) in rows.iter().enumerate() {
        let runs: Vec<Metrics> = r.runs.iter().map(|run| Metrics::read(&out.join(run).join("metrics.jsonl"))).collect();
        let evals: Vec<Vec<(f64, f64)>> = runs
            .iter()
            .map(|m| m.eval.iter().map(|e| (e.step as f64, 100.0 * f64::from(e.test_acc))).collect())
            .collect();
        let window = runs.iter().map(|m| m.train.len()).max().unwrap_or(0).div_ceil(60).max(1);
        let losses: Vec<Vec<(f64, f64)>> = runs
            .iter()
            .map(|m| smooth(&m.train.iter().map(|t| (t.step as f64, f64::from(t.loss))).collect::<Vec<_>>(), window))
            .collect();
        acc.push(Curve { label: r.row.label.clone(), colour, points: aggregate(&evals, 1) });
        let stride = window.div_ceil(2);
        loss.push(Curve { label: r.row.label.clone(), colour, points: aggregate(&losses, stride) });
    }
    (acc, loss)
}

/// Mean, min and max over the runs at each step of the first run (every `stride`-th point and
/// the last), where every run has that step.
fn aggregate(runs: &[Vec<(f64, f64)>], stride: usize) -> Vec<(f64, f64, f64, f64)> {
    let Some(first) = runs.first() else { return Vec::new() };
    let last = first.len().saturating_sub(1);
    first
        .iter()
        .enumerate()
        .filter(|&(i, _)| i % stride == 0 || i == last)
        .filter_map(|(_, &(x, _))| {
            let ys: Vec<f64> = runs.iter().filter_map(|r| r.iter().find(|p| p.0 == x).map(|p| p.1)).collect::<Vec<_>>();
            (ys.len() == runs.len()).then(|| {
                let mean = ys.iter().sum::<f64>() / ys.len() as f64;
                let (lo, hi) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| (a.min(y), b.max(y)));
                (x, mean, lo, hi)
            })
        })
        .collect()
}

/// Moving average over the last `k` points, so noisy per-step losses read as a curve.
fn smooth(points: &[(f64, f64)], k: usize) -> Vec<(f64, f64)> {
    (0..points.len())
        .map(|i| {
            let window = &points[i.saturating_sub(k - 1)..=i];
            (points[i].0, window.iter().map(|p| p.1).sum::<f64>() / window.len() as f64)
        })
        .collect()
}
