//! Batches for training and evaluation.
//!
//! Training ([`TrainLoader`]): epoch `e` visits the images in the order `π_e`, a Fisher–Yates
//! shuffle driven by `Rng(seed) → fork(PERM) → fork(e)`, and cuts it into `⌊n/B⌋` full batches
//! (the last partial batch is dropped, as TF `shuffle_batch` only gives full batches). Image `i`
//! in epoch `e` is augmented with `Rng(seed) → fork(AUG) → fork(e) → fork(i)`. Both are pure
//! functions of `(seed, e, i)`, so batch `b` of epoch `e` is the same whether the run started at
//! 0 or resumed at `(e, b)`, and whichever thread builds it. A worker thread builds the batches
//! ahead into a bounded channel; dropping the loader stops and joins it.
//!
//! Evaluation ([`eval_batches`]): the images in order, no augmentation, last partial batch kept.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use nsl_core::Rng;

use super::augment::{Augment, Normalize};
use super::Dataset;

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

/// An endless, prefetched stream of training batches. Iterate it; drop it to stop the worker.
pub struct TrainLoader {
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
    next: Position,
    batches_per_epoch: usize,
}

impl TrainLoader {
    /// Start streaming `data` from `start` (use `Position::default()` for a fresh run).
    ///
    /// # Panics
    /// If `data` holds fewer than `batch_size` images or `start.batch` is past the epoch.
    pub fn new(data: Arc<Dataset>, config: TrainConfig, start: Position) -> TrainLoader {
        let batches_per_epoch = data.len() / config.batch_size.max(1);
        assert!(batches_per_epoch > 0, "{}: {} images make no batch of {}", data.name, data.len(), config.batch_size);
        assert!(start.batch < batches_per_epoch, "start batch {} ≥ {batches_per_epoch} per epoch", start.batch);
        let (tx, rx) = sync_channel(config.prefetch.max(1));
        let worker = std::thread::Builder::new()
            .name("nsl-data-loader".into())
            .spawn(move || {
                let Position { mut epoch, mut batch } = start;
                loop {
                    let perm = epoch_permutation(data.len(), config.seed, epoch);
                    for chunk in perm.chunks_exact(config.batch_size).skip(batch) {
                        if tx.send(train_batch(&data, &config, epoch, chunk)).is_err() {
                            return; // the loader was dropped
                        }
                    }
                    epoch += 1;
                    batch = 0;
                }
            })
            .expect("spawn the data loader thread");
        TrainLoader { rx: Some(rx), worker: Some(worker), next: start, batches_per_epoch }
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

impl Iterator for TrainLoader {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        let batch = self.rx.as_ref()?.recv().ok()?;
        self.next.batch += 1;
        if self.next.batch == self.batches_per_epoch {
            self.next = Position { epoch: self.next.epoch + 1, batch: 0 };
        }
        Some(batch)
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
fn train_batch(data: &Dataset, config: &TrainConfig, epoch: u64, indices: &[usize]) -> Batch {
    let stream = Rng::new(config.seed).fork(AUG).fork(epoch);
    assemble(data, indices, &config.normalize, |i, image| {
        config.augment.apply(image, data.shape, &mut stream.clone().fork(i as u64))
    })
}

/// Normalise `f(i, image_i)` for each index into one NHWC batch.
fn assemble(data: &Dataset, indices: &[usize], normalize: &Normalize, f: impl Fn(usize, &[u8]) -> Vec<u8>) -> Batch {
    let n = data.image_len();
    let [h, w, c] = data.shape;
    let mut images = vec![0f32; indices.len() * n];
    for (out, &i) in images.chunks_exact_mut(n).zip(indices) {
        normalize.apply(&f(i, data.image(i)), c, out);
    }
    Batch { images, labels: indices.iter().map(|&i| data.label(i)).collect(), shape: [indices.len(), h, w, c] }
}

/// The test-time batches of `data`: in order, unaugmented, the last one possibly smaller.
pub fn eval_batches<'a>(
    data: &'a Dataset,
    batch_size: usize,
    normalize: &'a Normalize,
) -> impl ExactSizeIterator<Item = Batch> + 'a {
    assert!(batch_size > 0, "batch size 0");
    let starts = (0..data.len()).step_by(batch_size);
    starts.map(move |s| {
        let indices: Vec<usize> = (s..(s + batch_size).min(data.len())).collect();
        assemble(data, &indices, normalize, |_, image| image.to_vec())
    })
}
