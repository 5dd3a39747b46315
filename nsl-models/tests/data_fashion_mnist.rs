//! Fashion-MNIST: the IDX reader, its errors on bad files, the embedded subset, and — where
//! Debian's `dataset-fashion-mnist` is installed (CI installs it) — the real files and a short
//! training run on them.

mod common;

use std::path::{Path, PathBuf};

use nsl_cpu::Cpu;
use nsl_models::data::fashion_mnist::{self, decode_split, encode_split, stratified_indices, FILES};
use nsl_models::data::{idx, DataError, Dataset};
use nsl_models::train::{train, RunConfig, RunOptions};

/// Write a split's IDX files into `dir` under the real names (`gz` picks gzipped files).
fn write_split(dir: &Path, data: &Dataset, test: bool, gz: bool) {
    let (images, labels) = encode_split(data, &(0..data.len()).collect::<Vec<_>>());
    let (fi, fl) = if test { (&FILES[2], &FILES[3]) } else { (&FILES[0], &FILES[1]) };
    for (file, bytes) in [(fi, images), (fl, labels)] {
        let (name, bytes) =
            if gz { (format!("{}.gz", file.name), idx::gzip(&bytes)) } else { (file.name.into(), bytes) };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A tiny padded split: image `i` has pixel `(i + y + x) mod 251` inside the border, label `i mod 10`.
fn tiny(n: usize) -> Dataset {
    let mut images = vec![0u8; n * 32 * 32];
    for i in 0..n {
        for y in 0..28 {
            for x in 0..28 {
                images[i * 1024 + (y + 2) * 32 + x + 2] = ((i + y + x) % 251) as u8;
            }
        }
    }
    Dataset::new("tiny", images, (0..n).map(|i| (i % 10) as u16).collect(), 10, [32, 32, 1])
}

fn decode(dir: &Path, test: bool) -> Result<Dataset, DataError> {
    let (fi, fl) = if test { (&FILES[2], &FILES[3]) } else { (&FILES[0], &FILES[1]) };
    let (ip, lp) = (fashion_mnist::file_in(dir, fi), fashion_mnist::file_in(dir, fl));
    decode_split("t", (&ip, &std::fs::read(&ip).unwrap()), (&lp, &std::fs::read(&lp).unwrap()), None)
}

#[test]
fn idx_files_round_trip_plain_and_gzipped() {
    let data = tiny(13);
    for gz in [false, true] {
        let dir = common::TestDir::new(&format!("fmnist-roundtrip-{gz}"));
        write_split(&dir, &data, false, gz);
        let back = decode(&dir, false).unwrap();
        assert_eq!((back.images, back.labels, back.shape), (data.images.clone(), data.labels.clone(), [32, 32, 1]));
    }
    // the header: magic 0x00000803, then big-endian sizes
    let bytes = idx::encode(&[2, 28, 28], &[7; 2 * 784]);
    assert_eq!(&bytes[..16], &[0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]);
}

/// The error of decoding the training split after `corrupt` has changed one of its files.
fn error_after(name: &str, corrupt: impl FnOnce(&Path)) -> (String, DataError) {
    let dir = common::TestDir::new(&format!("fmnist-bad-{name}"));
    write_split(&dir, &tiny(20), false, name.ends_with("gz"));
    corrupt(&dir);
    let err = decode(&dir, false).expect_err("a corrupt file is refused");
    (err.to_string(), err)
}

fn path(dir: &Path, i: usize, gz: bool) -> PathBuf {
    dir.join(if gz { format!("{}.gz", FILES[i].name) } else { FILES[i].name.to_string() })
}

#[test]
fn bad_idx_files_give_errors_naming_the_file_and_the_fault() {
    let images = FILES[0].name;
    let labels = FILES[1].name;
    // truncated (an interrupted copy), plain and gzipped
    for gz in [false, true] {
        let (msg, err) = error_after(if gz { "truncated-gz" } else { "truncated" }, |d| {
            let p = path(d, 0, gz);
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() * 2 / 3]).unwrap();
        });
        assert!(matches!(err, DataError::BadFile { .. }), "{err:?}");
        assert!(msg.contains(images) && (msg.contains("truncated") || msg.contains("decompress")), "{msg}");
        assert!(msg.contains("apt-get install dataset-fashion-mnist"), "the fix is named: {msg}");
    }
    // wrong magic: a label file where the images should be
    let (msg, _) = error_after("magic", |d| std::fs::copy(path(d, 1, false), path(d, 0, false)).map(drop).unwrap());
    assert!(msg.contains(images) && msg.contains("magic number 00000801 is not 00000803"), "{msg}");
    // a label out of range
    let (msg, err) = error_after("label", |d| {
        let p = path(d, 1, false);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[8 + 5] = 12;
        std::fs::write(&p, bytes).unwrap();
    });
    assert!(matches!(err, DataError::BadLabel { record: 5, label: 12, .. }), "{err:?}");
    assert!(msg.contains(labels) && msg.contains("label 12"), "{msg}");
    // images and labels disagree on the count
    let (msg, _) = error_after("count", |d| {
        let lp = path(d, 1, false);
        std::fs::write(lp, idx::encode(&[19], &[0; 19])).unwrap();
    });
    assert!(msg.contains(labels) && msg.contains("19 labels") && msg.contains("20 images"), "{msg}");
    // a header that claims 10¹² bytes is refused without allocating them
    let (msg, _) = error_after("huge", |d| {
        let mut bytes = idx::encode(&[20, 28, 28], &[0; 20 * 784]);
        bytes[4..8].copy_from_slice(&0xffff_ffffu32.to_be_bytes());
        std::fs::write(path(d, 0, false), bytes).unwrap();
    });
    assert!(msg.contains("truncated"), "{msg}");
    // a missing file names itself and how to get the data
    let dir = common::TestDir::new("fmnist-missing");
    let msg = fashion_mnist::load_from(&dir).unwrap_err().to_string();
    assert!(msg.contains(images) && msg.contains("not found") && msg.contains("fetch-data fashion-mnist"), "{msg}");
}

#[test]
fn embedded_subset_is_stratified_padded_and_small() {
    let (train, test) = fashion_mnist::embedded();
    assert_eq!((train.len(), test.len()), (7_000, 2_000));
    assert_eq!(train.shape, [32, 32, 1]);
    for (data, per) in [(&train, 700), (&test, 200)] {
        let mut counts = [0usize; 10];
        data.labels.iter().for_each(|&l| counts[usize::from(l)] += 1);
        assert_eq!(counts, [per; 10], "{}", data.name);
        // the 2-pixel border is the zero padding
        for i in [0, data.len() - 1] {
            let img = data.image(i);
            assert!((0..32).all(|k| img[k] == 0 && img[31 * 32 + k] == 0 && img[k * 32] == 0 && img[k * 32 + 31] == 0));
            assert!(img.iter().any(|&v| v > 0));
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(fashion_mnist::EMBEDDED_DIR);
    let bytes: u64 = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(bytes <= 4 << 20, "the embedded files take {bytes} bytes, more than 4 MiB");
    assert!(dir.join("LICENSE").exists(), "the licence notice travels with the data");
}

/// The full data set from Debian's package, or `None` (with a note) where it is not installed.
/// On CI (`CI` set) it must be there: `.ci/run` installs it.
fn real_files() -> Option<(Dataset, Dataset)> {
    let dir = Path::new(fashion_mnist::DEBIAN_DIR);
    if !fashion_mnist::file_in(dir, &FILES[0]).exists() {
        assert!(std::env::var_os("CI").is_none(), "CI must install dataset-fashion-mnist (see .ci/run)");
        eprintln!("skipped: {} is not installed here (apt-get install dataset-fashion-mnist)", dir.display());
        return None;
    }
    Some(fashion_mnist::load_from(dir).expect("Debian's Fashion-MNIST loads"))
}

#[test]
fn real_files_have_the_published_counts_and_pixels() {
    let Some((train, test)) = real_files() else { return };
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    for (data, per) in [(&train, 6_000), (&test, 1_000)] {
        let mut counts = [0usize; 10];
        data.labels.iter().for_each(|&l| counts[usize::from(l)] += 1);
        assert_eq!(counts, [per; 10], "{}", data.name);
    }
    let sum = |d: &Dataset, i: usize| d.image(i).iter().map(|&v| u64::from(v)).sum::<u64>();
    // pixel sums and labels of the first and last images, read off the files with numpy
    assert_eq!((sum(&train, 0), train.label(0)), (76_247, 9));
    assert_eq!((sum(&train, 59_999), train.label(59_999)), (16_684, 5));
    assert_eq!((sum(&test, 0), test.label(0)), (33_456, 9));
    assert_eq!((sum(&test, 9_999), test.label(9_999)), (24_390, 5));
    let total = |d: &Dataset| d.images.iter().map(|&v| u64::from(v)).sum::<u64>();
    assert_eq!((total(&train), total(&test)), (3_431_114_169, 573_469_082));
}

#[test]
fn embedded_subset_is_the_first_images_of_each_class_of_the_real_files() {
    let Some((train, test)) = real_files() else { return };
    let (etrain, etest) = fashion_mnist::embedded();
    for (full, sub, per) in [(&train, &etrain, 700), (&test, &etest, 200)] {
        let picked = full.subset("picked", &stratified_indices(full, per));
        assert_eq!((picked.images == sub.images, picked.labels == sub.labels), (true, true), "{}", sub.name);
    }
}

#[test]
fn real_checksums_match_the_recorded_ones() {
    let dir = Path::new(fashion_mnist::DEBIAN_DIR);
    if real_files().is_none() {
        return;
    }
    for f in &FILES {
        let p = fashion_mnist::file_in(dir, f);
        let raw = flate2_decompress(&std::fs::read(&p).unwrap());
        assert_eq!(nsl_models::data::fetch::md5_hex_bytes(&raw), f.md5, "{}", p.display());
    }
}

fn flate2_decompress(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
    out
}

#[test]
fn a_short_run_on_the_real_data_learns() {
    if real_files().is_none() {
        return;
    }
    // CNN-9 at width ×0.25, 200 iterations of SGD 0.1 (20 warm-up, ÷10 at 150), no augmentation,
    // a fast BN EMA (0.9) so the short run's running statistics catch up: 87% here, chance 10%.
    // Config boilerplate: a `RunConfig` literal, one field a line, like every test's.
    let cfg = RunConfig {
        dataset: "fashion-mnist".parse().unwrap(),
        data_dir: "no-such-folder".into(), // falls back to Debian's folder
        width: 0.25,
        iterations: 200,
        warmup: 20,
        milestones: vec![150],
        augment: "none".parse().unwrap(),
        normalize: "centered".parse().unwrap(),
        eval_every: 200,
        checkpoint_every: 200,
        eval_batch: 500,
        bn_decay: 0.9,
        bn_debias: true,
        ..RunConfig::code_cifar()
    };
    let dir = common::TestDir::new("fmnist-train");
    let opts = RunOptions {
        out_dir: dir.to_path_buf(),
        resume: nsl_models::train::Resume::No,
        progress: false,
        stop_at: None,
    };
    let s = train(&Cpu::new(), &cfg, &opts).unwrap();
    assert!(s.final_test_acc > 0.80, "final test accuracy {} after 200 iterations", s.final_test_acc);
}

#[test]
fn fetch_refuses_files_whose_checksum_differs() {
    // a "Debian" folder whose files are valid gzip but not Fashion-MNIST
    let debian = common::TestDir::new("fmnist-fake-debian");
    write_split(&debian, &tiny(5), false, true);
    write_split(&debian, &tiny(5), true, true);
    let root = common::TestDir::new("fmnist-fetch-bad");
    let err = nsl_models::data::fetch::fetch_fashion_mnist(&root, &debian).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, DataError::Checksum { .. }) && msg.contains(FILES[0].name) && msg.contains(FILES[0].md5),
        "{msg}"
    );
    assert!(
        !root.join("fashion-mnist").join(format!("{}.gz", FILES[0].name)).exists(),
        "a bad file is not left in place"
    );
}

#[test]
fn fetch_links_the_debian_files_once_and_replaces_a_corrupt_copy() {
    use nsl_models::data::fetch::{fetch_fashion_mnist, Placed};
    if real_files().is_none() {
        return;
    }
    let root = common::TestDir::new("fmnist-fetch");
    let debian = Path::new(fashion_mnist::DEBIAN_DIR);
    let placed = fetch_fashion_mnist(&root, debian).unwrap();
    assert!(placed.iter().all(|p| matches!(p, Placed::Linked(_))), "{placed:?}");
    let again = fetch_fashion_mnist(&root, debian).unwrap();
    assert!(again.iter().all(|p| matches!(p, Placed::Present(_))), "{again:?}");
    // a truncated copy in place is replaced
    let labels = root.join("fashion-mnist").join(format!("{}.gz", FILES[3].name));
    std::fs::remove_file(&labels).unwrap();
    std::fs::write(&labels, b"\x1f\x8b garbage").unwrap();
    let fixed = fetch_fashion_mnist(&root, debian).unwrap();
    assert!(matches!(&fixed[3], Placed::Linked(p) if p == &labels), "{fixed:?}");
    let (train, test) = fashion_mnist::load(&root).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
}

#[test]
fn eval_reads_only_the_test_split() {
    if real_files().is_none() {
        return;
    }
    let dir = common::TestDir::new("fmnist-eval-test-only");
    let cfg = RunConfig {
        dataset: "fashion-mnist".parse().unwrap(),
        data_dir: "no-such-folder".into(),
        width: 0.125,
        iterations: 2,
        warmup: 0,
        milestones: vec![],
        eval_every: 2,
        checkpoint_every: 2,
        ..RunConfig::default()
    };
    let run = dir.join("run");
    let opts =
        RunOptions { out_dir: run.clone(), resume: nsl_models::train::Resume::No, progress: false, stop_at: None };
    let summary = train(&Cpu::with_threads(2), &cfg, &opts).unwrap();
    // a data folder holding the test files only
    let only_test = dir.join("data").join("fashion-mnist");
    std::fs::create_dir_all(&only_test).unwrap();
    for f in &FILES[2..] {
        let src = fashion_mnist::file_in(Path::new(fashion_mnist::DEBIAN_DIR), f);
        std::fs::copy(&src, only_test.join(src.file_name().unwrap())).unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nsl"))
        .args(["--threads", "2", "eval"])
        .arg(&run)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains(&format!("{:.2}%", 100.0 * summary.final_test_acc)) && text.contains("10000 images"),
        "{text}"
    );
}
