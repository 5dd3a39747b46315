//! SphereNet-9 with and without self-attention, and its plain-CNN twin (spec §7, Table 8).

use nsl_core::nn::{BatchNorm, MaxPool, NslConv, Padding, Sequential};
use nsl_core::similarity::{InnerProduct, SelfAttention, Similarity, Sphere};
use nsl_core::{Backend, Rng};

use super::Network;

/// Which Table 8 network.
#[derive(Clone, Debug, PartialEq)]
pub struct SphereNetConfig {
    pub classes: usize,
    /// Cosine SphereConvs (no L2 on their filters, orthogonality 2e-4) or plain convs (L2 5e-4).
    pub sphere: bool,
    /// Self-attention blocks after pool1 and pool2.
    pub attention: bool,
    pub widths: [usize; 3],
    pub input_hw: usize,
    /// Input channels (3 for colour images, 1 for Fashion-MNIST).
    pub input_channels: usize,
    /// L2 on the plain convs, the attention blocks, the score layer and every BN γ/β (code:
    /// 5e-4); SphereConv filters never get any.
    pub weight_decay: f32,
}

impl SphereNetConfig {
    /// The `nsl_global_ns` layout: widths 128/192/256 on 32×32 inputs.
    pub fn paper(classes: usize, sphere: bool, attention: bool) -> Self {
        SphereNetConfig {
            classes,
            sphere,
            attention,
            widths: [128, 192, 256],
            input_hw: 32,
            input_channels: 3,
            weight_decay: 5e-4,
        }
    }
    /// Every width times `factor` (at least 8, so the attention's C/8 stays ≥ 1).
    pub fn scaled(mut self, factor: f32) -> Self {
        self.widths = self.widths.map(|w| ((w as f32 * factor).round() as usize).max(8));
        self
    }
}

/// SphereNet-9: 3 stages of 3 × [conv + BN + ReLU] + 2×2 max-pool (attention after pools 1
/// and 2), `fc6` a 4×4 VALID conv to 256 (the last stage's width) (no BN, no ReLU) and a 1×1 plain `score` conv.
pub fn spherenet9<B: Backend>(be: &B, rng: &mut Rng, cfg: &SphereNetConfig) -> Network<B> {
    let l2 = cfg.weight_decay;
    let (wd, orth) = if cfg.sphere { (0.0, 2e-4) } else { (l2, 0.0) };
    let sim = || -> Box<dyn Similarity<B>> {
        if cfg.sphere {
            Box::new(Sphere::cosine())
        } else {
            InnerProduct::boxed()
        }
    };
    let conv = |rng: &mut Rng, name: &str, c: (usize, usize), k: (usize, usize, Padding)| {
        let mut conv = NslConv::new(be, rng, name, c, k, 1.0, wd, sim());
        conv.weight.orthogonality = orth;
        conv
    };
    let mut body = Sequential::new("spherenet9");
    let mut c_in = cfg.input_channels;
    let mut side = cfg.input_hw;
    for (stage, &width) in cfg.widths.iter().enumerate() {
        for i in 0..3 {
            let name = format!("conv{}_{i}", stage + 1);
            body = body
                .push(conv(rng, &name, (c_in, width), (3, 1, Padding::Same)))
                .push(BatchNorm::new(be, &format!("{name}.bn"), width, 1e-3, l2).with_relu());
            c_in = width;
        }
        body = body.push(MaxPool::new(2, 2));
        side = side.div_ceil(2);
        if cfg.attention && stage < 2 {
            let name = format!("att{}", stage + 1);
            let att = SelfAttention::new(be, rng, &name, width, cfg.sphere, l2, orth);
            let mut v = NslConv::new(
                be,
                rng,
                &format!("{name}.v"),
                (width, width),
                (1, 1, Padding::Same),
                1.0,
                l2,
                Box::new(att),
            );
            v.weight.orthogonality = orth;
            body = body.push(v);
        }
    }
    let fc6 = cfg.widths[2];
    body = body.push(conv(rng, "fc6", (c_in, fc6), (side, 1, Padding::Valid))).push(NslConv::new(
        be,
        rng,
        "score",
        (fc6, cfg.classes),
        (1, 1, Padding::Valid),
        1.0,
        l2,
        InnerProduct::boxed(),
    ));
    let name = match (cfg.sphere, cfg.attention) {
        (true, true) => "spherenet9+attention",
        (true, false) => "spherenet9",
        (false, true) => "cnn9-wide+attention",
        (false, false) => "cnn9-wide",
    };
    Network {
        name: name.into(),
        body,
        shared: Vec::new(),
        classes: cfg.classes,
        input: [cfg.input_hw, cfg.input_hw, cfg.input_channels],
    }
}
