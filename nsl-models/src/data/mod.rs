//! Image data: the CIFAR-10/100 binary loaders, Fashion-MNIST (IDX files, and the embedded
//! subset that is the default data set), the procedural synthetic set,
//! mini-ImageNet (CSV splits of JPEGs, decoded once into memory) and ImageNet (class folders of
//! JPEGs, streamed), the training augmentations, the prefetching batch loader and the download
//! logic behind `cargo xtask fetch-data`.
//!
//! Images are kept as `u8` in HWC order (row-major, channels last), exactly as decoded; the
//! [`loader`] turns any [`ImageSource`] into `f32` NHWC batches with one of the
//! [`augment::Normalize`] options.

pub mod augment;
pub mod cifar;
pub mod decode;
pub mod fashion_mnist;
pub mod fetch;
pub mod idx;
pub mod imagenet;
pub mod loader;
pub mod mini_imagenet;
pub mod source;
pub mod synthetic;

pub use source::ImageSource;

use std::fmt;
use std::path::PathBuf;

/// A labelled image set held in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// Short name, e.g. `"cifar-10/train"`.
    pub name: String,
    /// `len · h · w · c` bytes; image `i` is `images[i·h·w·c .. (i+1)·h·w·c]` in HWC order.
    pub images: Vec<u8>,
    /// One label per image, each `< classes`.
    pub labels: Vec<u16>,
    /// Number of classes `K`.
    pub classes: usize,
    /// Image shape `[h, w, c]`.
    pub shape: [usize; 3],
}

impl Dataset {
    /// Wrap decoded images and labels.
    ///
    /// # Panics
    /// If `images.len() != labels.len()·h·w·c` or a label is `≥ classes`.
    pub fn new(name: impl Into<String>, images: Vec<u8>, labels: Vec<u16>, classes: usize, shape: [usize; 3]) -> Self {
        let name = name.into();
        assert_eq!(images.len(), labels.len() * shape.iter().product::<usize>(), "{name}: image bytes vs labels");
        assert!(labels.iter().all(|&l| usize::from(l) < classes), "{name}: label out of range");
        Dataset { name, images, labels, classes, shape }
    }
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// True if there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Bytes per image, `h·w·c`.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Image `i`, HWC.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }
    /// Label of image `i`.
    pub fn label(&self, i: usize) -> usize {
        usize::from(self.labels[i])
    }
    /// The images at `indices`, in that order (e.g. a validation split or the classes of a
    /// few-shot episode), keeping the class count.
    pub fn subset(&self, name: impl Into<String>, indices: &[usize]) -> Dataset {
        let images = indices.iter().flat_map(|&i| self.image(i).iter().copied()).collect();
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Dataset { name: name.into(), images, labels, classes: self.classes, shape: self.shape }
    }
}

/// Why data could not be loaded or fetched. Every message names the file and the fix.
#[derive(Debug)]
pub enum DataError {
    /// A data file is absent.
    Missing {
        /// Data set name, e.g. `"cifar-10"`.
        dataset: &'static str,
        /// The file looked for.
        path: PathBuf,
    },
    /// A data file has the wrong length.
    BadSize {
        /// Data set name.
        dataset: &'static str,
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        bytes: u64,
        /// Records it should hold.
        records: usize,
        /// Bytes per record.
        record_bytes: usize,
    },
    /// A record's label is `≥` the number of classes.
    BadLabel {
        /// Data set name.
        dataset: &'static str,
        /// The file.
        path: PathBuf,
        /// 0-based record index within the file.
        record: usize,
        /// The label byte found.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// A data file's header or contents are not what the format or the data set requires
    /// (wrong magic number, dimensions or count, truncated data).
    BadFile {
        /// Data set name.
        dataset: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A file's MD5 differs from the published one.
    Checksum {
        /// The file.
        path: PathBuf,
        /// Published MD5 (hex).
        expected: String,
        /// MD5 of the file (hex).
        got: String,
    },
    /// A tarball lacks a file the loader needs, or holds an unsafe path.
    Archive {
        /// The tarball.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A download failed.
    Download {
        /// The URL.
        url: String,
        /// The HTTP client's message.
        message: String,
    },
    /// An image file does not decode (truncated, corrupt, or neither JPEG nor PNG).
    BadImage {
        /// Data set name.
        dataset: &'static str,
        /// The image file.
        path: PathBuf,
        /// The decoder's message.
        problem: String,
    },
    /// A row of a CSV split file is malformed.
    BadCsv {
        /// Data set name.
        dataset: &'static str,
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A class folder holds no image.
    EmptyClass {
        /// Data set name.
        dataset: &'static str,
        /// The class folder.
        path: PathBuf,
    },
    /// The data and the requested processing do not fit together (e.g. an augmentation whose
    /// output is not the network's input size).
    Invalid {
        /// Data set name, e.g. `"imagenet/train"`.
        data: String,
        /// What does not fit.
        problem: String,
    },
    /// Any other I/O failure on a file.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

const REFETCH: &str = "re-run `cargo xtask fetch-data`";

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Missing { dataset, path } => {
                write!(f, "{dataset} file {} not found. {}", path.display(), how_to_get(dataset))
            }
            DataError::BadSize { dataset, path, bytes, records, record_bytes } => {
                let expected = records * record_bytes;
                write!(
                    f,
                    "{dataset} file {} is {bytes} bytes; expected {expected} ({records} records of {record_bytes} \
                     bytes). The file is truncated or not a {} binary: {REFETCH}.",
                    path.display(),
                    dataset.to_uppercase()
                )
            }
            DataError::BadLabel { dataset, path, record, label, classes } => write!(
                f,
                "{dataset} file {} record {record} has label {label}, but {dataset} has {classes} classes (0..{}). \
                 The file is corrupt or not a {dataset} file. {}",
                path.display(),
                classes - 1,
                how_to_get(dataset)
            ),
            DataError::BadFile { dataset, path, problem } => write!(
                f,
                "{dataset} file {}: {problem}. The file is corrupt or not the {dataset} file of that name. {}",
                path.display(),
                how_to_get(dataset)
            ),
            DataError::Checksum { path, expected, got } => write!(
                f,
                "checksum mismatch for {}: expected MD5 {expected}, got {got}. The download is incomplete or corrupt: \
                 delete the file and {REFETCH}.",
                path.display()
            ),
            DataError::Archive { path, problem } => {
                write!(f, "archive {}: {problem}. Delete it and {REFETCH}.", path.display())
            }
            DataError::Download { url, message } => write!(
                f,
                "download of {url} failed: {message}. Check the network connection and {REFETCH}, or download the file \
                 by hand into the data folder."
            ),
            DataError::BadImage { dataset, path, problem } => write!(
                f,
                "{dataset} image {} does not decode ({problem}): the file is truncated or corrupt. Replace it \
                 from the original download. {}",
                path.display(),
                how_to_get(dataset)
            ),
            DataError::BadCsv { dataset, path, line, problem } => write!(
                f,
                "{dataset} split file {} line {line}: {problem}. Rows must be `filename,label`. {}",
                path.display(),
                how_to_get(dataset)
            ),
            DataError::EmptyClass { dataset, path } => write!(
                f,
                "{dataset} class folder {} holds no .JPEG/.jpg/.png image; the extraction is incomplete. {}",
                path.display(),
                how_to_get(dataset)
            ),
            DataError::Invalid { data, problem } => write!(f, "{data}: {problem}"),
            DataError::Io { path, source } => write!(f, "{}: {}", path.display(), crate::files::io_hint(source)),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where the files of `dataset` come from and where they go.
fn how_to_get(dataset: &str) -> &'static str {
    match dataset {
        "mini-imagenet" => mini_imagenet::HOW_TO_GET,
        "imagenet" => imagenet::HOW_TO_GET,
        "fashion-mnist" => fashion_mnist::HOW_TO_GET,
        _ => {
            "Download the data with `cargo xtask fetch-data` (or train on `--dataset fashion-mnist-embedded`, the \
             default, which needs no files)."
        }
    }
}

impl DataError {
    /// Wrap an I/O error on `path`, turning "not found" into [`DataError::Missing`].
    pub(crate) fn io(dataset: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing { dataset, path }
        } else {
            DataError::Io { path, source }
        }
    }
}
