//! Which similarity goes into a network's NSL slots, by name (CLI flags and TOML configs).

use std::fmt;
use std::str::FromStr;

use nsl_core::similarity::predictor::{self, PredictorConfig, PredictorNorm};
use nsl_core::similarity::{
    CholeskyPsd, Diagonal, DiagonalInit, Dynamic, DynamicKind, InnerProduct, KernelShape, Similarity, Static,
    Unconstrained,
};
use nsl_core::{Backend, Rng};

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
    /// Dynamic DNS with one predictor trunk shared by all layers (Table 3, spec §5.3 [ASSUMPTION]).
    SharedDns,
    /// Joint kernel shape `D·R` (Table 2) over static DNS (`joint: false`) or dynamic DNS.
    JointDns { dynamic: bool },
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
    ("joint-static-dns", SimilarityChoice::JointDns { dynamic: false }),
    ("joint-dynamic-dns", SimilarityChoice::JointDns { dynamic: true }),
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
                | SimilarityChoice::JointDns { dynamic: false }
        )
    }

    /// Build the similarity for one NSL slot with `c_in` inputs and a `k×k` kernel.
    /// `predictor_hidden` overrides the DNS predictor width (CIFAR/ImageNet code: 64).
    /// [`SimilarityChoice::SharedDns`] is built by the network (it needs the shared trunk).
    pub fn build<B: Backend>(
        self,
        be: &B,
        rng: &mut Rng,
        name: &str,
        c_in: usize,
        k: usize,
        predictor_hidden: usize,
    ) -> Box<dyn Similarity<B>> {
        let taps = k * k;
        let sim_name = format!("{name}.sim");
        let dns_predictor = |rng: &mut Rng, norm: PredictorNorm| {
            let cfg = PredictorConfig { hidden: predictor_hidden, norm, ..PredictorConfig::dns(taps) };
            Box::new(predictor::build(be, rng, &format!("{name}.pred"), c_in, &cfg))
        };
        match self {
            SimilarityChoice::Conv => InnerProduct::boxed(),
            SimilarityChoice::StaticDns { code_init } => {
                let init = if code_init { DiagonalInit::CodeEye } else { DiagonalInit::Ones };
                Static::boxed(be, &sim_name, Diagonal::new(init), taps)
            }
            SimilarityChoice::StaticUns => Static::boxed(be, &sim_name, Unconstrained::default(), taps),
            SimilarityChoice::CholeskyPsd => Static::boxed(be, &sim_name, CholeskyPsd::default(), taps),
            SimilarityChoice::DynamicDns(kind) => {
                Box::new(Dynamic::new(DynamicKind::Diagonal, dns_predictor(rng, kind.norm())))
            }
            SimilarityChoice::DynamicUns => {
                // the code's UNS predictor is twice as wide as its DNS one (128 vs 64)
                let cfg = PredictorConfig { hidden: 2 * predictor_hidden, ..PredictorConfig::uns(taps) };
                let pred = predictor::build(be, rng, &format!("{name}.pred"), c_in, &cfg);
                Box::new(Dynamic::new(DynamicKind::Unconstrained, Box::new(pred)))
            }
            SimilarityChoice::SharedDns => panic!("shared-dns is built by the network, not per slot"),
            SimilarityChoice::JointDns { dynamic } => {
                let inner: Box<dyn Similarity<B>> = if dynamic {
                    Box::new(Dynamic::new(DynamicKind::Diagonal, dns_predictor(rng, PredictorNorm::XNormalized)))
                } else {
                    Static::boxed(be, &sim_name, Diagonal::new(DiagonalInit::Ones), taps)
                };
                Box::new(KernelShape::code_default(be, &format!("{name}.shape"), taps, inner))
            }
        }
    }
}

impl fmt::Display for SimilarityChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = NAMES.iter().find(|(_, c)| c == self).map(|(n, _)| *n).expect("every choice has a name");
        f.write_str(name)
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
