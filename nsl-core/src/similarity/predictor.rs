//! Similarity predictors for [`super::Dynamic`] (spec §3.3–3.5, Table 1).
//!
//! Two stacked 3×3 SAME convolutions on the layer's own input: `m1` (C_in → hidden) then
//! `m2` (hidden → k² or k⁴), each optionally followed by batch norm; ReLU after `m1` only.

use super::{DynamicKind, InnerProduct, Similarity, Sphere};
use crate::nn::{BatchNorm, NslConv, Padding, Relu, Sequential};
use crate::{Backend, Rng};

/// How the predictor's convolutions normalise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredictorNorm {
    /// `m1` divides by the input-window norm only; `m2` is plain (the reference code, "SN").
    XNormalized,
    /// Both `m1` and `m2` are cosine SphereConvs (÷‖x‖÷‖w‖), `nsl_fspherenet` (spec §3.5).
    FullSphere,
    /// Plain convolutions, the "CNN" predictor of Table 1.
    Plain,
}

/// Shape and init of a predictor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PredictorConfig {
    pub hidden: usize,
    pub outputs: usize,
    pub norm: PredictorNorm,
    /// BN after `m1` and `m2` (DNS: yes; UNS: no).
    pub batch_norm: bool,
    pub bn_eps: f32,
    /// He-init multipliers of `m1` and `m2` (code: 0.1 and 0.001).
    pub init_scales: (f32, f32),
    pub weight_decay: f32,
}

impl PredictorConfig {
    /// The reference DNS predictor: 64 hidden, x-normalised m1, BN after both, init ×0.1/×0.001.
    pub fn dns(taps: usize) -> Self {
        PredictorConfig {
            hidden: 64,
            outputs: taps,
            norm: PredictorNorm::XNormalized,
            batch_norm: true,
            bn_eps: 1e-3,
            init_scales: (0.1, 0.001),
            weight_decay: 5e-4,
        }
    }
    /// The reference UNS predictor: 128 hidden, x-normalised m1, no BN, k⁴ outputs.
    pub fn uns(taps: usize) -> Self {
        PredictorConfig { hidden: 128, outputs: taps * taps, batch_norm: false, ..Self::dns(taps) }
    }
    /// The reference predictor of a dynamic similarity of `kind`: [`Self::dns`] or [`Self::uns`].
    pub fn reference(kind: DynamicKind, taps: usize) -> Self {
        match kind {
            DynamicKind::Diagonal => Self::dns(taps),
            DynamicKind::Unconstrained => Self::uns(taps),
        }
    }
}

fn similarity_for<B: Backend>(norm: PredictorNorm, first: bool) -> Box<dyn Similarity<B>> {
    match (norm, first) {
        (PredictorNorm::FullSphere, _) => Box::new(Sphere::cosine()),
        (PredictorNorm::XNormalized, true) => Box::new(Sphere::x_normalized()),
        _ => InnerProduct::boxed(),
    }
}

/// Build the predictor network `m1 → [BN] → ReLU → m2 → [BN]` for a layer with `c_in` inputs.
pub fn build<B: Backend>(be: &B, rng: &mut Rng, name: &str, c_in: usize, cfg: &PredictorConfig) -> Sequential<B> {
    let m1 = NslConv::new(
        be,
        rng,
        &format!("{name}.m1"),
        (c_in, cfg.hidden),
        (3, 1, Padding::Same),
        cfg.init_scales.0,
        cfg.weight_decay,
        similarity_for(cfg.norm, true),
    );
    let m2 = NslConv::new(
        be,
        rng,
        &format!("{name}.m2"),
        (cfg.hidden, cfg.outputs),
        (3, 1, Padding::Same),
        cfg.init_scales.1,
        cfg.weight_decay,
        similarity_for(cfg.norm, false),
    );
    let mut seq = Sequential::new(name).push(m1);
    seq = if cfg.batch_norm {
        seq.push(BatchNorm::new(be, &format!("{name}.bn1"), cfg.hidden, cfg.bn_eps, cfg.weight_decay).with_relu())
    } else {
        seq.push(Relu::new())
    };
    seq = seq.push(m2);
    if cfg.batch_norm {
        seq = seq.push(
            BatchNorm::new(be, &format!("{name}.bn2"), cfg.outputs, cfg.bn_eps, cfg.weight_decay).predictor_output(),
        );
    }
    seq
}
