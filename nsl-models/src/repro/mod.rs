//! `cargo xtask repro`: every experiment of the paper, run (or skipped when already finished),
//! then reported next to the paper's numbers with plots.

mod fewshot_job;
pub mod plots;
mod registry;
mod report;
mod runner;
pub mod stats;

pub use fewshot_job::run_fewshot_row;
pub use registry::{
    apply_overrides, experiments, smoke_cifar, use_paper_schedule, FewShotMethod, Job, Metric, Row, Scale,
    PAPER_META_SCHEDULE, SMOKE_META_SCHEDULE, TABLES,
};
pub use report::{summary_table, write_report, ReportHeader};
pub use runner::{run_all, RowResult, RunnerOptions};
