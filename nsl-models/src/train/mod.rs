//! Training and evaluation: the run loop, its config, its metrics and its errors.

mod config;
mod error;
pub mod metrics;
mod run;

pub use config::RunConfig;
pub use error::TrainError;
pub use run::{
    build_network, count_top_k, evaluate, evaluate_accuracy, evaluate_debiased, evaluate_debiased_accuracy, load_data,
    load_sources, parse_normalize, train, Accuracy, RunOptions, RunSummary, Source,
};
