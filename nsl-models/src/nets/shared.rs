//! The shared similarity predictor of Table 3 (paper §3.3.2; sizes are spec §5.3's [ASSUMPTION]).
//!
//! Each layer has its own adaptation network `3×3 x-normalised conv C_in→32 + BN + ReLU`; one
//! trunk `3×3 conv 32→64 + BN + ReLU → 3×3 conv 64→k² + BN` is shared by every layer. With the
//! CIFAR backbone this is about 190k predictor parameters, half of the disjoint 380k.

use std::sync::{Arc, Mutex};

use nsl_core::nn::{BatchNorm, Layer, Mode, NslConv, Padding, Sequential};
use nsl_core::similarity::{InnerProduct, Sphere};
use nsl_core::{Backend, Param, Rng, Tensor};

/// Width of the adapted maps the trunk reads.
pub const ADAPTED: usize = 32;

/// A predictor trunk shared by several layers. Its layers keep a cache per call, so the calls
/// of one forward are undone in reverse order by the backward.
pub type SharedTrunk<B> = Arc<Mutex<Sequential<B>>>;

/// Build the shared trunk `32 → 64 → taps`.
pub fn shared_trunk<B: Backend>(be: &B, rng: &mut Rng, taps: usize) -> SharedTrunk<B> {
    let conv = |rng: &mut Rng, name: &str, c: (usize, usize), scale: f32| {
        NslConv::new(be, rng, name, c, (3, 1, Padding::Same), scale, 5e-4, InnerProduct::boxed())
    };
    let trunk = Sequential::new("shared_pred")
        .push(conv(rng, "shared_pred.m1", (ADAPTED, 64), 0.1))
        .push(BatchNorm::new(be, "shared_pred.bn1", 64, 1e-3, 5e-4).with_relu())
        .push(conv(rng, "shared_pred.m2", (64, taps), 0.001))
        .push(BatchNorm::new(be, "shared_pred.bn2", taps, 1e-3, 5e-4));
    Arc::new(Mutex::new(trunk))
}

/// One layer's view of the shared predictor: its own adaptation network, then the trunk.
/// Visits only its adapter's parameters (the network visits the trunk once).
pub struct SharedPredictor<B: Backend> {
    adapter: Sequential<B>,
    trunk: SharedTrunk<B>,
}

impl<B: Backend> SharedPredictor<B> {
    pub fn new(be: &B, rng: &mut Rng, name: &str, c_in: usize, trunk: SharedTrunk<B>) -> Self {
        let adapter = Sequential::new(format!("{name}.adapt"))
            .push(NslConv::new(
                be,
                rng,
                &format!("{name}.adapt.conv"),
                (c_in, ADAPTED),
                (3, 1, Padding::Same),
                0.1,
                5e-4,
                Box::new(Sphere::x_normalized()),
            ))
            .push(BatchNorm::new(be, &format!("{name}.adapt.bn"), ADAPTED, 1e-3, 5e-4).with_relu());
        SharedPredictor { adapter, trunk }
    }
}

fn lock<B: Backend>(trunk: &SharedTrunk<B>) -> std::sync::MutexGuard<'_, Sequential<B>> {
    trunk.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<B: Backend> Layer<B> for SharedPredictor<B> {
    fn name(&self) -> String {
        format!("{} + shared trunk", self.adapter.name)
    }
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let h = self.adapter.forward(be, x, mode);
        lock(&self.trunk).forward(be, &h, mode)
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B> {
        let dh = lock(&self.trunk).backward(be, dy);
        self.adapter.backward(be, &dh)
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.adapter.visit_params(f);
    }
    fn visit_batch_norms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<B>)) {
        self.adapter.visit_batch_norms(f);
    }
}
