//! Image-file data sets on tiny generated trees: decoding and area resizing against hand
//! computations, mini-ImageNet CSV splits with their cache, streamed ImageNet class folders
//! with seeded augmentation, and the errors for missing, malformed and corrupt files.

mod common;

use std::path::Path;
use std::sync::Arc;

use image::{Rgb, RgbImage};
use nsl_core::Rng;
use nsl_models::data::augment::{Augment, Normalize};
use nsl_models::data::decode::{decode_resized, decode_rgb, resize_area};
use nsl_models::data::imagenet::{load_imagenet, CROP};
use nsl_models::data::loader::{eval_batches, Position, TrainConfig, TrainLoader};
use nsl_models::data::mini_imagenet::{load_mini_imagenet, load_split, SIDE};
use nsl_models::data::{DataError, ImageSource};

fn tempdir(name: &str) -> common::TestDir {
    common::TestDir::new(&format!("files-{name}"))
}

/// Save a `w×h` image with pixel `f(x, y)`; the extension picks PNG (lossless) or JPEG.
fn save(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_fn(w, h, |x, y| Rgb(f(x, y))).save(path).unwrap();
}

fn constant(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    save(path, w, h, |_, _| rgb);
}

/// Keep the first half of a file, as an interrupted download would.
fn truncate(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

#[test]
fn area_resize_matches_hand_computation() {
    // 2×2 blocks are averaged: (0+40+20+60)/4, (80+120+100+140)/4
    assert_eq!(resize_area(&[0, 40, 80, 120, 20, 60, 100, 140], [2, 4, 1], 1, 2), [30, 110]);
    // 3 → 2: cells [0, 1.5) and [1.5, 3): (0 + 30·½)/1.5 = 10, (30·½ + 90)/1.5 = 70
    assert_eq!(resize_area(&[0, 30, 90], [1, 3, 1], 1, 2), [10, 70]);
    // enlarging repeats pixels
    assert_eq!(resize_area(&[10, 50], [1, 2, 1], 1, 4), [10, 10, 50, 50]);
    // a constant image stays constant, channels stay apart
    let rgb: Vec<u8> = (0..5 * 7).flat_map(|_| [200, 3, 77]).collect();
    assert_eq!(resize_area(&rgb, [5, 7, 3], 3, 2), [200, 3, 77].repeat(6));
}

#[test]
fn png_decodes_exactly_and_resizes_by_block_means() {
    let dir = tempdir("png");
    let path = dir.join("gradient.png");
    save(&path, 168, 168, |x, y| [x as u8, y as u8, 7]);
    let (pixels, shape) = decode_rgb(&path, "mini-imagenet").unwrap();
    assert_eq!(shape, [168, 168, 3]);
    assert_eq!(&pixels[(5 * 168 + 9) * 3..(5 * 168 + 10) * 3], [9, 5, 7]);
    // 168 → 84 averages 2×2 blocks: red (2X + 2X+1)/2 = 2X + ½ → 2X + 1, green likewise in Y
    let small = decode_resized(&path, "mini-imagenet", SIDE).unwrap();
    for (y, x) in [(0, 0), (10, 30), (83, 83)] {
        assert_eq!(&small[(y * SIDE + x) * 3..(y * SIDE + x + 1) * 3], [2 * x as u8 + 1, 2 * y as u8 + 1, 7]);
    }
}

#[test]
fn jpeg_decodes_close_to_what_was_encoded() {
    let dir = tempdir("jpeg");
    let path = dir.join("grey.jpg");
    constant(&path, 50, 40, [120, 60, 200]);
    let (pixels, shape) = decode_rgb(&path, "imagenet").unwrap();
    assert_eq!(shape, [40, 50, 3]);
    for px in pixels.chunks_exact(3) {
        for (got, want) in px.iter().zip([120, 60, 200]) {
            assert!(got.abs_diff(want) <= 3, "{px:?}");
        }
    }
}

#[test]
fn corrupt_and_missing_images_are_named() {
    let dir = tempdir("corrupt");
    let path = dir.join("cut.jpg");
    save(&path, 64, 64, |x, y| [(x * 4) as u8, (y * 4) as u8, 0]);
    truncate(&path);
    let err = decode_rgb(&path, "imagenet").unwrap_err();
    assert!(matches!(err, DataError::BadImage { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("cut.jpg") && msg.contains("truncated or corrupt"), "{msg}");

    let err = decode_rgb(&dir.join("absent.png"), "mini-imagenet").unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }) && err.to_string().contains("absent.png"), "{err}");
}

/// mini-ImageNet with `classes[split]` classes of `per_class` constant images each; image
/// `j` of class `k` of split `s` has colour `[10s + k, 10j, 99]`. Class names are given in
/// reverse order in the CSV so the sorted numbering is visible. Two images are JPEGs.
fn fake_mini_imagenet(dir: &Path, classes: [usize; 3], per_class: usize) {
    for (s, split) in ["train", "val", "test"].iter().enumerate() {
        let mut csv = String::from("filename,label\n");
        for k in (0..classes[s]).rev() {
            for j in 0..per_class {
                let ext = if s == 0 && k == 0 && j < 2 { "jpg" } else { "png" };
                let file = format!("{split}{k}_{j}.{ext}");
                let colour = [(10 * s + k) as u8, (10 * j) as u8, 99];
                constant(&dir.join("images").join(&file), 100 + j as u32, 90, colour);
                csv += &format!("{file},n0{s}{k:02}\n");
            }
        }
        std::fs::write(dir.join(format!("{split}.csv")), csv).unwrap();
    }
}

#[test]
fn mini_imagenet_splits_classes_and_pixels() {
    let dir = tempdir("mini");
    fake_mini_imagenet(&dir, [3, 2, 2], 4);
    let m = load_mini_imagenet(&dir).unwrap();
    assert_eq!((m.train.clone(), m.val.clone(), m.test.clone()), (0..3, 3..5, 5..7));
    assert_eq!(m.wnids, ["n0000", "n0001", "n0002", "n0100", "n0101", "n0200", "n0201"]);
    assert_eq!((m.data.len(), m.data.classes, m.data.shape), (28, 7, [SIDE, SIDE, 3]));
    for i in 0..m.data.len() {
        let wnid = &m.wnids[m.data.label(i)];
        let (s, k): (usize, usize) = (wnid[2..3].parse().unwrap(), wnid[3..].parse().unwrap());
        let image = m.data.image(i);
        let tol = if s == 0 && k == 0 { 3 } else { 0 }; // JPEGs are lossy
        assert!(image[0].abs_diff((10 * s + k) as u8) <= tol && image[2].abs_diff(99) <= tol, "image {i}");
        assert!(image.chunks_exact(3).all(|px| px == &image[..3]), "a constant image resizes to a constant");
    }
    let counts: Vec<usize> = (0..7).map(|c| (0..28).filter(|&i| m.data.label(i) == c).count()).collect();
    assert_eq!(counts, [4; 7]);
}

#[test]
fn mini_imagenet_cache_is_reused_until_the_csv_changes() {
    let dir = tempdir("mini-cache");
    fake_mini_imagenet(&dir, [2, 1, 1], 2);
    let first = load_split(&dir, "train").unwrap();
    let cache = dir.join("train.84x84.nslcache");
    // a cut cache is ignored and rebuilt
    truncate(&cache);
    assert_eq!(load_split(&dir, "train").unwrap(), first);
    // magic, 4 words, 2 wnids of 1 + 5 bytes, 4 labels, 4 images
    assert_eq!(std::fs::read(&cache).unwrap().len(), 8 + 4 * 8 + 2 * 6 + 4 * 2 + 4 * SIDE * SIDE * 3);
    // served from the cache: the images are no longer needed
    std::fs::remove_dir_all(dir.join("images")).unwrap();
    assert_eq!(load_split(&dir, "train").unwrap(), first);
    // a changed CSV invalidates the cache, so the missing images are noticed, the first row first
    let csv = std::fs::read_to_string(dir.join("train.csv")).unwrap();
    std::fs::write(dir.join("train.csv"), csv.replace("train1_0.png", "other.png")).unwrap();
    let err = load_split(&dir, "train").unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }) && err.to_string().contains("other.png"), "{err}");
}

#[test]
fn mini_imagenet_errors_name_the_file_and_the_fix() {
    let dir = tempdir("mini-errors");
    let err = load_mini_imagenet(&dir).unwrap_err().to_string();
    assert!(err.contains("train.csv") && err.contains("Ravi") && err.contains("images/"), "{err}");

    fake_mini_imagenet(&dir, [1, 1, 1], 1);
    std::fs::remove_file(dir.join("images/val0_0.png")).unwrap();
    let err = load_mini_imagenet(&dir).unwrap_err().to_string();
    assert!(err.contains("val0_0.png") && err.contains("not found"), "{err}");

    truncate(&dir.join("images/test0_0.png"));
    let err = load_split(&dir, "test").unwrap_err().to_string();
    assert!(err.contains("test0_0.png") && err.contains("does not decode"), "{err}");

    for (csv, line, says) in [
        ("filename,label\ntrain0_0.jpg,n0000\ntrain0_0.jpg\n", 3, "expected `filename,label`"),
        ("filename,label\n../secret.png,n0000\n", 2, "not a file name inside images/"),
        ("name,wnid\n", 1, "header"),
        ("filename,label\n", 2, "no image rows"),
    ] {
        std::fs::write(dir.join("train.csv"), csv).unwrap();
        let err = load_split(&dir, "train").unwrap_err();
        assert!(matches!(err, DataError::BadCsv { line: l, .. } if l == line), "{err:?}");
        assert!(err.to_string().contains("train.csv") && err.to_string().contains(says), "{err}");
    }
}

/// ImageNet tree: training classes `n03, n01, n02` (created in that order) with 3, 2, 2 PNGs
/// of 512×512 where red = x/2, green = y/2, blue = 10·class + image; validation has n01, n03.
fn fake_imagenet(dir: &Path) {
    for (split, classes) in [("train", &[("n03", 3), ("n01", 2), ("n02", 2)][..]), ("val", &[("n01", 1), ("n03", 2)])] {
        for &(wnid, n) in classes {
            let class: u32 = wnid[1..].parse().unwrap();
            for j in 0..n {
                let path = dir.join(split).join(wnid).join(format!("{wnid}_{j}.png"));
                save(&path, 512, 512, |x, y| [(x / 2) as u8, (y / 2) as u8, (10 * class + j) as u8]);
            }
        }
    }
    std::fs::write(dir.join("train/n01/notes.txt"), "not an image").unwrap();
}

#[test]
fn imagenet_folders_map_sorted_wnids_and_centre_crop() {
    let dir = tempdir("imagenet");
    fake_imagenet(&dir);
    let (train, val) = load_imagenet(&dir).unwrap();
    assert_eq!(train.wnids(), ["n01", "n02", "n03"]);
    assert_eq!(val.wnids(), train.wnids());
    assert_eq!((train.len(), val.len(), train.classes(), train.shape()), (7, 3, 3, [CROP, CROP, 3]));
    assert_eq!((0..7).map(|i| train.label(i)).collect::<Vec<_>>(), [0, 0, 1, 1, 2, 2, 2]);
    assert_eq!((0..3).map(|i| val.label(i)).collect::<Vec<_>>(), [0, 2, 2]);
    // 512 → 256 halves (red = x/2 becomes X), the centre crop starts at 16
    let image = val.eval_image(1).unwrap();
    for (y, x) in [(0, 0), (100, 7), (223, 223)] {
        assert_eq!(&image[(y * CROP + x) * 3..(y * CROP + x + 1) * 3], [x as u8 + 16, y as u8 + 16, 30]);
    }
    assert_eq!(train.train_image(6, &Augment::None, &mut Rng::new(0)).unwrap(), train.eval_image(6).unwrap());
}

/// The crop offset `(oy, ox)` and flip of a training crop of the gradient image.
fn crop_of(image: &[u8]) -> (usize, usize, bool) {
    let px = |y: usize, x: usize| &image[(y * CROP + x) * 3..(y * CROP + x) * 3 + 2];
    let (left, right) = (px(0, 0)[0] as usize, px(0, CROP - 1)[0] as usize);
    let flipped = left > right;
    let (oy, ox) = (px(0, 0)[1] as usize, left.min(right));
    for (y, x) in [(0, 5), (50, 100), (223, 223)] {
        let col = if flipped { CROP - 1 - x } else { x };
        assert_eq!(px(y, x), [(ox + col) as u8, (oy + y) as u8], "a shifted, maybe mirrored window");
    }
    (oy, ox, flipped)
}

#[test]
fn imagenet_training_crops_are_seeded_and_in_range() {
    let dir = tempdir("imagenet-aug");
    fake_imagenet(&dir);
    let (train, _) = load_imagenet(&dir).unwrap();
    let train = Arc::new(train);
    let config =
        |seed| TrainConfig { batch_size: 3, augment: Augment::IMAGENET, normalize: Normalize::Raw, seed, prefetch: 1 };
    let batches = |seed| TrainLoader::new(train.clone(), config(seed), Position::default()).take(4).collect::<Vec<_>>();
    let (a, b) = (batches(7), batches(7));
    assert_eq!(a, b, "same seed, same batches, whatever thread decoded them");
    assert_ne!(a, batches(8));
    assert_eq!(a[0].shape, [3, CROP, CROP, 3]);
    let mut seen = Vec::new();
    for batch in &a {
        for image in batch.images.chunks_exact(CROP * CROP * 3) {
            let bytes: Vec<u8> = image.iter().map(|&v| v as u8).collect();
            let (oy, ox, flipped) = crop_of(&bytes);
            assert!(oy <= 32 && ox <= 32);
            seen.push((oy, ox, flipped));
        }
    }
    assert!(seen.iter().any(|s| s.2) && seen.iter().any(|s| !s.2), "both flips occur: {seen:?}");
    // a resumed stream equals the uninterrupted one
    let resumed: Vec<_> = TrainLoader::new(train.clone(), config(7), Position { epoch: 1, batch: 1 }).take(1).collect();
    assert_eq!(resumed[0], a[3]);
}

#[test]
fn imagenet_errors_name_the_folder_or_file() {
    let dir = tempdir("imagenet-errors");
    let err = load_imagenet(&dir).unwrap_err().to_string();
    assert!(err.contains("train") && err.contains("image-net.org"), "{err}");

    fake_imagenet(&dir);
    std::fs::create_dir_all(dir.join("train/n04")).unwrap();
    let err = load_imagenet(&dir).unwrap_err();
    assert!(matches!(err, DataError::EmptyClass { .. }) && err.to_string().contains("n04"), "{err}");
    std::fs::remove_dir(dir.join("train/n04")).unwrap();

    std::fs::create_dir_all(dir.join("val/n09")).unwrap();
    constant(&dir.join("val/n09/a.png"), 8, 8, [0, 0, 0]);
    let err = load_imagenet(&dir).unwrap_err().to_string();
    assert!(err.contains("n09") && err.contains("not one of the 3 training classes"), "{err}");
    std::fs::remove_dir_all(dir.join("val/n09")).unwrap();

    // a corrupt file surfaces when it is loaded, in training and in evaluation
    truncate(&dir.join("train/n02/n02_1.png"));
    let (train, val) = load_imagenet(&dir).unwrap();
    let mut loader = TrainLoader::new(
        Arc::new(train),
        TrainConfig { batch_size: 7, augment: Augment::IMAGENET, normalize: Normalize::Raw, seed: 0, prefetch: 1 },
        Position::default(),
    );
    let err = loader.try_next().unwrap_err().to_string();
    assert!(err.contains("n02_1.png") && err.contains("does not decode"), "{err}");
    assert!(loader.next().is_none(), "the stream ends at a load error");
    assert!(eval_batches(&val, 2, &Normalize::Raw).all(|b| b.is_ok()));

    let err = val.train_image(0, &Augment::CIFAR, &mut Rng::new(0)).unwrap_err().to_string();
    assert!(err.contains("network input is [224, 224, 3]"), "{err}");
}

#[test]
fn training_streams_imagenet_folders_end_to_end() {
    use nsl_models::train::{train, RunConfig, RunOptions};
    let dir = tempdir("imagenet-train");
    fake_imagenet(&dir.join("imagenet"));
    let cfg = RunConfig {
        network: "cnn10".parse().unwrap(),
        dataset: "imagenet".parse().unwrap(),
        data_dir: dir.display().to_string(),
        width: 0.0625,
        augment: "crop-flip".parse().unwrap(),
        normalize: "imagenet-mean".parse().unwrap(),
        iterations: 2,
        batch_size: 3,
        milestones: vec![],
        eval_every: 2,
        eval_batch: 2,
        checkpoint_every: 2,
        ..RunConfig::code_cifar()
    };
    let opts =
        RunOptions { out_dir: dir.join("run"), resume: nsl_models::train::Resume::No, progress: false, stop_at: None };
    let summary = train(&nsl_cpu::Cpu::with_threads(1), &cfg, &opts).unwrap();
    assert_eq!((summary.steps, summary.dataset.as_str()), (2, "imagenet"));
    assert!((0.0..=1.0).contains(&summary.final_test_acc));
    let err = nsl_models::train::load_data(&cfg).unwrap_err().to_string();
    assert!(err.contains("streamed"), "{err}");
}

#[test]
fn few_shot_rows_run_on_mini_imagenet_files() {
    use nsl_models::repro::{run_fewshot_row, FewShotMethod, Job, Metric, Row};
    use nsl_models::train::RunConfig;
    let dir = tempdir("mini-fewshot");
    fake_mini_imagenet(&dir.join("mini-imagenet"), [3, 2, 2], 4);
    let pretrain = RunConfig {
        network: "cnn4".parse().unwrap(),
        similarity: "static-dns-ones".parse().unwrap(),
        dataset: "mini-imagenet".parse().unwrap(),
        optimizer: "adam".parse().unwrap(),
        lr: 1e-3,
        normalize: "mean-std".parse().unwrap(),
        iterations: 2,
        batch_size: 4,
        ..RunConfig::code_cifar()
    };
    let row = Row {
        table: "table6",
        label: "MAML on files".into(),
        column: "mini-ImageNet",
        paper: None,
        paper_top5: None,
        metric: Metric::FewShotAccuracy,
        job: Job::FewShot {
            pretrain,
            method: FewShotMethod::MetaLearnedStaticNsn,
            way: 2,
            shot: 1,
            queries: 1,
            episodes: 2,
            meta_steps: 2,
            meta_batch: 2,
        },
    }
    .with_data_dir(&dir.display().to_string());
    let (summary, _) = run_fewshot_row(&nsl_cpu::Cpu::with_threads(1), &row, 0, &dir.join("run")).unwrap();
    assert_eq!(summary.dataset, "mini-imagenet");
    assert!((0.0..=1.0).contains(&summary.final_test_acc));
    // the MAML model's pretrained classifier covers the train split only (3 classes, not the
    // 3 + 2 of train + val the other rows use), at 84×84
    let cnn4 = |classes| {
        let be = nsl_cpu::Cpu::with_threads(1);
        let sim = "static-dns-ones".parse().unwrap();
        let c = nsl_models::nets::Cnn4Config {
            input: [SIDE, SIDE, 3],
            ..nsl_models::nets::Cnn4Config::paper(classes, sim)
        };
        nsl_models::nets::cnn4(&be, &mut Rng::new(0), &c).param_count()
    };
    assert_eq!(summary.params, cnn4(3));
    assert_ne!(summary.params, cnn4(5));
    // the row's own MAML schedule ran, and its state was kept for a resume
    let order = std::fs::read_to_string(dir.join("run/maml_order.txt")).unwrap();
    assert!(order.contains("outer steps 2 x 2 tasks"), "{order}");
    assert!(dir.join("run/pretrained.safetensors").exists() && dir.join("run/maml.safetensors").exists());
    // run again (as after a kill before `summary.json`): pretraining and meta-training are loaded, not redone
    let (again, _) = run_fewshot_row(&nsl_cpu::Cpu::with_threads(1), &row, 0, &dir.join("run")).unwrap();
    assert_eq!((again.final_test_acc, again.final_train_loss), (summary.final_test_acc, summary.final_train_loss));
}
