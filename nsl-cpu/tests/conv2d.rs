//! The fused convolution (`Backend::conv2d`, `conv2d_backward`, with and without a patch
//! scale) against a naive reference and against the unfused composition of im2col,
//! patch_scale, gemm and col2im, on random shapes; and its gradients by finite differences.

mod common;

use common::{assert_close, be, rand_vec, small_window};
use nsl_core::backend::{conv2d_backward_unfused, conv2d_unfused};
use nsl_core::{Backend, ConvScale, Rng, Window};
use nsl_cpu::Cpu;
use proptest::prelude::*;

/// Inputs of one convolution: `x`, `w` (`k²c × n`), optional scale `s` (`rows × k²`), `dy`.
struct Case {
    g: Window,
    n: usize,
    x: Vec<f32>,
    w: Vec<f32>,
    s: Option<Vec<f32>>,
    dy: Vec<f32>,
}

impl Case {
    fn new(g: Window, n: usize, scaled: bool, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let x = rand_vec(&mut rng, g.input_len());
        let w = rand_vec(&mut rng, g.patch_len() * n);
        let s = scaled.then(|| rand_vec(&mut rng, g.rows() * g.taps()));
        let dy = rand_vec(&mut rng, g.rows() * n);
        Case { g, n, x, w, s, dy }
    }

    /// Naive f64 `(y, dx, dw, ds)`.
    fn reference(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let Case { g, n, .. } = *self;
        let (pl, taps, c) = (g.patch_len(), g.taps(), g.c);
        let cols = common::im2col(&g, &self.x);
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
        (y, common::col2im(&g, &dcols), dw, ds)
    }

    /// `(y, dx, dw, ds)` from `conv2d` (fused) or `conv2d_unfused`; `dw` starts at `dw0`.
    fn run(&self, be: &Cpu, fused: bool, dw0: &[f32]) -> [Vec<f32>; 4] {
        let Case { g, n, .. } = *self;
        let (x, w, dy) = (be.upload(&self.x), be.upload(&self.w), be.upload(&self.dy));
        let s = self.s.as_ref().map(|s| be.upload(s));
        let nan = |len| be.upload(&vec![f32::NAN; len]); // outputs must be overwritten
        let (mut y, mut dx, mut ds) = (nan(g.rows() * n), nan(g.input_len()), nan(g.rows() * g.taps()));
        let mut dw = be.upload(dw0);
        if fused {
            be.conv2d(&g, n, &x, &w, s.as_ref().map_or(ConvScale::None, ConvScale::Taps), &mut y);
            be.conv2d_backward(
                &g,
                n,
                &x,
                &w,
                s.as_ref().map_or(ConvScale::None, ConvScale::Taps),
                &dy,
                &mut dx,
                &mut dw,
                s.as_ref().map(|_| &mut ds),
            );
        } else {
            conv2d_unfused(be, &g, n, &x, &w, s.as_ref().map_or(ConvScale::None, ConvScale::Taps), &mut y);
            conv2d_backward_unfused(
                be,
                &g,
                n,
                &x,
                &w,
                s.as_ref().map_or(ConvScale::None, ConvScale::Taps),
                &dy,
                &mut dx,
                &mut dw,
                s.as_ref().map(|_| &mut ds),
            );
        }
        [be.download(&y), be.download(&dx), be.download(&dw), if s.is_some() { be.download(&ds) } else { vec![] }]
    }

    /// Fused ≡ reference and ≡ unfused to f32 rounding; with `bitwise`, `ds` and (unless the
    /// forward sums scaled taps separately) `y` equal the unfused path's bit for bit (true when
    /// the unfused products take the same streaming kernels, i.e. at least 128 rows).
    fn check(&self, be: &Cpu, bitwise: bool) {
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
        let [uy, udx, udw, uds] = self.run(be, false, &dw0);
        if bitwise && !(self.s.is_some() && be.sums_scaled_taps_separately(&self.g)) {
            assert_eq!(y, uy, "y fused vs unfused {what}");
        }
        if bitwise {
            assert_eq!(ds, uds, "ds fused vs unfused {what}");
        }
        let close = |name: &str, a: &[f32], b: &[f32]| {
            assert_close(&format!("{name} fused vs unfused {what}"), a, &common::to64(b), 1e-4, 1e-5 * k)
        };
        close("y", &y, &uy);
        close("ds", &ds, &uds);
        close("dx", &dx, &udx);
        close("dw", &dw, &udw);
    }
}

fn scale_and_width() -> impl Strategy<Value = (bool, usize)> {
    (any::<bool>(), 1usize..=20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv2d_matches_reference_and_unfused(g in common::window(), (scaled, n) in scale_and_width(), seed in any::<u64>()) {
        Case::new(g, n, scaled, seed).check(be(), false);
    }

    #[test]
    fn conv2d_wide_maps_match(g in wide_window(), (scaled, n) in scale_and_width(), seed in any::<u64>()) {
        Case::new(g, n, scaled, seed).check(be(), false);
    }

    #[test]
    fn conv2d_grad(g in small_window(), (scaled, n) in (any::<bool>(), 1usize..=3), seed in any::<u64>()) {
        let case = Case::new(g, n, scaled, seed);
        let be = be();
        // L = Σ y·dy, so ∂L/∂(x, w, s) are exactly what the backward returns (dw from 0).
        let loss = |x: &[f32], w: &[f32], s: Option<&[f32]>| {
            let mut y = be.zeros(g.rows() * n);
            be.conv2d(&g, n, &be.upload(x), &be.upload(w), s.map(|s| be.upload(s)).as_ref().map_or(ConvScale::None, ConvScale::Taps), &mut y);
            be.download(&y).iter().zip(&case.dy).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>()
        };
        let [_, dx, dw, ds] = case.run(be, true, &vec![0.0; case.w.len()]);
        let s = case.s.as_deref();
        fd_check("conv2d dx", 1e-2, &case.x, &dx, |x| loss(x, &case.w, s));
        fd_check("conv2d dw", 1e-2, &case.w, &dw, |w| loss(&case.x, w, s));
        if let Some(s) = s {
            fd_check("conv2d ds", 1e-2, s, &ds, |s| loss(&case.x, &case.w, Some(s)));
        }
    }
}

/// 3×3 stride-1 windows with at least 8 channels in and out (the Winograd F(4×4, 3×3) path):
/// maps of 1–13 (partial 4×4 tiles at the edges, maps smaller than a tile), SAME or VALID.
fn winograd_case() -> impl Strategy<Value = (Window, usize)> {
    (1usize..=3, 1usize..=13, 1usize..=13, 8usize..=20, 8usize..=20, any::<bool>()).prop_map(|(b, h, w, c, n, same)| {
        let g = if same { Window::same(b, h, w, c, 3, 1) } else { Window::valid(b, h.max(3), w.max(3), c, 3, 1) };
        (g, n)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn winograd_matches_reference_and_direct((g, n) in winograd_case(), seed in any::<u64>()) {
        let case = Case::new(g, n, false, seed);
        let (wino, direct) = (be().clone(), be().clone().with_winograd(false));
        prop_assert!(wino.uses_winograd(&g, n, false) && !direct.uses_winograd(&g, n, false));
        case.check(&wino, false);
        // Against the direct convolution: y, dx and dw to f32 rounding.
        let dw0 = vec![0.0; case.w.len()];
        let k = g.patch_len() as f64;
        for (name, a, d) in ["y", "dx", "dw"].iter().zip(case.run(&wino, true, &dw0)).zip(case.run(&direct, true, &dw0)).map(|((n, a), d)| (n, a, d)) {
            assert_close(&format!("{name} winograd vs direct {g:?} n={n}"), &a, &common::to64(&d), 1e-4, 1e-5 * k);
        }
    }

    #[test]
    fn winograd_grad(b in 1usize..=2, h in 1usize..=6, w in 1usize..=6, same in any::<bool>(), seed in any::<u64>()) {
        let g = if same { Window::same(b, h, w, 8, 3, 1) } else { Window::valid(b, h.max(3), w.max(3), 8, 3, 1) };
        let n = 8;
        let be = be();
        prop_assert!(be.uses_winograd(&g, n, false));
        let case = Case::new(g, n, false, seed);
        let loss = |x: &[f32], w: &[f32]| {
            let mut y = be.zeros(g.rows() * n);
            be.conv2d(&g, n, &be.upload(x), &be.upload(w), ConvScale::None, &mut y);
            be.download(&y).iter().zip(&case.dy).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>()
        };
        let [_, dx, dw, _] = case.run(be, true, &vec![0.0; case.w.len()]);
        // The loss is linear, so a large step is exact and keeps the f32 rounding of the
        // Winograd forward (larger than the direct one's) small against the difference.
        fd_check("winograd dx", 0.5, &case.x, &dx, |x| loss(x, &case.w));
        fd_check("winograd dw", 0.5, &case.w, &dw, |w| loss(&case.x, w));
    }
}

/// The Winograd path at CNN-9's shapes (32², 16², 8² maps, tiles across images, more images
/// than backward tasks) and the DNS predictor's 64 → 9 (too few outputs: stays direct).
#[test]
fn winograd_cnn_shapes() {
    let be = Cpu::with_threads(3);
    for (i, (g, n)) in [
        (Window::same(3, 32, 32, 32, 3, 1), 32),
        (Window::same(2, 16, 16, 32, 3, 1), 64),
        (Window::same(11, 8, 8, 128, 3, 1), 128),
        (Window::same(2, 8, 8, 64, 3, 1), 9),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(be.uses_winograd(&g, n, false), n >= 8, "{g:?} n={n}");
        Case::new(g, n, false, 70 + i as u64).check(&be, n < 8);
    }
}

/// Windows over maps at least 16 outputs wide (the im2col-free forward): any k, stride, padding.
fn wide_window() -> impl Strategy<Value = Window> {
    (1usize..=2, 1usize..=6, 1usize..=4, prop::sample::select(vec![1usize, 2, 3, 4, 7]), 1usize..=3, any::<bool>())
        .prop_map(|(b, h, c, k, s, same)| {
            let w = 32 * s + k; // wo ≥ 32 either way (in place with a tap scale too)
            if same {
                Window::same(b, h, w, c, k, s)
            } else {
                Window::valid(b, h.max(k), w, c, k, s)
            }
        })
}

/// Central differences (step `h`) of the loss, which is linear in each input, against `analytic`.
fn fd_check(what: &str, h: f32, v: &[f32], analytic: &[f32], f: impl Fn(&[f32]) -> f64) {
    let mut vp = v.to_vec();
    for i in 0..v.len() {
        vp[i] = v[i] + h;
        let (hi, lp) = (vp[i], f(&vp));
        vp[i] = v[i] - h;
        let (lo, lm) = (vp[i], f(&vp));
        vp[i] = v[i];
        let num = (lp - lm) / (hi as f64 - lo as f64);
        let ana = analytic[i] as f64;
        assert!(
            (num - ana).abs() <= 1e-4 + 1e-3 * num.abs().max(ana.abs()),
            "{what}[{i}]: analytic {ana}, numeric {num}"
        );
    }
}

/// CNN-shaped and odd shapes that take the tiled, parallel paths (several tiles per image,
/// tiles across images, more images than backward tasks, batch 1, stride 2, `dx` as a
/// convolution of `dy`).
#[test]
fn conv2d_large_shapes() {
    let be = Cpu::with_threads(3);
    for (i, (g, n)) in [
        (Window::same(4, 32, 32, 16, 3, 1), 32),
        (Window::same(19, 8, 8, 24, 3, 1), 40),
        (Window::same(1, 31, 29, 5, 3, 2), 9),
        (Window::valid(3, 17, 20, 7, 4, 1), 70),
        (Window::same(2, 12, 12, 130, 3, 1), 3),
        (Window::same(2, 33, 35, 6, 5, 2), 17),
        (Window::same(3, 20, 18, 40, 3, 1), 9),
        (Window::same(2, 6, 40, 5, 3, 1), 70),
    ]
    .into_iter()
    .enumerate()
    {
        for scaled in [false, true] {
            // The Winograd path differs from the unfused products by rounding only.
            Case::new(g, n, scaled, 50 + i as u64).check(&be, !be.uses_winograd(&g, n, scaled));
        }
    }
}

/// `conv2d_rows_scaled` and its backward against the unfused `conv2d` + `mul_rows`, to f32
/// rounding (`dw` accumulates from a random start; `y`, `dx` must be overwritten).
fn check_rows_scaled(be: &Cpu, g: Window, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let (x, w) = (be.upload(&rand_vec(&mut rng, g.input_len())), be.upload(&rand_vec(&mut rng, g.patch_len() * n)));
    let q = be.upload(&common::rand_range(&mut rng, g.rows(), 0.2, 2.0));
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
        let what = format!("{name} rows-scaled vs unfused {g:?} n={n}");
        assert_close(&what, &be.download(a), &common::to64(&be.download(b)), 1e-4, 1e-5 * k);
    }
}

/// Rows scaled as Winograd writes its outputs and reads `dy`, or before/after the direct
/// convolution, at CNN-like and odd shapes (several blocks and threads).
#[test]
fn conv2d_rows_scaled_matches_unfused() {
    let be = Cpu::with_threads(3);
    for (i, (g, n)) in [
        (Window::same(3, 11, 9, 8, 3, 1), 9),    // Winograd, partial tiles
        (Window::same(2, 32, 32, 16, 3, 1), 64), // Winograd, several blocks
        (Window::same(2, 9, 7, 3, 3, 1), 5),     // direct, gathered
        (Window::same(1, 20, 40, 12, 3, 2), 10), // direct, stride 2
        (Window::same(1, 18, 20, 24, 3, 1), 7),  // direct (n < 8), dx by convolution
    ]
    .into_iter()
    .enumerate()
    {
        check_rows_scaled(&be, g, n, 17 + i as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn conv2d_rows_scaled_random_direct(g in common::window(), n in 1usize..=20, seed in any::<u64>()) {
        check_rows_scaled(be(), g, n, seed);
    }

    #[test]
    fn conv2d_rows_scaled_random_winograd((g, n) in winograd_case(), seed in any::<u64>()) {
        prop_assert!(be().uses_winograd(&g, n, false));
        check_rows_scaled(be(), g, n, seed);
    }
}

/// An empty batch: nothing to compute, `dw` unchanged, on the direct and the Winograd path.
#[test]
fn conv2d_empty_batch() {
    for (g, n, scaled) in [(Window::same(0, 8, 8, 16, 3, 1), 16, false), (Window::same(0, 8, 8, 3, 3, 2), 4, true)] {
        let be = be();
        let (x, w) = (be.zeros(0), be.upload(&vec![0.5; g.patch_len() * n]));
        let s = scaled.then(|| be.zeros(0));
        let (mut y, mut dx, mut dw, mut ds) =
            (be.zeros(0), be.zeros(0), be.upload(&vec![1.0; g.patch_len() * n]), be.zeros(0));
        be.conv2d(&g, n, &x, &w, s.as_ref().map_or(ConvScale::None, ConvScale::Taps), &mut y);
        be.conv2d_backward(
            &g,
            n,
            &x,
            &w,
            s.as_ref().map_or(ConvScale::None, ConvScale::Taps),
            &be.zeros(0),
            &mut dx,
            &mut dw,
            s.as_ref().map(|_| &mut ds),
        );
        assert!(be.download(&dw).iter().all(|&v| v == 1.0), "{g:?}");
    }
}
