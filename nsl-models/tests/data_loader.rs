//! The training stream (seeded permutations, resumable, prefetched) and the evaluation batches.

use std::sync::Arc;

use nsl_models::data::augment::{Augment, Normalize};
use nsl_models::data::loader::{epoch_permutation, eval_batches, Batch, Position, TrainConfig, TrainLoader};
use nsl_models::data::Dataset;

/// `n` 1×1 grey images whose pixel is their index, labelled `i mod 7`.
fn indexed(n: usize) -> Arc<Dataset> {
    let labels = (0..n).map(|i| (i % 7) as u16).collect();
    Arc::new(Dataset::new("indexed", (0..n).map(|i| i as u8).collect(), labels, 7, [1, 1, 1]))
}

fn plain(batch_size: usize, seed: u64) -> TrainConfig {
    TrainConfig { batch_size, augment: Augment::None, normalize: Normalize::Raw, seed, prefetch: 2 }
}

fn indices(b: &Batch) -> Vec<usize> {
    b.images.iter().map(|&v| v as usize).collect()
}

#[test]
fn each_epoch_is_its_seeded_permutation_in_full_batches() {
    let data = indexed(50);
    let mut loader = TrainLoader::new(data.clone(), plain(8, 3), Position::default());
    assert_eq!(loader.batches_per_epoch(), 6); // 50 = 6·8 + 2 dropped
    for epoch in 0..3 {
        let perm = epoch_permutation(50, 3, epoch);
        for (b, chunk) in perm.chunks_exact(8).enumerate() {
            assert_eq!(loader.position(), Position { epoch, batch: b });
            let batch = loader.next().unwrap();
            assert_eq!(batch.shape, [8, 1, 1, 1]);
            assert_eq!(indices(&batch), chunk);
            assert_eq!(batch.labels, chunk.iter().map(|i| i % 7).collect::<Vec<_>>());
        }
    }
    assert_ne!(epoch_permutation(50, 3, 0), epoch_permutation(50, 3, 1));
    assert_ne!(epoch_permutation(50, 3, 0), epoch_permutation(50, 4, 0));
    let mut sorted = epoch_permutation(50, 3, 5);
    sorted.sort_unstable();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>());
}

#[test]
fn a_resumed_stream_sees_exactly_the_same_batches() {
    // 8×8 RGB images with the full pad-crop-flip augmentation.
    let n = 40;
    let images = (0..n * 192).map(|i| (i * 31 % 256) as u8).collect();
    let data = Arc::new(Dataset::new("rgb", images, (0..n).map(|i| (i % 4) as u16).collect(), 4, [8, 8, 3]));
    let config =
        TrainConfig { batch_size: 6, augment: Augment::CIFAR, normalize: Normalize::Centered, seed: 9, prefetch: 3 };
    let fresh: Vec<Batch> = TrainLoader::new(data.clone(), config.clone(), Position::default()).take(20).collect();
    let bpe = 40 / 6;
    let start = Position::of_iteration(8, bpe);
    assert_eq!(start, Position { epoch: 1, batch: 2 });
    let resumed: Vec<Batch> = TrainLoader::new(data.clone(), config.clone(), start).take(12).collect();
    assert_eq!(resumed, fresh[8..]);
    // Another seed gives other batches; augmentation really happened.
    let other: Vec<Batch> =
        TrainLoader::new(data, TrainConfig { seed: 10, ..config }, Position::default()).take(2).collect();
    assert_ne!(other, fresh[..2]);
    assert_eq!(fresh[0].shape, [6, 8, 8, 3]);
}

#[test]
fn dropping_the_loader_stops_its_worker() {
    let data = indexed(100);
    for taken in [0, 1, 5] {
        let mut loader = TrainLoader::new(data.clone(), plain(10, 1), Position::default());
        for _ in 0..taken {
            loader.next().unwrap();
        }
        drop(loader); // joins the worker; a leak would hang here
    }
}

#[test]
#[should_panic(expected = "make no batch")]
fn too_few_images_for_a_batch() {
    TrainLoader::new(indexed(5), plain(8, 0), Position::default());
}

#[test]
fn eval_batches_are_in_order_with_the_partial_last_one() {
    let data = indexed(10);
    let norm = Normalize::Centered;
    let batches: Vec<Batch> = eval_batches(&*data, 4, &norm).map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.shape[0]).collect::<Vec<_>>(), [4, 4, 2]);
    assert_eq!(batches[2].labels, [1, 2]);
    assert_eq!(batches[2].images, [(8.0 - 127.5) / 128.0, (9.0 - 127.5) / 128.0]);
    assert_eq!(eval_batches(&*data, 5, &norm).len(), 2);
    assert_eq!(
        batches.iter().flat_map(|b| b.labels.clone()).collect::<Vec<_>>(),
        data.labels.iter().map(|&l| usize::from(l)).collect::<Vec<_>>()
    );
}
