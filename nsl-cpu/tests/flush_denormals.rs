//! `Cpu::with_flush_denormals`: subnormal results become 0 on every thread that computes (the
//! calling thread for small ops, the pool's workers for large ones), exact otherwise, and the
//! thread count still does not change a bit. Each test runs on its own thread and builds its
//! own pool, so the mode cannot leak into other tests.

use nsl_core::{Backend, Gemm};
use nsl_cpu::{float_mode, Cpu};

/// 1e-19 · 1e-19 = 1e-38 < 2⁻¹²⁶ ≈ 1.18e-38: subnormal in f32.
const TINY: f32 = 1e-19;

/// `TINY · TINY` by `scale` over `len` values (small: the calling thread; large: the pool).
fn scaled_tiny(be: &Cpu, len: usize) -> Vec<f32> {
    let mut x = be.upload(&vec![TINY; len]);
    be.scale(TINY, &mut x);
    be.download(&x)
}

#[test]
fn small_and_large_ops_flush_or_keep_subnormals() {
    if !float_mode::SUPPORTED {
        eprintln!("skipped: this target cannot flush subnormals");
        return;
    }
    for len in [10, 200_000] {
        let exact = scaled_tiny(&Cpu::with_threads(2), len);
        assert!(exact.iter().all(|v| v.is_subnormal()), "len {len}: {:e}", exact[0]);

        let be = Cpu::with_threads(2).with_flush_denormals(true);
        assert!(be.flushes_denormals() && float_mode::flushes_denormals());
        assert!(scaled_tiny(&be, len).iter().all(|&v| v == 0.0), "len {len}");

        let be = be.with_flush_denormals(false);
        assert!(!be.flushes_denormals() && !float_mode::flushes_denormals());
        assert_eq!(scaled_tiny(&be, len), exact, "len {len}: switching back restores IEEE results");
    }
}

#[test]
fn flushed_gemm_is_identical_on_any_thread_count() {
    if !float_mode::SUPPORTED {
        eprintln!("skipped: this target cannot flush subnormals");
        return;
    }
    // Rows of A alternate in scale: their dot products with B are subnormal, then normal.
    let g = Gemm::new(300, 200, 64);
    let scale = |row: usize| if row.is_multiple_of(2) { 1e-24 } else { 1e-20 };
    let a: Vec<f32> = (0..300 * 64).map(|i| scale(i / 64) * (1.0 + (i % 97) as f32)).collect();
    let b: Vec<f32> = (0..64 * 200).map(|i| 1e-19 * (1.0 + (i % 89) as f32)).collect();
    let run = |threads, flush| {
        let be = Cpu::with_threads(threads).with_flush_denormals(flush);
        let (a, b, mut c) = (be.upload(&a), be.upload(&b), be.zeros(300 * 200));
        be.gemm(&g, &a, &b, &mut c);
        be.download(&c)
    };
    let exact = run(2, false);
    assert!(exact.iter().any(|v| v.is_subnormal()), "the exact product has subnormal entries");
    let one = run(1, true);
    assert!(one.iter().all(|v| !v.is_subnormal()), "a flushed product has none");
    assert!(one.iter().any(|&v| v > 0.0), "and keeps the normal entries");
    assert_eq!(one, run(3, true));
}

/// Checkpoints compare `numerics` to warn on a resume that will not give the same bits: the
/// flush setting is part of it, the thread count is not.
#[test]
fn numerics_name_the_flush_setting_but_not_the_thread_count() {
    let exact = Cpu::with_threads(1).numerics();
    assert_eq!(exact, Cpu::with_threads(3).numerics());
    assert!(exact.starts_with("cpu (") && !exact.contains("thread"), "{exact}");
    if float_mode::SUPPORTED {
        let flushed = Cpu::with_threads(2).with_flush_denormals(true).numerics();
        assert_eq!(flushed, format!("{}, subnormals flushed)", exact.trim_end_matches(')')));
    }
}
