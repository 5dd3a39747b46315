//! Training and evaluation: a run's config ([`RunConfig`], its named choices and validation),
//! what it builds ([`build`]), one optimisation step ([`step`]), the loop ([`train`]), the
//! evaluation ([`evaluate`]), the run folder ([`RunDir`]) and its log ([`metrics`]), and the
//! errors ([`TrainError`]).

pub mod build;
pub mod choices;
mod config;
mod error;
pub mod evaluate;
pub mod metrics;
mod run;
mod run_dir;
pub mod step;

pub use build::{build_network, load_data, load_sources, load_test, normalize_of, Source};
pub use choices::{AugmentChoice, DatasetChoice, NetworkChoice, NormalizeChoice, OptimizerChoice};
pub use config::{ConfigError, RunConfig, CODE_BN_DECAY};
pub use error::TrainError;
pub use evaluate::{count_top_k, evaluate, Accuracy};
pub use run::{first_non_finite, train, Resume, RunOptions, RESUME_OVERRIDES};
pub use run_dir::{MetricsLog, RunDir, RunSummary};

/// An I/O error in words that say what to do about it.
pub fn io_hint(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "not found: check the path".into(),
        K::PermissionDenied => "permission denied: choose a path you can write to (e.g. under your home folder)".into(),
        K::AlreadyExists => "already exists: choose another path or remove it".into(),
        K::StorageFull => "the disk is full: free some space or write somewhere else".into(),
        K::IsADirectory => "is a folder, where a file was expected: give the file inside it".into(),
        K::NotADirectory => "part of the path is a file, where a folder was expected: choose another path".into(),
        K::ReadOnlyFilesystem => "the file system is read-only: write somewhere else".into(),
        _ => e.to_string(),
    }
}
