//! The statistics of a report: mean ± standard deviation over seeds, and the paired difference
//! of a row to its table's baseline with a 95% confidence interval.
//!
//! Runs of one seed share the backbone initialisation and the data order across rows, so row
//! and baseline are compared seed by seed: `d_s = row_s − baseline_s`, and the interval is
//! `d̄ ± t₀.₉₇₅(n−1) · s_d/√n` (Student's t over the `n` seed pairs).

/// Mean and sample standard deviation (`n − 1` in the denominator; 0 for one value).
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = if n > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    Some((mean, var.sqrt()))
}

/// `t₀.₉₇₅(df)`, the two-sided 95% quantile of Student's t with `df ≥ 1` degrees of freedom:
/// the table value for `df ≤ 30`, beyond it the Cornish–Fisher expansion around the normal
/// quantile 1.959964 (error below 1e-4 there).
///
/// ```
/// use nsl_models::repro::stats::t_975;
/// assert_eq!(t_975(2), 4.303);
/// assert!((t_975(120) - 1.980).abs() < 1e-3);
/// ```
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    assert!(df >= 1, "a t quantile needs at least one degree of freedom");
    if df <= TABLE.len() {
        return TABLE[df - 1];
    }
    let (z, v) = (1.959_963_985_f64, df as f64);
    let (z3, z5) = (z.powi(3), z.powi(5));
    z + (z3 + z) / (4.0 * v) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
}

/// The paired difference of a row to its baseline over the seeds both have.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paired {
    /// Seed pairs.
    pub n: usize,
    /// Mean difference `d̄` (row − baseline).
    pub mean: f64,
    /// Half-width of the 95% interval; `None` for a single pair.
    pub half_width: Option<f64>,
}

impl Paired {
    /// `(a, b) − (b values)` paired by seed: `row` and `baseline` are `(seed, value)` lists.
    /// `None` when they share no seed.
    pub fn of(row: &[(u64, f64)], baseline: &[(u64, f64)]) -> Option<Paired> {
        let diffs: Vec<f64> =
            row.iter().filter_map(|(s, v)| baseline.iter().find(|(t, _)| t == s).map(|(_, b)| v - b)).collect();
        let (mean, sd) = mean_std(&diffs)?;
        let n = diffs.len();
        let half_width = (n > 1).then(|| t_975(n - 1) * sd / (n as f64).sqrt());
        Some(Paired { n, mean, half_width })
    }
    /// The interval `(lo, hi)`, if there is one.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.half_width.map(|h| (self.mean - h, self.mean + h))
    }
}

/// Whether our paired difference bears out the paper's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The interval excludes 0 on the side of the paper's difference.
    Holds,
    /// The interval contains 0.
    NotShown,
    /// The interval excludes 0 on the other side.
    Reversed,
    /// No interval (fewer than two seed pairs) or no paper difference to compare with.
    Undecided,
}

impl Verdict {
    /// Compare `ours` with the paper's difference `paper` (same sign convention).
    pub fn of(ours: Option<&Paired>, paper: Option<f64>) -> Verdict {
        let (Some((lo, hi)), Some(paper)) = (ours.and_then(Paired::interval), paper) else {
            return Verdict::Undecided;
        };
        if paper == 0.0 {
            return Verdict::Undecided;
        }
        match (lo > 0.0, hi < 0.0) {
            (false, false) => Verdict::NotShown,
            (above, _) if above == (paper > 0.0) => Verdict::Holds,
            _ => Verdict::Reversed,
        }
    }
    /// The word in the report.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::NotShown => "not shown",
            Verdict::Reversed => "reversed",
            Verdict::Undecided => "—",
        }
    }
}
