//! The networks of the paper, backend-generic, with any similarity in their NSL slots.

mod choice;
mod cnn10;
mod cnn4;
mod cnn9;
mod shared;
mod spherenet9;

pub use choice::{PredictorKind, SimilarityChoice, SimilarityOptions, Slots};
pub use cnn10::{cnn10, Cnn10Config, CNN10_WEIGHT_DECAY};
pub use cnn4::{cnn4, Cnn4Config};
pub use cnn9::{cnn9, cnn9_plus_plus, cnn9_plus_plus_of, Cnn9Config};
pub use shared::{shared_trunk, SharedBnStats, SharedPredictor, SharedTrunk};
pub use spherenet9::{spherenet9, SphereNetConfig};

use nsl_core::nn::{BatchNorm, InferenceOp, Layer, Mode, Sequential};
use nsl_core::{Backend, Param, Rng, Role, Tensor};

/// The random stream a network's similarity parameters and predictors are drawn from, forked
/// from the network's stream before any backbone weight: for one seed every similarity variant of
/// a network starts from the same backbone weights, so comparisons between variants are paired.
pub(crate) fn similarity_stream(rng: &mut Rng) -> Rng {
    rng.fork(0x5111)
}

/// A classifier: a sequential body from `[B, H, W, C]` images to `[B, classes]` logits, plus any
/// shared sub-networks (visited once, after the body).
pub struct Network<B: Backend> {
    pub name: String,
    pub body: Sequential<B>,
    pub shared: Vec<SharedTrunk<B>>,
    pub classes: usize,
    /// `[H, W, C]` of one input image.
    pub input: [usize; 3],
}

impl<B: Backend> Network<B> {
    /// Trainable parameter count (BN γ/β included, running statistics excluded).
    pub fn param_count(&mut self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |p| {
            if p.trainable {
                n += p.value.numel()
            }
        });
        n
    }
    /// Count of convolution and fully connected weights ([`Role::Weight`]; predictors'
    /// included): the paper's convention.
    pub fn weight_count(&mut self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |p| {
            if p.role == Role::Weight {
                n += p.value.numel()
            }
        });
        n
    }
    /// Set γ of every similarity predictor's output batch norm (the disjoint, full-sphere,
    /// plain-CNN and shared DNS predictors: [`Role::BnScale`] `{ predictor_output: true }`) to
    /// `gamma`; returns how many tensors were set.
    ///
    /// The dynamic similarity is `M_p = I + γ ⊙ x̂_p + β` with `x̂` the BN-normalised output of the
    /// predictor's last conv. The reference code starts γ at 1: m2's output variance (~1e-7) is far
    /// below BN's ε = 1e-3, so `M ≈ I ± 0.01` at init, but one SGD step raises that variance past ε
    /// and `M` becomes `I` plus unit-variance noise (measured: the per-channel spread of `M − I`
    /// goes from 0.01 to 0.98 in the first layer after step 1). `gamma = 0` is the zero-init
    /// residual of Goyal et al. (2017): `M` starts at exactly `I` and moves away only as γ learns.
    pub fn set_predictor_output_gamma(&mut self, be: &B, gamma: f32) -> usize {
        let mut set = 0;
        self.visit_params(&mut |p| {
            if p.role == (Role::BnScale { predictor_output: true }) {
                p.value = Tensor::from_vec(be, p.value.shape(), &vec![gamma; p.value.numel()]);
                set += 1;
            }
        });
        set
    }
    /// Set the running-statistics EMA decay of every batch norm (`RunConfig::bn_decay`).
    pub fn set_bn_decay(&mut self, decay: f32) {
        self.visit_batch_norms(&mut |bn| bn.ema_decay = decay);
    }
    /// Forward that names the first layer producing a non-finite value.
    pub fn forward_checked(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Result<Tensor<B>, String> {
        let y = self.body.forward_checked(be, x, mode)?;
        Ok(y.reshape(&[x.shape()[0], self.classes]))
    }
}

impl<B: Backend> Layer<B> for Network<B> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let batch = x.shape()[0];
        assert_eq!(&x.shape()[1..], &self.input, "{}: input {:?} is not [B, {:?}]", self.name, x.shape(), self.input);
        self.body.forward(be, x, mode).reshape(&[batch, self.classes])
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B> {
        let batch = dy.shape()[0];
        self.body.backward(be, &dy.clone().reshape(&[batch, 1, 1, self.classes]))
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.body.visit_params(f);
        for trunk in &self.shared {
            trunk.lock().unwrap_or_else(|p| p.into_inner()).visit_params(f);
        }
    }
    fn visit_batch_norms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<B>)) {
        self.body.visit_batch_norms(f);
        for trunk in &self.shared {
            trunk.lock().unwrap_or_else(|p| p.into_inner()).visit_batch_norms(f);
        }
    }
    fn fold(&mut self, be: &B) -> Result<(), String> {
        self.body.fold(be)
    }
    /// The body's description; shared predictor trunks appear inside every layer that uses them.
    fn inference_graph(&mut self, be: &B) -> Result<Vec<InferenceOp>, String> {
        self.body.inference_graph(be)
    }
}
