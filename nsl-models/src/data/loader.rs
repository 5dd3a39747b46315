//! Batches for training and evaluation.
//!
//! Training ([`TrainLoader`]): epoch `e` visits the images in the order `π_e`, a Fisher–Yates
//! shuffle driven by `Rng(seed) → fork(PERM) → fork(e)`, and cuts it into `⌊n/B⌋` full batches
//! (the last partial batch is dropped, as TF `shuffle_batch` only gives full batches). Image `i`
//! in epoch `e` is augmented with `Rng(seed) → fork(AUG) → fork(e) → fork(i)`. Both are pure
//! functions of `(seed, e, i)`, so batch `b` of epoch `e` is the same whether the run started at
//! 0 or resumed at `(e, b)`, and whichever thread builds it. A worker thread builds the batches
//! ahead into a bounded channel; dropping the loader stops and joins it. For sources that read
//! files ([`ImageSource::reads_files`], e.g. ImageNet) the images of a batch are loaded in
//! parallel on the rayon pool; being pure functions of `(seed, e, i)`, they do not depend on
//! which thread loads them. A load error ends the stream and is returned by
//! [`TrainLoader::try_next`].
//!
//! Evaluation ([`eval_batches`]): the images in order, unaugmented ([`ImageSource::eval_image`]),
//! last partial batch kept.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use nsl_core::Rng;
use rayon::prelude::*;

use super::augment::{Augment, Normalize};
use super::{DataError, ImageSource};

/// Stream labels separating the permutation and augmentation randomness of one seed.
const PERM: u64 = 0x7065_726d;
const AUG: u64 = 0x6175_6733;

/// A batch of normalised images, `f32` NHWC, with their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `B·H·W·C` values, NHWC.
    pub images: Vec<f32>,
    /// `B` labels.
    pub labels: Vec<usize>,
    /// `[B, H, W, C]`.
    pub shape: [usize; 4],
}

/// Where a training stream is: batch `batch` of epoch `epoch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Epoch, from 0.
    pub epoch: u64,
    /// Batch within the epoch, `< batches_per_epoch`.
    pub batch: usize,
}

impl Position {
    /// The position of global training iteration `iteration` (0-based): `(it / bpe, it mod bpe)`.
    pub fn of_iteration(iteration: u64, batches_per_epoch: usize) -> Position {
        let bpe = batches_per_epoch as u64;
        Position { epoch: iteration / bpe, batch: (iteration % bpe) as usize }
    }
}

/// Settings of a training stream.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Images per batch (128 in the reference code).
    pub batch_size: usize,
    /// Augmentation of each image.
    pub augment: Augment,
    /// Pixel normalisation.
    pub normalize: Normalize,
    /// Seed of the permutations and augmentations.
    pub seed: u64,
    /// Batches built ahead by the worker thread (at least 1).
    pub prefetch: usize,
}

impl TrainConfig {
    /// The CIFAR recipe of the NSL code: batch 128, pad-crop-flip, raw 0..255 pixels, 3 batches ahead.
    pub fn cifar(seed: u64) -> TrainConfig {
        TrainConfig { batch_size: 128, augment: Augment::CIFAR, normalize: Normalize::Raw, seed, prefetch: 3 }
    }
}

/// The image order `π_e` of epoch `epoch` over `n` images.
pub fn epoch_permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    Rng::new(seed).fork(PERM).fork(epoch).shuffle(&mut perm);
    perm
}

/// An endless, prefetched stream of training batches. Iterate it (or call
/// [`TrainLoader::try_next`] to see load errors); drop it to stop the worker.
pub struct TrainLoader {
    name: String,
    rx: Option<Receiver<Result<Batch, DataError>>>,
    worker: Option<JoinHandle<()>>,
    next: Position,
    batches_per_epoch: usize,
}

impl TrainLoader {
    /// Start streaming `data` from `start` (use `Position::default()` for a fresh run).
    ///
    /// # Panics
    /// If `data` holds fewer than `batch_size` images or `start.batch` is past the epoch.
    pub fn new<S: ImageSource + ?Sized + 'static>(data: Arc<S>, config: TrainConfig, start: Position) -> TrainLoader {
        let name = data.name().to_string();
        let batches_per_epoch = data.len() / config.batch_size.max(1);
        assert!(batches_per_epoch > 0, "{name}: {} images make no batch of {}", data.len(), config.batch_size);
        assert!(start.batch < batches_per_epoch, "start batch {} ≥ {batches_per_epoch} per epoch", start.batch);
        let (tx, rx) = sync_channel(config.prefetch.max(1));
        let worker = std::thread::Builder::new()
            .name("nsl-data-loader".into())
            .spawn(move || {
                let Position { mut epoch, mut batch } = start;
                loop {
                    let perm = epoch_permutation(data.len(), config.seed, epoch);
                    for chunk in perm.chunks_exact(config.batch_size).skip(batch) {
                        // a panic here would end the stream silently for the reader: make it an error
                        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            train_batch(&*data, &config, epoch, chunk)
                        }))
                        .unwrap_or_else(|panic| {
                            let what = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            Err(DataError::Invalid {
                                data: data.name().to_string(),
                                problem: format!(
                                    "internal error while building a batch ({what}); this is a bug in nsl"
                                ),
                            })
                        });
                        let failed = built.is_err();
                        if tx.send(built).is_err() || failed {
                            return; // the loader was dropped, or the stream ends at a load error
                        }
                    }
                    epoch += 1;
                    batch = 0;
                }
            })
            .expect("spawn the data loader thread");
        TrainLoader { name, rx: Some(rx), worker: Some(worker), next: start, batches_per_epoch }
    }
    /// The next batch, or why it could not be built (an image failed to load); the stream ends
    /// after an error.
    pub fn try_next(&mut self) -> Result<Batch, DataError> {
        let received = self.rx.as_ref().and_then(|rx| rx.recv().ok());
        let batch = received.unwrap_or_else(|| {
            Err(DataError::Invalid {
                data: self.name.clone(),
                problem: "the training stream has ended after a load error".into(),
            })
        })?;
        self.next.batch += 1;
        if self.next.batch == self.batches_per_epoch {
            self.next = Position { epoch: self.next.epoch + 1, batch: 0 };
        }
        Ok(batch)
    }
    /// Full batches per epoch, `⌊n/B⌋`.
    pub fn batches_per_epoch(&self) -> usize {
        self.batches_per_epoch
    }
    /// The position of the batch the next call to `next` returns.
    pub fn position(&self) -> Position {
        self.next
    }
}

/// Endless for in-memory data; ends at the first load error ([`TrainLoader::try_next`] returns it).
impl Iterator for TrainLoader {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        self.try_next().ok()
    }
}

impl Drop for TrainLoader {
    fn drop(&mut self) {
        drop(self.rx.take()); // unblocks a worker waiting in `send`
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Augment and normalise the images `indices` of epoch `epoch`.
fn train_batch<S: ImageSource + ?Sized>(
    data: &S,
    config: &TrainConfig,
    epoch: u64,
    indices: &[usize],
) -> Result<Batch, DataError> {
    let stream = Rng::new(config.seed).fork(AUG).fork(epoch);
    assemble(data, indices, &config.normalize, |i| {
        data.train_image(i, &config.augment, &mut stream.clone().fork(i as u64))
    })
}

/// Normalise `load(i)` for each index into one NHWC batch, in parallel for file-backed sources.
fn assemble<S: ImageSource + ?Sized>(
    data: &S,
    indices: &[usize],
    normalize: &Normalize,
    load: impl Fn(usize) -> Result<Vec<u8>, DataError> + Sync,
) -> Result<Batch, DataError> {
    let [h, w, c] = data.shape();
    let n = h * w * c;
    let mut images = vec![0f32; indices.len() * n];
    let fill = |(out, &i): (&mut [f32], &usize)| load(i).map(|image| normalize.apply(&image, c, out));
    if data.reads_files() {
        images.par_chunks_exact_mut(n).zip(indices).try_for_each(fill)?;
    } else {
        images.chunks_exact_mut(n).zip(indices).try_for_each(fill)?;
    }
    let labels = indices.iter().map(|&i| data.label(i)).collect();
    Ok(Batch { images, labels, shape: [indices.len(), h, w, c] })
}

/// The test-time batches of `data`: in order, unaugmented, the last one possibly smaller.
pub fn eval_batches<'a, S: ImageSource + ?Sized>(
    data: &'a S,
    batch_size: usize,
    normalize: &'a Normalize,
) -> impl ExactSizeIterator<Item = Result<Batch, DataError>> + 'a {
    assert!(batch_size > 0, "batch size 0");
    let starts = (0..data.len()).step_by(batch_size);
    starts.map(move |s| {
        let indices: Vec<usize> = (s..(s + batch_size).min(data.len())).collect();
        assemble(data, &indices, normalize, |i| data.eval_image(i))
    })
}
