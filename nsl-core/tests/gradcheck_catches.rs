//! The gradient checker itself: it must report a wrong gradient, and must not report a right one
//! whose finite difference straddles a ReLU kink.

use nsl_core::gradcheck::{check_layer, GradCheck};
use nsl_core::nn::{BatchNorm, Layer, Mode, Relu, Sequential};
use nsl_core::{Backend, Param, Rng, Tensor};
use nsl_cpu::Cpu;

/// A layer whose backward scales the true input gradient by `factor` (1 = correct).
struct Scaled<L> {
    inner: L,
    factor: f32,
}

impl<B: Backend, L: Layer<B>> Layer<B> for Scaled<L> {
    fn name(&self) -> String {
        "scaled".into()
    }
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B> {
        self.inner.forward(be, x, mode)
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B> {
        let dx = self.inner.backward(be, dy);
        let scaled: Vec<f32> = dx.to_vec(be).iter().map(|v| v * self.factor).collect();
        Tensor::from_vec(be, dx.shape(), &scaled)
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.inner.visit_params(f)
    }
}

fn net(be: &Cpu) -> Sequential<Cpu> {
    Sequential::new("net").push(BatchNorm::new(be, "bn", 4, 1e-3, 0.0)).push(Relu::new())
}

#[test]
fn a_wrong_input_gradient_is_reported() {
    let be = Cpu::with_threads(1);
    let x = Tensor::from_vec(&be, &[2, 3, 3, 4], &Rng::new(9).normal_vec(72, 1.0));
    let cfg = GradCheck { samples: 16, ..GradCheck::default() };
    let (bad, n) = check_layer(&be, &mut Scaled { inner: net(&be), factor: 1.0 }, &x, &cfg);
    assert!(n > 0 && bad.is_empty(), "the correct gradient was reported: {bad:#?}");
    let (bad, _) = check_layer(&be, &mut Scaled { inner: net(&be), factor: 1.2 }, &x, &cfg);
    assert!(bad.iter().any(|m| m.tensor == "input"), "a gradient 20% too large passed");
}

#[test]
fn a_kink_inside_the_step_is_not_a_mismatch() {
    // x = 0.0007 feeds a ReLU directly: the ±1e-3 step crosses its kink, the ε/2 step does not.
    let be = Cpu::with_threads(1);
    let mut relu = Relu::new();
    let x = Tensor::from_vec(&be, &[1, 1, 1, 1], &[7e-4]);
    let cfg = GradCheck { samples: 1, ..GradCheck::default() };
    let (bad, n) = check_layer(&be, &mut relu, &x, &cfg);
    assert!(n == 1 && bad.is_empty(), "{bad:#?}");
}
