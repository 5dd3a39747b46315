//! Networks, training, data and checkpoints of the NSL paper.

pub mod nets;
