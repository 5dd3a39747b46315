//! The embedded synthetic data set: determinism, balance and "learnable but not trivial".

use nsl_models::data::synthetic::{synthetic_cifar, synthetic_many, MAX_CLASSES};
use nsl_models::data::Dataset;

/// Accuracy on `test` of the nearest class mean (Euclidean, raw pixels) of `train`.
fn nearest_class_mean(train: &Dataset, test: &Dataset) -> f64 {
    let n = train.image_len();
    let mut means = vec![0f64; train.classes * n];
    let mut counts = vec![0usize; train.classes];
    for i in 0..train.len() {
        counts[train.label(i)] += 1;
        let m = &mut means[train.label(i) * n..(train.label(i) + 1) * n];
        m.iter_mut().zip(train.image(i)).for_each(|(m, &x)| *m += f64::from(x));
    }
    for (m, &c) in means.chunks_exact_mut(n).zip(&counts) {
        m.iter_mut().for_each(|v| *v /= c.max(1) as f64);
    }
    let correct = (0..test.len())
        .filter(|&i| {
            let dist = |m: &[f64]| m.iter().zip(test.image(i)).map(|(m, &x)| (m - f64::from(x)).powi(2)).sum::<f64>();
            let best = (0..train.classes)
                .min_by(|&a, &b| dist(&means[a * n..(a + 1) * n]).total_cmp(&dist(&means[b * n..(b + 1) * n])))
                .unwrap();
            best == test.label(i)
        })
        .count();
    correct as f64 / test.len() as f64
}

#[test]
fn nearest_class_mean_is_above_chance_but_far_from_perfect() {
    let (train, test) = synthetic_cifar(3000, 1000, 1);
    let acc = nearest_class_mean(&train, &test);
    println!("nearest-class-mean accuracy: {acc:.3}");
    assert!((0.2..=0.6).contains(&acc), "nearest-class-mean accuracy {acc} outside 0.2..=0.6");
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a_train, a_test) = synthetic_cifar(300, 100, 5);
    let (b_train, b_test) = synthetic_cifar(300, 100, 5);
    assert_eq!(a_train, b_train);
    assert_eq!(a_test, b_test);
    let (c_train, _) = synthetic_cifar(300, 100, 6);
    assert_ne!(a_train.images, c_train.images);
    assert_ne!(a_train.images, a_test.images[..0].to_vec());
    assert_eq!(synthetic_many(20, 5, 3), synthetic_many(20, 5, 3));
    assert_ne!(synthetic_many(20, 5, 3).images, synthetic_many(20, 5, 4).images);
}

#[test]
fn classes_are_balanced_and_shapes_right() {
    let (train, test) = synthetic_cifar(1000, 205, 2);
    assert_eq!((train.shape, train.classes, train.images.len()), ([32, 32, 3], 10, 1000 * 3072));
    for data in [&train, &test] {
        let mut counts = [0usize; 10];
        data.labels.iter().for_each(|&l| counts[usize::from(l)] += 1);
        let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(hi - lo <= 1, "{}: class counts {counts:?}", data.name);
    }
    // Not a flat image: pixel values spread over most of the range.
    let (lo, hi) = (train.images.iter().min().unwrap(), train.images.iter().max().unwrap());
    assert!(*lo < 20 && *hi > 235, "pixel range {lo}..{hi}");
}

#[test]
fn many_class_variant_is_class_major_and_stable_across_seeds() {
    let d = synthetic_many(100, 6, 11);
    assert_eq!((d.len(), d.classes), (600, 100));
    assert!((0..600).all(|j| d.label(j) == j / 6));
    // Class k is the same family whatever the seed: its mean image differs less between two
    // seeds than from another class's mean image.
    let e = synthetic_many(100, 6, 12);
    let mean = |d: &Dataset, k: usize| -> Vec<f64> {
        let mut m = vec![0f64; 3072];
        for j in k * 6..(k + 1) * 6 {
            m.iter_mut().zip(d.image(j)).for_each(|(m, &x)| *m += f64::from(x) / 6.0);
        }
        m
    };
    let dist = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
    let (mut same, mut other) = (0.0, 0.0);
    for k in 0..100 {
        same += dist(&mean(&d, k), &mean(&e, k));
        other += dist(&mean(&d, k), &mean(&e, (k + 1) % 100));
    }
    assert!(same < other, "same-class distance {same} vs other-class {other}");
}

#[test]
#[should_panic(expected = "at most 960 classes")]
fn too_many_classes_panics() {
    synthetic_many(MAX_CLASSES + 1, 1, 0);
}
