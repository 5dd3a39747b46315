//! Augmentation and normalisation against hand-computed examples.

use nsl_core::Rng;
use nsl_models::data::augment::{centre_crop, crop, flip_horizontal, pad_symmetric, Augment, Normalize};
use nsl_models::data::Dataset;

#[test]
fn symmetric_padding_repeats_the_edge_pixel() {
    // numpy.pad([[1,2,3],[4,5,6],[7,8,9]], 2, mode="symmetric")
    let x = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    #[rustfmt::skip]
    let expected = [
        5, 4, 4, 5, 6, 6, 5,
        2, 1, 1, 2, 3, 3, 2,
        2, 1, 1, 2, 3, 3, 2,
        5, 4, 4, 5, 6, 6, 5,
        8, 7, 7, 8, 9, 9, 8,
        8, 7, 7, 8, 9, 9, 8,
        5, 4, 4, 5, 6, 6, 5,
    ];
    assert_eq!(pad_symmetric(&x, [3, 3, 1], 2), expected);
}

#[test]
fn padding_keeps_channels_together() {
    // 1×2 image with 2 channels, padded by 1: pixel (a0,a1) (b0,b1).
    let x = [10, 11, 20, 21];
    let row = [10, 11, 10, 11, 20, 21, 20, 21];
    assert_eq!(pad_symmetric(&x, [1, 2, 2], 1), [row, row, row].concat());
}

#[test]
fn crop_and_flip() {
    let padded = pad_symmetric(&[1, 2, 3, 4, 5, 6, 7, 8, 9], [3, 3, 1], 2);
    assert_eq!(crop(&padded, [7, 7, 1], 1, 2, 3, 3), [1, 2, 3, 1, 2, 3, 4, 5, 6]);
    assert_eq!(crop(&padded, [7, 7, 1], 4, 5, 3, 2), [9, 8, 9, 8, 6, 5]);

    let mut gray = vec![1, 2, 3, 4, 5, 6];
    flip_horizontal(&mut gray, [2, 3, 1]);
    assert_eq!(gray, [3, 2, 1, 6, 5, 4]);
    let mut rgb = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    flip_horizontal(&mut rgb, [2, 2, 3]);
    assert_eq!(rgb, [4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9]);
}

/// A 32×32×3 image with distinct-enough values.
fn test_image() -> Vec<u8> {
    (0..32 * 32 * 3).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn pad_crop_flip_is_a_crop_of_the_padded_image_at_every_offset() {
    let (x, shape) = (test_image(), [32, 32, 3]);
    let padded = pad_symmetric(&x, shape, 4);
    let mut candidates = Vec::new();
    for (oy, ox, f) in (0..9).flat_map(|oy| (0..9).flat_map(move |ox| [(oy, ox, 0), (oy, ox, 1)])) {
        let mut c = crop(&padded, [40, 40, 3], oy, ox, 32, 32);
        if f == 1 {
            flip_horizontal(&mut c, shape);
        }
        candidates.push(((oy, ox, f), c));
    }
    let mut seen = [[[false; 2]; 9]; 9];
    for seed in 0..2000 {
        let out = Augment::CIFAR.apply(&x, shape, &mut Rng::new(seed));
        assert_eq!(out, Augment::CIFAR.apply(&x, shape, &mut Rng::new(seed)), "seed {seed} not deterministic");
        let hit = candidates.iter().find(|(_, c)| *c == out);
        let ((oy, ox, f), _) = hit.unwrap_or_else(|| panic!("seed {seed}: output is no (flipped) crop"));
        seen[*oy][*ox][*f] = true;
    }
    assert!(seen.iter().flatten().flatten().all(|&s| s), "some offset/flip never drawn");
}

#[test]
fn flip_only_and_none() {
    let (x, shape) = (test_image(), [32, 32, 3]);
    let mut flipped = x.clone();
    flip_horizontal(&mut flipped, shape);
    let outs: Vec<Vec<u8>> = (0..64).map(|s| Augment::Flip.apply(&x, shape, &mut Rng::new(s))).collect();
    assert!(outs.iter().all(|o| *o == x || *o == flipped));
    let flips = outs.iter().filter(|o| **o == flipped).count();
    assert!((16..=48).contains(&flips), "{flips} flips in 64");
    assert!((0..8).all(|s| Augment::None.apply(&x, shape, &mut Rng::new(s)) == x));
}

#[test]
fn normalisations() {
    let px = [0u8, 128, 255, 64];
    let mut out = [0f32; 4];
    Normalize::Raw.apply(&px, 2, &mut out);
    assert_eq!(out, [0.0, 128.0, 255.0, 64.0]);
    Normalize::Centered.apply(&px, 2, &mut out);
    assert_eq!(out, [-127.5 / 128.0, 0.5 / 128.0, 127.5 / 128.0, -63.5 / 128.0]);
    Normalize::MeanStd(vec![10.0, 128.0], vec![2.0, 64.0]).apply(&px, 2, &mut out);
    assert_eq!(out, [-5.0, 0.0, 122.5, -1.0]);

    // Two 1×1 images with 2 channels: channel 0 ∈ {0, 10}, channel 1 ∈ {4, 4}.
    let d = Dataset::new("t", vec![0, 4, 10, 4], vec![0, 1], 2, [1, 1, 2]);
    match Normalize::mean_std_of(&d) {
        Normalize::MeanStd(mean, std) => {
            assert_eq!(mean, [5.0, 4.0]);
            assert_eq!(std[0], 5.0);
            assert!(std[1] > 0.0 && std[1] <= 1e-3, "a constant channel gets a tiny, non-zero std");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn crop_flip_takes_a_random_window_and_evaluates_the_centre() {
    let x: Vec<u8> = (0..16).collect(); // 4×4 grey, value = 4y + x
    let aug = Augment::CropFlip { size: 2 };
    assert_eq!(aug.output_shape([4, 4, 1]), Some([2, 2, 1]));
    assert_eq!(Augment::CropFlip { size: 5 }.output_shape([4, 4, 1]), None);
    let mut candidates = Vec::new();
    for (oy, ox) in (0..3).flat_map(|oy| (0..3).map(move |ox| (oy, ox))) {
        let c = crop(&x, [4, 4, 1], oy, ox, 2, 2);
        let mut f = c.clone();
        flip_horizontal(&mut f, [2, 2, 1]);
        candidates.extend([c, f]);
    }
    let outs: Vec<Vec<u8>> = (0..200).map(|s| aug.apply(&x, [4, 4, 1], &mut Rng::new(s))).collect();
    assert!(outs.iter().all(|o| candidates.contains(o)));
    assert!(candidates.iter().all(|c| outs.contains(c)), "every window and flip occurs");
    assert_eq!(centre_crop(&x, [4, 4, 1], 2), [5, 6, 9, 10]);
}
