//! Training and evaluation: the run loop, its config, its metrics and its errors.

mod config;
mod error;
mod run;

pub use config::RunConfig;
pub use error::TrainError;
pub use run::{
    build_network, evaluate, evaluate_debiased, load_data, load_sources, parse_normalize, train, RunOptions,
    RunSummary, Source,
};
