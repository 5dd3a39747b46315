//! The CIFAR backbone of the reference code, "CNN-9" (spec §2), and CNN-9++ (spec §5.4).

use nsl_core::nn::{BatchNorm, MaxPool, NslConv, Padding, Relu, Sequential};
use nsl_core::similarity::InnerProduct;
use nsl_core::{Backend, Rng, Role};

use super::{similarity_stream, Network, SharedBnStats, SimilarityChoice, SimilarityOptions, Slots};

/// Shape and regularisation of the CIFAR backbone.
#[derive(Clone, Debug, PartialEq)]
pub struct Cnn9Config {
    pub classes: usize,
    pub similarity: SimilarityChoice,
    /// Output width of the plain root conv.
    pub root: usize,
    /// Widths of the three stages.
    pub widths: [usize; 3],
    /// NSL convs per stage.
    pub convs_per_stage: [usize; 3],
    /// Square input side (32 for CIFAR; 84 for the few-shot CNN-9 \[ASSUMPTION\]).
    pub input_hw: usize,
    /// Input channels (3 for colour images, 1 for Fashion-MNIST).
    pub input_channels: usize,
    /// Hidden width of the DNS predictor (code: 64; UNS: twice).
    pub predictor_hidden: usize,
    /// Dynamic UNS adds `I` to its prediction (code) or not (the paper's appendix).
    pub uns_identity: bool,
    /// Running statistics of the shared predictor trunk (Table 3).
    pub shared_stats: SharedBnStats,
    /// Width of a hidden fully connected layer (+ ReLU) before the classifier: 0 = none (the
    /// code), 256 = the paper's Table 7.
    pub hidden_fc: usize,
    pub bn_eps: f32,
    /// L2 on filters and BN γ/β (code: 5e-4).
    pub weight_decay: f32,
    /// ℓ1 sparsity on static similarity parameters (paper §3.4; 0 = off).
    pub l1: f32,
}

impl Cnn9Config {
    /// Every width (root, stages, predictor hidden) times `factor`, at least 4: the reduced
    /// networks of `--scale smoke`.
    pub fn scaled(mut self, factor: f32) -> Self {
        let s = |w: usize| ((w as f32 * factor).round() as usize).max(4);
        self.root = s(self.root);
        self.widths = self.widths.map(s);
        self.predictor_hidden = s(self.predictor_hidden);
        self
    }
    /// The reference code's network: root 32, stages 32/64/128 with 3 NSL convs each.
    pub fn paper(classes: usize, similarity: SimilarityChoice) -> Self {
        Cnn9Config {
            classes,
            similarity,
            root: 32,
            widths: [32, 64, 128],
            convs_per_stage: [3, 3, 3],
            input_hw: 32,
            input_channels: 3,
            predictor_hidden: 64,
            uns_identity: true,
            shared_stats: SharedBnStats::PerLayer,
            hidden_fc: 0,
            bn_eps: 1e-3,
            weight_decay: 5e-4,
            l1: 0.0,
        }
    }
    /// CNN-9++'s layout (spec §5.4 \[ASSUMPTION\]): plain convs, root 64, stages 64/128/256 with
    /// 4/3/3 convs.
    pub fn plus_plus(classes: usize) -> Self {
        Cnn9Config {
            root: 64,
            widths: [64, 128, 256],
            convs_per_stage: [4, 3, 3],
            ..Cnn9Config::paper(classes, SimilarityChoice::Conv)
        }
    }
}

/// CNN-9 with any similarity in its nine NSL slots:
/// root conv C→32 (C input channels) + BN + ReLU; 3 stages of [NSL conv + BN + ReLU] × 3 each followed by a 2×2
/// max-pool; a `s×s` VALID conv classifier (`s` = final map side, 4 on CIFAR), no BN, no bias
/// (with `hidden_fc`, the `s×s` VALID conv goes to that width, then ReLU and a 1×1 classifier).
///
/// ```
/// use nsl_models::nets::{cnn9, Cnn9Config, SimilarityChoice};
/// let be = nsl_cpu::Cpu::new();
/// let mut net = cnn9(&be, &mut nsl_core::Rng::new(0), &Cnn9Config::paper(10, SimilarityChoice::Conv));
/// assert_eq!(net.param_count(), 511_200); // spec §2
/// ```
pub fn cnn9<B: Backend>(be: &B, rng: &mut Rng, cfg: &Cnn9Config) -> Network<B> {
    let wd = cfg.weight_decay;
    let bn = |name: &str, c: usize| BatchNorm::new(be, name, c, cfg.bn_eps, wd);
    let mut sim_rng = similarity_stream(rng);
    let options = SimilarityOptions {
        predictor_hidden: cfg.predictor_hidden,
        weight_decay: wd,
        uns_identity: cfg.uns_identity,
        shared_stats: cfg.shared_stats,
    };
    let slots = Slots::new(be, &mut sim_rng, cfg.similarity, options, 3);
    let mut body = Sequential::new("cnn9")
        .push(NslConv::new(
            be,
            rng,
            "root",
            (cfg.input_channels, cfg.root),
            (3, 1, Padding::Same),
            1.0,
            wd,
            InnerProduct::boxed(),
        ))
        .push(bn("root.bn", cfg.root).with_relu());
    let mut c_in = cfg.root;
    let mut side = cfg.input_hw;
    for (stage, (&width, &n)) in cfg.widths.iter().zip(&cfg.convs_per_stage).enumerate() {
        for i in 0..n {
            let name = format!("conv{}_{i}", stage + 1);
            let sim = slots.build(be, &mut sim_rng, &name, c_in, 3);
            let mut conv = NslConv::new(be, rng, &name, (c_in, width), (3, 1, Padding::Same), 1.0, wd, sim);
            if cfg.l1 > 0.0 {
                conv.similarity.visit_params(&mut |p| {
                    if p.role == Role::Similarity {
                        p.l1 = cfg.l1;
                    }
                });
            }
            body = body.push(conv).push(bn(&format!("{name}.bn"), width).with_relu());
            c_in = width;
        }
        body = body.push(MaxPool::new(2, 2));
        side = side.div_ceil(2);
    }
    let plain = |rng: &mut Rng, name: &str, c: (usize, usize), k: usize| {
        NslConv::new(be, rng, name, c, (k, 1, Padding::Valid), 1.0, wd, InnerProduct::boxed())
    };
    if cfg.hidden_fc > 0 {
        body = body.push(plain(rng, "fc", (c_in, cfg.hidden_fc), side)).push(Relu::new());
        body = body.push(plain(rng, "score", (cfg.hidden_fc, cfg.classes), 1));
    } else {
        body = body.push(plain(rng, "score", (c_in, cfg.classes), side));
    }
    let shared = slots.shared();
    let name = format!("cnn9-{}", cfg.similarity);
    Network { name, body, shared, classes: cfg.classes, input: [cfg.input_hw, cfg.input_hw, cfg.input_channels] }
}

/// CNN-9++ (spec §5.4 \[ASSUMPTION\]): plain, deeper and wider — root 64, stages 64/128/256 with
/// 4/3/3 convs; 2.04M parameters on CIFAR-10 (2.40M on CIFAR-100), more than every NSN.
/// `width` scales every layer (1.0 = the spec's network).
pub fn cnn9_plus_plus<B: Backend>(be: &B, rng: &mut Rng, classes: usize, width: f32) -> Network<B> {
    cnn9_plus_plus_of(be, rng, &Cnn9Config::plus_plus(classes).scaled(width))
}

/// CNN-9++ from its config (e.g. [`Cnn9Config::plus_plus`] with another weight decay).
pub fn cnn9_plus_plus_of<B: Backend>(be: &B, rng: &mut Rng, cfg: &Cnn9Config) -> Network<B> {
    let mut net = cnn9(be, rng, cfg);
    net.name = "cnn9++".into();
    net
}
