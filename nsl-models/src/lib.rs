//! Networks, training, data and checkpoints of the NSL paper.

pub mod backend_choice;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod error;
pub mod export;
pub mod fewshot;
pub mod files;
pub mod nets;
pub mod predict;
pub mod repro;
pub mod train;

pub use error::Error;
