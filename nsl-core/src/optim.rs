//! Optimisers (heavy-ball SGD with optional PyTorch dampening, Adam) with coupled L2, and the
//! ℓ1 / orthogonality regularisers.

use crate::nn::Layer;
use crate::{AdamStep, Backend, Param, SgdStep, Tensor};

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// See [`SgdStep`]. TF `MomentumOptimizer(lr, 0.9)` is `momentum 0.9, dampening 0`.
    Sgd { momentum: f32, dampening: f32 },
    /// See [`AdamStep`].
    Adam { beta1: f32, beta2: f32, eps: f32 },
}

/// An optimiser over a model's learnable parameters, visited in the model's fixed order.
/// Each parameter's own `weight_decay` is applied as coupled L2 (`g += λ·w`).
pub struct Optimizer<B: Backend> {
    pub kind: OptimizerKind,
    /// Number of steps taken so far.
    pub steps: u64,
    slots: Vec<Slot<B>>,
}

/// Per-parameter state: momentum (SGD) or first/second moments (Adam).
pub struct Slot<B: Backend> {
    pub name: String,
    pub first: Tensor<B>,
    pub second: Option<Tensor<B>>,
}

impl<B: Backend> Optimizer<B> {
    pub fn new(kind: OptimizerKind) -> Self {
        Optimizer { kind, steps: 0, slots: Vec::new() }
    }
    /// TF-style momentum SGD (`v = μ·v + g`).
    pub fn momentum(momentum: f32) -> Self {
        Self::new(OptimizerKind::Sgd { momentum, dampening: 0.0 })
    }
    /// Adam with the given betas and TF's default eps 1e-8.
    pub fn adam(beta1: f32, beta2: f32) -> Self {
        Self::new(OptimizerKind::Adam { beta1, beta2, eps: 1e-8 })
    }

    /// Update every learnable parameter of `model` with learning rate `lr`, then zero all gradients.
    pub fn step(&mut self, be: &B, lr: f32, model: &mut dyn Layer<B>) {
        let first_step = self.steps == 0;
        self.steps += 1;
        let t = self.steps;
        let kind = self.kind;
        let slots = &mut self.slots;
        let mut index = 0;
        model.visit_params(&mut |p: &mut Param<B>| {
            if !p.trainable {
                return;
            }
            if slots.len() == index {
                slots.push(Slot {
                    name: p.name.clone(),
                    first: p.value.zeros_like(be),
                    second: matches!(kind, OptimizerKind::Adam { .. }).then(|| p.value.zeros_like(be)),
                });
            }
            let slot = &mut slots[index];
            index += 1;
            if !p.frozen {
                match kind {
                    OptimizerKind::Sgd { momentum, dampening } => {
                        let s = SgdStep { lr, momentum, dampening, weight_decay: p.weight_decay, first_step };
                        be.sgd_step(&s, p.value.buf_mut(), p.grad.buf(), slot.first.buf_mut());
                    }
                    OptimizerKind::Adam { beta1, beta2, eps } => {
                        let s = AdamStep { lr, beta1, beta2, eps, weight_decay: p.weight_decay, t };
                        let second = slot.second.as_mut().expect("adam slot has a second moment");
                        be.adam_step(&s, p.value.buf_mut(), p.grad.buf(), slot.first.buf_mut(), second.buf_mut());
                    }
                }
            }
            p.zero_grad(be);
        });
    }

    /// The optimiser state, for checkpoints (empty before the first step).
    pub fn slots_mut(&mut self) -> &mut Vec<Slot<B>> {
        &mut self.slots
    }
}

/// Zero every gradient of `model`.
pub fn zero_grads<B: Backend>(be: &B, model: &mut dyn Layer<B>) {
    model.visit_params(&mut |p| p.zero_grad(be));
}

/// Add the ℓ1 and orthogonality gradients of every parameter and return the total
/// regularisation value including L2 (`Σ λ/2‖w‖² + μ‖w‖₁ + c/2‖WᵀW−I‖²`), as the reference
/// code adds it to the reported loss.
pub fn apply_regularizers<B: Backend>(be: &B, model: &mut dyn Layer<B>) -> f32 {
    let mut total = 0.0;
    model.visit_params(&mut |p| {
        if p.learnable() {
            total += p.l2_penalty(be) + p.add_regularizer_grads(be);
        }
    });
    total
}
