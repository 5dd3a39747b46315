//! Image files to fixed-size RGB arrays: JPEG/PNG decoding (the `image` crate, 8-bit RGB, any
//! alpha dropped, grey expanded) and resizing by area averaging.
//!
//! # Area resizing
//!
//! Output pixel `(Y, X)` of an `H×W` result from an `h×w` image covers the source rectangle
//! `[Y·h/H, (Y+1)·h/H) × [X·w/W, (X+1)·w/W)` (pixel `(y, x)` being the unit square at `(y, x)`)
//! and is the mean of the source pixels weighted by their overlap with it, rounded to the
//! nearest integer (halves up). The weights factor over the two axes, so it runs as a
//! horizontal then a vertical pass in `f32`. Shrinking by an integer factor `k` averages each
//! `k×k` block; enlarging repeats pixels and blends the one straddling a boundary. This is
//! OpenCV's `INTER_AREA` for shrinking, the usual choice for the large downscales here
//! (ImageNet photos → 256² or 84²).

use std::path::Path;

use super::DataError;

/// Decode the JPEG or PNG file at `path` to 8-bit RGB: `(pixels, [h, w, 3])`, HWC.
///
/// # Errors
/// [`DataError::Missing`] if the file is absent, [`DataError::BadImage`] if it does not decode.
pub fn decode_rgb(path: &Path, dataset: &'static str) -> Result<(Vec<u8>, [usize; 3]), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(dataset, path, e))?;
    let image = image::load_from_memory(&bytes)
        .map_err(|e| DataError::BadImage { dataset, path: path.to_path_buf(), problem: e.to_string() })?
        .into_rgb8();
    let shape = [image.height() as usize, image.width() as usize, 3];
    Ok((image.into_raw(), shape))
}

/// Decode `path` and resize it to `side×side` RGB by area averaging (aspect ratio not kept).
pub fn decode_resized(path: &Path, dataset: &'static str, side: usize) -> Result<Vec<u8>, DataError> {
    let (pixels, shape) = decode_rgb(path, dataset)?;
    Ok(resize_area(&pixels, shape, side, side))
}

/// Resize an HWC image of `shape` to `out_h×out_w` by area averaging (module doc).
///
/// # Panics
/// If `image.len()` is not `h·w·c` or a side is 0.
pub fn resize_area(image: &[u8], shape: [usize; 3], out_h: usize, out_w: usize) -> Vec<u8> {
    let [h, w, c] = shape;
    assert_eq!(image.len(), h * w * c, "image bytes vs shape {shape:?}");
    assert!(h > 0 && w > 0 && out_h > 0 && out_w > 0, "cannot resize {h}×{w} to {out_h}×{out_w}");
    if (h, w) == (out_h, out_w) {
        return image.to_vec();
    }
    let (wx, wy) = (area_weights(w, out_w), area_weights(h, out_h));
    // horizontal pass: h rows of out_w pixels
    let mut rows = vec![0f32; h * out_w * c];
    for (src, dst) in image.chunks_exact(w * c).zip(rows.chunks_exact_mut(out_w * c)) {
        for (x, taps) in wx.iter().enumerate() {
            for &(i, weight) in taps {
                for k in 0..c {
                    dst[x * c + k] += weight * f32::from(src[i * c + k]);
                }
            }
        }
    }
    // vertical pass
    let mut out = vec![0u8; out_h * out_w * c];
    let row_len = out_w * c;
    for (y, taps) in wy.iter().enumerate() {
        for (j, o) in out[y * row_len..(y + 1) * row_len].iter_mut().enumerate() {
            let v: f32 = taps.iter().map(|&(i, weight)| weight * rows[i * row_len + j]).sum();
            *o = (v + 0.5).floor().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// For each of `n_out` output cells along an axis of `n_in` source pixels, the source pixels it
/// overlaps and their weights `overlap / cell length` (summing to 1).
fn area_weights(n_in: usize, n_out: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let (start, end) = (o as f64 * scale, (o + 1) as f64 * scale);
            let last = (end.ceil() as usize).min(n_in);
            (start.floor() as usize..last)
                .map(|i| {
                    let overlap = end.min(i as f64 + 1.0) - start.max(i as f64);
                    (i, (overlap / scale) as f32)
                })
                .filter(|&(_, weight)| weight > 0.0)
                .collect()
        })
        .collect()
}
