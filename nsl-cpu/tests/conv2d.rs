//! The CPU backend's convolution paths: Winograd F(4×4, 3×3) against the reference and the
//! direct convolution, the fused paths bit for bit against the composed reference where they
//! take the same kernels, at CNN-like and odd shapes. (Random shapes of every scale are
//! nsl-core's conformance suite, `tests/conformance.rs`.)

use nsl_core::conformance::reference::to64;
use nsl_core::conformance::{assert_close, check_rows_scaled, fd_check, run_cases, winograd_window, ConvCase};
use nsl_core::{Backend, ConvScale, Window};
use nsl_cpu::Cpu;

fn be() -> Cpu {
    Cpu::with_threads(2)
}

/// [`ConvCase::check`], and `ds` and (unless the forward sums scaled taps separately) `y`
/// equal to the composed path's bit for bit (true when the composed products take the same
/// streaming kernels, i.e. at least 128 rows, off the Winograd path).
fn check_bitwise(be: &Cpu, case: &ConvCase) {
    case.check(be);
    let what = format!("{:?} n={} scaled={}", case.g, case.n, case.s.is_some());
    let dw0 = vec![0.25; case.w.len()];
    let ([y, _, _, ds], [uy, _, _, uds]) = (case.run(be, true, &dw0), case.run(be, false, &dw0));
    if !(case.s.is_some() && be.sums_scaled_taps_separately(&case.g)) {
        assert_eq!(y, uy, "y fused vs composed {what}");
    }
    assert_eq!(ds, uds, "ds fused vs composed {what}");
}

#[test]
fn winograd_matches_reference_and_direct() {
    run_cases("winograd", 32, winograd_window(), |((g, n), seed)| {
        let case = ConvCase::new(g, n, false, seed);
        let (wino, direct) = (be(), be().with_winograd(false));
        assert!(wino.uses_winograd(&g, n, false) && !direct.uses_winograd(&g, n, false));
        case.check(&wino);
        // Against the direct convolution: y, dx and dw to f32 rounding.
        let dw0 = vec![0.0; case.w.len()];
        let k = g.patch_len() as f64;
        for ((name, a), d) in
            ["y", "dx", "dw"].iter().zip(case.run(&wino, true, &dw0)).zip(case.run(&direct, true, &dw0))
        {
            assert_close(&format!("{name} winograd vs direct {g:?} n={n}"), &a, &to64(&d), 1e-4, 1e-5 * k);
        }
    });
}

#[test]
fn winograd_grad() {
    let shapes = (1usize..=2, 1usize..=6, 1usize..=6, proptest::arbitrary::any::<bool>());
    run_cases("winograd_grad", 32, shapes, |((b, h, w, same), seed)| {
        let g = if same { Window::same(b, h, w, 8, 3, 1) } else { Window::valid(b, h.max(3), w.max(3), 8, 3, 1) };
        let n = 8;
        let be = be();
        assert!(be.uses_winograd(&g, n, false));
        let case = ConvCase::new(g, n, false, seed);
        let loss = |x: &[f32], w: &[f32]| {
            let mut y = be.zeros(g.rows() * n);
            be.conv2d(&g, n, &be.upload(x), &be.upload(w), ConvScale::None, &mut y);
            be.download(&y).iter().zip(&case.dy).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>()
        };
        let [_, dx, dw, _] = case.run(&be, true, &vec![0.0; case.w.len()]);
        // The loss is linear, so a large step is exact and keeps the f32 rounding of the
        // Winograd forward (larger than the direct one's) small against the difference.
        fd_check("winograd dx", &case.x, &dx, 0.5, 1e-3, 1e-4, |x| loss(x, &case.w));
        fd_check("winograd dw", &case.w, &dw, 0.5, 1e-3, 1e-4, |w| loss(&case.x, w));
    });
}

// Boilerplate: the shape tests below are each a table of `(window, outputs)` cases run through
// `ConvCase`; the tables and loops have the same shape, the cases and checks differ.

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
        let case = ConvCase::new(g, n, false, 70 + i as u64);
        if n < 8 {
            check_bitwise(&be, &case);
        } else {
            case.check(&be);
        }
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
            // The Winograd path differs from the composed products by rounding only.
            let case = ConvCase::new(g, n, scaled, 50 + i as u64);
            if be.uses_winograd(&g, n, scaled) {
                case.check(&be);
            } else {
                check_bitwise(&be, &case);
            }
        }
    }
}

/// Rows scaled as Winograd writes its outputs and reads `dy`, or before/after the direct
/// convolution, at CNN-like and odd shapes (several blocks and threads), and on random
/// Winograd shapes.
#[test]
fn conv2d_rows_scaled_matches_composed() {
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
    run_cases("rows_scaled_winograd", 32, winograd_window(), |((g, n), seed)| {
        assert!(be.uses_winograd(&g, n, false));
        check_rows_scaled(&be, g, n, seed);
    });
}

/// An empty batch: nothing to compute, `dw` unchanged, on the direct and the Winograd path.
#[test]
fn conv2d_empty_batch() {
    let be = be();
    for (g, n, scaled) in [(Window::same(0, 8, 8, 16, 3, 1), 16, false), (Window::same(0, 8, 8, 3, 3, 2), 4, true)] {
        let (x, w) = (be.zeros(0), be.upload(&vec![0.5; g.patch_len() * n]));
        let s = scaled.then(|| be.zeros(0));
        let scale = s.as_ref().map_or(ConvScale::None, ConvScale::Taps);
        let (mut y, mut dx, mut dw, mut ds) =
            (be.zeros(0), be.zeros(0), be.upload(&vec![1.0; g.patch_len() * n]), be.zeros(0));
        be.conv2d(&g, n, &x, &w, scale, &mut y);
        be.conv2d_backward(&g, n, &x, &w, scale, &be.zeros(0), &mut dx, &mut dw, s.as_ref().map(|_| &mut ds));
        assert!(be.download(&dw).iter().all(|&v| v == 1.0), "{g:?}");
    }
}
