//! The IDX file format of MNIST and Fashion-MNIST (LeCun et al.), plain or gzipped.
//!
//! A file is a 4-byte magic `00 00 tt nd` (`tt = 0x08`: unsigned bytes; `nd`: number of
//! dimensions), then `nd` big-endian `u32` sizes, then `Π sizes` bytes of data in row-major
//! order. Image files have `nd = 3` (`count × rows × cols`), label files `nd = 1` (`count`).
//! A file starting with the gzip magic `1f 8b` is decompressed first.
//!
//! Nothing is allocated from a header's claims: the sizes are checked against the bytes that are
//! actually there, and decompression stops at [`MAX_DECOMPRESSED`].

use std::io::Read;
use std::path::Path;

use super::DataError;

/// The element type byte of unsigned 8-bit data, the only one the data sets use.
pub const UBYTE: u8 = 0x08;
/// Largest decompressed file accepted (the Fashion-MNIST training images are 47 MB).
pub const MAX_DECOMPRESSED: u64 = 256 << 20;

/// A decoded IDX file: its dimensions and its data bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// Sizes of the dimensions, outermost first.
    pub dims: Vec<usize>,
    /// `Π dims` bytes, row-major.
    pub data: Vec<u8>,
}

/// Read an IDX file (gzipped or not) of `dims.len()` dimensions and check its header.
/// `dataset` names the data set in errors.
pub fn read(dataset: &'static str, path: &Path, ndims: usize) -> Result<Idx, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(dataset, path, e))?;
    decode(dataset, path, &bytes, ndims)
}

/// Decode the bytes of an IDX file (gzipped or not) that should have `ndims` dimensions.
pub fn decode(dataset: &'static str, path: &Path, bytes: &[u8], ndims: usize) -> Result<Idx, DataError> {
    let bad = |problem: String| DataError::BadFile { dataset, path: path.to_path_buf(), problem };
    let raw;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        raw = gunzip(bytes).map_err(|e| bad(format!("gzip data does not decompress ({e})")))?;
        &raw[..]
    } else {
        bytes
    };
    if bytes.len() < 4 {
        return Err(bad(format!("{} bytes is too short for an IDX header", bytes.len())));
    }
    let [z0, z1, kind, nd] = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if z0 != 0 || z1 != 0 || kind != UBYTE || usize::from(nd) != ndims {
        return Err(bad(format!(
            "magic number {:02x}{:02x}{kind:02x}{nd:02x} is not 000008{ndims:02x} (an IDX file of unsigned bytes with \
             {ndims} dimension{})",
            z0,
            z1,
            if ndims == 1 { "" } else { "s" }
        )));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(bad(format!("{} bytes is too short for a header of {ndims} dimensions", bytes.len())));
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let expected = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let have = bytes.len() - header;
    match expected {
        Some(n) if n == have => Ok(Idx { dims, data: bytes[header..].to_vec() }),
        Some(n) if n > have => {
            Err(bad(format!("the header says {dims:?} ({n} data bytes) but only {have} follow: the file is truncated")))
        }
        Some(n) => Err(bad(format!("the header says {dims:?} ({n} data bytes) but {have} follow"))),
        None => Err(bad(format!("the header's sizes {dims:?} overflow"))),
    }
}

/// Decompress gzip data, refusing more than [`MAX_DECOMPRESSED`] bytes.
fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(bytes).take(MAX_DECOMPRESSED + 1);
    reader.read_to_end(&mut out)?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(std::io::Error::other(format!("more than {MAX_DECOMPRESSED} bytes decompressed")));
    }
    Ok(out)
}

/// Encode `data` with `dims` as an uncompressed IDX file of unsigned bytes.
///
/// # Panics
/// If `data.len()` is not `Π dims` or a size exceeds `u32`.
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    assert_eq!(dims.iter().product::<usize>(), data.len(), "IDX data vs dims {dims:?}");
    let mut out = vec![0, 0, UBYTE, u8::try_from(dims.len()).expect("at most 255 dimensions")];
    for &d in dims {
        out.extend_from_slice(&u32::try_from(d).expect("IDX sizes are u32").to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Gzip `bytes` at the best compression level.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}
