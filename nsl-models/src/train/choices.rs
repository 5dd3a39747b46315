//! The named choices of a run config, as enums: each serialises (TOML, JSON) and parses (CLI)
//! as the kebab-case name users type, e.g. `fashion-mnist-embedded`, `pad-crop-flip`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines a kebab-case choice enum with its doc, `Display` (the name) and `clap` values.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }
        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <Self as clap::ValueEnum>::from_str(s, false).map_err(|_| {
                    let names: Vec<String> = <Self as clap::ValueEnum>::value_variants()
                        .iter()
                        .map(|v| v.to_string())
                        .collect();
                    format!("unknown {} `{s}`; expected one of: {}", stringify!($name), names.join(", "))
                })
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let value = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
                f.write_str(value.get_name())
            }
        }
    };
}

choice!(
    /// The network of a run.
    NetworkChoice {
        /// The reference code's CIFAR backbone, CNN-9 (any similarity).
        Cnn9,
        /// CNN-9++: plain, deeper and wider (Table 4 baseline).
        Cnn9pp,
        /// SphereNet-9 (Table 8).
        Spherenet9,
        /// SphereNet-9 with self-attention (Table 8).
        Spherenet9Attention,
        /// SphereNet-9's plain-CNN twin (Table 8).
        Cnn9Wide,
        /// The plain-CNN twin with self-attention (Table 8).
        Cnn9WideAttention,
        /// The ImageNet CNN-10 (Table 5; any similarity).
        Cnn10,
        /// CNN-10++: plain, deeper and wider (Table 5 baseline).
        Cnn10pp,
        /// The few-shot CNN-4 (Table 6; any similarity).
        Cnn4,
    }
);

impl NetworkChoice {
    /// Whether the network's NSL slots take the run's `similarity` (the SphereNet-9 family and the
    /// `++` baselines are fixed).
    pub fn takes_similarity(self) -> bool {
        matches!(self, NetworkChoice::Cnn9 | NetworkChoice::Cnn10 | NetworkChoice::Cnn4)
    }
}

choice!(
    /// Where a run's images come from.
    DatasetChoice {
        /// 7,000 training and 2,000 test Fashion-MNIST images compiled into nsl (no download).
        FashionMnistEmbedded,
        /// The full Fashion-MNIST (`<data>/fashion-mnist/` or Debian's `/usr/share/datasets/fashion-mnist/`).
        FashionMnist,
        /// The procedural 10-class synthetic set.
        Synthetic,
        /// The procedural 100-class synthetic set.
        Synthetic100,
        /// The procedural many-class set of the few-shot smoke rows.
        SyntheticFewshot,
        /// CIFAR-10 binary files (`cargo xtask fetch-data`).
        Cifar10,
        /// CIFAR-100 binary files.
        Cifar100,
        /// ImageNet class folders of JPEGs, streamed.
        Imagenet,
        /// mini-ImageNet (few-shot rows).
        MiniImagenet,
    }
);

impl DatasetChoice {
    /// How a report names the data set, e.g. `Fashion-MNIST`.
    pub fn display_name(self) -> &'static str {
        match self {
            DatasetChoice::FashionMnist => "Fashion-MNIST",
            DatasetChoice::FashionMnistEmbedded => "Fashion-MNIST (embedded 7k/2k subset)",
            DatasetChoice::Synthetic => "synthetic images (procedural, 10 classes)",
            DatasetChoice::Synthetic100 => "synthetic images (procedural, 100 classes)",
            DatasetChoice::SyntheticFewshot => "synthetic images (procedural, few-shot classes)",
            DatasetChoice::Cifar10 => "CIFAR-10",
            DatasetChoice::Cifar100 => "CIFAR-100",
            DatasetChoice::Imagenet => "ImageNet",
            DatasetChoice::MiniImagenet => "mini-ImageNet",
        }
    }
    /// The augmentation and normalisation a run on this data set uses unless told otherwise:
    /// ImageNet crops 224 of its 256² images and subtracts the channel mean; the few-shot sets
    /// neither augment nor scale (mean-std is computed by the few-shot rows); everything else
    /// takes the CIFAR code's pad-crop-flip and `(x − 127.5)/128`.
    pub fn default_input(self) -> (AugmentChoice, NormalizeChoice) {
        match self {
            DatasetChoice::Imagenet => (AugmentChoice::CropFlip, NormalizeChoice::ImagenetMean),
            DatasetChoice::MiniImagenet | DatasetChoice::SyntheticFewshot => {
                (AugmentChoice::None, NormalizeChoice::Centered)
            }
            _ => (AugmentChoice::PadCropFlip, NormalizeChoice::Centered),
        }
    }
}

choice!(
    /// Training augmentation.
    AugmentChoice {
        /// Symmetric pad 4, random crop back, random flip (the CIFAR code).
        PadCropFlip,
        /// Random horizontal flip (the self-attention runs).
        Flip,
        /// Random 224 crop of the 256² image, flip (ImageNet).
        CropFlip,
        /// None.
        None,
    }
);

choice!(
    /// How pixels become network inputs.
    NormalizeChoice {
        /// 0..255 as is (the NSL CIFAR code).
        Raw,
        /// `(x − 127.5)/128` (SphereNet code; the real tier).
        Centered,
        /// 0..255 minus the ImageNet channel mean.
        ImagenetMean,
        /// Per-channel mean and std of the training split (few-shot rows only).
        MeanStd,
    }
);

choice!(
    /// The optimiser.
    OptimizerChoice {
        /// Heavy-ball momentum 0.9 (TF `MomentumOptimizer`).
        Sgd,
        /// Adam, β = (0.9, 0.999).
        Adam,
    }
);
