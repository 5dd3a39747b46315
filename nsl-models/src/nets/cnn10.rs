//! ImageNet CNN-10 (spec §5.5): 8,897,728 weights plain, 9,607,936 with dynamic DNS (64 hidden).

use nsl_core::nn::{BatchNorm, MaxPool, NslConv, Padding, Relu, Sequential};
use nsl_core::similarity::InnerProduct;
use nsl_core::{Backend, Rng};

use super::{similarity_stream, Network, SimilarityChoice, SimilarityOptions, Slots};

/// CNN-10's weight decay: the spec does not state one; DCNets' ImageNet code uses 1e-4 (spec
/// §5.5 \[ASSUMPTION\]).
pub const CNN10_WEIGHT_DECAY: f32 = 1e-4;

/// Shape and regularisation of CNN-10.
#[derive(Clone, Debug, PartialEq)]
pub struct Cnn10Config {
    pub classes: usize,
    pub similarity: SimilarityChoice,
    /// `[H, W, C]` of one image (square), `[224, 224, 3]` on ImageNet.
    pub input: [usize; 3],
    /// Every width times this (at least 4).
    pub width: f32,
    /// Coupled L2 on every filter (predictors included) and BN γ/β.
    pub weight_decay: f32,
    /// Hidden width of the DNS predictor before `width` scales it: 64 matches Table 5's weight
    /// count (9.61M); the paper's appendix says 32 (9.26M).
    pub predictor_hidden: usize,
    /// Convs per stage (3 in the paper).
    pub convs_per_stage: [usize; 3],
    /// Stage widths before `width` scales them (64/128/256 in the paper).
    pub widths: [usize; 3],
}

impl Cnn10Config {
    /// Table 5's CNN-10 for `classes` classes on 224×224 RGB, weight decay [`CNN10_WEIGHT_DECAY`].
    pub fn paper(classes: usize, similarity: SimilarityChoice) -> Self {
        Cnn10Config {
            classes,
            similarity,
            input: [224, 224, 3],
            width: 1.0,
            weight_decay: CNN10_WEIGHT_DECAY,
            predictor_hidden: 64,
            convs_per_stage: [3, 3, 3],
            widths: [64, 128, 256],
        }
    }
    /// CNN-10++ (spec §5.4 \[ASSUMPTION\]): plain, deeper and wider than CNN-10 with more
    /// weights than the dynamic NSN (9.61M; the paper's 9.71M): 4/4/3 convs per stage of widths
    /// 72/144/272, 9.87M weights on ImageNet.
    pub fn plus_plus(classes: usize) -> Self {
        Cnn10Config {
            convs_per_stage: [4, 4, 3],
            widths: [72, 144, 272],
            ..Self::paper(classes, SimilarityChoice::Conv)
        }
    }
}

/// CNN-10: 7×7/2 conv 64 + BN + ReLU, 3×3/2 max-pool; three stages of 3 × [3×3 NSL conv + BN +
/// ReLU] (64/128/256) each followed by a 2×2 max-pool; FC 512 + ReLU (as a VALID conv over the
/// final map) and FC `classes`. The stem keeps the first stage's width. Smaller inputs and
/// `width < 1` give the reduced networks of smoke runs.
pub fn cnn10<B: Backend>(be: &B, rng: &mut Rng, cfg: &Cnn10Config) -> Network<B> {
    let s = |w: usize| ((w as f32 * cfg.width).round() as usize).max(4);
    let wd = cfg.weight_decay;
    let bn = |name: &str, c: usize| BatchNorm::new(be, name, c, 1e-3, wd);
    let plain = |rng: &mut Rng, name: &str, c: (usize, usize), k: (usize, usize, Padding)| {
        NslConv::new(be, rng, name, c, k, 1.0, wd, InnerProduct::boxed())
    };
    let mut sim_rng = similarity_stream(rng);
    let options = SimilarityOptions { predictor_hidden: s(cfg.predictor_hidden), ..SimilarityOptions::code(wd) };
    let slots = Slots::new(be, &mut sim_rng, cfg.similarity, options, 3);
    let stem = s(cfg.widths[0]);
    let mut body = Sequential::new("cnn10")
        .push(plain(rng, "stem", (cfg.input[2], stem), (7, 2, Padding::Same)))
        .push(bn("stem.bn", stem).with_relu())
        .push(MaxPool::new(3, 2));
    let mut side = cfg.input[0].div_ceil(2).div_ceil(2);
    let mut c_in = stem;
    for (stage, (&width, &n)) in cfg.widths.iter().zip(&cfg.convs_per_stage).enumerate() {
        let width = s(width);
        for i in 0..n {
            let name = format!("conv{}_{i}", stage + 1);
            let sim = slots.build(be, &mut sim_rng, &name, c_in, 3);
            body = body
                .push(NslConv::new(be, rng, &name, (c_in, width), (3, 1, Padding::Same), 1.0, wd, sim))
                .push(bn(&format!("{name}.bn"), width).with_relu());
            c_in = width;
        }
        body = body.push(MaxPool::new(2, 2));
        side = side.div_ceil(2);
    }
    body = body.push(plain(rng, "fc1", (c_in, 512), (side, 1, Padding::Valid))).push(Relu::new()).push(plain(
        rng,
        "fc2",
        (512, cfg.classes),
        (1, 1, Padding::Valid),
    ));
    let name = format!("cnn10-{}", cfg.similarity);
    Network { name, body, shared: slots.shared(), classes: cfg.classes, input: cfg.input }
}
