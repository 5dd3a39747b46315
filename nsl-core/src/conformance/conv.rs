//! The convolution op ([`Backend::conv2d`], [`Backend::conv2d_backward`], every
//! [`ConvScale`]) against a naive `f64` reference and against its composed reference
//! ([`conv2d_unfused`], [`conv2d_backward_unfused`]).

use super::{assert_close, rand_range, rand_vec, reference};
use crate::backend::{conv2d_backward_unfused, conv2d_unfused};
use crate::{Backend, ConvScale, Rng, Window};

/// Inputs of one convolution: `x`, `w` (`k²c × n`), optional per-tap scale `s` (`rows × k²`),
/// `dy`.
pub struct ConvCase {
    pub g: Window,
    pub n: usize,
    pub x: Vec<f32>,
    pub w: Vec<f32>,
    pub s: Option<Vec<f32>>,
    pub dy: Vec<f32>,
}

impl ConvCase {
    /// Random inputs for window `g` and `n` outputs, with a per-tap scale if `scaled`.
    pub fn new(g: Window, n: usize, scaled: bool, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let x = rand_vec(&mut rng, g.input_len());
        let w = rand_vec(&mut rng, g.patch_len() * n);
        let s = scaled.then(|| rand_vec(&mut rng, g.rows() * g.taps()));
        let dy = rand_vec(&mut rng, g.rows() * n);
        ConvCase { g, n, x, w, s, dy }
    }

    /// Naive `f64` `(y, dx, dw, ds)`.
    pub fn reference(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let ConvCase { g, n, .. } = *self;
        let (pl, taps, c) = (g.patch_len(), g.taps(), g.c);
        let cols = reference::im2col(&g, &self.x);
        let s = |r: usize, t: usize| self.s.as_ref().map_or(1.0, |s| s[r * taps + t] as f64);
        let (mut y, mut dw) = (vec![0f64; g.rows() * n], vec![0f64; pl * n]);
        let (mut dcols, mut ds) = (vec![0f32; g.rows() * pl], vec![0f64; g.rows() * taps]);
        for r in 0..g.rows() {
            for t in 0..taps {
                for ch in 0..c {
                    let (i, p) = (t * c + ch, cols[r * pl + t * c + ch]);
                    let mut dp = 0f64;
                    for o in 0..n {
                        y[r * n + o] += s(r, t) * p * self.w[i * n + o] as f64;
                        dw[i * n + o] += s(r, t) * p * self.dy[r * n + o] as f64;
                        dp += self.dy[r * n + o] as f64 * self.w[i * n + o] as f64;
                    }
                    ds[r * taps + t] += p * dp;
                    dcols[r * pl + i] = (s(r, t) * dp) as f32;
                }
            }
        }
        (y, reference::col2im(&g, &dcols), dw, ds)
    }

    /// `(y, dx, dw, ds)` from the backend's `conv2d` (`fused`) or from the composed reference;
    /// `dw` starts at `dw0` (it accumulates); `ds` is empty without a scale.
    pub fn run<B: Backend>(&self, be: &B, fused: bool, dw0: &[f32]) -> [Vec<f32>; 4] {
        let ConvCase { g, n, .. } = *self;
        let (x, w, dy) = (be.upload(&self.x), be.upload(&self.w), be.upload(&self.dy));
        let s = self.s.as_ref().map(|s| be.upload(s));
        let scale = s.as_ref().map_or(ConvScale::None, ConvScale::Taps);
        let nan = |len| be.upload(&vec![f32::NAN; len]); // outputs must be overwritten
        let (mut y, mut dx, mut ds) = (nan(g.rows() * n), nan(g.input_len()), nan(g.rows() * g.taps()));
        let mut dw = be.upload(dw0);
        let dscale = s.as_ref().map(|_| &mut ds);
        if fused {
            be.conv2d(&g, n, &x, &w, scale, &mut y);
            be.conv2d_backward(&g, n, &x, &w, scale, &dy, &mut dx, &mut dw, dscale);
        } else {
            conv2d_unfused(be, &g, n, &x, &w, scale, &mut y);
            conv2d_backward_unfused(be, &g, n, &x, &w, scale, &dy, &mut dx, &mut dw, dscale);
        }
        [be.download(&y), be.download(&dx), be.download(&dw), if s.is_some() { be.download(&ds) } else { vec![] }]
    }

    /// The backend's convolution ≡ the naive reference and ≡ the composed reference, to `f32`
    /// rounding (`1e-4` relative, `1e-5·max(k²c, n)` absolute).
    pub fn check<B: Backend>(&self, be: &B) {
        let what = format!("{:?} n={} scaled={}", self.g, self.n, self.s.is_some());
        let dw0 = rand_vec(&mut Rng::new(99), self.w.len());
        let [y, dx, dw, ds] = self.run(be, true, &dw0);
        let (ry, rdx, rdw, rds) = self.reference();
        let k = self.g.patch_len().max(self.n) as f64;
        let tol = |name: &str, a: &[f32], e: &[f64]| assert_close(&format!("{name} {what}"), a, e, 1e-4, 1e-5 * k);
        tol("y", &y, &ry);
        tol("dx", &dx, &rdx);
        let rdw: Vec<f64> = rdw.iter().zip(&dw0).map(|(d, &w0)| d + w0 as f64).collect();
        tol("dw", &dw, &rdw);
        if self.s.is_some() {
            tol("ds", &ds, &rds);
        }
        let composed = self.run(be, false, &dw0);
        for (name, (a, b)) in ["y", "dx", "dw", "ds"].iter().zip([y, dx, dw, ds].iter().zip(&composed)) {
            tol(&format!("{name} fused vs composed"), a, &reference::to64(b));
        }
    }
}

/// A convolution with a per-row scale ([`ConvScale::Rows`]) and its backward against the
/// composed `conv2d` + `mul_rows`, to `f32` rounding (`dw` accumulates from a random start;
/// `y`, `dx` must be overwritten).
pub fn check_rows_scaled<B: Backend>(be: &B, g: Window, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let (x, w) = (be.upload(&rand_vec(&mut rng, g.input_len())), be.upload(&rand_vec(&mut rng, g.patch_len() * n)));
    let q = be.upload(&rand_range(&mut rng, g.rows(), 0.2, 2.0));
    let dy = be.upload(&rand_vec(&mut rng, g.rows() * n));
    let dw0 = rand_vec(&mut rng, g.patch_len() * n);
    let nan = |len| be.upload(&vec![f32::NAN; len]);
    let (mut y, mut uy) = (nan(g.rows() * n), nan(g.rows() * n));
    be.conv2d(&g, n, &x, &w, ConvScale::Rows(&q), &mut y);
    conv2d_unfused(be, &g, n, &x, &w, ConvScale::Rows(&q), &mut uy);
    let (mut dx, mut udx) = (nan(g.input_len()), nan(g.input_len()));
    let (mut dw, mut udw) = (be.upload(&dw0), be.upload(&dw0));
    be.conv2d_backward(&g, n, &x, &w, ConvScale::Rows(&q), &dy, &mut dx, &mut dw, None);
    conv2d_backward_unfused(be, &g, n, &x, &w, ConvScale::Rows(&q), &dy, &mut udx, &mut udw, None);
    let k = g.patch_len().max(n) as f64;
    for (name, a, b) in [("y", &y, &uy), ("dx", &dx, &udx), ("dw", &dw, &udw)] {
        let what = format!("{name} rows-scaled vs composed {g:?} n={n}");
        assert_close(&what, &be.download(a), &reference::to64(&be.download(b)), 1e-4, 1e-5 * k);
    }
}
