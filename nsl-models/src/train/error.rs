use std::fmt;
use std::path::PathBuf;

use crate::checkpoint::CheckpointError;
use crate::data::DataError;

/// Why a run stopped. Every variant's message names the cause and what to do.
#[derive(Debug)]
pub enum TrainError {
    /// The run config is invalid.
    Config(String),
    Data(DataError),
    Checkpoint(CheckpointError),
    /// The loss became NaN or infinite.
    NonFinite {
        step: u64,
        culprit: String,
        last_checkpoint: Option<(PathBuf, u64)>,
    },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Config(msg) => write!(f, "invalid run config: {msg}"),
            TrainError::Data(e) => write!(f, "{e}"),
            TrainError::Checkpoint(e) => write!(f, "{e}"),
            TrainError::NonFinite { step, culprit, last_checkpoint } => {
                write!(f, "training diverged at step {step}: {culprit}. ")?;
                match last_checkpoint {
                    Some((path, at)) => write!(
                        f,
                        "The last good checkpoint is {} (step {at}); lower --lr and rerun with --resume.",
                        path.display()
                    ),
                    None => write!(f, "No checkpoint was written yet; lower --lr and start again."),
                }
            }
            TrainError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for TrainError {}

impl From<DataError> for TrainError {
    fn from(e: DataError) -> Self {
        TrainError::Data(e)
    }
}

impl From<CheckpointError> for TrainError {
    fn from(e: CheckpointError) -> Self {
        TrainError::Checkpoint(e)
    }
}
