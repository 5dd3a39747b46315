//! Networks, training, data and checkpoints of the NSL paper.

pub mod checkpoint;
pub mod data;
pub mod nets;
pub mod train;
