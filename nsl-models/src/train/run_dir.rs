//! [`RunDir`]: a run folder, the only reader and writer of its files: `config.toml` (the whole
//! run), `metrics.jsonl` (its log, [`super::metrics`]), `checkpoint.safetensors` (written
//! atomically) with `time.json` (the training time up to it), and `summary.json`
//! ([`RunSummary`], written when the run finishes).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::metrics::{to_line, Metrics};
use super::{Error, RunConfig};
use crate::files::write_atomic;

/// [`write_atomic`], its error naming the file.
pub(crate) fn write_file(path: &Path, data: &[u8]) -> Result<(), Error> {
    write_atomic(path, data).map_err(|source| Error::Io { path: path.into(), source })
}

/// What a finished (or stopped) run reports; also written to `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunSummary {
    pub network: String,
    pub similarity: String,
    pub dataset: String,
    /// Trainable values, batch-norm γ/β and similarity parameters included.
    pub params: usize,
    /// Convolution and fully connected weights only (predictors' included): what the paper's
    /// parameter counts count. Absent in summaries written before it was recorded.
    #[serde(default)]
    pub weights: Option<usize>,
    pub steps: u64,
    pub final_test_acc: f32,
    /// Top-5 accuracy at the final evaluation (training runs; absent in few-shot rows and in
    /// summaries written before it was recorded).
    #[serde(default)]
    pub final_test_top5: Option<f32>,
    pub best_test_acc: f32,
    pub best_step: u64,
    pub final_train_loss: f32,
    /// Wall time of the run over all its resumes (a run resumed from a checkpoint that has no
    /// `time.json`, from before nsl kept one, counts from that resume).
    pub wall_seconds: f64,
    /// Training throughput of the last segment (since the run started or resumed).
    pub train_images_per_second: f64,
    pub backend: String,
    pub resumed_from: Option<u64>,
}

/// `time.json`: wall seconds of training up to the checkpoint at `step`, over every resume.
#[derive(Serialize, Deserialize)]
struct CheckpointTime {
    step: u64,
    wall_seconds: f64,
}

/// A run folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    /// The run folder `dir` (nothing is created until something is written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RunDir { dir: dir.into() }
    }
    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }
    /// `checkpoint.safetensors`.
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }
    /// `metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }
    fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    fn summary_path(&self) -> PathBuf {
        self.dir.join("summary.json")
    }
    fn time_path(&self) -> PathBuf {
        self.dir.join("time.json")
    }
    /// Whether a checkpoint is there.
    pub fn has_checkpoint(&self) -> bool {
        self.checkpoint().is_file()
    }
    /// Whether the folder holds anything of a run (a checkpoint, a summary or a log).
    pub fn holds_a_run(&self) -> bool {
        self.has_checkpoint() || self.summary_path().is_file() || self.metrics_path().is_file()
    }

    /// The run's `config.toml`, if there is one.
    ///
    /// # Errors
    /// If it cannot be read or parsed (naming the file).
    pub fn read_config(&self) -> Result<Option<RunConfig>, Error> {
        let path = self.config_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => RunConfig::from_toml(&text)
                .map(Some)
                .map_err(|e| Error::BadFile { path, problem: e.trim().to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }
    /// Write `config.toml` atomically.
    pub fn write_config(&self, cfg: &RunConfig) -> Result<(), Error> {
        write_file(&self.config_path(), cfg.to_toml().as_bytes())
    }

    /// The summary a finished run wrote, if there is a readable one.
    pub fn read_summary(&self) -> Option<RunSummary> {
        let text = std::fs::read_to_string(self.summary_path()).ok()?;
        serde_json::from_str(&text).ok()
    }
    /// Write `summary.json` atomically.
    pub fn write_summary(&self, summary: &RunSummary) -> Result<(), Error> {
        let json = serde_json::to_string_pretty(summary).expect("a summary serialises");
        write_file(&self.summary_path(), json.as_bytes())
    }
    /// Remove `summary.json` (a run that continues is no longer finished).
    pub fn clear_summary(&self) -> Result<(), Error> {
        match std::fs::remove_file(self.summary_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Io { path: self.summary_path(), source: e })
            }
            _ => Ok(()),
        }
    }

    /// The training wall time up to checkpoint `step`, as `time.json` recorded it beside that
    /// checkpoint; `None` when it holds another step or is missing (runs from before nsl kept it).
    pub fn read_time_at(&self, step: u64) -> Option<f64> {
        let text = std::fs::read_to_string(self.time_path()).ok()?;
        let time: CheckpointTime = serde_json::from_str(&text).ok()?;
        (time.step == step && time.wall_seconds.is_finite()).then_some(time.wall_seconds)
    }
    /// Write `time.json` atomically: the run's wall time up to its checkpoint at `step`. Kept out
    /// of the checkpoint, whose bytes depend on the run's config and seed only.
    pub fn write_time(&self, step: u64, wall_seconds: f64) -> Result<(), Error> {
        let json = serde_json::to_string(&CheckpointTime { step, wall_seconds }).expect("a time serialises");
        write_file(&self.time_path(), json.as_bytes())
    }

    /// The run's log as far as it goes.
    pub fn metrics(&self) -> Metrics {
        Metrics::read(&self.metrics_path())
    }
    /// Start the log afresh (`step = None`) or keep only its lines of steps `≤ step` (a resumed
    /// run rewrites what followed its checkpoint), and open it for appending.
    pub fn open_metrics(&self, keep_up_to: Option<u64>) -> Result<MetricsLog, Error> {
        let path = self.metrics_path();
        std::fs::create_dir_all(&self.dir).map_err(|source| Error::Io { path: self.dir.clone(), source })?;
        let kept = keep_up_to.map(|step| Metrics::text_up_to(&path, step)).unwrap_or_default();
        write_file(&path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|source| Error::Io { path: path.clone(), source })?;
        Ok(MetricsLog { path, file })
    }
}

/// `metrics.jsonl` open for appending; every line is flushed as it is written, so a killed run
/// leaves its log up to its last step and a reader (`tail -f`, a report) sees it live.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

impl MetricsLog {
    /// Append one line.
    pub fn write<T: Serialize>(&mut self, line: &T) -> Result<(), Error> {
        writeln!(self.file, "{}", to_line(line)).map_err(|source| Error::Io { path: self.path.clone(), source })
    }
}
