//! Training and evaluation: a run's config ([`RunConfig`], its named choices and validation),
//! what it builds ([`build`]), one optimisation step ([`step`]), the loop ([`train`]), the
//! evaluation ([`evaluate()`]), the run folder ([`RunDir`]) and its log ([`metrics`]), and the
//! errors ([`crate::Error`]).

pub mod build;
pub mod choices;
mod config;
pub mod evaluate;
pub mod metrics;
mod run;
mod run_dir;
pub mod step;

pub use crate::error::Error;
pub use build::{build_network, load_data, load_sources, load_test, normalize_of, Source};
pub use choices::{AugmentChoice, DatasetChoice, NetworkChoice, NormalizeChoice, OptimizerChoice};
pub use config::{ConfigError, RunConfig, CODE_BN_DECAY};
pub use evaluate::{count_top_k, evaluate, Accuracy};
pub use run::{first_non_finite, train, Resume, RunOptions, RESUME_OVERRIDES};
pub(crate) use run_dir::write_file;
pub use run_dir::{MetricsLog, RunDir, RunSummary};
