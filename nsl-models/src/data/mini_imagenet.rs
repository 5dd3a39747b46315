//! mini-ImageNet in the Ravi–Larochelle layout: `train.csv`, `val.csv`, `test.csv` (a
//! `filename,label` header, then one `filename,wnid` row per image) and `images/` holding the
//! files they name (JPEG or PNG). 64 / 16 / 20 classes of 600 images (spec §5.6).
//!
//! Every image is decoded and resized to 84×84 RGB by area averaging ([`super::decode`]), in
//! parallel, and the whole set is held in memory (60,000 images, 1.3 GB). Within a split,
//! classes are its wnids in sorted order; [`load_mini_imagenet`] numbers them train first,
//! then val, then test. The decoded split is cached as `<split>.84x84.nslcache` next to the CSV
//! (header, wnids, labels, pixels) and reused while the CSV is byte-identical; a cache that
//! cannot be written (read-only folder) only costs decoding again next time.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::decode::decode_resized;
use super::{DataError, Dataset};

/// Side of the images.
pub const SIDE: usize = 84;
/// The splits, in class-numbering order.
pub const SPLITS: [&str; 3] = ["train", "val", "test"];

const DATASET: &str = "mini-imagenet";
const IMAGE_BYTES: usize = SIDE * SIDE * 3;
const CACHE_MAGIC: &[u8; 8] = b"NSLMINI1";

/// What [`super::DataError`] messages say about getting mini-ImageNet.
pub const HOW_TO_GET: &str = "mini-ImageNet needs the Ravi & Larochelle (2017) split: DATA/mini-imagenet/train.csv, \
    val.csv and test.csv (rows `filename,label`, as published with their meta-learning-lstm code) and \
    DATA/mini-imagenet/images/ holding the 60,000 images they name (the usual mini-ImageNet archive, or made \
    from the ImageNet-2012 training set with the CSVs). Then run `cargo xtask repro --scale paper --data DATA`.";

/// The three splits in one [`Dataset`] of 84×84 RGB images, with each split's class range.
#[derive(Clone, Debug)]
pub struct MiniImageNet {
    /// Every image; labels `train.start..test.end`.
    pub data: Dataset,
    /// Class ranges of the splits (64, 16 and 20 classes in the real set).
    pub train: Range<usize>,
    pub val: Range<usize>,
    pub test: Range<usize>,
    /// Class `k` is wnid `wnids[k]`.
    pub wnids: Vec<String>,
}

/// One decoded split: images, labels `0..wnids.len()`, and the sorted wnids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u16>,
    pub wnids: Vec<String>,
}

/// Load (or read from the cache) all three splits of `dir` (e.g. `data/mini-imagenet`).
///
/// # Errors
/// A missing CSV or image, a malformed CSV row, or an image that does not decode, each naming
/// the file.
pub fn load_mini_imagenet(dir: impl AsRef<Path>) -> Result<MiniImageNet, DataError> {
    let dir = dir.as_ref();
    let splits = SPLITS.iter().map(|split| load_split(dir, split)).collect::<Result<Vec<_>, _>>()?;
    let mut images = Vec::with_capacity(splits.iter().map(|s| s.images.len()).sum());
    let (mut labels, mut wnids, mut ranges) = (Vec::new(), Vec::new(), Vec::new());
    for mut s in splits {
        let offset = wnids.len();
        ranges.push(offset..offset + s.wnids.len());
        images.append(&mut s.images);
        labels.extend(s.labels.iter().map(|&l| l + offset as u16));
        wnids.extend(s.wnids);
    }
    let data = Dataset::new(DATASET, images, labels, wnids.len(), [SIDE, SIDE, 3]);
    let [train, val, test]: [Range<usize>; 3] = ranges.try_into().expect("three splits");
    Ok(MiniImageNet { data, train, val, test, wnids })
}

/// Load one split (`"train"`, `"val"` or `"test"`) of `dir`, from its cache if it is current.
pub fn load_split(dir: &Path, split: &str) -> Result<Split, DataError> {
    let csv_path = dir.join(format!("{split}.csv"));
    let csv = std::fs::read(&csv_path).map_err(|e| DataError::io(DATASET, &csv_path, e))?;
    let fingerprint = fnv1a64(&csv);
    let cache = dir.join(format!("{split}.{SIDE}x{SIDE}.nslcache"));
    if let Some(cached) = read_cache(&cache, fingerprint) {
        return Ok(cached);
    }
    let rows = parse_csv(&csv, &csv_path)?;
    let mut wnids: Vec<String> = rows.iter().map(|(_, wnid)| wnid.clone()).collect();
    wnids.sort();
    wnids.dedup();
    let labels = rows.iter().map(|(_, wnid)| wnids.binary_search(wnid).expect("listed") as u16).collect();
    let mut images = vec![0u8; rows.len() * IMAGE_BYTES];
    let decoded: Vec<Result<(), DataError>> = images
        .par_chunks_exact_mut(IMAGE_BYTES)
        .zip(&rows)
        .map(|(out, (file, _))| {
            decode_resized(&dir.join("images").join(file), DATASET, SIDE).map(|image| out.copy_from_slice(&image))
        })
        .collect();
    decoded.into_iter().collect::<Result<(), _>>()?; // the error of the first bad row, not of whichever thread failed first
    let split = Split { images, labels, wnids };
    if let Err(e) = crate::files::write_atomic(&cache, &encode_cache(&split, fingerprint)) {
        eprintln!("note: could not cache decoded mini-ImageNet split ({e}); it will be decoded again next time");
    }
    Ok(split)
}

/// The `(filename, wnid)` rows of a split CSV after its `filename,label` header.
fn parse_csv(bytes: &[u8], path: &Path) -> Result<Vec<(PathBuf, String)>, DataError> {
    let bad = |line: usize, problem: String| DataError::BadCsv { dataset: DATASET, path: path.into(), line, problem };
    let text = std::str::from_utf8(bytes).map_err(|e| bad(1, format!("not UTF-8 text ({e})")))?;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty());
    match lines.next() {
        Some((_, "filename,label")) => {}
        Some((n, other)) => return Err(bad(n, format!("expected the header `filename,label`, found `{other}`"))),
        None => return Err(bad(1, "the file is empty".into())),
    }
    let rows: Vec<(PathBuf, String)> = lines
        .map(|(n, line)| match line.split(',').collect::<Vec<_>>()[..] {
            [file, label] if is_plain_name(file) && !label.is_empty() => Ok((PathBuf::from(file), label.to_string())),
            [file, _] if !is_plain_name(file) => Err(bad(n, format!("`{file}` is not a file name inside images/"))),
            _ => Err(bad(n, format!("expected `filename,label`, found `{line}`"))),
        })
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Err(bad(2, "no image rows after the header".into()));
    }
    Ok(rows)
}

/// A non-empty file name without folders, so it stays inside `images/`.
fn is_plain_name(file: &str) -> bool {
    !file.is_empty() && file != "." && file != ".." && !file.contains(['/', '\\'])
}

/// 64-bit FNV-1a, the CSV fingerprint a cache is valid for.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Cache layout (little endian): magic, CSV fingerprint `u64`, image count `u64`, side `u64`,
/// class count `u64`, each wnid as a `u8` length and its bytes, labels `u16`, then the pixels.
fn encode_cache(split: &Split, fingerprint: u64) -> Vec<u8> {
    let mut out = CACHE_MAGIC.to_vec();
    for v in [fingerprint, split.labels.len() as u64, SIDE as u64, split.wnids.len() as u64] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for wnid in &split.wnids {
        out.push(wnid.len().min(255) as u8);
        out.extend_from_slice(&wnid.as_bytes()[..wnid.len().min(255)]);
    }
    split.labels.iter().for_each(|l| out.extend_from_slice(&l.to_le_bytes()));
    out.extend_from_slice(&split.images);
    out
}

/// The cached split, if the cache exists, is whole and was made from a CSV with `fingerprint`.
fn read_cache(path: &Path, fingerprint: u64) -> Option<Split> {
    let mut bytes = std::fs::read(path).ok()?;
    let mut rest = bytes.strip_prefix(CACHE_MAGIC)?;
    let mut take = |n: usize| {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let mut word = || take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let (fp, n, side, classes) = (word()?, word()?, word()?, word()?);
    if fp != fingerprint || side != SIDE as u64 {
        return None;
    }
    let wnids = (0..classes)
        .map(|_| take(1).and_then(|len| take(usize::from(len[0]))).map(|w| String::from_utf8_lossy(w).into_owned()))
        .collect::<Option<Vec<_>>>()?;
    let n = usize::try_from(n).ok()?;
    let labels: Vec<u16> = take(n.checked_mul(2)?)?.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
    let whole = rest.len() == n.checked_mul(IMAGE_BYTES)? && labels.iter().all(|&l| usize::from(l) < wnids.len());
    let header = bytes.len() - rest.len();
    bytes.drain(..header); // the pixels stay where they were read, without a second 1 GB copy
    whole.then_some(Split { images: bytes, labels, wnids })
}
