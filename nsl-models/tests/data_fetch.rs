//! The offline parts of `fetch-data`: checksums and unpacking, on local files only.

mod common;

use std::io::Write;
use std::path::Path;

use nsl_models::data::cifar::{load_cifar, CifarFormat, CIFAR10, CIFAR100};
use nsl_models::data::fetch::{extract, is_complete, md5_hex, verify_checksum, ARCHIVES};
use nsl_models::data::DataError;

fn temp_dir(name: &str) -> common::TestDir {
    common::TestDir::new(&format!("data-fetch-{name}"))
}

/// Write a `.tar.gz` with `members` (path, bytes) and a folder entry for `top`.
fn tarball(path: &Path, top: &str, members: &[(String, Vec<u8>)]) {
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o755);
    tar.append_data(&mut dir, format!("{top}/"), std::io::empty()).unwrap();
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

/// One CIFAR-10 record with label `label` and every pixel `label·10`.
fn record(label: u8) -> Vec<u8> {
    [vec![label], vec![label * 10; 3072]].concat()
}

#[test]
fn extract_lays_files_out_where_the_loader_reads_them() {
    let root = temp_dir("extract");
    let small = CifarFormat { train_records: 2, test_records: 1, ..CIFAR10 };
    let mut members: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("cifar-10-batches-bin/data_batch_{}.bin", i + 1), [record(i), record(9)].concat()))
        .collect();
    members.push(("cifar-10-batches-bin/test_batch.bin".into(), record(4)));
    members.push(("cifar-10-batches-bin/batches.meta.txt".into(), b"airplane\n".to_vec()));
    let tgz = root.join("cifar-10-binary.tar.gz");
    tarball(&tgz, "cifar-10-batches-bin", &members);

    let dir = root.join(CIFAR10.name);
    assert!(!is_complete(&dir, &small));
    let written = extract(&tgz, &dir).unwrap();
    assert_eq!(written.len(), 7);
    assert!(dir.join("data_batch_3.bin").is_file() && dir.join("batches.meta.txt").is_file());
    assert!(is_complete(&dir, &small));
    assert!(!is_complete(&dir, &CIFAR10), "the real format needs 10,000 records per file");
    assert!(!std::fs::read_dir(&dir).unwrap().any(|e| e.unwrap().path().to_string_lossy().ends_with(".part")));

    let (train, test) = load_cifar(&dir, &small).unwrap();
    assert_eq!(train.labels, [0, 9, 1, 9, 2, 9, 3, 9, 4, 9]);
    assert_eq!((test.label(0), test.image(0)[0]), (4, 40));
}

#[test]
fn extract_cifar100_layout() {
    let root = temp_dir("extract100");
    let small = CifarFormat { train_records: 1, test_records: 1, ..CIFAR100 };
    let rec = |fine: u8| [vec![0, fine], vec![7; 3072]].concat();
    let tgz = root.join("cifar-100-binary.tar.gz");
    let members =
        [("cifar-100-binary/train.bin".to_string(), rec(55)), ("cifar-100-binary/test.bin".to_string(), rec(66))];
    tarball(&tgz, "cifar-100-binary", &members);
    extract(&tgz, &root.join("cifar-100")).unwrap();
    let (train, test) = load_cifar(root.join("cifar-100"), &small).unwrap();
    assert_eq!((train.label(0), test.label(0)), (55, 66));
}

#[test]
fn extract_rejects_members_outside_a_top_folder_and_non_archives() {
    let root = temp_dir("reject");
    let tgz = root.join("flat.tar.gz");
    tarball(&tgz, "top", &[("loose.bin".to_string(), vec![1, 2, 3])]);
    let msg = extract(&tgz, &root.join("out")).unwrap_err().to_string();
    assert!(msg.contains("loose.bin") && msg.contains(&tgz.display().to_string()), "{msg}");

    let junk = root.join("junk.tar.gz");
    std::fs::write(&junk, b"this is not gzip").unwrap();
    let err = extract(&junk, &root.join("out")).unwrap_err();
    assert!(matches!(err, DataError::Archive { .. }), "{err:?}");
    assert!(err.to_string().contains("junk.tar.gz"), "{err}");
}

#[test]
fn checksums() {
    let root = temp_dir("md5");
    let file = root.join("abc.bin");
    std::fs::write(&file, b"abc").unwrap();
    assert_eq!(md5_hex(&file).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
    verify_checksum(&file, "900150983CD24FB0D6963F7D28E17F72").unwrap();

    // A corrupted download: the message names the file, the expected and the actual MD5.
    std::fs::write(&file, b"abd").unwrap();
    let err = verify_checksum(&file, "900150983cd24fb0d6963f7d28e17f72").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains("expected MD5 900150983cd24fb0d6963f7d28e17f72"), "{msg}");
    assert!(msg.contains(&format!("got {}", md5_hex(&file).unwrap())), "{msg}");
    assert!(msg.contains("cargo xtask fetch-data"), "{msg}");

    let missing = verify_checksum(&root.join("nope.tar.gz"), "00").unwrap_err();
    assert!(missing.to_string().contains("nope.tar.gz"), "{missing}");
}

#[test]
fn archive_table() {
    assert_eq!(ARCHIVES[0].url, "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz");
    assert_eq!(ARCHIVES[0].md5, "c32a1d4ab5d03f1284b67883e8d87530");
    assert_eq!(ARCHIVES[1].url, "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz");
    assert_eq!(ARCHIVES[1].md5, "03b5dce01913d631647c71ecec9e9cb8");
    assert_eq!((ARCHIVES[0].format.name, ARCHIVES[1].format.name), ("cifar-10", "cifar-100"));
}
