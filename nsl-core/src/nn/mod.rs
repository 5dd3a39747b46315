//! Layers with explicit forward and backward passes (llm.c style): each layer caches what its
//! backward needs during a training forward and consumes the cache in `backward`.

mod batch_norm;
mod conv;
mod inference_graph;
mod init;
mod loss;
mod max_pool;
mod relu;
mod sequential;

pub use batch_norm::BatchNorm;
pub use conv::{NslConv, Padding};
pub use inference_graph::{BatchNormOp, ConvOp, InferenceOp};
pub use init::he_normal;
pub use loss::cross_entropy;
pub use max_pool::MaxPool;
pub use relu::Relu;
pub use sequential::Sequential;

use crate::{Backend, Param, Tensor};

/// Which statistics batch norm normalises with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stats {
    /// The batch's own mean and variance; the running statistics are updated from them.
    Batch,
    /// The running statistics, left unchanged.
    Running,
}

/// How a forward pass runs: which statistics batch norm uses, and whether every layer records
/// what its backward needs. The two are independent: few-shot fine-tuning and MAML
/// differentiate a network whose batch norms normalise with their running statistics
/// ([`Mode::ADAPT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub stats: Stats,
    /// Cache for `backward` (a forward that records must be followed by its backward).
    pub record: bool,
}

impl Mode {
    /// Training: batch statistics (updating the running ones), recorded for backward.
    pub const TRAIN: Mode = Mode { stats: Stats::Batch, record: true };
    /// Inference: running statistics, nothing recorded.
    pub const EVAL: Mode = Mode { stats: Stats::Running, record: false };
    /// Differentiable inference: running statistics (unchanged), recorded for backward.
    pub const ADAPT: Mode = Mode { stats: Stats::Running, record: true };
}

/// A differentiable layer. `forward` with [`Mode::record`] caches what `backward` needs;
/// `backward` takes `∂L/∂y`, **accumulates** parameter gradients and returns `∂L/∂x`.
pub trait Layer<B: Backend>: Send {
    /// A short name used in errors and summaries, e.g. `conv2_1 (dynamic DNS 64→64)`.
    fn name(&self) -> String;
    /// `y = f(x)`.
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B>;
    /// `∂L/∂x` from `∂L/∂y`; parameter gradients are added to their `grad`.
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B>;
    /// Visit every parameter and buffer, in a fixed order.
    fn visit_params(&mut self, _f: &mut dyn FnMut(&mut Param<B>)) {}
    /// Visit every batch norm inside this layer (itself included), in a fixed order: how a
    /// trainer sets their EMA decay or debiases their running statistics without knowing the
    /// network's structure.
    fn visit_batch_norms(&mut self, _f: &mut dyn FnMut(&mut BatchNorm<B>)) {}
    /// Replace every static similarity by its folded plain kernel (paper §3.2: deployment cost
    /// equals a plain CNN). Errs naming the first layer whose similarity is not static.
    fn fold(&mut self, _be: &B) -> Result<(), String> {
        Ok(())
    }
    /// What this layer computes at inference ([`Mode::EVAL`]), as host data for exporters.
    /// Errs naming the layer if it cannot describe itself.
    fn inference_graph(&mut self, _be: &B) -> Result<Vec<InferenceOp>, String> {
        Err(format!("{}: no inference description (cannot be exported)", self.name()))
    }
}

impl<B: Backend> Layer<B> for Box<dyn Layer<B>> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B> {
        (**self).forward(be, x, mode)
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B> {
        (**self).backward(be, dy)
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        (**self).visit_params(f)
    }
    fn visit_batch_norms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<B>)) {
        (**self).visit_batch_norms(f)
    }
    fn fold(&mut self, be: &B) -> Result<(), String> {
        (**self).fold(be)
    }
    fn inference_graph(&mut self, be: &B) -> Result<Vec<InferenceOp>, String> {
        (**self).inference_graph(be)
    }
}

/// What a training forward leaves for its backward. A stack, so a layer that is called several
/// times in one forward (a shared predictor) gets its caches back in reverse order.
pub struct Cache<T> {
    stack: Vec<T>,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache { stack: Vec::new() }
    }
}

impl<T> Cache<T> {
    /// Save what the matching `backward` needs.
    pub fn push(&mut self, value: T) {
        self.stack.push(value);
    }
    /// Take the most recent entry; panics naming `layer` if `backward` came without a training forward.
    pub fn pop(&mut self, layer: &str) -> T {
        self.stack.pop().unwrap_or_else(|| panic!("{layer}: backward without a training forward"))
    }
    /// Drop every entry (e.g. after a training forward that is not followed by backward).
    pub fn clear(&mut self) {
        self.stack.clear();
    }
}
