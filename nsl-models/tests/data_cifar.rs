//! CIFAR binary loaders: decoding and the errors for missing, truncated and corrupt files.

mod common;

use nsl_models::data::cifar::{load_cifar, load_cifar10, load_cifar100, CifarFormat, CIFAR10, CIFAR100};
use nsl_models::data::DataError;

/// A fresh, empty folder for one test.
fn temp_dir(name: &str) -> common::TestDir {
    common::TestDir::new(&format!("data-cifar-{name}"))
}

/// A record whose pixel `(y, x)` of plane `c` is `(c·100 + y·3 + x) mod 256`.
fn record(labels: &[u8]) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend((0..3072).map(|i| ((i / 1024) * 100 + (i % 1024 / 32) * 3 + i % 32) as u8));
    r
}

#[test]
fn decodes_planes_to_hwc_and_reads_labels() {
    let dir = temp_dir("decode");
    let small = CifarFormat { train_records: 2, test_records: 1, ..CIFAR10 };
    for (i, f) in CIFAR10.train_files.iter().enumerate() {
        std::fs::write(dir.join(f), [record(&[i as u8]), record(&[9])].concat()).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), record(&[3])).unwrap();
    let (train, test) = load_cifar(&dir, &small).unwrap();
    assert_eq!((train.len(), test.len(), train.classes, train.shape), (10, 1, 10, [32, 32, 3]));
    assert_eq!(train.labels, [0, 9, 1, 9, 2, 9, 3, 9, 4, 9]);
    assert_eq!(test.label(0), 3);
    let img = train.image(0);
    for (y, x, c) in [(0, 0, 0), (0, 1, 2), (5, 7, 1), (31, 31, 2)] {
        assert_eq!(img[(y * 32 + x) * 3 + c], ((c * 100 + y * 3 + x) % 256) as u8, "pixel ({y},{x},{c})");
    }
    assert_eq!((train.name.as_str(), test.name.as_str()), ("cifar-10/train", "cifar-10/test"));
}

#[test]
fn cifar100_uses_the_fine_label() {
    let dir = temp_dir("fine");
    let small = CifarFormat { train_records: 1, test_records: 1, ..CIFAR100 };
    std::fs::write(dir.join("train.bin"), record(&[19, 42])).unwrap();
    std::fs::write(dir.join("test.bin"), record(&[0, 99])).unwrap();
    let (train, test) = load_cifar(&dir, &small).unwrap();
    assert_eq!((train.label(0), test.label(0), train.classes), (42, 99, 100));
    assert_eq!(train.image(0), test.image(0));
    assert_eq!(train.image(0)[..3], [0, 100, 200]);
}

#[test]
fn full_size_cifar10_files_load() {
    let dir = temp_dir("full");
    let file = [record(&[7]), vec![0; 9_999 * 3073]].concat();
    for f in CIFAR10.train_files.iter().chain(CIFAR10.test_files) {
        std::fs::write(dir.join(f), &file).unwrap();
    }
    let (train, test) = load_cifar10(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (50_000, 10_000));
    assert_eq!((train.label(0), train.label(1), train.label(10_000)), (7, 0, 7));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_file_names_it_and_the_fix() {
    let dir = temp_dir("missing");
    let err = load_cifar10(&dir).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.join("data_batch_1.bin").display().to_string()), "{msg}");
    assert!(msg.contains("cargo xtask fetch-data"), "{msg}");
    let err = load_cifar100(&dir).unwrap_err().to_string();
    assert!(err.contains("train.bin") && err.starts_with("cifar-100 file"), "{err}");
}

#[test]
fn truncated_file_names_it_sizes_and_the_fix() {
    let dir = temp_dir("truncated");
    std::fs::write(dir.join("data_batch_1.bin"), vec![0u8; 1234]).unwrap();
    let msg = load_cifar10(&dir).unwrap_err().to_string();
    let path = dir.join("data_batch_1.bin").display().to_string();
    assert_eq!(
        msg,
        format!(
            "cifar-10 file {path} is 1234 bytes; expected 30730000 (10000 records of 3073 bytes). The file is \
             truncated or not a CIFAR-10 binary: re-run `cargo xtask fetch-data`."
        )
    );
    // Whole records but the wrong count is an error too.
    std::fs::write(dir.join("train.bin"), vec![0u8; 3074 * 3]).unwrap();
    let msg = load_cifar100(&dir).unwrap_err().to_string();
    assert!(msg.contains("is 9222 bytes; expected 153700000 (50000 records of 3074 bytes)"), "{msg}");
}

#[test]
fn label_out_of_range_names_file_and_record() {
    let dir = temp_dir("label");
    let small = CifarFormat { train_records: 3, test_records: 1, ..CIFAR10 };
    std::fs::write(dir.join("data_batch_1.bin"), [record(&[1]), record(&[2]), record(&[10])].concat()).unwrap();
    let err = load_cifar(&dir, &small).unwrap_err();
    assert!(matches!(err, DataError::BadLabel { record: 2, label: 10, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("data_batch_1.bin record 2 has label 10") && msg.contains("10 classes"), "{msg}");

    let small100 = CifarFormat { train_records: 2, test_records: 1, ..CIFAR100 };
    std::fs::write(dir.join("train.bin"), [record(&[0, 5]), record(&[3, 100])].concat()).unwrap();
    let msg = load_cifar(&dir, &small100).unwrap_err().to_string();
    assert!(msg.contains("train.bin record 1 has label 100"), "{msg}");
}
