//! CNN-4 for few-shot learning (spec §5.6).

use nsl_core::nn::{BatchNorm, MaxPool, NslConv, Padding, Sequential};
use nsl_core::similarity::InnerProduct;
use nsl_core::{Backend, Rng};

use super::{similarity_stream, Network, SimilarityChoice, SimilarityOptions, Slots};

/// Shape and regularisation of CNN-4.
#[derive(Clone, Debug, PartialEq)]
pub struct Cnn4Config {
    pub classes: usize,
    pub similarity: SimilarityChoice,
    /// `[H, W, C]` of one image (square), `[84, 84, 3]` on mini-ImageNet.
    pub input: [usize; 3],
    /// The 32 channels times this (at least 2).
    pub width: f32,
    /// Coupled L2 on every filter (predictors included) and BN γ/β (the few-shot recipe: 0).
    pub weight_decay: f32,
    /// Batch-norm ε. The few-shot code was PyTorch (spec §5.6), whose default is 1e-5.
    pub bn_eps: f32,
}

impl Cnn4Config {
    /// The few-shot CNN-4 for `classes` classes on 84×84 RGB: no weight decay, BN ε 1e-5.
    pub fn paper(classes: usize, similarity: SimilarityChoice) -> Self {
        Cnn4Config { classes, similarity, input: [84, 84, 3], width: 1.0, weight_decay: 0.0, bn_eps: 1e-5 }
    }
}

/// CNN-4: 4 × [3×3 NSL conv 32 + BN + ReLU + 2×2 VALID max-pool] (84 → 42 → 21 → 10 → 5), then
/// a linear classifier on the `5×5×32 = 800`-d features (a VALID conv named `classifier`).
pub fn cnn4<B: Backend>(be: &B, rng: &mut Rng, cfg: &Cnn4Config) -> Network<B> {
    let channels = ((32.0 * cfg.width).round() as usize).max(2);
    let wd = cfg.weight_decay;
    let mut sim_rng = similarity_stream(rng);
    let slots = Slots::new(be, &mut sim_rng, cfg.similarity, SimilarityOptions::code(wd), 3);
    let mut body = Sequential::new("cnn4");
    let mut c_in = cfg.input[2];
    let mut side = cfg.input[0];
    for i in 0..4 {
        let name = format!("conv{i}");
        let sim = slots.build(be, &mut sim_rng, &name, c_in, 3);
        body = body
            .push(NslConv::new(be, rng, &name, (c_in, channels), (3, 1, Padding::Same), 1.0, wd, sim))
            .push(BatchNorm::new(be, &format!("{name}.bn"), channels, cfg.bn_eps, wd).with_relu())
            .push(MaxPool::valid(2, 2));
        c_in = channels;
        side /= 2;
    }
    body = body.push(NslConv::new(
        be,
        rng,
        "classifier",
        (channels, cfg.classes),
        (side, 1, Padding::Valid),
        1.0,
        wd,
        InnerProduct::boxed(),
    ));
    let name = format!("cnn4-{}", cfg.similarity);
    Network { name, body, shared: slots.shared(), classes: cfg.classes, input: cfg.input }
}
