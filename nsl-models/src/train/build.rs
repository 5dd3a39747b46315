//! Everything a run config names, built: its data sets, its network, its optimiser, its input
//! augmentation and normalisation.

use std::path::Path;
use std::sync::Arc;

use nsl_core::nn::Layer;
use nsl_core::optim::Optimizer;
use nsl_core::{Backend, Rng};

use super::{AugmentChoice, DatasetChoice, Error, NetworkChoice, NormalizeChoice, OptimizerChoice, RunConfig};
use crate::data::augment::{Augment, Normalize};
use crate::data::imagenet::load_imagenet;
use crate::data::{cifar, fashion_mnist, synthetic, Dataset, ImageSource};
use crate::nets::{
    cnn10, cnn4, cnn9, cnn9_plus_plus_of, spherenet9, Cnn10Config, Cnn4Config, Cnn9Config, Network, SphereNetConfig,
};

/// Load the run's in-memory dataset: `(train, test)`. ImageNet is streamed from disk instead:
/// [`load_sources`] opens every dataset.
pub fn load_data(cfg: &RunConfig) -> Result<(Dataset, Dataset), Error> {
    let dir = Path::new(&cfg.data_dir);
    match cfg.dataset {
        DatasetChoice::Synthetic => Ok(synthetic::synthetic_cifar(cfg.synthetic_train, cfg.synthetic_test, cfg.seed)),
        DatasetChoice::Synthetic100 => {
            // 100 classes, train and test split per class from one draw of the many-class set
            let per_class = (cfg.synthetic_train + cfg.synthetic_test) / 100;
            let all = synthetic::synthetic_many(100, per_class, cfg.seed);
            let test_per_class = (cfg.synthetic_test / 100).max(1);
            let (test, train): (Vec<usize>, Vec<usize>) = (0..all.len()).partition(|i| i % per_class < test_per_class);
            Ok((all.subset("synthetic100-train", &train), all.subset("synthetic100-test", &test)))
        }
        DatasetChoice::FashionMnist => Ok(fashion_mnist::load(dir)?),
        DatasetChoice::FashionMnistEmbedded => Ok(fashion_mnist::embedded()),
        DatasetChoice::Cifar10 => Ok(cifar::load_cifar10(dir.join("cifar-10"))?),
        DatasetChoice::Cifar100 => Ok(cifar::load_cifar100(dir.join("cifar-100"))?),
        other @ (DatasetChoice::Imagenet | DatasetChoice::MiniImagenet | DatasetChoice::SyntheticFewshot) => {
            Err(Error::Unsupported(format!(
                "dataset {other} is not a training set of `nsl train`: ImageNet is streamed (train::load_sources), \
                 the few-shot sets are read by `cargo xtask repro --only table6`"
            )))
        }
    }
}

/// A training or test set, in memory or streamed from files.
pub type Source = Arc<dyn ImageSource>;

/// Open the run's dataset, `(train, test)`: ImageNet's class folders under
/// `data_dir/imagenet/{train,val}` (streamed), anything else as [`load_data`] loads it.
pub fn load_sources(cfg: &RunConfig) -> Result<(Source, Source), Error> {
    if cfg.dataset == DatasetChoice::Imagenet {
        let (train, val) = load_imagenet(Path::new(&cfg.data_dir).join("imagenet"))?;
        return Ok((Arc::new(train), Arc::new(val)));
    }
    let (train, test) = load_data(cfg)?;
    Ok((Arc::new(train), Arc::new(test)))
}

/// Only the run's test set, as [`load_sources`] would open it (evaluating a checkpoint does not
/// need the training split; ImageNet's classes are then the folders of `val/`).
pub fn load_test(cfg: &RunConfig) -> Result<Source, Error> {
    let dir = Path::new(&cfg.data_dir);
    Ok(match cfg.dataset {
        DatasetChoice::FashionMnist => Arc::new(fashion_mnist::load_test(dir)?),
        DatasetChoice::FashionMnistEmbedded => Arc::new(fashion_mnist::embedded().1),
        DatasetChoice::Cifar10 => Arc::new(cifar::load_test(dir.join("cifar-10"), &cifar::CIFAR10)?),
        DatasetChoice::Cifar100 => Arc::new(cifar::load_test(dir.join("cifar-100"), &cifar::CIFAR100)?),
        DatasetChoice::Imagenet => {
            Arc::new(crate::data::imagenet::ImageFolder::open(dir.join("imagenet").join("val"), "imagenet/val", None)?)
        }
        _ => load_sources(cfg)?.1,
    })
}

/// Build the run's network for `classes` classes and square `[H, W, C]` input images (the
/// data's `ImageSource::shape`), with every batch norm's EMA decay set to `cfg.bn_decay`.
pub fn build_network<B: Backend>(
    be: &B,
    cfg: &RunConfig,
    classes: usize,
    input: [usize; 3],
    rng: &mut Rng,
) -> Result<Network<B>, Error> {
    let sim = cfg.similarity;
    let [input_hw, _, input_channels] = input;
    let sphere = |rng: &mut Rng, sphere, attention| {
        let paper = SphereNetConfig::paper(classes, sphere, attention);
        let weight_decay = cfg.weight_decay.unwrap_or(paper.weight_decay);
        let c = SphereNetConfig { input_hw, input_channels, weight_decay, ..paper }.scaled(cfg.width);
        spherenet9(be, rng, &c)
    };
    let mut net = match cfg.network {
        NetworkChoice::Cnn9 => {
            let paper = Cnn9Config::paper(classes, sim);
            let c = Cnn9Config {
                input_hw,
                input_channels,
                l1: cfg.l1,
                weight_decay: cfg.weight_decay.unwrap_or(paper.weight_decay),
                predictor_hidden: cfg.predictor_hidden.unwrap_or(paper.predictor_hidden),
                uns_identity: cfg.uns_identity,
                shared_stats: cfg.shared_bn_stats,
                hidden_fc: cfg.hidden_fc,
                ..paper
            };
            cnn9(be, rng, &c.scaled(cfg.width))
        }
        NetworkChoice::Cnn9pp => {
            let paper = Cnn9Config::plus_plus(classes);
            let weight_decay = cfg.weight_decay.unwrap_or(paper.weight_decay);
            cnn9_plus_plus_of(
                be,
                rng,
                &Cnn9Config { input_hw, input_channels, weight_decay, ..paper }.scaled(cfg.width),
            )
        }
        NetworkChoice::Spherenet9 => sphere(rng, true, false),
        NetworkChoice::Spherenet9Attention => sphere(rng, true, true),
        NetworkChoice::Cnn9Wide => sphere(rng, false, false),
        NetworkChoice::Cnn9WideAttention => sphere(rng, false, true),
        NetworkChoice::Cnn10 | NetworkChoice::Cnn10pp => {
            let paper = if cfg.network == NetworkChoice::Cnn10pp {
                Cnn10Config::plus_plus(classes)
            } else {
                Cnn10Config::paper(classes, sim)
            };
            let c = Cnn10Config {
                input,
                width: cfg.width,
                weight_decay: cfg.weight_decay.unwrap_or(paper.weight_decay),
                predictor_hidden: cfg.predictor_hidden.unwrap_or(paper.predictor_hidden),
                ..paper
            };
            cnn10(be, rng, &c)
        }
        NetworkChoice::Cnn4 => {
            let paper = Cnn4Config::paper(classes, sim);
            let weight_decay = cfg.weight_decay.unwrap_or(paper.weight_decay);
            cnn4(be, rng, &Cnn4Config { input, width: cfg.width, weight_decay, ..paper })
        }
    };
    if cfg.predictor_gamma != 1.0 {
        net.set_predictor_output_gamma(be, cfg.predictor_gamma);
    }
    net.set_bn_decay(cfg.bn_decay);
    if let Some(eps) = cfg.bn_eps {
        net.visit_batch_norms(&mut |bn| bn.eps = eps);
    }
    Ok(net)
}

/// The augmentation a run config names.
pub fn augment_of(choice: AugmentChoice) -> Augment {
    match choice {
        AugmentChoice::PadCropFlip => Augment::CIFAR,
        AugmentChoice::Flip => Augment::Flip,
        AugmentChoice::CropFlip => Augment::IMAGENET,
        AugmentChoice::None => Augment::None,
    }
}

/// The input normalisation a training run's config names (`mean-std` is computed by the
/// few-shot rows from their training split, so a training run refuses it).
pub fn normalize_of(choice: NormalizeChoice) -> Result<Normalize, Error> {
    match choice {
        NormalizeChoice::Raw => Ok(Normalize::Raw),
        NormalizeChoice::Centered => Ok(Normalize::Centered),
        NormalizeChoice::ImagenetMean => Ok(Normalize::imagenet_mean()),
        NormalizeChoice::MeanStd => Err(Error::Unsupported(
            "normalize `mean-std` is computed from a few-shot row's training split (cargo xtask repro); training \
             runs take raw, centered or imagenet-mean"
                .into(),
        )),
    }
}

/// The optimiser a run config names: heavy-ball SGD (momentum 0.9) or Adam (0.9, 0.999).
pub fn optimizer_of<B: Backend>(choice: OptimizerChoice) -> Optimizer<B> {
    match choice {
        OptimizerChoice::Sgd => Optimizer::momentum(0.9),
        OptimizerChoice::Adam => Optimizer::adam(0.9, 0.999),
    }
}
