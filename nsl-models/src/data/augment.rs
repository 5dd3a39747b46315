//! Training augmentation and input normalisation of the reference code.
//!
//! * [`Augment::PadCropFlip`] (CIFAR training, spec §1): pad `p = 4` pixels on every side in
//!   numpy/TF `symmetric` mode (a mirror that repeats the edge pixel:
//!   `padded[-1] = x[0]`, `padded[-2] = x[1]`, …, `padded[h] = x[h-1]`), take a uniformly random
//!   `h×w` crop at offsets `(oy, ox) ∈ {0..=2p}²`, then flip horizontally with probability ½.
//! * [`Augment::Flip`] (the "mild" augmentation of the self-attention runs, spec §7).
//! * [`Augment::CropFlip`] (ImageNet training, spec §5.5): a uniformly random `size×size` window
//!   at offsets `(oy, ox) ∈ {0..=h−size} × {0..=w−size}` of the (resized, larger) image, then a
//!   flip with probability ½. Its test-time counterpart is [`centre_crop`].
//! * [`Augment::None`] (test).
//!
//! All randomness comes from the [`Rng`] passed in, so a seed fixes the augmentation.

use nsl_core::Rng;

use super::Dataset;

/// An augmentation policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Augment {
    /// The image as it is.
    None,
    /// Horizontal flip with probability ½.
    Flip,
    /// Symmetric padding by `pad`, a random crop back to the input size, then a random flip.
    PadCropFlip {
        /// Pixels padded on each side (4 in the reference code).
        pad: usize,
    },
    /// A random `size×size` crop, then a random flip; the output is `size×size`.
    CropFlip {
        /// Side of the crop (224 on ImageNet).
        size: usize,
    },
}

impl Augment {
    /// The CIFAR training augmentation of the reference code: pad 4, crop, flip.
    pub const CIFAR: Augment = Augment::PadCropFlip { pad: 4 };
    /// The ImageNet training augmentation (spec §5.5): a random 224 crop of the 256×256 image, flip.
    pub const IMAGENET: Augment = Augment::CropFlip { size: 224 };

    /// The shape of what [`Augment::apply`] makes of an image of `shape`, or `None` if the crop
    /// does not fit in it.
    pub fn output_shape(&self, shape: [usize; 3]) -> Option<[usize; 3]> {
        let [h, w, c] = shape;
        match *self {
            Augment::CropFlip { size } if size > h.min(w) => None,
            Augment::CropFlip { size } => Some([size, size, c]),
            _ => Some(shape),
        }
    }

    /// Augment one HWC image of `shape`, drawing `(oy, ox)` and then the flip from `rng`.
    ///
    /// # Panics
    /// If [`Augment::output_shape`] is `None`.
    pub fn apply(&self, image: &[u8], shape: [usize; 3], rng: &mut Rng) -> Vec<u8> {
        let [h, w, c] = shape;
        let (mut out, out_shape) = match *self {
            Augment::None | Augment::Flip => (image.to_vec(), shape),
            Augment::PadCropFlip { pad } => {
                let padded = pad_symmetric(image, shape, pad);
                let (oy, ox) = (rng.below(2 * pad + 1), rng.below(2 * pad + 1));
                (crop(&padded, [h + 2 * pad, w + 2 * pad, c], oy, ox, h, w), shape)
            }
            Augment::CropFlip { size } => {
                let (oy, ox) = (rng.below(h + 1 - size), rng.below(w + 1 - size));
                (crop(image, shape, oy, ox, size, size), [size, size, c])
            }
        };
        if *self != Augment::None && rng.uniform() < 0.5 {
            flip_horizontal(&mut out, out_shape);
        }
        out
    }
}

/// The central `size×size` window of an HWC image, at offsets `(⌊(h−size)/2⌋, ⌊(w−size)/2⌋)`.
pub fn centre_crop(image: &[u8], shape: [usize; 3], size: usize) -> Vec<u8> {
    let [h, w, _] = shape;
    crop(image, shape, (h - size) / 2, (w - size) / 2, size, size)
}

/// Pad an HWC image by `pad` on every side in numpy `symmetric` mode: padded index `i ∈ [-pad, h+pad)`
/// reads `x[-i-1]` for `i < 0` and `x[2h-i-1]` for `i ≥ h`. Requires `pad ≤ min(h, w)`.
pub fn pad_symmetric(image: &[u8], shape: [usize; 3], pad: usize) -> Vec<u8> {
    let [h, w, c] = shape;
    assert!(pad <= h.min(w), "symmetric padding of {pad} needs an image of at least {pad}×{pad}");
    let src = |i: usize, n: usize| match i.checked_sub(pad) {
        None => pad - 1 - i,
        Some(j) if j >= n => 2 * n - 1 - j,
        Some(j) => j,
    };
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let mut out = Vec::with_capacity(ph * pw * c);
    for y in 0..ph {
        let row = src(y, h) * w;
        for x in 0..pw {
            let p = (row + src(x, w)) * c;
            out.extend_from_slice(&image[p..p + c]);
        }
    }
    out
}

/// The `out_h×out_w` window of an HWC image whose top-left corner is at `(y0, x0)`.
pub fn crop(image: &[u8], shape: [usize; 3], y0: usize, x0: usize, out_h: usize, out_w: usize) -> Vec<u8> {
    let [h, w, c] = shape;
    assert!(y0 + out_h <= h && x0 + out_w <= w, "crop {out_h}×{out_w} at ({y0}, {x0}) leaves the {h}×{w} image");
    (y0..y0 + out_h).flat_map(|y| &image[(y * w + x0) * c..(y * w + x0 + out_w) * c]).copied().collect()
}

/// Mirror an HWC image left–right in place: `x ↦ w−1−x`.
pub fn flip_horizontal(image: &mut [u8], shape: [usize; 3]) {
    let [_, w, c] = shape;
    for row in image.chunks_exact_mut(w * c) {
        for x in 0..w / 2 {
            for k in 0..c {
                row.swap(x * c + k, (w - 1 - x) * c + k);
            }
        }
    }
}

/// The ImageNet per-channel RGB mean (0..255) the DCNets pipeline subtracts (spec §5.5).
pub const IMAGENET_MEAN: [f32; 3] = [121.6, 116.6, 102.7];

/// How `u8` pixels become network inputs.
#[derive(Clone, Debug, PartialEq)]
pub enum Normalize {
    /// `x` as `f32` in 0..255: the NSL CIFAR code.
    Raw,
    /// `(x − 127.5)/128`: the SphereNet / self-attention code.
    Centered,
    /// `(x − mean[c])/std[c]` per channel `c`, in 0..255 units.
    MeanStd(Vec<f32>, Vec<f32>),
}

impl Normalize {
    /// Subtract the ImageNet per-channel mean `(121.6, 116.6, 102.7)` from 0..255 RGB and keep
    /// the scale (the DCNets pipeline, spec §5.5).
    pub fn imagenet_mean() -> Normalize {
        Normalize::MeanStd(IMAGENET_MEAN.to_vec(), vec![1.0; 3])
    }

    /// Per-channel mean and (population) standard deviation of every pixel of `data`.
    pub fn mean_std_of(data: &Dataset) -> Normalize {
        Normalize::mean_std_of_images(data, 0..data.len())
    }

    /// Per-channel mean and (population) standard deviation of every pixel of the images
    /// `indices` of `data` (e.g. a training split), summed in `f64` in the order given, so the
    /// statistics are a pure function of the images. A constant channel gets std `1e-3`.
    pub fn mean_std_of_images(data: &Dataset, indices: impl IntoIterator<Item = usize>) -> Normalize {
        let c = data.shape[2];
        let (mut sum, mut sq) = (vec![0f64; c], vec![0f64; c]);
        let mut pixels = 0usize;
        for i in indices {
            for px in data.image(i).chunks_exact(c) {
                for k in 0..c {
                    let v = f64::from(px[k]);
                    sum[k] += v;
                    sq[k] += v * v;
                }
                pixels += 1;
            }
        }
        let n = pixels.max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq.iter().zip(&mean).map(|(q, m)| ((q / n - m * m).max(0.0).sqrt().max(1e-3)) as f32).collect();
        Normalize::MeanStd(mean.into_iter().map(|m| m as f32).collect(), std)
    }

    /// Write the normalised pixels of an HWC image with `channels` channels to `out`.
    pub fn apply(&self, image: &[u8], channels: usize, out: &mut [f32]) {
        assert_eq!(image.len(), out.len());
        match self {
            Normalize::Raw => out.iter_mut().zip(image).for_each(|(o, &x)| *o = f32::from(x)),
            Normalize::Centered => out.iter_mut().zip(image).for_each(|(o, &x)| *o = (f32::from(x) - 127.5) / 128.0),
            Normalize::MeanStd(mean, std) => {
                assert!(mean.len() == channels && std.len() == channels, "MeanStd needs {channels} channels");
                for (o, (i, &x)) in out.iter_mut().zip(image.iter().enumerate()) {
                    let k = i % channels;
                    *o = (f32::from(x) - mean[k]) / std[k];
                }
            }
        }
    }
}
