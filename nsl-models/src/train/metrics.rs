//! `metrics.jsonl`, a run's log: one JSON object per line, a [`TrainLine`] per training step and
//! an [`EvalLine`] per test evaluation. This module is its only reader and writer.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One training step: the loss of its batch (before the update), the regulariser, the learning
/// rate used and the batch's accuracy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainLine {
    pub step: u64,
    pub loss: f32,
    pub reg: f32,
    pub lr: f32,
    pub train_acc: f32,
}

/// One test evaluation after `step` steps: top-1 and top-5 accuracy (fractions) and the best
/// top-1 so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalLine {
    pub step: u64,
    pub test_acc: f32,
    /// NaN in logs written before top-5 was recorded.
    #[serde(default = "nan")]
    pub test_top5: f32,
    pub best_test_acc: f32,
}

fn nan() -> f32 {
    f32::NAN
}

/// A run's log, read back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub train: Vec<TrainLine>,
    pub eval: Vec<EvalLine>,
}

impl Metrics {
    /// Read `path`; a missing file reads as empty and unreadable lines are skipped (a run killed
    /// mid-write leaves at most a partial last line).
    pub fn read(path: &Path) -> Metrics {
        let mut m = Metrics::default();
        for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
            if let Ok(e) = serde_json::from_str::<EvalLine>(line) {
                m.eval.push(e);
            } else if let Ok(t) = serde_json::from_str::<TrainLine>(line) {
                m.train.push(t);
            }
        }
        m
    }
    /// The last `(train loss, test top-1, test top-5)` (NaN where none).
    pub fn last(&self) -> (f32, f32, f32) {
        let loss = self.train.last().map_or(f32::NAN, |t| t.loss);
        let (acc, top5) = self.eval.last().map_or((f32::NAN, f32::NAN), |e| (e.test_acc, e.test_top5));
        (loss, acc, top5)
    }
    /// The lines of steps `≤ step`, in their original order, as the file's text.
    pub fn text_up_to(path: &Path, step: u64) -> String {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                    .is_some_and(|s| s <= step)
            })
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

/// One line of the file for `line`.
pub fn to_line<T: Serialize>(line: &T) -> String {
    serde_json::to_string(line).expect("metric lines serialise")
}
