//! Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; Zalando, MIT licence): 60,000 training and
//! 10,000 test images of clothing, 28×28 grayscale, 10 classes, in the four IDX files of the
//! MNIST layout ([`super::idx`]).
//!
//! Every image is zero-padded (pixel value 0) by 2 on each side to 32×32×1, so the CIFAR
//! networks keep their geometry with a one-channel root convolution.
//!
//! Where the files are: `<data>/fashion-mnist/` (what `cargo xtask fetch-data fashion-mnist`
//! fills), else Debian's `/usr/share/datasets/fashion-mnist/` (`apt-get install
//! dataset-fashion-mnist`). Each file is read as `<name>` or `<name>.gz`.
//!
//! [`embedded`] is a stratified subset compiled into the crate (the first 700 training and the
//! first 200 test images of every class, in file order; 3.9 MB gzipped), the default data of
//! `nsl quickstart` and `cargo xtask repro`: real images with no download.

use std::path::{Path, PathBuf};

use super::{idx, DataError, Dataset};

/// Data set name, also the folder under the data root.
pub const NAME: &str = "fashion-mnist";
/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Side of the stored images.
pub const RAW_SIDE: usize = 28;
/// Side after zero padding: the CIFAR networks' input.
pub const SIDE: usize = 32;
/// Number of classes.
pub const CLASSES: usize = 10;
/// The class names, by label.
pub const CLASS_NAMES: [&str; CLASSES] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// One of the four files: its name (without `.gz`), images or labels, expected count, and the
/// MD5 of its decompressed bytes (Debian recompressed the `.gz` files, so theirs differ from the
/// upstream `.gz` checksums; the decompressed bytes are the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdxFile {
    pub name: &'static str,
    pub images: bool,
    pub count: usize,
    pub md5: &'static str,
}

/// Training images, training labels, test images, test labels.
pub const FILES: [IdxFile; 4] = [
    IdxFile { name: "train-images-idx3-ubyte", images: true, count: 60_000, md5: "f4a8712d7a061bf5bd6d2ca38dc4d50a" },
    IdxFile { name: "train-labels-idx1-ubyte", images: false, count: 60_000, md5: "9018921c3c673c538a1fc5bad174d6f9" },
    IdxFile { name: "t10k-images-idx3-ubyte", images: true, count: 10_000, md5: "8181f5470baa50b63fa0f6fddb340f0a" },
    IdxFile { name: "t10k-labels-idx1-ubyte", images: false, count: 10_000, md5: "15d484375f8d13e6eb1aabb0c3f46965" },
];

/// Upstream download location of the `.gz` files (Zalando's S3 bucket, as the data set's README gives).
pub const UPSTREAM_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com";

/// How to get the files, for error messages.
pub const HOW_TO_GET: &str = "Install Debian's package (`apt-get install dataset-fashion-mnist`, files in \
     /usr/share/datasets/fashion-mnist/) or run `cargo xtask fetch-data fashion-mnist` (links the Debian files into \
     <data>/fashion-mnist/ or downloads them); `--dataset fashion-mnist-embedded` needs no files.";

/// The path of `file` in `dir`: `<name>` if present, else `<name>.gz`.
pub fn file_in(dir: &Path, file: &IdxFile) -> PathBuf {
    let plain = dir.join(file.name);
    if plain.exists() {
        plain
    } else {
        dir.join(format!("{}.gz", file.name))
    }
}

/// The folder the files are read from: `<data_dir>/fashion-mnist/` if it holds the training
/// images, else Debian's folder if that does, else `<data_dir>/fashion-mnist/` (whose missing
/// file the loader then names).
pub fn locate(data_dir: &Path) -> PathBuf {
    let own = data_dir.join(NAME);
    let has = |dir: &Path| file_in(dir, &FILES[0]).exists();
    if !has(&own) && has(Path::new(DEBIAN_DIR)) {
        PathBuf::from(DEBIAN_DIR)
    } else {
        own
    }
}

/// Load Fashion-MNIST from [`locate`]`(data_dir)`: `(train, test)`, padded to 32×32×1.
pub fn load(data_dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    load_from(&locate(data_dir))
}

/// Load the four files from `dir`, checking every header, count and label: `(train, test)`.
pub fn load_from(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    Ok((read_split(dir, "train", &FILES[0], &FILES[1])?, read_split(dir, "test", &FILES[2], &FILES[3])?))
}

/// Only the test split of [`locate`]`(data_dir)` (what evaluating a checkpoint needs).
pub fn load_test(data_dir: &Path) -> Result<Dataset, DataError> {
    read_split(&locate(data_dir), "test", &FILES[2], &FILES[3])
}

fn read_split(dir: &Path, name: &str, images: &IdxFile, labels: &IdxFile) -> Result<Dataset, DataError> {
    let read = |f: &IdxFile| {
        let path = file_in(dir, f);
        let bytes = std::fs::read(&path).map_err(|e| DataError::io(NAME, &path, e))?;
        Ok::<_, DataError>((path, bytes))
    };
    let (ip, ib) = read(images)?;
    let (lp, lb) = read(labels)?;
    decode_split(&format!("{NAME}/{name}"), (&ip, &ib), (&lp, &lb), Some(images.count))
}

/// Decode one split from the bytes of its image and label files (gzipped or not), padded to
/// 32×32×1. With `count`, the files must hold exactly that many images.
pub fn decode_split(
    name: &str,
    (image_path, image_bytes): (&Path, &[u8]),
    (label_path, label_bytes): (&Path, &[u8]),
    count: Option<usize>,
) -> Result<Dataset, DataError> {
    let bad = |path: &Path, problem: String| DataError::BadFile { dataset: NAME, path: path.to_path_buf(), problem };
    let images = idx::decode(NAME, image_path, image_bytes, 3)?;
    let labels = idx::decode(NAME, label_path, label_bytes, 1)?;
    if images.dims[1..] != [RAW_SIDE, RAW_SIDE] {
        return Err(bad(image_path, format!("images are {:?}, not 28×28", &images.dims[1..])));
    }
    let n = images.dims[0];
    if let Some(count) = count.filter(|&c| c != n) {
        return Err(bad(image_path, format!("holds {n} images; {NAME} has {count} in this split")));
    }
    if labels.dims[0] != n {
        return Err(bad(
            label_path,
            format!("holds {} labels but {} holds {n} images", labels.dims[0], image_path.display()),
        ));
    }
    if let Some((record, &label)) = labels.data.iter().enumerate().find(|(_, &l)| usize::from(l) >= CLASSES) {
        return Err(DataError::BadLabel {
            dataset: NAME,
            path: label_path.to_path_buf(),
            record,
            label,
            classes: CLASSES,
        });
    }
    let padded = pad_images(&images.data, n);
    let labels = labels.data.iter().map(|&l| u16::from(l)).collect();
    Ok(Dataset::new(name, padded, labels, CLASSES, [SIDE, SIDE, 1]))
}

/// Zero-pad `n` 28×28 images by 2 pixels on every side to 32×32.
fn pad_images(raw: &[u8], n: usize) -> Vec<u8> {
    const PAD: usize = (SIDE - RAW_SIDE) / 2;
    let mut out = vec![0u8; n * SIDE * SIDE];
    for (src, dst) in raw.chunks_exact(RAW_SIDE * RAW_SIDE).zip(out.chunks_exact_mut(SIDE * SIDE)) {
        for (y, row) in src.chunks_exact(RAW_SIDE).enumerate() {
            let at = (y + PAD) * SIDE + PAD;
            dst[at..at + RAW_SIDE].copy_from_slice(row);
        }
    }
    out
}

/// Training images per class in [`embedded`].
pub const EMBEDDED_TRAIN_PER_CLASS: usize = 700;
/// Test images per class in [`embedded`].
pub const EMBEDDED_TEST_PER_CLASS: usize = 200;
/// Name of the embedded subset as a data set choice.
pub const EMBEDDED_NAME: &str = "fashion-mnist-embedded";

/// The folder of the embedded files in the repository (`nsl-models/data/…`), for the tool that
/// writes them.
pub const EMBEDDED_DIR: &str = "data/fashion-mnist-embedded";

const EMBEDDED_TRAIN_IMAGES: &[u8] = include_bytes!("../../data/fashion-mnist-embedded/train-images-idx3-ubyte.gz");
const EMBEDDED_TRAIN_LABELS: &[u8] = include_bytes!("../../data/fashion-mnist-embedded/train-labels-idx1-ubyte.gz");
const EMBEDDED_TEST_IMAGES: &[u8] = include_bytes!("../../data/fashion-mnist-embedded/t10k-images-idx3-ubyte.gz");
const EMBEDDED_TEST_LABELS: &[u8] = include_bytes!("../../data/fashion-mnist-embedded/t10k-labels-idx1-ubyte.gz");

/// The embedded stratified subset: 7,000 training and 2,000 test images (700 and 200 per
/// class), padded to 32×32×1, decoded from the IDX files compiled into the crate.
pub fn embedded() -> (Dataset, Dataset) {
    let split = |name: &str, (images, labels): (&[u8], &[u8]), count| {
        let path = |f: &str| PathBuf::from(format!("<embedded>/{f}"));
        decode_split(
            &format!("{EMBEDDED_NAME}/{name}"),
            (&path("images"), images),
            (&path("labels"), labels),
            Some(count),
        )
        .expect("the embedded Fashion-MNIST subset decodes (checked by tests)")
    };
    (
        split("train", (EMBEDDED_TRAIN_IMAGES, EMBEDDED_TRAIN_LABELS), CLASSES * EMBEDDED_TRAIN_PER_CLASS),
        split("test", (EMBEDDED_TEST_IMAGES, EMBEDDED_TEST_LABELS), CLASSES * EMBEDDED_TEST_PER_CLASS),
    )
}

/// The first `per_class` images of every class of `data`, in the order they appear: the
/// indices of a stratified subset.
pub fn stratified_indices(data: &Dataset, per_class: usize) -> Vec<usize> {
    let mut taken = vec![0usize; data.classes];
    (0..data.len())
        .filter(|&i| {
            let t = &mut taken[data.label(i)];
            *t += 1;
            *t <= per_class
        })
        .collect()
}

/// The IDX files (uncompressed) of the images `indices` of an unpadded-able padded split:
/// `(images, labels)`, the inverse of [`decode_split`] (the 2-pixel zero border is dropped).
pub fn encode_split(data: &Dataset, indices: &[usize]) -> (Vec<u8>, Vec<u8>) {
    const PAD: usize = (SIDE - RAW_SIDE) / 2;
    let mut raw = Vec::with_capacity(indices.len() * RAW_SIDE * RAW_SIDE);
    for &i in indices {
        let image = data.image(i);
        for y in 0..RAW_SIDE {
            let at = (y + PAD) * SIDE + PAD;
            raw.extend_from_slice(&image[at..at + RAW_SIDE]);
        }
    }
    let labels: Vec<u8> = indices.iter().map(|&i| data.label(i) as u8).collect();
    (idx::encode(&[indices.len(), RAW_SIDE, RAW_SIDE], &raw), idx::encode(&[indices.len()], &labels))
}
