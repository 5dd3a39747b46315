//! CPU ≡ CUDA: every [`Backend`] op, and every similarity's forward and gradients, on random
//! shapes and data, against `nsl_cpu::Cpu`.
//!
//! Runs with `--features cuda` on a machine with an NVIDIA GPU. Without a device each test
//! writes one line `skipped: no CUDA device (<reason>) [<test>]` straight to stderr (visible
//! even though the test harness captures output) and passes; any other start-up failure (PTX
//! that does not load, …) fails the test. With `--features emulate` the same tests run the
//! kernels on the CPU emulator.
//!
//! Tolerances: `|cuda − cpu| ≤ atol + rtol·|cpu|` with rtol 1e-4 and atol 1e-5 scaled by the
//! length of the longest reduction behind the value (both backends sum in different orders;
//! nvcc contracts `a·b + c` into FMAs). `NSL_CUDA_CASES` sets the number of random cases; the
//! cases are fixed by the test name and `NSL_CONFORMANCE_SEED` (default 0), so a failure
//! reproduces.
#![cfg(any(feature = "cuda", feature = "emulate"))]
#![allow(clippy::too_many_arguments)]

use nsl_core::conformance::{gemm_case, gemm_operands, rand_range, rand_vec, seeded_runner};
use nsl_core::gradcheck::{check_similarity, GradCheck};
use nsl_core::nn::{Layer, Mode, NslConv, Padding};
use nsl_core::similarity::predictor::{self, PredictorConfig, PredictorNorm};
use nsl_core::similarity::*;
use nsl_core::{
    AdamStep, Backend, BatchNormDims, ConvScale, CrossEntropy, Gemm, Map, Patch, Rng, SgdStep, Tensor, Window,
};
use nsl_cpu::Cpu;
use nsl_cuda::Cuda;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

mod common;
use common::device;

// ---- harness ------------------------------------------------------------------------------------

fn cases(default: u32) -> u32 {
    std::env::var("NSL_CUDA_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Run `f` on `cases` random values of `strategy` with both backends.
fn check<S: Strategy>(test: &str, n: u32, strategy: S, f: impl Fn(&Cuda, &Cpu, S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let Some(gpu) = device(test) else { return };
    let cpu = Cpu::with_threads(2);
    let mut runner = seeded_runner(test, cases(n));
    if let Err(e) = runner.run(&strategy, |v| f(&gpu, &cpu, v)) {
        panic!("{test}: {e}");
    }
}

/// A single deterministic check with both backends.
fn once(test: &str, f: impl FnOnce(&Cuda, &Cpu)) {
    let Some(gpu) = device(test) else { return };
    f(&gpu, &Cpu::with_threads(2));
}

/// `|g − c| ≤ atol + rtol·|c|` elementwise (NaN matches NaN, infinities must be equal).
fn close(what: &str, gpu: &[f32], cpu: &[f32], rtol: f64, atol: f64) -> Result<(), TestCaseError> {
    if gpu.len() != cpu.len() {
        return Err(TestCaseError::fail(format!("{what}: length {} on CUDA, {} on CPU", gpu.len(), cpu.len())));
    }
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let ok = (g.is_nan() && c.is_nan())
            || g == c
            || (g.is_finite() && c.is_finite() && (g as f64 - c as f64).abs() <= atol + rtol * (c as f64).abs());
        if !ok {
            return Err(TestCaseError::fail(format!(
                "{what}: index {i} of {}: cuda {g} vs cpu {c} (|diff| {:.3e}, rtol {rtol}, atol {atol})",
                cpu.len(),
                (g as f64 - c as f64).abs()
            )));
        }
    }
    Ok(())
}

/// [`close`] with rtol 1e-4 and atol 1e-5 scaled by the reduction length `n`.
fn close_n(what: &str, gpu: &[f32], cpu: &[f32], n: usize) -> Result<(), TestCaseError> {
    close(what, gpu, cpu, 1e-4, 1e-5 * (n.max(1) as f64).sqrt().max(1.0))
}

// Boilerplate: the tests below make each call twice, on the GPU (`.g`) and CPU (`.c`) halves
// of their `Pair`s, then compare; tests of related ops (the convolutions) set up and check the
// same buffers, so that call-and-compare shape repeats while the ops and cases differ.

/// The same data on both backends.
struct Pair {
    g: nsl_cuda::CudaBuf,
    c: nsl_cpu::CpuBuf,
}

fn pair(gpu: &Cuda, cpu: &Cpu, v: &[f32]) -> Pair {
    Pair { g: gpu.upload(v), c: cpu.upload(v) }
}

fn cmp(what: &str, gpu: &Cuda, cpu: &Cpu, p: &Pair, n: usize) -> Result<(), TestCaseError> {
    close_n(what, &gpu.download(&p.g), &cpu.download(&p.c), n)
}

fn window() -> impl Strategy<Value = Window> {
    (1usize..=3, 1usize..=9, 1usize..=9, 1usize..=5, 1usize..=7, 1usize..=2, any::<bool>()).prop_map(
        |(b, h, w, c, k, s, same)| {
            if same {
                Window::same(b, h, w, c, k, s)
            } else {
                Window::valid(b, h.max(k), w.max(k), c, k, s)
            }
        },
    )
}

// ---- storage ------------------------------------------------------------------------------------

#[test]
fn storage_roundtrip() {
    check("storage_roundtrip", 16, (0usize..5000, any::<u64>()), |gpu, _cpu, (n, seed)| {
        let v = rand_vec(&mut Rng::new(seed), n);
        let b = gpu.upload(&v);
        prop_assert_eq!(gpu.len(&b), n);
        prop_assert_eq!(gpu.download(&b), v.clone());
        let z = gpu.zeros(n);
        prop_assert!(gpu.download(&z).iter().all(|&x| x == 0.0));
        let mut d = gpu.alloc(n);
        gpu.copy(&b, &mut d);
        prop_assert_eq!(gpu.download(&d), v);
        gpu.fill(&mut d, -2.75);
        prop_assert!(gpu.download(&d).iter().all(|&x| x == -2.75));
        Ok(())
    });
}

#[test]
fn name_names_the_device() {
    once("name_names_the_device", |gpu, _| assert!(gpu.name().starts_with("cuda ("), "{}", gpu.name()));
}

/// Allocating past the device's memory is an `OutOfMemory` error naming the bytes (not a
/// panic or a hang), and dropped buffers give their memory back. Real devices only: the
/// emulator's memory is the host's.
#[test]
fn out_of_memory_is_an_error_and_memory_comes_back() {
    if cfg!(not(feature = "cuda")) {
        println!("skipped: the emulator allocates host memory [out_of_memory_is_an_error_and_memory_comes_back]");
        return;
    }
    once("out_of_memory_is_an_error_and_memory_comes_back", |gpu, _| {
        let chunk = nsl_cuda::MAX_ELEMS; // 8 GiB of f32
        let mut held = Vec::new();
        let err = loop {
            match gpu.try_alloc(chunk) {
                Ok(b) => held.push(b),
                Err(e) => break e,
            }
            assert!(held.len() < 4096, "allocated {} × 8 GiB without running out", held.len());
        };
        let msg = err.to_string();
        assert!(matches!(err, nsl_cuda::CudaError::OutOfMemory { .. }), "{msg}");
        assert!(msg.contains("out of memory") && msg.contains(&(chunk * 4).to_string()), "{msg}");
        let fitted = held.len();
        drop(held);
        let again: Vec<_> =
            (0..fitted).map(|i| gpu.try_alloc(chunk).unwrap_or_else(|e| panic!("chunk {i}: {e}"))).collect();
        println!("{fitted} × 8 GiB fitted, then: {msg}; all {} fit again after the drop", again.len());
    });
}

/// A device failure is a value: an allocation the device cannot hold (here one over
/// `MAX_ELEMS`, refused before the driver is asked, so this runs on the emulator too) is recorded,
/// later ops run on placeholders without touching memory, and `status` reports the first failure
/// from then on, naming the op and the fix. Nothing panics.
#[test]
fn a_device_failure_is_a_status_not_a_panic() {
    let Some(gpu) = device("a_device_failure_is_a_status_not_a_panic") else { return };
    assert_eq!(Backend::status(&gpu), Ok(()));
    let a = gpu.upload(&[1.0, 2.0, 3.0, 4.0]);
    let huge = Backend::alloc(&gpu, nsl_cuda::MAX_ELEMS + 1);
    assert_eq!(Backend::len(&gpu, &huge), nsl_cuda::MAX_ELEMS + 1, "the placeholder keeps the asked-for length");
    let err = Backend::status(&gpu).expect_err("the failed allocation is reported");
    let msg = err.to_string();
    assert!(matches!(err, nsl_core::BackendError::OutOfMemory { ref op, .. } if op == "alloc"), "{msg}");
    assert!(msg.contains("--batch-size") && msg.contains("--resume"), "{msg}");
    // Later work is skipped: a product into a fresh buffer leaves placeholders' zeros, and the
    // first failure stays the reported one.
    let mut c = gpu.zeros(4);
    gpu.gemm(&Gemm::new(2, 2, 2), &a, &a, &mut c);
    assert_eq!(gpu.download(&c), vec![0.0; 4]);
    assert_eq!(Backend::status(&gpu), Err(err));
    // Another backend (a new context) is unaffected.
    let fresh = Cuda::new().expect("a second backend");
    assert_eq!(Backend::status(&fresh), Ok(()));
    assert_eq!(fresh.download(&fresh.upload(&[5.0])), vec![5.0]);
}

// ---- GEMM ---------------------------------------------------------------------------------------

fn check_gemm(gpu: &Cuda, cpu: &Cpu, g: &Gemm, seed: u64) -> Result<(), TestCaseError> {
    let [a, b, c0] = gemm_operands(g, seed);
    let mut c = pair(gpu, cpu, &c0);
    gpu.gemm(g, &gpu.upload(&a), &gpu.upload(&b), &mut c.g);
    cpu.gemm(g, &cpu.upload(&a), &cpu.upload(&b), &mut c.c);
    let reduce = g.k * if g.stride_c == 0 { g.batch } else { 1 };
    close(&format!("gemm {g:?}"), &gpu.download(&c.g), &cpu.download(&c.c), 1e-4, 1e-5 * reduce.max(1) as f64)
}

#[test]
fn gemm_random() {
    check("gemm_random", 48, (gemm_case(1..=70, 0..=70), any::<u64>()), |gpu, cpu, (g, seed)| {
        check_gemm(gpu, cpu, &g, seed)
    });
}

#[test]
fn gemm_multi_tile() {
    check("gemm_multi_tile", 6, (gemm_case(65..=200, 17..=150), any::<u64>()), |gpu, cpu, (g, seed)| {
        check_gemm(gpu, cpu, &g, seed)
    });
}

/// Products with few output tiles and a long k take the split-k path (slices of at least 256
/// computed by separate blocks, partials summed in order): GEMMs of every transpose and scale
/// (the convolutions' split-k cases are in `conv2d_multi_tile`).
#[test]
fn long_reductions_split_k() {
    check(
        "long_reductions_split_k gemm",
        8,
        (gemm_case(1..=40, 600..=2000), any::<u64>()),
        |gpu, cpu, (mut g, seed)| {
            g.batch = 1;
            check_gemm(gpu, cpu, &g, seed)
        },
    );
}

// ---- elementwise and reductions ----------------------------------------------------------------

#[test]
fn elementwise_ops() {
    check("elementwise_ops", 32, (0usize..3000, any::<u64>()), |gpu, cpu, (n, seed)| {
        let mut rng = Rng::new(seed);
        let x = rand_vec(&mut rng, n);
        let y0 = rand_vec(&mut rng, n);
        let pos = rand_range(&mut rng, n, 0.1, 3.0);
        let mut y = pair(gpu, cpu, &y0);
        let (xg, xc) = (gpu.upload(&x), cpu.upload(&x));
        gpu.axpy(-0.75, &xg, &mut y.g);
        cpu.axpy(-0.75, &xc, &mut y.c);
        cmp("axpy", gpu, cpu, &y, 1)?;
        gpu.scale(1.5, &mut y.g);
        cpu.scale(1.5, &mut y.c);
        cmp("scale", gpu, cpu, &y, 1)?;
        let mut out = pair(gpu, cpu, &y0);
        gpu.mul(&xg, &y.g, &mut out.g);
        cpu.mul(&xc, &y.c, &mut out.c);
        cmp("mul", gpu, cpu, &out, 1)?;
        let (pg, pc) = (gpu.upload(&pos), cpu.upload(&pos));
        for f in [Map::SqrtEps(1e-3), Map::Recip, Map::Square, Map::Sign, Map::Affine(-1.25, 0.5)] {
            let src = if matches!(f, Map::SqrtEps(_) | Map::Recip) { (&pg, &pc) } else { (&xg, &xc) };
            let mut o = Pair { g: gpu.alloc(n), c: cpu.alloc(n) };
            gpu.map(f, src.0, &mut o.g);
            cpu.map(f, src.1, &mut o.c);
            cmp(&format!("map {f:?}"), gpu, cpu, &o, 1)?;
        }
        close_n("dot", &[gpu.dot(&xg, &y.g)], &[cpu.dot(&xc, &y.c)], n)?;
        Ok(())
    });
}

#[test]
fn dot_long_and_map_sign_of_zero() {
    once("dot_long_and_map_sign_of_zero", |gpu, cpu| {
        let mut rng = Rng::new(7);
        for n in [2047, 2048, 2049, 300_001] {
            let a = rand_vec(&mut rng, n);
            let b = rand_vec(&mut rng, n);
            let (g, c) = (gpu.dot(&gpu.upload(&a), &gpu.upload(&b)), cpu.dot(&cpu.upload(&a), &cpu.upload(&b)));
            close_n(&format!("dot n={n}"), &[g], &[c], n).unwrap();
        }
        let x = gpu.upload(&[0.0, -0.0, 2.0, -3.0]);
        let mut s = gpu.alloc(4);
        gpu.map(Map::Sign, &x, &mut s);
        assert_eq!(gpu.download(&s), vec![0.0, 0.0, 1.0, -1.0]);
    });
}

#[test]
fn rows_and_cols() {
    check("rows_and_cols", 32, (1usize..80, 0usize..70, any::<u64>()), |gpu, cpu, (rows, cols, seed)| {
        let mut rng = Rng::new(seed);
        let x = rand_vec(&mut rng, rows * cols);
        let y = rand_vec(&mut rng, rows * cols);
        let sr = rand_vec(&mut rng, rows);
        let sc = rand_vec(&mut rng, cols);
        let (x, y, sr, sc) = (pair(gpu, cpu, &x), pair(gpu, cpu, &y), pair(gpu, cpu, &sr), pair(gpu, cpu, &sc));
        let mut o = Pair { g: gpu.alloc(rows * cols), c: cpu.alloc(rows * cols) };
        gpu.mul_rows(&x.g, &sr.g, rows, cols, &mut o.g);
        cpu.mul_rows(&x.c, &sr.c, rows, cols, &mut o.c);
        cmp("mul_rows", gpu, cpu, &o, 1)?;
        gpu.mul_cols(&x.g, &sc.g, rows, cols, &mut o.g);
        cpu.mul_cols(&x.c, &sc.c, rows, cols, &mut o.c);
        cmp("mul_cols", gpu, cpu, &o, 1)?;
        let mut r = Pair { g: gpu.alloc(rows), c: cpu.alloc(rows) };
        gpu.dot_rows(&x.g, &y.g, rows, cols, &mut r.g);
        cpu.dot_rows(&x.c, &y.c, rows, cols, &mut r.c);
        cmp("dot_rows", gpu, cpu, &r, cols)?;
        let mut c = Pair { g: gpu.alloc(cols), c: cpu.alloc(cols) };
        gpu.dot_cols(&x.g, &y.g, rows, cols, &mut c.g);
        cpu.dot_cols(&x.c, &y.c, rows, cols, &mut c.c);
        cmp("dot_cols", gpu, cpu, &c, rows)?;
        Ok(())
    });
}

#[test]
fn dot_cols_many_chunks() {
    once("dot_cols_many_chunks", |gpu, cpu| {
        let mut rng = Rng::new(3);
        let (rows, cols) = (1000, 37);
        let a = rand_vec(&mut rng, rows * cols);
        let b = rand_vec(&mut rng, rows * cols);
        let mut o = Pair { g: gpu.alloc(cols), c: cpu.alloc(cols) };
        gpu.dot_cols(&gpu.upload(&a), &gpu.upload(&b), rows, cols, &mut o.g);
        cpu.dot_cols(&cpu.upload(&a), &cpu.upload(&b), rows, cols, &mut o.c);
        cmp("dot_cols", gpu, cpu, &o, rows).unwrap();
    });
}

// ---- convolution geometry -----------------------------------------------------------------------

#[test]
fn im2col_col2im() {
    check("im2col_col2im", 48, (window(), any::<u64>()), |gpu, cpu, (g, seed)| {
        let mut rng = Rng::new(seed);
        let x = pair(gpu, cpu, &rand_vec(&mut rng, g.input_len()));
        let n = g.rows() * g.patch_len();
        let mut cols = Pair { g: gpu.alloc(n), c: cpu.alloc(n) };
        gpu.im2col(&g, &x.g, &mut cols.g);
        cpu.im2col(&g, &x.c, &mut cols.c);
        close(&format!("im2col {g:?}"), &gpu.download(&cols.g), &cpu.download(&cols.c), 0.0, 0.0)?;
        let d = pair(gpu, cpu, &rand_vec(&mut rng, n));
        let mut dx = Pair { g: gpu.alloc(g.input_len()), c: cpu.alloc(g.input_len()) };
        gpu.col2im(&g, &d.g, &mut dx.g);
        cpu.col2im(&g, &d.c, &mut dx.c);
        cmp(&format!("col2im {g:?}"), gpu, cpu, &dx, g.k * g.k)?;
        Ok(())
    });
}

#[test]
fn conv2d_scaled_and_backward() {
    check("conv2d_scaled_and_backward", 32, (window(), 1usize..=12, any::<u64>()), |gpu, cpu, (g, n, seed)| {
        let mut rng = Rng::new(seed);
        let x = pair(gpu, cpu, &rand_vec(&mut rng, g.input_len()));
        let w = pair(gpu, cpu, &rand_vec(&mut rng, g.patch_len() * n));
        let s = pair(gpu, cpu, &rand_vec(&mut rng, g.rows() * g.taps()));
        let dy = pair(gpu, cpu, &rand_vec(&mut rng, g.rows() * n));
        let mut y = Pair { g: gpu.alloc(g.rows() * n), c: cpu.alloc(g.rows() * n) };
        gpu.conv2d(&g, n, &x.g, &w.g, ConvScale::None, &mut y.g);
        cpu.conv2d(&g, n, &x.c, &w.c, ConvScale::None, &mut y.c);
        cmp(&format!("conv2d unscaled {g:?}"), gpu, cpu, &y, g.patch_len())?;
        gpu.conv2d(&g, n, &x.g, &w.g, ConvScale::Taps(&s.g), &mut y.g);
        cpu.conv2d(&g, n, &x.c, &w.c, ConvScale::Taps(&s.c), &mut y.c);
        cmp(&format!("conv2d {g:?}"), gpu, cpu, &y, g.patch_len())?;
        let mut dx = Pair { g: gpu.alloc(g.input_len()), c: cpu.alloc(g.input_len()) };
        let mut dw = Pair { g: gpu.zeros(g.patch_len() * n), c: cpu.zeros(g.patch_len() * n) };
        let mut ds = Pair { g: gpu.alloc(g.rows() * g.taps()), c: cpu.alloc(g.rows() * g.taps()) };
        gpu.conv2d_backward(&g, n, &x.g, &w.g, ConvScale::Taps(&s.g), &dy.g, &mut dx.g, &mut dw.g, Some(&mut ds.g));
        cpu.conv2d_backward(&g, n, &x.c, &w.c, ConvScale::Taps(&s.c), &dy.c, &mut dx.c, &mut dw.c, Some(&mut ds.c));
        cmp(&format!("conv2d dx {g:?}"), gpu, cpu, &dx, g.k * g.k * n)?;
        cmp(&format!("conv2d dw {g:?}"), gpu, cpu, &dw, g.rows())?;
        cmp(&format!("conv2d ds {g:?}"), gpu, cpu, &ds, g.c * n)?;
        Ok(())
    });
}

/// The fused forward and backward, on every window below, across several 128×64 tiles (rows, outputs, input pixels),
/// with and without a scale, including CNN shapes the CPU runs as Winograd convolutions, and
/// split-k: a weight gradient over 1024 rows (one output tile, four slices on the emulator), and
/// a deep patch (k²c = 576) with n = 64, whose forward and input gradient are split.
#[test]
fn conv2d_multi_tile() {
    let cases = [
        (Window::same(2, 12, 12, 5, 3, 1), 70),
        (Window::same(3, 8, 8, 16, 3, 1), 80),
        (Window::valid(2, 9, 7, 3, 4, 2), 65),
        (Window::same(4, 16, 16, 3, 3, 1), 7),
        (Window::same(1, 5, 4, 64, 3, 1), 64),
    ];
    check("conv2d_multi_tile", 4, (any::<bool>(), any::<u64>()), |gpu, cpu, (scaled, seed)| {
        let mut rng = Rng::new(seed);
        for &(g, n) in &cases {
            let x = pair(gpu, cpu, &rand_vec(&mut rng, g.input_len()));
            let w = pair(gpu, cpu, &rand_vec(&mut rng, g.patch_len() * n));
            let s = scaled.then(|| pair(gpu, cpu, &rand_vec(&mut rng, g.rows() * g.taps())));
            let mut y = Pair { g: gpu.alloc(g.rows() * n), c: cpu.alloc(g.rows() * n) };
            let (sg, sc) = (s.as_ref().map(|s| &s.g), s.as_ref().map(|s| &s.c));
            gpu.conv2d(&g, n, &x.g, &w.g, sg.map_or(ConvScale::None, ConvScale::Taps), &mut y.g);
            cpu.conv2d(&g, n, &x.c, &w.c, sc.map_or(ConvScale::None, ConvScale::Taps), &mut y.c);
            let what = format!("{g:?} n={n} scaled={scaled}");
            cmp(&format!("conv2d {what}"), gpu, cpu, &y, g.patch_len())?;
            let dy = pair(gpu, cpu, &rand_vec(&mut rng, g.rows() * n));
            let mut dx = Pair { g: gpu.alloc(g.input_len()), c: cpu.alloc(g.input_len()) };
            let mut dw = pair(gpu, cpu, &rand_vec(&mut rng, g.patch_len() * n)); // accumulates
            let mut ds = Pair { g: gpu.alloc(g.rows() * g.taps()), c: cpu.alloc(g.rows() * g.taps()) };
            gpu.conv2d_backward(
                &g,
                n,
                &x.g,
                &w.g,
                sg.map_or(ConvScale::None, ConvScale::Taps),
                &dy.g,
                &mut dx.g,
                &mut dw.g,
                scaled.then_some(&mut ds.g),
            );
            cpu.conv2d_backward(
                &g,
                n,
                &x.c,
                &w.c,
                sc.map_or(ConvScale::None, ConvScale::Taps),
                &dy.c,
                &mut dx.c,
                &mut dw.c,
                scaled.then_some(&mut ds.c),
            );
            cmp(&format!("conv2d dx {what}"), gpu, cpu, &dx, g.k * g.k * n)?;
            cmp(&format!("conv2d dw {what}"), gpu, cpu, &dw, g.rows())?;
            if scaled {
                cmp(&format!("conv2d ds {what}"), gpu, cpu, &ds, g.c * n)?;
            }
        }
        Ok(())
    });
}

/// The row-scaled convolution (SphereConv's `1/‖x‖`) and its backward, on windows the CPU runs
/// as Winograd (rows scaled in the transforms) and directly.
#[test]
fn conv2d_rows_scaled_and_backward() {
    let cases = [
        (Window::same(2, 9, 11, 16, 3, 1), 9),
        (Window::same(1, 10, 8, 9, 3, 1), 64),
        (Window::same(2, 7, 6, 3, 3, 2), 5),
    ];
    check("conv2d_rows_scaled_and_backward", 4, any::<u64>(), |gpu, cpu, seed| {
        let mut rng = Rng::new(seed);
        for &(g, n) in &cases {
            let x = pair(gpu, cpu, &rand_vec(&mut rng, g.input_len()));
            let w = pair(gpu, cpu, &rand_vec(&mut rng, g.patch_len() * n));
            let q = pair(gpu, cpu, &rand_range(&mut rng, g.rows(), 0.2, 2.0));
            let mut y = Pair { g: gpu.alloc(g.rows() * n), c: cpu.alloc(g.rows() * n) };
            gpu.conv2d(&g, n, &x.g, &w.g, ConvScale::Rows(&q.g), &mut y.g);
            cpu.conv2d(&g, n, &x.c, &w.c, ConvScale::Rows(&q.c), &mut y.c);
            let what = format!("{g:?} n={n}");
            cmp(&format!("conv2d_rows_scaled {what}"), gpu, cpu, &y, g.patch_len())?;
            let dy = pair(gpu, cpu, &rand_vec(&mut rng, g.rows() * n));
            let mut dx = Pair { g: gpu.alloc(g.input_len()), c: cpu.alloc(g.input_len()) };
            let mut dw = pair(gpu, cpu, &rand_vec(&mut rng, g.patch_len() * n)); // accumulates
            gpu.conv2d_backward(&g, n, &x.g, &w.g, ConvScale::Rows(&q.g), &dy.g, &mut dx.g, &mut dw.g, None);
            cpu.conv2d_backward(&g, n, &x.c, &w.c, ConvScale::Rows(&q.c), &dy.c, &mut dx.c, &mut dw.c, None);
            cmp(&format!("conv2d_rows_scaled dx {what}"), gpu, cpu, &dx, g.k * g.k * n)?;
            cmp(&format!("conv2d_rows_scaled dw {what}"), gpu, cpu, &dw, g.rows())?;
        }
        Ok(())
    });
}

// ---- patch transforms ---------------------------------------------------------------------------

#[test]
fn patch_scale_and_matmul() {
    let shape = (1usize..30, prop::sample::select(vec![1usize, 4, 9, 25, 49]), 1usize..=40, any::<u64>());
    check("patch_scale_and_matmul", 32, shape, |gpu, cpu, (rows, taps, c, seed)| {
        let mut rng = Rng::new(seed);
        let n = rows * taps * c;
        let cols = pair(gpu, cpu, &rand_vec(&mut rng, n));
        let ms = pair(gpu, cpu, &rand_vec(&mut rng, rows * taps));
        let mm = pair(gpu, cpu, &rand_vec(&mut rng, rows * taps * taps));
        let dout = pair(gpu, cpu, &rand_vec(&mut rng, n));
        let mut out = Pair { g: gpu.alloc(n), c: cpu.alloc(n) };
        gpu.patch_scale(&Patch { rows, taps, c }, &cols.g, &ms.g, &mut out.g);
        cpu.patch_scale(&Patch { rows, taps, c }, &cols.c, &ms.c, &mut out.c);
        cmp("patch_scale", gpu, cpu, &out, 1)?;
        let mut dc = Pair { g: gpu.alloc(n), c: cpu.alloc(n) };
        let mut dm = Pair { g: gpu.alloc(rows * taps), c: cpu.alloc(rows * taps) };
        gpu.patch_scale_backward(&Patch { rows, taps, c }, &cols.g, &ms.g, &dout.g, &mut dc.g, &mut dm.g);
        cpu.patch_scale_backward(&Patch { rows, taps, c }, &cols.c, &ms.c, &dout.c, &mut dc.c, &mut dm.c);
        cmp("patch_scale_backward dcols", gpu, cpu, &dc, 1)?;
        cmp("patch_scale_backward dm", gpu, cpu, &dm, c)?;
        gpu.patch_matmul(&Patch { rows, taps, c }, &cols.g, &mm.g, &mut out.g);
        cpu.patch_matmul(&Patch { rows, taps, c }, &cols.c, &mm.c, &mut out.c);
        cmp("patch_matmul", gpu, cpu, &out, taps)?;
        let mut dmm = Pair { g: gpu.alloc(rows * taps * taps), c: cpu.alloc(rows * taps * taps) };
        gpu.patch_matmul_backward(&Patch { rows, taps, c }, &cols.g, &mm.g, &dout.g, &mut dc.g, &mut dmm.g);
        cpu.patch_matmul_backward(&Patch { rows, taps, c }, &cols.c, &mm.c, &dout.c, &mut dc.c, &mut dmm.c);
        cmp("patch_matmul_backward dcols", gpu, cpu, &dc, taps)?;
        cmp("patch_matmul_backward dm", gpu, cpu, &dmm, c)?;
        Ok(())
    });
}

// ---- window norm --------------------------------------------------------------------------------

#[test]
fn window_norm_and_backward() {
    check("window_norm_and_backward", 48, (window(), any::<u64>()), |gpu, cpu, (g, seed)| {
        let mut rng = Rng::new(seed);
        let x = pair(gpu, cpu, &rand_vec(&mut rng, g.input_len()));
        let mut n = Pair { g: gpu.alloc(g.rows()), c: cpu.alloc(g.rows()) };
        gpu.window_norm(&g, &x.g, 1e-4, &mut n.g);
        cpu.window_norm(&g, &x.c, 1e-4, &mut n.c);
        cmp(&format!("window_norm {g:?}"), gpu, cpu, &n, g.patch_len())?;
        // backward from the CPU's norms on both, so only the backward is compared
        let nv = cpu.download(&n.c);
        let nn = pair(gpu, cpu, &nv);
        let dn = pair(gpu, cpu, &rand_vec(&mut rng, g.rows()));
        let mut dx = pair(gpu, cpu, &rand_vec(&mut rng, g.input_len())); // accumulates
        gpu.window_norm_backward(&g, &x.g, &nn.g, &dn.g, &mut dx.g);
        cpu.window_norm_backward(&g, &x.c, &nn.c, &dn.c, &mut dx.c);
        cmp(&format!("window_norm_backward {g:?}"), gpu, cpu, &dx, g.k * g.k)?;
        Ok(())
    });
}

// ---- batch norm ---------------------------------------------------------------------------------

#[test]
fn batch_norm_train_eval_backward() {
    let shape = (1usize..700, 1usize..=40, prop::sample::select(vec![1e-5f32, 1e-3]), any::<u64>());
    check("batch_norm_train_eval_backward", 32, shape, |gpu, cpu, (rows, c, eps, seed)| {
        let mut rng = Rng::new(seed);
        let d = BatchNormDims { rows, c, eps, relu: false };
        // an offset and a spread per channel, so the two-pass statistics matter
        let off = rand_range(&mut rng, c, -3.0, 3.0);
        let x: Vec<f32> = (0..rows * c).map(|i| off[i % c] + rng.normal() * (1.0 + (i % c) as f32)).collect();
        let x = pair(gpu, cpu, &x);
        let gamma = pair(gpu, cpu, &rand_range(&mut rng, c, 0.5, 1.5));
        let beta = pair(gpu, cpu, &rand_vec(&mut rng, c));
        let mut y = Pair { g: gpu.alloc(rows * c), c: cpu.alloc(rows * c) };
        let mut mean = Pair { g: gpu.alloc(c), c: cpu.alloc(c) };
        let mut var = Pair { g: gpu.alloc(c), c: cpu.alloc(c) };
        gpu.batch_norm_train(&d, &x.g, &gamma.g, &beta.g, &mut y.g, &mut mean.g, &mut var.g);
        cpu.batch_norm_train(&d, &x.c, &gamma.c, &beta.c, &mut y.c, &mut mean.c, &mut var.c);
        cmp("batch_norm_train mean", gpu, cpu, &mean, 1)?;
        cmp("batch_norm_train var", gpu, cpu, &var, 1)?;
        cmp("batch_norm_train y", gpu, cpu, &y, 1)?;
        // eval and backward from the CPU's statistics on both
        let (mv, vv) = (cpu.download(&mean.c), cpu.download(&var.c));
        let (mean, var) = (pair(gpu, cpu, &mv), pair(gpu, cpu, &vv));
        gpu.batch_norm_eval(&d, &x.g, &gamma.g, &beta.g, &mean.g, &var.g, &mut y.g);
        cpu.batch_norm_eval(&d, &x.c, &gamma.c, &beta.c, &mean.c, &var.c, &mut y.c);
        cmp("batch_norm_eval", gpu, cpu, &y, 1)?;
        let dy = pair(gpu, cpu, &rand_vec(&mut rng, rows * c));
        let mut dx = Pair { g: gpu.alloc(rows * c), c: cpu.alloc(rows * c) };
        let mut dgamma = pair(gpu, cpu, &rand_vec(&mut rng, c)); // accumulates
        let mut dbeta = pair(gpu, cpu, &rand_vec(&mut rng, c)); // accumulates
        gpu.batch_norm_backward(
            &d,
            &x.g,
            &gamma.g,
            &beta.g,
            &mean.g,
            &var.g,
            None,
            &dy.g,
            &mut dx.g,
            &mut dgamma.g,
            &mut dbeta.g,
        );
        cpu.batch_norm_backward(
            &d,
            &x.c,
            &gamma.c,
            &beta.c,
            &mean.c,
            &var.c,
            None,
            &dy.c,
            &mut dx.c,
            &mut dgamma.c,
            &mut dbeta.c,
        );
        cmp("batch_norm_backward dgamma", gpu, cpu, &dgamma, rows)?;
        cmp("batch_norm_backward dbeta", gpu, cpu, &dbeta, rows)?;
        // dx subtracts means of size |dy|: compare against the scale of dy
        close("batch_norm_backward dx", &gpu.download(&dx.g), &cpu.download(&dx.c), 1e-4, 1e-4)?;
        // fused with ReLU (fused on the CPU, composed on CUDA)
        gpu.batch_norm_eval(&d.with_relu(), &x.g, &gamma.g, &beta.g, &mean.g, &var.g, &mut y.g);
        cpu.batch_norm_eval(&d.with_relu(), &x.c, &gamma.c, &beta.c, &mean.c, &var.c, &mut y.c);
        cmp("batch_norm_relu_eval", gpu, cpu, &y, 1)?;
        let (mut m2, mut v2) = (Pair { g: gpu.alloc(c), c: cpu.alloc(c) }, Pair { g: gpu.alloc(c), c: cpu.alloc(c) });
        gpu.batch_norm_train(&d.with_relu(), &x.g, &gamma.g, &beta.g, &mut y.g, &mut m2.g, &mut v2.g);
        cpu.batch_norm_train(&d.with_relu(), &x.c, &gamma.c, &beta.c, &mut y.c, &mut m2.c, &mut v2.c);
        cmp("batch_norm_relu_train y", gpu, cpu, &y, 1)?;
        // the backward from the CPU's output on both (the ReLU mask must agree)
        let y = pair(gpu, cpu, &cpu.download(&y.c));
        gpu.batch_norm_backward(
            &d.with_relu(),
            &x.g,
            &gamma.g,
            &beta.g,
            &mean.g,
            &var.g,
            Some(&y.g),
            &dy.g,
            &mut dx.g,
            &mut dgamma.g,
            &mut dbeta.g,
        );
        cpu.batch_norm_backward(
            &d.with_relu(),
            &x.c,
            &gamma.c,
            &beta.c,
            &mean.c,
            &var.c,
            Some(&y.c),
            &dy.c,
            &mut dx.c,
            &mut dgamma.c,
            &mut dbeta.c,
        );
        cmp("batch_norm_relu_backward dgamma", gpu, cpu, &dgamma, rows)?;
        cmp("batch_norm_relu_backward dbeta", gpu, cpu, &dbeta, rows)?;
        close("batch_norm_relu_backward dx", &gpu.download(&dx.g), &cpu.download(&dx.c), 1e-4, 1e-4)?;
        Ok(())
    });
}

// ---- activations, pooling, softmax --------------------------------------------------------------

#[test]
fn relu_and_backward() {
    check("relu_and_backward", 16, (0usize..3000, any::<u64>()), |gpu, cpu, (n, seed)| {
        let mut rng = Rng::new(seed);
        let mut v = rand_vec(&mut rng, n);
        if n > 2 {
            v[0] = 0.0;
            v[1] = -0.0;
        }
        let x = pair(gpu, cpu, &v);
        let mut y = Pair { g: gpu.alloc(n), c: cpu.alloc(n) };
        gpu.relu(&x.g, &mut y.g);
        cpu.relu(&x.c, &mut y.c);
        close("relu", &gpu.download(&y.g), &cpu.download(&y.c), 0.0, 0.0)?;
        let dy = pair(gpu, cpu, &rand_vec(&mut rng, n));
        let mut dx = Pair { g: gpu.alloc(n), c: cpu.alloc(n) };
        gpu.relu_backward(&y.g, &dy.g, &mut dx.g);
        cpu.relu_backward(&y.c, &dy.c, &mut dx.c);
        close("relu_backward", &gpu.download(&dx.g), &cpu.download(&dx.c), 0.0, 0.0)
    });
}

#[test]
fn max_pool_with_ties() {
    let shape = (window(), any::<bool>(), any::<u64>());
    check("max_pool_with_ties", 64, shape, |gpu, cpu, (g, ties, seed)| {
        let mut rng = Rng::new(seed);
        // few distinct values: many windows hold their maximum more than once
        let v: Vec<f32> = if ties {
            (0..g.input_len()).map(|_| (rng.below(4) as f32) - 2.0).collect()
        } else {
            rand_vec(&mut rng, g.input_len())
        };
        let x = pair(gpu, cpu, &v);
        let n = g.rows() * g.c;
        let mut y = Pair { g: gpu.alloc(n), c: cpu.alloc(n) };
        gpu.max_pool(&g, &x.g, &mut y.g);
        cpu.max_pool(&g, &x.c, &mut y.c);
        close(&format!("max_pool {g:?}"), &gpu.download(&y.g), &cpu.download(&y.c), 0.0, 0.0)?;
        let dy = pair(gpu, cpu, &rand_vec(&mut rng, n));
        let mut dx = Pair { g: gpu.alloc(g.input_len()), c: cpu.alloc(g.input_len()) };
        gpu.max_pool_backward(&g, &x.g, &y.c_on(gpu, cpu), &dy.g, &mut dx.g);
        cpu.max_pool_backward(&g, &x.c, &y.c, &dy.c, &mut dx.c);
        // same additions in the same order: equal up to the last bit
        close(&format!("max_pool_backward {g:?}"), &gpu.download(&dx.g), &cpu.download(&dx.c), 0.0, 0.0)
    });
}

impl Pair {
    /// The CPU value uploaded to the GPU (to feed both backwards the same forward output).
    fn c_on(&self, gpu: &Cuda, cpu: &Cpu) -> nsl_cuda::CudaBuf {
        gpu.upload(&cpu.download(&self.c))
    }
}

#[test]
fn softmax_rows_and_backward() {
    check("softmax_rows_and_backward", 32, (1usize..20, 1usize..150, any::<u64>()), |gpu, cpu, (rows, cols, seed)| {
        let mut rng = Rng::new(seed);
        let x = pair(gpu, cpu, &rand_range(&mut rng, rows * cols, -8.0, 8.0));
        let mut y = Pair { g: gpu.alloc(rows * cols), c: cpu.alloc(rows * cols) };
        gpu.softmax_rows(&x.g, rows, cols, &mut y.g);
        cpu.softmax_rows(&x.c, rows, cols, &mut y.c);
        close("softmax_rows", &gpu.download(&y.g), &cpu.download(&y.c), 1e-4, 1e-7)?;
        let yc = pair(gpu, cpu, &cpu.download(&y.c));
        let dy = pair(gpu, cpu, &rand_vec(&mut rng, rows * cols));
        let mut dx = Pair { g: gpu.alloc(rows * cols), c: cpu.alloc(rows * cols) };
        gpu.softmax_rows_backward(&yc.g, &dy.g, rows, cols, &mut dx.g);
        cpu.softmax_rows_backward(&yc.c, &dy.c, rows, cols, &mut dx.c);
        close("softmax_rows_backward", &gpu.download(&dx.g), &cpu.download(&dx.c), 1e-4, 1e-6)
    });
}

// ---- loss ---------------------------------------------------------------------------------------

#[test]
fn cross_entropy_loss_and_gradient() {
    let shape = (
        1usize..50,
        1usize..=120,
        prop::sample::select(vec![0.0f32, 0.01, 0.1]),
        prop::sample::select(vec![0.0f32, 1e-4]),
        any::<u64>(),
    );
    check("cross_entropy_loss_and_gradient", 32, shape, |gpu, cpu, (batch, classes, smoothing, floor, seed)| {
        let mut rng = Rng::new(seed);
        let d = CrossEntropy { batch, classes, smoothing, floor };
        let z = pair(gpu, cpu, &rand_range(&mut rng, batch * classes, -6.0, 6.0));
        let labels: Vec<u32> = (0..batch).map(|_| rng.below(classes) as u32).collect();
        let mut dz = Pair { g: gpu.alloc(batch * classes), c: cpu.alloc(batch * classes) };
        let lg = gpu.cross_entropy(&d, &z.g, &labels, &mut dz.g);
        let lc = cpu.cross_entropy(&d, &z.c, &labels, &mut dz.c);
        close("cross_entropy loss", &[lg], &[lc], 1e-5, 1e-6)?;
        close("cross_entropy dlogits", &gpu.download(&dz.g), &cpu.download(&dz.c), 1e-5, 1e-8)
    });
}

// ---- optimisers ---------------------------------------------------------------------------------

#[test]
fn sgd_and_adam_steps() {
    check(
        "sgd_and_adam_steps",
        24,
        (0usize..2000, any::<bool>(), 1u64..2000, any::<u64>()),
        |gpu, cpu, (n, first, t, seed)| {
            let mut rng = Rng::new(seed);
            let g = pair(gpu, cpu, &rand_vec(&mut rng, n));
            let mut w = pair(gpu, cpu, &rand_vec(&mut rng, n));
            let mut v = pair(gpu, cpu, &rand_vec(&mut rng, n));
            let s = SgdStep { lr: 0.1, momentum: 0.9, dampening: 0.1, weight_decay: 5e-4, first_step: first };
            gpu.sgd_step(&s, &mut w.g, &g.g, &mut v.g);
            cpu.sgd_step(&s, &mut w.c, &g.c, &mut v.c);
            cmp("sgd w", gpu, cpu, &w, 1)?;
            cmp("sgd v", gpu, cpu, &v, 1)?;
            let mut m = pair(gpu, cpu, &rand_vec(&mut rng, n));
            let mut v2 = pair(gpu, cpu, &rand_range(&mut rng, n, 0.0, 1.0));
            let a = AdamStep { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-4, t };
            gpu.adam_step(&a, &mut w.g, &g.g, &mut m.g, &mut v2.g);
            cpu.adam_step(&a, &mut w.c, &g.c, &mut m.c, &mut v2.c);
            cmp("adam w", gpu, cpu, &w, 1)?;
            cmp("adam m", gpu, cpu, &m, 1)?;
            cmp("adam v", gpu, cpu, &v2, 1)?;
            Ok(())
        },
    );
}

// ---- determinism --------------------------------------------------------------------------------

#[test]
fn reductions_are_bitwise_repeatable() {
    once("reductions_are_bitwise_repeatable", |gpu, _| {
        let mut rng = Rng::new(5);
        let (rows, c) = (1500, 33);
        let x = gpu.upload(&rand_vec(&mut rng, rows * c));
        let dy = gpu.upload(&rand_vec(&mut rng, rows * c));
        let gamma = gpu.upload(&rand_range(&mut rng, c, 0.5, 1.5));
        let beta = gpu.upload(&rand_vec(&mut rng, c));
        let d = BatchNormDims { rows, c, eps: 1e-5, relu: false };
        let run = || {
            let mut y = gpu.alloc(rows * c);
            let mut mean = gpu.alloc(c);
            let mut var = gpu.alloc(c);
            gpu.batch_norm_train(&d, &x, &gamma, &beta, &mut y, &mut mean, &mut var);
            let mut dx = gpu.alloc(rows * c);
            let mut dg = gpu.zeros(c);
            let mut db = gpu.zeros(c);
            gpu.batch_norm_backward(&d, &x, &gamma, &beta, &mean, &var, None, &dy, &mut dx, &mut dg, &mut db);
            let mut dc = gpu.alloc(c);
            gpu.dot_cols(&x, &dy, rows, c, &mut dc);
            let g = Window::same(2, 9, 7, 3, 3, 2);
            let cols = gpu.upload(&rand_vec(&mut Rng::new(1), g.rows() * g.patch_len()));
            let mut dxi = gpu.alloc(g.input_len());
            gpu.col2im(&g, &cols, &mut dxi);
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            (
                bits(gpu.download(&y)),
                bits(gpu.download(&dx)),
                bits(gpu.download(&dg)),
                bits(gpu.download(&dc)),
                bits(gpu.download(&dxi)),
                gpu.dot(&x, &dy).to_bits(),
            )
        };
        assert_eq!(run(), run());
    });
}

// ---- similarities: forward and every gradient, CPU vs CUDA -------------------------------------

const SHAPE: (usize, usize, usize) = (2, 5, 4); // batch, h, w: odd, non-square
const CH: (usize, usize, usize) = (3, 4, 3); // c_in, c_out, k

/// Random θ so the comparison is not taken at a special point such as the identity.
fn perturbed<B: Backend, P: SimilarityMatrix + 'static>(be: &B, matrix: P, seed: u64) -> Box<dyn Similarity<B>> {
    let mut s = Static::new(be, "sim", matrix, 9);
    let theta = s.theta.value.to_vec(be);
    let mut rng = Rng::new(seed);
    let noisy: Vec<f32> = theta.iter().map(|t| t + 0.3 * rng.normal()).collect();
    s.theta.value = Tensor::from_vec(be, &[noisy.len()], &noisy);
    Box::new(s)
}

fn test_predictor<B: Backend>(be: &B, norm: PredictorNorm, kind: DynamicKind) -> Box<dyn Similarity<B>> {
    let mut rng = Rng::new(11);
    let cfg = PredictorConfig { hidden: 5, norm, init_scales: (1.0, 1.0), ..PredictorConfig::reference(kind, 9) };
    Box::new(Dynamic::new(kind, Box::new(predictor::build(be, &mut rng, "pred", CH.0, &cfg))))
}

/// Every similarity of the paper (as in nsl-core's gradient tests), by index; 12 and 13 are
/// self-attention with and without the sphere normalisation.
const SIMILARITIES: usize = 14;

/// A similarity with the input shape `(batch, h, w)` and conv shape `(c_in, c_out, k)` it is tested at.
type SimCase<B> = (Box<dyn Similarity<B>>, (usize, usize, usize), (usize, usize, usize));

fn similarity<B: Backend>(be: &B, i: usize) -> SimCase<B> {
    match i {
        0 => (InnerProduct::boxed(), SHAPE, CH),
        1 => (perturbed(be, Diagonal::new(DiagonalInit::CodeEye), 1), SHAPE, CH),
        2 => (perturbed(be, Unconstrained::default(), 2), SHAPE, CH),
        3 => (perturbed(be, CholeskyPsd::default(), 3), SHAPE, CH),
        4 => (Box::new(Sphere::<B>::x_normalized()), SHAPE, CH),
        5 => (Box::new(Sphere::<B>::cosine()), SHAPE, CH),
        6 => (test_predictor(be, PredictorNorm::XNormalized, DynamicKind::Diagonal), SHAPE, CH),
        7 => (test_predictor(be, PredictorNorm::FullSphere, DynamicKind::Diagonal), SHAPE, CH),
        8 => (test_predictor(be, PredictorNorm::Plain, DynamicKind::Diagonal), SHAPE, CH),
        9 => (test_predictor(be, PredictorNorm::XNormalized, DynamicKind::Unconstrained), SHAPE, CH),
        10 => {
            let mut rng = Rng::new(5);
            let mut ks = KernelShape::code_default(be, "ks", 9, perturbed(be, Diagonal::new(DiagonalInit::Ones), 4));
            let d_r: Vec<f32> = (0..9).map(|i| if i % 4 == 1 { 0.0 } else { 1.0 + rng.uniform() }).collect();
            ks.d_r.value = Tensor::from_vec(be, &[9], &d_r);
            (Box::new(ks), SHAPE, CH)
        }
        11 => {
            let mut g = GlobalDiagonal::new(be, "g", SHAPE.1, SHAPE.2);
            let mut rng = Rng::new(8);
            let mask: Vec<f32> = (0..SHAPE.1 * SHAPE.2).map(|_| 1.0 + 0.5 * rng.normal()).collect();
            g.mask.value = Tensor::from_vec(be, &[mask.len()], &mask);
            (Box::new(g), SHAPE, CH)
        }
        _ => {
            let mut rng = Rng::new(9);
            let mut att = SelfAttention::new(be, &mut rng, "att", 16, i == 12, 0.0, 0.0);
            att.gamma.value = Tensor::from_vec(be, &[1], &[0.7]);
            (Box::new(att), (2, 3, 3), (16, 16, 1))
        }
    }
}

/// Output, input gradient and every parameter gradient (name, value, grad) of one training step.
struct Step {
    name: String,
    y: Vec<f32>,
    y_eval: Vec<f32>,
    dx: Vec<f32>,
    params: Vec<(String, Vec<f32>, Vec<f32>)>,
}

fn conv_step<B: Backend>(be: &B, i: usize) -> Step {
    let (sim, (batch, h, w), (c_in, c_out, k)) = similarity(be, i);
    let mut rng = Rng::new(0x5eed ^ i as u64);
    let mut conv = NslConv::new(be, &mut rng, "conv", (c_in, c_out), (k, 1, Padding::Same), 1.0, 0.0, sim);
    let x = Tensor::from_vec(be, &[batch, h, w, c_in], &rng.normal_vec(batch * h * w * c_in, 1.0));
    let y = conv.forward(be, &x, Mode::TRAIN);
    let dy = Tensor::from_vec(be, y.shape(), &rng.normal_vec(y.numel(), 1.0));
    let dx = conv.backward(be, &dy).to_vec(be);
    let mut params = Vec::new();
    conv.visit_params(&mut |p| {
        let grad = if p.trainable { p.grad.to_vec(be) } else { Vec::new() };
        params.push((p.name.clone(), p.value.to_vec(be), grad));
    });
    let y_eval = conv.forward(be, &x, Mode::EVAL).to_vec(be);
    Step { name: conv.name(), y: y.to_vec(be), y_eval, dx, params }
}

#[test]
fn similarities_forward_and_gradients_match_cpu() {
    once("similarities_forward_and_gradients_match_cpu", |gpu, cpu| {
        for i in 0..SIMILARITIES {
            let (g, c) = (conv_step(gpu, i), conv_step(cpu, i));
            assert_eq!(g.name, c.name);
            let what = |t: &str| format!("{}: {t}", c.name);
            let (rtol, atol) = (1e-3, 1e-4);
            close(&what("forward"), &g.y, &c.y, rtol, atol).unwrap();
            close(&what("forward (eval)"), &g.y_eval, &c.y_eval, rtol, atol).unwrap();
            close(&what("dx"), &g.dx, &c.dx, rtol, atol).unwrap();
            assert_eq!(g.params.len(), c.params.len(), "{}", what("parameter count"));
            for ((gn, gv, gg), (cn, cv, cg)) in g.params.iter().zip(&c.params) {
                assert_eq!(gn, cn);
                close(&what(&format!("{cn} (value)")), gv, cv, rtol, atol).unwrap();
                close(&what(&format!("{cn} (grad)")), gg, cg, rtol, atol).unwrap();
            }
        }
    });
}

#[test]
fn similarities_pass_the_gradient_check_on_cuda() {
    once("similarities_pass_the_gradient_check_on_cuda", |gpu, _| {
        for i in 0..SIMILARITIES {
            let (sim, shape, ch) = similarity(gpu, i);
            // D_r's gradient is straight-through by design (see nsl-core's gradient tests).
            let cfg = GradCheck { skip: vec![nsl_core::Role::ShapeMask], ..GradCheck::default() };
            check_similarity(gpu, sim, shape, ch, &cfg);
        }
    });
}

#[test]
fn strided_and_valid_convolutions_match_cpu() {
    once("strided_and_valid_convolutions_match_cpu", |gpu, cpu| {
        for (k, stride, pad) in
            [(3, 2, Padding::Same), (4, 1, Padding::Valid), (7, 2, Padding::Same), (1, 1, Padding::Same)]
        {
            let run = |be_gpu: Option<&Cuda>| {
                let mut rng = Rng::new(3);
                let x = rng.normal_vec(2 * 7 * 6 * 2, 1.0);
                let dyv = rng.normal_vec(512, 1.0);
                match be_gpu {
                    Some(be) => conv_run(be, &mut rng, k, stride, pad, &x, &dyv),
                    None => conv_run(cpu, &mut rng, k, stride, pad, &x, &dyv),
                }
            };
            let (g, c) = (run(Some(gpu)), run(None));
            for (t, (a, b)) in ["y", "dx", "dw"].iter().zip(g.iter().zip(&c)) {
                close(&format!("k={k} s={stride} {pad:?}: {t}"), a, b, 1e-4, 1e-4).unwrap();
            }
        }
    });
}

fn conv_run<B: Backend>(
    be: &B,
    rng: &mut Rng,
    k: usize,
    s: usize,
    pad: Padding,
    x: &[f32],
    dyv: &[f32],
) -> [Vec<f32>; 3] {
    let mut conv = NslConv::new(be, rng, "c", (2, 3), (k, s, pad), 1.0, 0.0, InnerProduct::boxed());
    let x = Tensor::from_vec(be, &[2, 7, 6, 2], x);
    let y = conv.forward(be, &x, Mode::TRAIN);
    let dy = Tensor::from_vec(be, y.shape(), &dyv[..y.numel()]);
    let dx = conv.backward(be, &dy);
    [y.to_vec(be), dx.to_vec(be), conv.weight.grad.to_vec(be)]
}
