//! [`ImageSource`]: labelled images addressed by index, whether held in memory ([`Dataset`]) or
//! read from files on demand ([`super::imagenet::ImageFolder`]). The [`super::loader`] batches
//! any source.

use nsl_core::Rng;

use super::augment::Augment;
use super::{DataError, Dataset};

/// Labelled images that yield `shape()` HWC `u8` images, for training (augmented) or
/// evaluation. Loading image `i` is a pure function of `i` (and of the `Rng` for training), so
/// any thread may load any image.
pub trait ImageSource: Send + Sync {
    /// Short name for messages, e.g. `"imagenet/train"`.
    fn name(&self) -> &str;
    /// Number of images.
    fn len(&self) -> usize;
    /// True if there are no images.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of classes `K`.
    fn classes(&self) -> usize;
    /// `[h, w, c]` of every image the source yields: the network's input.
    fn shape(&self) -> [usize; 3];
    /// Label of image `i`, `< classes()`.
    fn label(&self, i: usize) -> usize;
    /// Image `i` for training, augmented with `augment` drawing from `rng`.
    ///
    /// # Errors
    /// If the image cannot be read, or `augment` does not turn it into `shape()`.
    fn train_image(&self, i: usize, augment: &Augment, rng: &mut Rng) -> Result<Vec<u8>, DataError>;
    /// Image `i` as evaluated (no randomness).
    ///
    /// # Errors
    /// If the image cannot be read.
    fn eval_image(&self, i: usize) -> Result<Vec<u8>, DataError>;
    /// True if loading an image reads and decodes a file, so batches are worth building on
    /// several threads.
    fn reads_files(&self) -> bool {
        false
    }
}

/// `augment` applied to an image of `shape`, checked to give `target` (the source's `shape()`).
pub(crate) fn augment_to(
    name: &str,
    augment: &Augment,
    (image, shape): (&[u8], [usize; 3]),
    target: [usize; 3],
    rng: &mut Rng,
) -> Result<Vec<u8>, DataError> {
    match augment.output_shape(shape) {
        Some(out) if out == target => Ok(augment.apply(image, shape, rng)),
        out => Err(DataError::Invalid {
            data: name.to_string(),
            problem: format!(
                "augmentation {augment:?} turns its {shape:?} images into {}, but the network input is {target:?}",
                out.map_or("nothing (the crop does not fit)".to_string(), |o| format!("{o:?}"))
            ),
        }),
    }
}

impl ImageSource for Dataset {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> usize {
        Dataset::len(self)
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn shape(&self) -> [usize; 3] {
        self.shape
    }
    fn label(&self, i: usize) -> usize {
        Dataset::label(self, i)
    }
    fn train_image(&self, i: usize, augment: &Augment, rng: &mut Rng) -> Result<Vec<u8>, DataError> {
        augment_to(&self.name, augment, (self.image(i), self.shape), self.shape, rng)
    }
    fn eval_image(&self, i: usize) -> Result<Vec<u8>, DataError> {
        Ok(self.image(i).to_vec())
    }
}
