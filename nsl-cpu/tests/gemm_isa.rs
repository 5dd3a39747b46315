//! The streaming gemm kernels compiled for every instruction set, and the direct convolutions
//! built on them: each `NSL_CPU_GEMM` setting (read once per process) runs the same shapes in
//! a child process of this test binary.

use nsl_core::backend::{conv2d_backward_unfused, conv2d_unfused};
use nsl_core::conformance::reference::{self, to64};
use nsl_core::conformance::{assert_close, rand_vec};
use nsl_core::{Backend, ConvScale, Gemm, Rng, Window};
use nsl_cpu::Cpu;

/// Shapes around the fast paths: (m, n, k, trans_a, trans_b).
const SHAPES: &[(usize, usize, usize, bool, bool)] = &[
    (1000, 9, 75, false, false),
    (777, 33, 13, false, true),
    (300, 129, 40, false, false),
    (129, 300, 17, false, true),
    (1030, 67, 5, false, false),
    (27, 9, 3001, true, false),
    (70, 13, 1500, true, false),
    (13, 70, 1500, true, false),
    (3, 1, 600, true, false),
];

fn run_shapes(be: &Cpu) {
    let mut rng = Rng::new(7);
    for (i, &(m, n, k, ta, tb)) in SHAPES.iter().enumerate() {
        for (alpha, beta) in [(1.0, 0.0), (-0.5, 1.0)] {
            let mut g = Gemm::new(m, n, k).scaled(alpha, beta);
            g.trans_a = ta;
            g.trans_b = tb;
            let (a, b) = (rand_vec(&mut rng, m * k), rand_vec(&mut rng, k * n));
            let c0 = if beta == 0.0 { vec![f32::NAN; m * n] } else { rand_vec(&mut rng, m * n) };
            let mut c = be.upload(&c0);
            be.gemm(&g, &be.upload(&a), &be.upload(&b), &mut c);
            let got = be.download(&c);
            assert_close(&format!("shape {i}: {g:?}"), &got, &reference::gemm(&g, &a, &b, &c0), 1e-4, 1e-5 * k as f64);
            // and bitwise the same on one thread
            let mut c1 = be.upload(&c0);
            Cpu::with_threads(1).gemm(&g, &be.upload(&a), &be.upload(&b), &mut c1);
            assert!(be.download(&c1) == got, "shape {i}: {g:?} differs between 1 and {} threads", be.threads());
        }
    }
}

/// Direct convolution forwards (windows read in place on wide maps, gathered on narrow ones;
/// with and without a tap scale, whose taps have tiles of their own) against the unfused
/// im2col → patch scale → gemm composition.
fn run_convolutions(be: &Cpu) {
    let be = be.clone().with_winograd(false);
    let mut rng = Rng::new(11);
    for (g, n) in [
        (Window::same(2, 9, 19, 5, 3, 1), 70),
        (Window::same(1, 17, 33, 3, 3, 1), 9),
        (Window::same(3, 6, 7, 4, 3, 1), 20),
    ] {
        for scaled in [false, true] {
            let x = be.upload(&rand_vec(&mut rng, g.input_len()));
            let w = be.upload(&rand_vec(&mut rng, g.patch_len() * n));
            let s = scaled.then(|| be.upload(&rand_vec(&mut rng, g.rows() * g.taps())));
            let (mut y, mut expected) = (be.upload(&vec![f32::NAN; g.rows() * n]), be.zeros(g.rows() * n));
            be.conv2d(&g, n, &x, &w, s.as_ref().map_or(ConvScale::None, ConvScale::Taps), &mut y);
            conv2d_unfused(&be, &g, n, &x, &w, s.as_ref().map_or(ConvScale::None, ConvScale::Taps), &mut expected);
            let what = format!("conv2d {g:?} n={n} scaled={scaled}");
            let k = g.patch_len() as f64;
            assert_close(&what, &be.download(&y), &to64(&be.download(&expected)), 1e-4, 1e-5 * k);
        }
    }
    // Winograd with a row scale (output transform and `dy` read for every vector width,
    // 16 + 8 + 1 channels).
    let be = be.with_winograd(true);
    let (g, n) = (Window::same(2, 9, 7, 25, 3, 1), 25);
    let (x, w) = (be.upload(&rand_vec(&mut rng, g.input_len())), be.upload(&rand_vec(&mut rng, g.patch_len() * n)));
    let (q, dy) = (be.upload(&rand_vec(&mut rng, g.rows())), be.upload(&rand_vec(&mut rng, g.rows() * n)));
    let (mut y, mut uy) = (be.zeros(g.rows() * n), be.zeros(g.rows() * n));
    be.conv2d(&g, n, &x, &w, ConvScale::Rows(&q), &mut y);
    conv2d_unfused(&be, &g, n, &x, &w, ConvScale::Rows(&q), &mut uy);
    let (mut dx, mut udx, mut dw, mut udw) =
        (be.zeros(g.input_len()), be.zeros(g.input_len()), be.zeros(g.patch_len() * n), be.zeros(g.patch_len() * n));
    be.conv2d_backward(&g, n, &x, &w, ConvScale::Rows(&q), &dy, &mut dx, &mut dw, None);
    conv2d_backward_unfused(&be, &g, n, &x, &w, ConvScale::Rows(&q), &dy, &mut udx, &mut udw, None);
    let k = g.patch_len() as f64;
    for (name, a, b) in [("y", &y, &uy), ("dx", &dx, &udx), ("dw", &dw, &udw)] {
        let what = format!("{name} of conv2d_rows_scaled {g:?} n={n}");
        assert_close(&what, &be.download(a), &to64(&be.download(b)), 1e-4, 1e-5 * k);
    }
}

#[test]
#[ignore = "run by `every_instruction_set` with NSL_CPU_GEMM set"]
fn isa_child() {
    run_shapes(&Cpu::with_threads(3));
    run_convolutions(&Cpu::with_threads(3));
}

#[test]
fn every_instruction_set() {
    let exe = std::env::current_exe().expect("test binary path");
    for isa in ["portable", "avx2", "avx512", "matrixmultiply"] {
        let out = std::process::Command::new(&exe)
            .args(["isa_child", "--exact", "--ignored", "--test-threads=1"])
            .env("NSL_CPU_GEMM", isa)
            .output()
            .expect("failed to run the test binary");
        assert!(
            out.status.success(),
            "NSL_CPU_GEMM={isa}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
