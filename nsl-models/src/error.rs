//! [`Error`]: nsl-models' one error type, for training, evaluation, checkpoints and data.

use std::fmt;
use std::path::PathBuf;

use nsl_core::BackendError;

use crate::checkpoint::CheckpointError;
use crate::data::DataError;
use crate::train::ConfigError;

/// Why a run (or an evaluation, a fold, a few-shot job) did not start or stopped. Every message
/// names the cause and what to do.
#[derive(Debug)]
pub enum Error {
    /// A config field is out of range.
    Config(ConfigError),
    /// The config asks for something this command does not do.
    Unsupported(String),
    Data(DataError),
    Checkpoint(CheckpointError),
    /// The device failed (out of memory, a driver or kernel error); see [`BackendError`].
    Backend(BackendError),
    /// A file of the run folder does not parse.
    BadFile {
        path: PathBuf,
        problem: String,
    },
    /// `train` into a folder that holds a run, without `--resume`.
    RunExists {
        dir: PathBuf,
        finished: bool,
    },
    /// `--resume` into a folder without a checkpoint.
    NothingToResume {
        dir: PathBuf,
    },
    /// `--resume` with a setting that would change the run (not one of [`crate::train::RESUME_OVERRIDES`]).
    ChangedOnResume {
        checkpoint: PathBuf,
        key: String,
        saved: String,
        asked: String,
    },
    /// A loss, regulariser or weight became NaN or infinite (`culprit` says which and where).
    NonFinite {
        step: u64,
        culprit: String,
        last_checkpoint: Option<(PathBuf, u64)>,
    },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A few-shot job cannot run as asked (classes, episode sizes, a head of the wrong size).
    FewShot(String),
    /// A checkpoint of a resumable job (pretraining, MAML) that belongs to another job or lacks
    /// what resuming needs.
    StaleCheckpoint {
        path: PathBuf,
        problem: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "invalid run config: {e}"),
            Error::Unsupported(msg) => f.write_str(msg),
            Error::Data(e) => write!(f, "{e}"),
            Error::Checkpoint(e) => write!(f, "{e}"),
            Error::Backend(e) => write!(f, "{e}"),
            Error::BadFile { path, problem } => {
                write!(f, "{} does not parse: {problem}. Fix or delete it.", path.display())
            }
            Error::RunExists { dir, finished } => write!(
                f,
                "{} already holds a{} run: continue it with --resume, or choose another --out (or delete the folder \
                 to start over)",
                dir.display(),
                if *finished { " finished" } else { "n unfinished" }
            ),
            Error::NothingToResume { dir } => write!(
                f,
                "--resume: {} has no checkpoint.safetensors to continue from; drop --resume to start a new run there",
                dir.display()
            ),
            Error::ChangedOnResume { checkpoint, key, saved, asked } => write!(
                f,
                "--resume: `{key}` is {saved} in the run of {} but {asked} was asked; only {} may change on resume. \
                 Drop that setting, or start a new run with another --out",
                checkpoint.display(),
                crate::train::RESUME_OVERRIDES.join(", ")
            ),
            Error::NonFinite { step, culprit, last_checkpoint } => {
                write!(f, "training diverged at step {step}: {culprit}. ")?;
                match last_checkpoint {
                    Some((path, at)) => write!(
                        f,
                        "The last good checkpoint is {} (step {at}); rerun with --resume and a lower --lr.",
                        path.display()
                    ),
                    None => write!(f, "No checkpoint was written yet; start again with a lower --lr."),
                }
            }
            Error::Io { path, source } => write!(f, "{}: {}", path.display(), crate::files::io_hint(source)),
            Error::FewShot(msg) => f.write_str(msg),
            Error::StaleCheckpoint { path, problem } => {
                write!(f, "{}: {problem}; delete it to start this job afresh", path.display())
            }
        }
    }
}

impl std::error::Error for Error {}

// Conversion boilerplate: one `From` per nested error, so `?` lifts each into `Error`.

impl From<DataError> for Error {
    fn from(e: DataError) -> Self {
        Error::Data(e)
    }
}

impl From<CheckpointError> for Error {
    fn from(e: CheckpointError) -> Self {
        Error::Checkpoint(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        Error::Backend(e)
    }
}
