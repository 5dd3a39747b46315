//! Window geometry shared by convolutions, im2col and pooling (NHWC layout).

/// Geometry of a k×k window sliding over an NHWC map with a stride and TF-style padding.
///
/// Output size: `ho = (h + pad_top + pad_bottom - k) / stride + 1`. Only the top/left pad is
/// stored; the bottom/right pad is implied by `ho`/`wo`. Out-of-range taps read zero.
///
/// ```
/// use nsl_core::Window;
/// let g = Window::same(2, 5, 7, 3, 3, 1);
/// assert_eq!((g.ho, g.wo, g.pad_top, g.pad_left), (5, 7, 1, 1));
/// let g = Window::same(1, 224, 224, 3, 7, 2); // ImageNet stem: TF SAME pads 2 before, 3 after
/// assert_eq!((g.ho, g.pad_top), (112, 2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub batch: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub k: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub ho: usize,
    pub wo: usize,
}

impl Window {
    /// TF `SAME` padding: `ho = ceil(h / stride)`, total pad split with the extra pixel after.
    pub fn same(batch: usize, h: usize, w: usize, c: usize, k: usize, stride: usize) -> Self {
        let ho = h.div_ceil(stride);
        let wo = w.div_ceil(stride);
        let pad_h = ((ho - 1) * stride + k).saturating_sub(h);
        let pad_w = ((wo - 1) * stride + k).saturating_sub(w);
        Window { batch, h, w, c, k, stride, pad_top: pad_h / 2, pad_left: pad_w / 2, ho, wo }
    }

    /// TF `VALID` padding: no padding, `ho = (h - k) / stride + 1`.
    pub fn valid(batch: usize, h: usize, w: usize, c: usize, k: usize, stride: usize) -> Self {
        assert!(h >= k && w >= k, "VALID window {k}x{k} larger than the {h}x{w} map");
        Window {
            batch,
            h,
            w,
            c,
            k,
            stride,
            pad_top: 0,
            pad_left: 0,
            ho: (h - k) / stride + 1,
            wo: (w - k) / stride + 1,
        }
    }

    /// Number of taps in the window, `k²`.
    pub fn taps(&self) -> usize {
        self.k * self.k
    }
    /// Output positions over the whole batch, `batch·ho·wo` (rows of the im2col matrix).
    pub fn rows(&self) -> usize {
        self.batch * self.ho * self.wo
    }
    /// Columns of the im2col matrix, `k²·c` (tap-major: column `t·c + ch`).
    pub fn patch_len(&self) -> usize {
        self.taps() * self.c
    }
    /// Elements of the input map, `batch·h·w·c`.
    pub fn input_len(&self) -> usize {
        self.batch * self.h * self.w * self.c
    }
    /// Input coordinate `(y, x)` read by tap `t` of output position `(oy, ox)`, or `None` if in the padding.
    #[inline]
    pub fn source(&self, oy: usize, ox: usize, t: usize) -> Option<(usize, usize)> {
        let y = (oy * self.stride + t / self.k) as isize - self.pad_top as isize;
        let x = (ox * self.stride + t % self.k) as isize - self.pad_left as isize;
        if y < 0 || x < 0 || y >= self.h as isize || x >= self.w as isize {
            None
        } else {
            Some((y as usize, x as usize))
        }
    }
}
