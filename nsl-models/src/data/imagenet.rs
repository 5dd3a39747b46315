//! ImageNet-2012 as class folders of JPEGs (`train/<wnid>/*.JPEG`, `val/<wnid>/*.JPEG`),
//! streamed from disk: it does not fit in memory.
//!
//! Class `k` is the `k`-th training wnid in sorted order (so `n01440764` is 0); the validation
//! folders must use the same wnids. Files are listed once, sorted by name within each class.
//! Each image is decoded on load and resized to 256×256 by area averaging, the aspect ratio not
//! kept; training then takes [`Augment::IMAGENET`] (a random 224 crop and a random flip) and
//! evaluation the central 224 crop (spec §5.5, the DCNets pipeline). The per-channel mean
//! The channel mean ([`super::augment::IMAGENET_MEAN`]) is subtracted by [`super::augment::Normalize::imagenet_mean`].

use std::path::{Path, PathBuf};

use nsl_core::Rng;

use super::augment::{centre_crop, Augment};
use super::decode::decode_resized;
use super::source::augment_to;
use super::{DataError, ImageSource};

/// Side the images are resized to before cropping.
pub const RESIZE: usize = 256;
/// Side of the network input (training and evaluation crops).
pub const CROP: usize = 224;

const DATASET: &str = "imagenet";

/// What [`super::DataError`] messages say about getting ImageNet.
pub const HOW_TO_GET: &str = "ImageNet-2012 (ILSVRC2012) is not downloadable without an account: register at \
    image-net.org, download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, and extract them as \
    DATA/imagenet/train/<wnid>/*.JPEG (untar each per-class tar into its wnid folder) and \
    DATA/imagenet/val/<wnid>/*.JPEG (move each validation image into the folder of its wnid from the devkit's \
    ground truth, e.g. with the widely used valprep.sh). Then run `cargo xtask repro --scale paper --data DATA`.";

/// One split of a folder-per-class image set, read on demand.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    name: String,
    wnids: Vec<String>,
    files: Vec<PathBuf>,
    labels: Vec<u16>,
}

/// Load ImageNet's `train/` and `val/` from `dir` (e.g. `data/imagenet`): `(train, val)`.
///
/// # Errors
/// If a folder is missing or unreadable, a class folder is empty, or `val/` has a class that
/// `train/` has not.
pub fn load_imagenet(dir: impl AsRef<Path>) -> Result<(ImageFolder, ImageFolder), DataError> {
    let dir = dir.as_ref();
    let train = ImageFolder::open(dir.join("train"), "imagenet/train", None)?;
    let val = ImageFolder::open(dir.join("val"), "imagenet/val", Some(train.wnids()))?;
    Ok((train, val))
}

impl ImageFolder {
    /// List `root/<class>/*.{jpeg,jpg,png}` (any case). Classes are the sorted subfolder names,
    /// or `classes` if given (then every subfolder must be one of them).
    pub fn open(root: impl AsRef<Path>, name: &str, classes: Option<&[String]>) -> Result<ImageFolder, DataError> {
        let root = root.as_ref();
        let mut folders: Vec<String> = list(root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        folders.sort();
        if folders.is_empty() {
            return Err(DataError::EmptyClass { dataset: DATASET, path: root.to_path_buf() });
        }
        let wnids = classes.map_or_else(|| folders.clone(), <[String]>::to_vec);
        if wnids.len() > usize::from(u16::MAX) {
            return Err(invalid(name, format!("{} classes; at most {} are supported", wnids.len(), u16::MAX)));
        }
        let (mut files, mut labels) = (Vec::new(), Vec::new());
        for folder in &folders {
            let label = wnids.binary_search(folder).map_err(|_| {
                invalid(name, format!("class folder `{folder}` is not one of the {} training classes", wnids.len()))
            })?;
            let path = root.join(folder);
            let mut images: Vec<PathBuf> = list(&path)?.into_iter().filter(|p| is_image(p)).collect();
            if images.is_empty() {
                return Err(DataError::EmptyClass { dataset: DATASET, path });
            }
            images.sort();
            labels.extend(std::iter::repeat_n(label as u16, images.len()));
            files.append(&mut images);
        }
        Ok(ImageFolder { name: name.to_string(), wnids, files, labels })
    }

    /// The class names (wnids); class `k` is `wnids()[k]`.
    pub fn wnids(&self) -> &[String] {
        &self.wnids
    }

    /// The file of image `i`.
    pub fn path(&self, i: usize) -> &Path {
        &self.files[i]
    }

    /// Image `i` decoded and resized to `RESIZE×RESIZE`.
    fn resized(&self, i: usize) -> Result<Vec<u8>, DataError> {
        decode_resized(&self.files[i], DATASET, RESIZE)
    }
}

impl ImageSource for ImageFolder {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> usize {
        self.files.len()
    }
    fn classes(&self) -> usize {
        self.wnids.len()
    }
    fn shape(&self) -> [usize; 3] {
        [CROP, CROP, 3]
    }
    fn label(&self, i: usize) -> usize {
        usize::from(self.labels[i])
    }
    /// [`Augment::None`] gives the evaluation crop; [`Augment::IMAGENET`] the training crop.
    fn train_image(&self, i: usize, augment: &Augment, rng: &mut Rng) -> Result<Vec<u8>, DataError> {
        if *augment == Augment::None {
            return self.eval_image(i);
        }
        augment_to(&self.name, augment, (&self.resized(i)?, [RESIZE, RESIZE, 3]), self.shape(), rng)
    }
    fn eval_image(&self, i: usize) -> Result<Vec<u8>, DataError> {
        Ok(centre_crop(&self.resized(i)?, [RESIZE, RESIZE, 3], CROP))
    }
    fn reads_files(&self) -> bool {
        true
    }
}

/// The entries of a folder.
fn list(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |e| DataError::io(DATASET, dir, e);
    std::fs::read_dir(dir).map_err(io)?.map(|entry| entry.map(|e| e.path()).map_err(io)).collect()
}

fn is_image(path: &Path) -> bool {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    path.is_file() && matches!(ext.as_deref(), Some("jpeg" | "jpg" | "png"))
}

fn invalid(name: &str, problem: String) -> DataError {
    DataError::Invalid { data: name.to_string(), problem }
}
