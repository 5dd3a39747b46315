//! Which similarity goes into a network's NSL slots, by name (CLI flags and TOML configs), and
//! [`Slots`], which builds them for a network (sharing one predictor trunk where asked).

use std::fmt;
use std::str::FromStr;

use nsl_core::similarity::predictor::{self, PredictorConfig, PredictorNorm};
use nsl_core::similarity::{
    CholeskyPsd, Diagonal, DiagonalInit, Dynamic, DynamicKind, InnerProduct, KernelShape, Similarity, Static,
    Unconstrained,
};
use nsl_core::{Backend, Rng};

use super::shared::{shared_trunk, SharedBnStats, SharedPredictor, SharedTrunk};

/// The similarity of the NSL slots (the 3×3 convs after the root conv).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimilarityChoice {
    /// Plain convolution (the baseline CNN).
    Conv,
    /// Static DNS; `code_init` = the reference code's `[1,0,0,0,1,0,0,0,1]` start (spec §3.1), else all ones.
    StaticDns { code_init: bool },
    /// Static UNS, `M_s` from `I`, L2 5e-3.
    StaticUns,
    /// Static PSD `M_s = LLᵀ` (paper §3.4 extension).
    CholeskyPsd,
    /// Dynamic DNS with the given predictor normalisation (x-normalised = reference code).
    DynamicDns(PredictorKind),
    /// Dynamic UNS (x-normalised predictor, 128 hidden, no BN).
    DynamicUns,
    /// Dynamic DNS with one predictor trunk shared by all layers (Table 3, spec §5.3 \[ASSUMPTION\]).
    SharedDns,
    /// Joint kernel shape `D·R` (Table 2) over dynamic DNS, or over static DNS started like
    /// [`SimilarityChoice::StaticDns`] with the same `code_init`, so a J row and its non-J
    /// partner differ only in the mask.
    JointDns { dynamic: bool, code_init: bool },
}

/// Predictor normalisation, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PredictorKind {
    /// "SN": x-normalised m1 (reference code).
    Sphere,
    /// `nsl_fspherenet`: m1 and m2 cosine SphereConvs.
    FullSphere,
    /// "CNN" of Table 1: plain convs.
    Cnn,
}

impl PredictorKind {
    fn norm(self) -> PredictorNorm {
        match self {
            PredictorKind::Sphere => PredictorNorm::XNormalized,
            PredictorKind::FullSphere => PredictorNorm::FullSphere,
            PredictorKind::Cnn => PredictorNorm::Plain,
        }
    }
}

const NAMES: &[(&str, SimilarityChoice)] = &[
    ("conv", SimilarityChoice::Conv),
    ("static-dns", SimilarityChoice::StaticDns { code_init: true }),
    ("static-dns-ones", SimilarityChoice::StaticDns { code_init: false }),
    ("static-uns", SimilarityChoice::StaticUns),
    ("static-psd", SimilarityChoice::CholeskyPsd),
    ("dynamic-dns", SimilarityChoice::DynamicDns(PredictorKind::Sphere)),
    ("dynamic-dns-full-sphere", SimilarityChoice::DynamicDns(PredictorKind::FullSphere)),
    ("dynamic-dns-cnn", SimilarityChoice::DynamicDns(PredictorKind::Cnn)),
    ("dynamic-uns", SimilarityChoice::DynamicUns),
    ("shared-dns", SimilarityChoice::SharedDns),
    ("joint-static-dns", SimilarityChoice::JointDns { dynamic: false, code_init: true }),
    ("joint-static-dns-ones", SimilarityChoice::JointDns { dynamic: false, code_init: false }),
    ("joint-dynamic-dns", SimilarityChoice::JointDns { dynamic: true, code_init: false }),
];

impl SimilarityChoice {
    /// Every accepted name, for `--help` and error messages.
    pub fn names() -> Vec<&'static str> {
        NAMES.iter().map(|(n, _)| *n).collect()
    }
    /// Whether the similarity folds into a plain kernel.
    pub fn is_static(self) -> bool {
        matches!(
            self,
            SimilarityChoice::Conv
                | SimilarityChoice::StaticDns { .. }
                | SimilarityChoice::StaticUns
                | SimilarityChoice::CholeskyPsd
                | SimilarityChoice::JointDns { dynamic: false, .. }
        )
    }
}

/// What a network's similarities need besides their shape (spec §3.3–3.5, §5.3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimilarityOptions {
    /// Hidden width of the DNS predictor; the UNS one is twice as wide (code: 64 and 128; the
    /// paper's appendix gives CNN-10 32, Table 5's weight count 64).
    pub predictor_hidden: usize,
    /// Coupled L2 on the predictors' filters and BN γ/β: the network's own weight decay.
    pub weight_decay: f32,
    /// Dynamic UNS adds `I` to the prediction (the code); the paper's appendix says it does not.
    pub uns_identity: bool,
    /// Running statistics of a shared predictor trunk (Table 3).
    pub shared_stats: SharedBnStats,
}

impl SimilarityOptions {
    /// The reference code's predictors (64 hidden, UNS with `+I`, per-layer shared statistics)
    /// with the network's `weight_decay`.
    pub fn code(weight_decay: f32) -> Self {
        SimilarityOptions {
            predictor_hidden: 64,
            weight_decay,
            uns_identity: true,
            shared_stats: SharedBnStats::PerLayer,
        }
    }
}

/// The similarities of one network's NSL slots, built in order from one random stream: every
/// slot gets its own similarity of kind `choice`, and with [`SimilarityChoice::SharedDns`] one
/// predictor trunk (drawn first) serves them all.
pub struct Slots<B: Backend> {
    choice: SimilarityChoice,
    options: SimilarityOptions,
    trunk: Option<SharedTrunk<B>>,
}

impl<B: Backend> Slots<B> {
    /// Slots of kind `choice` for `k×k` kernels, drawing from `rng`.
    pub fn new(be: &B, rng: &mut Rng, choice: SimilarityChoice, options: SimilarityOptions, k: usize) -> Self {
        let trunk = (choice == SimilarityChoice::SharedDns).then(|| shared_trunk(be, rng, k * k, options.weight_decay));
        Slots { choice, options, trunk }
    }

    /// The similarity of slot `name` with `c_in` inputs and a `k×k` kernel.
    pub fn build(&self, be: &B, rng: &mut Rng, name: &str, c_in: usize, k: usize) -> Box<dyn Similarity<B>> {
        let opts = self.options;
        let taps = k * k;
        let sim_name = format!("{name}.sim");
        let pred_name = format!("{name}.pred");
        let dns_predictor = |rng: &mut Rng, norm: PredictorNorm| {
            let cfg = PredictorConfig {
                hidden: opts.predictor_hidden,
                norm,
                weight_decay: opts.weight_decay,
                ..PredictorConfig::dns(taps)
            };
            Box::new(predictor::build(be, rng, &pred_name, c_in, &cfg))
        };
        let static_dns = |code_init: bool| {
            let init = if code_init { DiagonalInit::CodeEye } else { DiagonalInit::Ones };
            Static::boxed(be, &sim_name, Diagonal::new(init), taps)
        };
        match self.choice {
            SimilarityChoice::Conv => InnerProduct::boxed(),
            SimilarityChoice::StaticDns { code_init } => static_dns(code_init),
            SimilarityChoice::StaticUns => Static::boxed(be, &sim_name, Unconstrained::default(), taps),
            SimilarityChoice::CholeskyPsd => Static::boxed(be, &sim_name, CholeskyPsd::default(), taps),
            SimilarityChoice::DynamicDns(kind) => {
                Box::new(Dynamic::new(DynamicKind::Diagonal, dns_predictor(rng, kind.norm())))
            }
            SimilarityChoice::DynamicUns => {
                let cfg = PredictorConfig {
                    hidden: 2 * opts.predictor_hidden,
                    weight_decay: opts.weight_decay,
                    ..PredictorConfig::uns(taps)
                };
                let pred = predictor::build(be, rng, &pred_name, c_in, &cfg);
                let mut dynamic = Dynamic::new(DynamicKind::Unconstrained, Box::new(pred));
                dynamic.identity_residual = opts.uns_identity;
                Box::new(dynamic)
            }
            SimilarityChoice::SharedDns => {
                let trunk = self.trunk.clone().expect("Slots::new draws the trunk of shared-dns");
                let stats = (opts.weight_decay, opts.shared_stats);
                let pred = SharedPredictor::new(be, rng, &pred_name, c_in, trunk, stats);
                Box::new(Dynamic::new(DynamicKind::Diagonal, Box::new(pred)))
            }
            SimilarityChoice::JointDns { dynamic, code_init } => {
                let inner: Box<dyn Similarity<B>> = if dynamic {
                    Box::new(Dynamic::new(DynamicKind::Diagonal, dns_predictor(rng, PredictorNorm::XNormalized)))
                } else {
                    static_dns(code_init)
                };
                Box::new(KernelShape::code_default(be, &format!("{name}.shape"), taps, inner))
            }
        }
    }

    /// The shared trunk, if any, for [`super::Network::shared`].
    pub fn shared(&self) -> Vec<SharedTrunk<B>> {
        self.trunk.iter().cloned().collect()
    }
}

impl fmt::Display for SimilarityChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = NAMES.iter().find(|(_, c)| c == self).map(|(n, _)| *n).expect("every choice has a name");
        f.write_str(name)
    }
}

/// Serialised as its name, e.g. `"dynamic-dns"`.
impl serde::Serialize for SimilarityChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SimilarityChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for SimilarityChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, c)| *c)
            .ok_or_else(|| format!("unknown similarity `{s}`; expected one of: {}", Self::names().join(", ")))
    }
}
