//! One optimisation step, the two halves every training loop of nsl is made of: the loss and its
//! gradients ([`loss_and_gradients`]) and the update ([`apply_update`]). `nsl train` and
//! few-shot pretraining run both on a network in [`Mode::TRAIN`]; fine-tuning runs both on a
//! network in [`Mode::ADAPT`] or on a lone head; MAML's inner loop takes the gradients of its
//! support loss and its outer step the update with the meta-gradient it puts in their place.

use nsl_core::nn::{cross_entropy, Layer, Mode};
use nsl_core::optim::{apply_regularizers, zero_grads, Optimizer};
use nsl_core::{Backend, Tensor};

use super::RunConfig;

/// The cross-entropy a step minimises: `−Σ ỹ log(softmax + floor)` with `ỹ` the one-hot label
/// smoothed by `smoothing` (the reference code: 0.01 and 1e-4; PyTorch's plain one: 0 and 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    pub smoothing: f32,
    pub log_floor: f32,
}

impl Loss {
    /// PyTorch's `F.cross_entropy`: no smoothing, no floor (the few-shot code).
    pub const PLAIN: Loss = Loss { smoothing: 0.0, log_floor: 0.0 };
    /// The loss of a run config.
    pub fn of(cfg: &RunConfig) -> Loss {
        Loss { smoothing: cfg.smoothing, log_floor: cfg.log_floor }
    }
}

/// What the forward and backward of a step left.
pub struct Gradients<B: Backend> {
    /// The batch's mean loss.
    pub loss: f32,
    /// `[batch, classes]`.
    pub logits: Tensor<B>,
}

impl<B: Backend> Gradients<B> {
    /// Whether the loss is finite (otherwise no gradient was computed).
    pub fn is_finite(&self) -> bool {
        self.loss.is_finite()
    }
}

/// Zero every gradient of `model`, run it on `x` in `mode`, and back-propagate `loss` of the
/// `labels` into the parameters' `grad` — unless the loss is NaN or infinite, which is returned
/// with the gradients left at zero, so a caller can stop before an update spreads it.
pub fn loss_and_gradients<B: Backend>(
    be: &B,
    model: &mut dyn Layer<B>,
    (x, labels): (&Tensor<B>, &[usize]),
    loss: Loss,
    mode: Mode,
) -> Gradients<B> {
    zero_grads(be, model);
    let out = model.forward(be, x, mode);
    let logits = out.clone().reshape(&[labels.len(), out.numel() / labels.len().max(1)]);
    let (value, dlogits) = cross_entropy(be, &logits, labels, loss.smoothing, loss.log_floor);
    if value.is_finite() {
        model.backward(be, &dlogits.reshape(out.shape()));
    } else if mode.record {
        let _ = model.backward(be, &out.zeros_like(be)); // drop the recorded caches
        zero_grads(be, model);
    }
    Gradients { loss: value, logits }
}

/// Add the ℓ1 and orthogonality gradients, then take one optimiser step of size `lr` on the
/// parameters that are not frozen (coupled L2 inside the optimiser). Returns the regulariser's
/// value (L2 included), as the reference code adds it to the reported loss.
pub fn apply_update<B: Backend>(be: &B, model: &mut dyn Layer<B>, opt: &mut Optimizer<B>, lr: f32) -> f32 {
    let reg = apply_regularizers(be, model);
    opt.step(be, lr, model);
    reg
}
