//! CIFAR-10 and CIFAR-100 binary files (the `*-binary.tar.gz` releases).
//!
//! A file is a sequence of fixed-size records. CIFAR-10: 3073 bytes = label byte, then the
//! 32×32 R plane, G plane and B plane (1024 bytes each, row-major). CIFAR-100: 3074 bytes =
//! coarse label, fine label (the one used), then the same 3072 image bytes. The planes (CHW)
//! are transposed to HWC: `hwc[(y·32 + x)·3 + c] = chw[c·1024 + y·32 + x]`.

use std::path::Path;

use super::{DataError, Dataset};

/// Side of a CIFAR image.
pub const SIDE: usize = 32;
/// The CIFAR-10 class names, by label (`batches.meta.txt`).
pub const CIFAR10_CLASS_NAMES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
/// Image bytes per record, `32·32·3`.
pub const IMAGE_BYTES: usize = SIDE * SIDE * 3;

/// The layout of one CIFAR variant: record format, file names and record counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CifarFormat {
    /// Data set name, also the folder name under the data root (`"cifar-10"`).
    pub name: &'static str,
    /// Label bytes before the image in each record (1 or 2).
    pub label_bytes: usize,
    /// Which of those bytes is the label used (CIFAR-100: 1, the fine label).
    pub label_offset: usize,
    /// Number of classes.
    pub classes: usize,
    /// Training files, in order.
    pub train_files: &'static [&'static str],
    /// Records in each training file.
    pub train_records: usize,
    /// Test files, in order.
    pub test_files: &'static [&'static str],
    /// Records in each test file.
    pub test_records: usize,
}

/// CIFAR-10: 5 × 10,000 training records, 10,000 test records, 10 classes.
pub const CIFAR10: CifarFormat = CifarFormat {
    name: "cifar-10",
    label_bytes: 1,
    label_offset: 0,
    classes: 10,
    train_files: &["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"],
    train_records: 10_000,
    test_files: &["test_batch.bin"],
    test_records: 10_000,
};

/// CIFAR-100 (fine labels): 50,000 training records, 10,000 test records, 100 classes.
pub const CIFAR100: CifarFormat = CifarFormat {
    name: "cifar-100",
    label_bytes: 2,
    label_offset: 1,
    classes: 100,
    train_files: &["train.bin"],
    train_records: 50_000,
    test_files: &["test.bin"],
    test_records: 10_000,
};

impl CifarFormat {
    /// Bytes per record, label bytes plus 3072.
    pub fn record_bytes(&self) -> usize {
        self.label_bytes + IMAGE_BYTES
    }
    /// Every file with its expected length in bytes.
    pub fn files(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let size = |records: usize| (records * self.record_bytes()) as u64;
        let train = self.train_files.iter().map(move |&f| (f, size(self.train_records)));
        train.chain(self.test_files.iter().map(move |&f| (f, size(self.test_records))))
    }
}

/// Load CIFAR-10 from `dir` (holding `data_batch_1..5.bin` and `test_batch.bin`): `(train, test)`.
pub fn load_cifar10(dir: impl AsRef<Path>) -> Result<(Dataset, Dataset), DataError> {
    load_cifar(dir, &CIFAR10)
}

/// Load CIFAR-100 with fine labels from `dir` (holding `train.bin` and `test.bin`): `(train, test)`.
pub fn load_cifar100(dir: impl AsRef<Path>) -> Result<(Dataset, Dataset), DataError> {
    load_cifar(dir, &CIFAR100)
}

/// Load the training and test files of `format` from `dir`, validating every file's size and
/// every label.
pub fn load_cifar(dir: impl AsRef<Path>, format: &CifarFormat) -> Result<(Dataset, Dataset), DataError> {
    let dir = dir.as_ref();
    let train = load_split(dir, format, "train", format.train_files, format.train_records)?;
    let test = load_split(dir, format, "test", format.test_files, format.test_records)?;
    Ok((train, test))
}

/// Only the test file of `format` from `dir` (what evaluating a checkpoint needs).
pub fn load_test(dir: impl AsRef<Path>, format: &CifarFormat) -> Result<Dataset, DataError> {
    load_split(dir.as_ref(), format, "test", format.test_files, format.test_records)
}

fn load_split(
    dir: &Path,
    format: &CifarFormat,
    split: &str,
    files: &[&str],
    records: usize,
) -> Result<Dataset, DataError> {
    let mut images = Vec::with_capacity(files.len() * records * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(files.len() * records);
    for file in files {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| DataError::io(format.name, &path, e))?;
        decode(&bytes, format, records, &path, &mut images, &mut labels)?;
    }
    Ok(Dataset::new(format!("{}/{split}", format.name), images, labels, format.classes, [SIDE, SIDE, 3]))
}

/// Decode the records of one file, appending HWC images and labels.
fn decode(
    bytes: &[u8],
    format: &CifarFormat,
    records: usize,
    path: &Path,
    images: &mut Vec<u8>,
    labels: &mut Vec<u16>,
) -> Result<(), DataError> {
    let record_bytes = format.record_bytes();
    if bytes.len() != records * record_bytes {
        return Err(DataError::BadSize {
            dataset: format.name,
            path: path.to_path_buf(),
            bytes: bytes.len() as u64,
            records,
            record_bytes,
        });
    }
    const PLANE: usize = SIDE * SIDE;
    for (record, rec) in bytes.chunks_exact(record_bytes).enumerate() {
        let label = rec[format.label_offset];
        if usize::from(label) >= format.classes {
            return Err(DataError::BadLabel {
                dataset: format.name,
                path: path.to_path_buf(),
                record,
                label,
                classes: format.classes,
            });
        }
        labels.push(u16::from(label));
        let chw = &rec[format.label_bytes..];
        images.extend((0..PLANE).flat_map(|p| [chw[p], chw[PLANE + p], chw[2 * PLANE + p]]));
    }
    Ok(())
}
