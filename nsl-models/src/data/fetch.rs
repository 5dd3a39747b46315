//! Downloading and unpacking CIFAR, and placing Fashion-MNIST (the logic of `cargo xtask
//! fetch-data`).
//!
//! Fashion-MNIST ([`fetch_fashion_mnist`]): each of the four files is linked from Debian's
//! `/usr/share/datasets/fashion-mnist/` when that holds it, else downloaded from the data set's
//! own URL, and accepted only if its decompressed bytes have the recorded MD5.
//!
//! For each [`Archive`]: if `<root>/<name>/` already holds every file at its expected size,
//! nothing happens. Otherwise the tarball is downloaded to `<root>/<file>.part` and renamed to
//! `<root>/<file>` when complete (unless a tarball with the right MD5 is already there), its MD5
//! is checked against the published one, and its members are unpacked with the top folder
//! (`cifar-10-batches-bin/`, `cifar-100-binary/`) replaced by `<root>/<name>/`, the layout
//! [`super::cifar`] reads. Only [`download`] touches the network.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use md5::{Digest, Md5};

use super::cifar::{CifarFormat, CIFAR10, CIFAR100};
use super::fashion_mnist::{self, IdxFile};
use super::DataError;

/// A published CIFAR tarball.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Archive {
    /// Where it is downloaded from.
    pub url: &'static str,
    /// Its published MD5, lowercase hex.
    pub md5: &'static str,
    /// File name of the tarball under the data root.
    pub file: &'static str,
    /// The files it unpacks to, under `<root>/<format.name>/`.
    pub format: &'static CifarFormat,
}

/// `cifar-10-binary.tar.gz` (162 MiB).
pub const CIFAR10_ARCHIVE: Archive = Archive {
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    file: "cifar-10-binary.tar.gz",
    format: &CIFAR10,
};

/// `cifar-100-binary.tar.gz` (161 MiB).
pub const CIFAR100_ARCHIVE: Archive = Archive {
    url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    md5: "03b5dce01913d631647c71ecec9e9cb8",
    file: "cifar-100-binary.tar.gz",
    format: &CIFAR100,
};

/// Both archives.
pub const ARCHIVES: [Archive; 2] = [CIFAR10_ARCHIVE, CIFAR100_ARCHIVE];

/// Whether `dir` holds every file of `format` at its expected size.
pub fn is_complete(dir: &Path, format: &CifarFormat) -> bool {
    format.files().all(|(f, len)| dir.join(f).metadata().is_ok_and(|m| m.len() == len))
}

/// Make `<root>/<name>/` ready for the loader, downloading only when needed. Returns that folder.
pub fn fetch(archive: &Archive, root: &Path) -> Result<PathBuf, DataError> {
    let dir = root.join(archive.format.name);
    if is_complete(&dir, archive.format) {
        return Ok(dir);
    }
    std::fs::create_dir_all(root).map_err(|e| DataError::io(archive.format.name, root, e))?;
    let tarball = root.join(archive.file);
    if verify_checksum(&tarball, archive.md5).is_err() {
        download(archive.url, &tarball)?;
        verify_checksum(&tarball, archive.md5)?;
    }
    extract(&tarball, &dir)?;
    match archive.format.files().find(|(f, _)| !dir.join(f).exists()) {
        Some((f, _)) => {
            Err(DataError::Archive { path: tarball, problem: format!("it holds no {f} for {}", dir.display()) })
        }
        None => Ok(dir),
    }
}

/// Download `url` to `dest`: write `dest.part`, then rename it, so `dest` is never partial.
pub fn download(url: &str, dest: &Path) -> Result<(), DataError> {
    let part = part_path(dest);
    let fail = |message: String| DataError::Download { url: url.to_string(), message };
    let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let mut body = response.into_body().into_reader();
    let mut file = File::create(&part).map_err(|e| DataError::io("download", &part, e))?;
    std::io::copy(&mut body, &mut file).map_err(|e| fail(e.to_string()))?;
    file.sync_all().map_err(|e| DataError::io("download", &part, e))?;
    std::fs::rename(&part, dest).map_err(|e| DataError::io("download", dest, e))
}

/// `path` with `.part` appended: where a file is written before it is renamed into place.
fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

/// MD5 of a file, lowercase hex.
pub fn md5_hex(path: &Path) -> Result<String, DataError> {
    let mut file = BufReader::new(File::open(path).map_err(|e| DataError::io("checksum", path, e))?);
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| DataError::io("checksum", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// MD5 of bytes in memory, lowercase hex.
pub fn md5_hex_bytes(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Check that `path` has MD5 `expected` (hex, any case).
pub fn verify_checksum(path: &Path, expected: &str) -> Result<(), DataError> {
    let got = md5_hex(path)?;
    if got.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(DataError::Checksum { path: path.to_path_buf(), expected: expected.to_lowercase(), got })
    }
}

/// Unpack the regular files of a `.tar.gz` into `dest`, dropping each member's first path
/// component (`cifar-10-batches-bin/data_batch_1.bin` → `dest/data_batch_1.bin`). Each file is
/// written to `*.part` and renamed. Returns the files written.
pub fn extract(tarball: &Path, dest: &Path) -> Result<Vec<PathBuf>, DataError> {
    let bad = |problem: String| DataError::Archive { path: tarball.to_path_buf(), problem };
    let file = File::open(tarball).map_err(|e| DataError::io("archive", tarball, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
    std::fs::create_dir_all(dest).map_err(|e| DataError::io("archive", dest, e))?;
    let mut written = Vec::new();
    for entry in archive.entries().map_err(|e| bad(format!("not a tar.gz ({e})")))? {
        let mut entry = entry.map_err(|e| bad(format!("unreadable entry ({e})")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry.path().map_err(|e| bad(format!("bad member name ({e})")))?.into_owned();
        let mut parts = member.components();
        parts.next(); // the top folder
        let rel: PathBuf = parts.collect();
        if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad(format!("unsafe or top-level member {}", member.display())));
        }
        let out = dest.join(&rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DataError::io("archive", parent, e))?;
        }
        let part = part_path(&out);
        let mut f = File::create(&part).map_err(|e| DataError::io("archive", &part, e))?;
        std::io::copy(&mut entry, &mut f).map_err(|e| bad(format!("truncated member {} ({e})", member.display())))?;
        f.flush().map_err(|e| DataError::io("archive", &part, e))?;
        std::fs::rename(&part, &out).map_err(|e| DataError::io("archive", &out, e))?;
        written.push(out);
    }
    Ok(written)
}

/// Where a Fashion-MNIST file came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placed {
    /// Already in place with the right checksum.
    Present(PathBuf),
    /// Linked (or copied, where links are not possible) from Debian's package.
    Linked(PathBuf),
    /// Downloaded from the data set's URL.
    Downloaded(PathBuf),
}

/// Make `<root>/fashion-mnist/` hold the four files, each with the recorded checksum of its
/// decompressed bytes: keep a good one, else link Debian's copy from `debian_dir`, else download
/// it. Returns what was done per file.
pub fn fetch_fashion_mnist(root: &Path, debian_dir: &Path) -> Result<Vec<Placed>, DataError> {
    let dir = root.join(fashion_mnist::NAME);
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(fashion_mnist::NAME, &dir, e))?;
    let mut placed = Vec::new();
    for file in &fashion_mnist::FILES {
        let here = fashion_mnist::file_in(&dir, file);
        if here.exists() && verify_idx(&here, file).is_ok() {
            placed.push(Placed::Present(here));
            continue;
        }
        let dest = dir.join(format!("{}.gz", file.name));
        let debian = fashion_mnist::file_in(debian_dir, file);
        let _ = std::fs::remove_file(&here); // a bad copy: replaced
        let how = if debian.exists() {
            link_or_copy(&debian, &dest)?;
            Placed::Linked(dest.clone())
        } else {
            download(&format!("{}/{}.gz", fashion_mnist::UPSTREAM_URL, file.name), &dest)?;
            Placed::Downloaded(dest.clone())
        };
        if let Err(e) = verify_idx(&dest, file) {
            let _ = std::fs::remove_file(&dest);
            return Err(e);
        }
        placed.push(how);
    }
    Ok(placed)
}

/// Check that the decompressed bytes of `path` (gzipped or not) have `file`'s recorded MD5.
pub fn verify_idx(path: &Path, file: &IdxFile) -> Result<(), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(fashion_mnist::NAME, path, e))?;
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let mut reader = flate2::read::MultiGzDecoder::new(&bytes[..]).take(super::idx::MAX_DECOMPRESSED);
        reader.read_to_end(&mut out).map_err(|e| DataError::BadFile {
            dataset: fashion_mnist::NAME,
            path: path.to_path_buf(),
            problem: format!("gzip data does not decompress ({e})"),
        })?;
        out
    } else {
        bytes
    };
    let got = md5_hex_bytes(&raw);
    if got == file.md5 {
        Ok(())
    } else {
        Err(DataError::Checksum { path: path.to_path_buf(), expected: file.md5.into(), got })
    }
}

/// Symlink `dest → src`, or copy where symlinks are not available.
fn link_or_copy(src: &Path, dest: &Path) -> Result<(), DataError> {
    #[cfg(unix)]
    if std::os::unix::fs::symlink(src, dest).is_ok() {
        return Ok(());
    }
    let part = part_path(dest);
    std::fs::copy(src, &part).map_err(|e| DataError::io(fashion_mnist::NAME, &part, e))?;
    std::fs::rename(&part, dest).map_err(|e| DataError::io(fashion_mnist::NAME, dest, e))
}
