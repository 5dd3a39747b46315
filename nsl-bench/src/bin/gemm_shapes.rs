//! Times the convolution GEMM shapes of CIFAR CNN-9 at batch 128 (forward `cols·w`, weight
//! gradient `colsᵀ·dy`, input gradient `dy·wᵀ`) on the CPU backend and prints GFLOP/s
//! (2·m·n·k per product, best of `--reps`, default 5).
//!
//! Each cell shows the wall-clock GFLOP/s and, in brackets, GFLOP per CPU-second summed over
//! all threads of the process (`CLOCK_PROCESS_CPUTIME_ID`, Linux only): on a machine
//! shared with other jobs the wall time of a multi-threaded call suffers when one of its
//! threads is descheduled, the CPU time much less. `NSL_CPU_GEMM=matrixmultiply` turns the
//! streaming kernels off (the "before" numbers).
//!
//! `cargo run --release -p nsl-bench --bin gemm_shapes -- [--threads 2] [--reps 5] [--filter s]
//! [--shapes rows,K,N;rows,K,N...] [--conv BATCH] [--net BATCH]` (`--shapes` replaces the CNN-9
//! list; `--conv` also times `Backend::conv2d` forward and backward for the CNN-9 layers: as
//! the backend picks (Winograd where it applies), direct, and with a DNS patch scale (skipped
//! with `--no-scaled`; `--conv-only TEXT` keeps the layers whose label contains TEXT); `--net` also times CNN-9 training steps, plain and with
//! dynamic DNS, at that batch; `--net-only plain` or `--net-only "dynamic DNS"` times one;
//! `--norm BATCH` times batch norm (+ ReLU) forward and backward at the dynamic net's shapes).

use std::time::Instant;

use nsl_core::{Backend, BatchNormDims, ConvScale, Gemm, Rng, Window};
use nsl_cpu::Cpu;
use nsl_models::nets::{PredictorKind, SimilarityChoice};

/// (label, rows = batch·H·W, K = 9·C_in, N = C_out). Data tables, here and in `conv` below:
/// one shape per line, so `duplicates` pairs them by shape.
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("root 32x32 c3->32", 131072, 27, 32),
    ("s1 32x32 32->32", 131072, 288, 32),
    ("s2 16x16 64->64", 32768, 576, 64),
    ("s3 8x8 128->128", 8192, 1152, 128),
    ("pred 32x32 64->9", 131072, 576, 9),
    ("w.25 s1 8->8", 131072, 72, 8),
    ("w.25 s2 16->16", 32768, 144, 16),
    ("w.25 s3 32->32", 8192, 288, 32),
];

/// CPU time of all threads of this process in seconds (`CLOCK_PROCESS_CPUTIME_ID`, which
/// includes the running time of threads still on a CPU), where available.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn cpu_seconds() -> Option<f64> {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: glibc/musl `clock_gettime` with a valid clock id and a pointer to a timespec
    // (two 64-bit fields on 64-bit Linux).
    let rc = unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    (rc == 0).then_some(t.sec as f64 + t.nsec as f64 * 1e-9)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn cpu_seconds() -> Option<f64> {
    None
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = arg(&args, "--threads").map_or(2, |s| s.parse().expect("--threads N"));
    let reps: usize = arg(&args, "--reps").map_or(5, |s| s.parse().expect("--reps N"));
    let filter = arg(&args, "--filter").unwrap_or_default();
    let be = Cpu::with_threads(threads);
    println!("{} — best of {reps}, GFLOP/s = 2·m·n·k / time", be.name());
    println!(
        "{:<20} {:>7} {:>5} {:>4} | {:>20} {:>20} {:>20}",
        "layer", "rows", "K", "N", "fwd cols·w", "dW colsᵀ·dy", "dcols dy·wᵀ"
    );
    let mut rng = Rng::new(1);
    let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect() };
    let mut total = [0f64; 3];
    let custom: Vec<(String, usize, usize, usize)> = arg(&args, "--shapes")
        .map(|list| {
            list.split(';')
                .map(|s| {
                    let v: Vec<usize> =
                        s.split(',').map(|x| x.trim().parse().expect("--shapes rows,K,N;...")).collect();
                    assert_eq!(v.len(), 3, "--shapes rows,K,N;...");
                    (format!("{}x{}x{}", v[0], v[1], v[2]), v[0], v[1], v[2])
                })
                .collect()
        })
        .unwrap_or_else(|| SHAPES.iter().map(|&(l, r, k, n)| (l.to_string(), r, k, n)).collect());
    for (label, rows, k, n) in custom.into_iter().filter(|s| s.0.contains(&filter)) {
        let cols = be.upload(&rand(rows * k));
        let w = be.upload(&rand(k * n));
        let dy = be.upload(&rand(rows * n));
        let mut y = be.zeros(rows * n);
        let mut dw = be.zeros(k * n);
        let mut dcols = be.zeros(rows * k);
        let flops = 2.0 * (rows * k * n) as f64;
        // (best wall seconds, best CPU seconds) over `reps` calls
        let time = |f: &mut dyn FnMut()| -> (f64, f64) {
            f(); // warm-up (page faults, pool start)
            let (mut wall, mut cpu) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..reps {
                let c0 = cpu_seconds();
                let t = Instant::now();
                f();
                wall = wall.min(t.elapsed().as_secs_f64());
                if let (Some(c0), Some(c1)) = (c0, cpu_seconds()) {
                    cpu = cpu.min(c1 - c0);
                }
            }
            (wall, cpu)
        };
        let t = [
            time(&mut || be.gemm(&Gemm::new(rows, n, k), &cols, &w, &mut y)),
            time(&mut || be.gemm(&Gemm::new(k, n, rows).ta().accumulate(), &cols, &dy, &mut dw)),
            time(&mut || be.gemm(&Gemm::new(rows, k, n).tb(), &dy, &w, &mut dcols)),
        ];
        for (tot, t) in total.iter_mut().zip(&t) {
            *tot += t.0;
        }
        let cell = |(wall, cpu): (f64, f64)| format!("{:6.1} [{:5.1}/cpu-s]", flops / wall / 1e9, flops / cpu / 1e9);
        println!("{label:<20} {rows:>7} {k:>5} {n:>4} | {} {} {}", cell(t[0]), cell(t[1]), cell(t[2]));
    }
    println!("total time: fwd {:.2} ms, dW {:.2} ms, dcols {:.2} ms", total[0] * 1e3, total[1] * 1e3, total[2] * 1e3);
    if let Some(batch) = arg(&args, "--conv").map(|s| s.parse::<usize>().expect("--conv BATCH")) {
        // "auto" is what the backend picks (Winograd F(4×4, 3×3) where `Cpu::uses_winograd`),
        // "direct" the same call with Winograd off, "s" with a DNS patch scale (always direct).
        let direct = be.clone().with_winograd(false);
        let skip_scaled = args.iter().any(|a| a == "--no-scaled");
        println!(
            "{:<24} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8}  (GFLOP/s of the direct FLOPs; bwd counts 4·rows·K·N)",
            "conv2d", "fwd auto", "direct", "fwd s", "bwd auto", "direct", "bwd s"
        );
        // The root and the dynamic-DNS predictors' convolutions (m1: c_in → 64, m2: 64 → 9) at
        // each stage's map size.
        let layers = [
            ("root 3->32 @32", 3, 32, 32),
            ("pred m1 32->64 @32", 32, 64, 32),
            ("pred m2 64->9 @32", 64, 9, 32),
            ("pred m1 64->64 @16", 64, 64, 16),
            ("pred m2 64->9 @16", 64, 9, 16),
            ("pred m1 128->64 @8", 128, 64, 8),
            ("pred m2 64->9 @8", 64, 9, 8),
        ];
        let only = arg(&args, "--conv-only").unwrap_or_default();
        for (label, c_in, n, side) in
            layers.into_iter().chain(nsl_bench::cnn9_layers()).filter(|(label, ..)| label.contains(only.as_str()))
        {
            let g = Window::same(batch, side, side, c_in, 3, 1);
            let x = be.upload(&rand(g.input_len()));
            let w = be.upload(&rand(g.patch_len() * n));
            let s = be.upload(&rand(g.rows() * g.taps()));
            let dy = be.upload(&rand(g.rows() * n));
            let (mut y, mut dx, mut dw, mut ds) =
                (be.zeros(g.rows() * n), be.zeros(g.input_len()), be.zeros(g.patch_len() * n), be.zeros(g.rows() * 9));
            let flops = 2.0 * (g.rows() * g.patch_len() * n) as f64;
            let best = |f: &mut dyn FnMut()| nsl_bench::best_of(reps, f);
            let scaled = |f: &mut dyn FnMut()| if skip_scaled { f64::NAN } else { best(f) };
            let t = [
                best(&mut || be.conv2d(&g, n, &x, &w, ConvScale::None, &mut y)),
                best(&mut || direct.conv2d(&g, n, &x, &w, ConvScale::None, &mut y)),
                scaled(&mut || be.conv2d(&g, n, &x, &w, ConvScale::Taps(&s), &mut y)),
                best(&mut || be.conv2d_backward(&g, n, &x, &w, ConvScale::None, &dy, &mut dx, &mut dw, None)) / 2.0,
                best(&mut || direct.conv2d_backward(&g, n, &x, &w, ConvScale::None, &dy, &mut dx, &mut dw, None)) / 2.0,
                scaled(&mut || {
                    be.conv2d_backward(&g, n, &x, &w, ConvScale::Taps(&s), &dy, &mut dx, &mut dw, Some(&mut ds))
                }) / 2.0,
            ];
            let [a, b, c, d, e, f] = t.map(|t| flops / t / 1e9);
            println!("{label:<24} | {a:>8.1} {b:>8.1} {c:>8.1} | {d:>8.1} {e:>8.1} {f:>8.1}");
        }
    }
    if let Some(batch) = arg(&args, "--norm").map(|s| s.parse::<usize>().expect("--norm BATCH")) {
        // The memory-bound passes of a dynamic-DNS step at its 32×32 shapes: batch norm + ReLU
        // (forward, backward) of the predictor's hidden map (64 channels), of its 9-channel
        // output and of the 32-channel backbone. GB/s counts each array read or written once.
        println!("{:<24} | {:>14} {:>14}  (GB/s: bytes of the arrays read and written once)", "norm", "fwd", "bwd");
        for (label, c) in [("bn+relu c=64 @32", 64), ("bn+relu c=32 @32", 32), ("bn c=9 @32", 9)] {
            let rows = batch * 32 * 32;
            let d = BatchNormDims { rows, c, eps: 1e-3, relu: false };
            let (x, dy) = (be.upload(&rand(rows * c)), be.upload(&rand(rows * c)));
            let (gamma, beta) = (be.upload(&rand(c)), be.upload(&rand(c)));
            let (mut y, mut dx) = (be.zeros(rows * c), be.zeros(rows * c));
            let (mut mean, mut var, mut dg, mut db) = (be.zeros(c), be.zeros(c), be.zeros(c), be.zeros(c));
            let relu = c != 9;
            let fwd = nsl_bench::best_of(reps, &mut || {
                if relu {
                    be.batch_norm_train(&d.with_relu(), &x, &gamma, &beta, &mut y, &mut mean, &mut var)
                } else {
                    be.batch_norm_train(&d, &x, &gamma, &beta, &mut y, &mut mean, &mut var)
                }
            });
            let bwd = nsl_bench::best_of(reps, &mut || {
                if relu {
                    be.batch_norm_backward(
                        &d.with_relu(),
                        &x,
                        &gamma,
                        &beta,
                        &mean,
                        &var,
                        Some(&y),
                        &dy,
                        &mut dx,
                        &mut dg,
                        &mut db,
                    )
                } else {
                    be.batch_norm_backward(&d, &x, &gamma, &beta, &mean, &var, None, &dy, &mut dx, &mut dg, &mut db)
                }
            });
            // forward: x read, y written; backward: x, dy (and y with the ReLU) read, dx written
            let bytes = (rows * c * 4) as f64;
            let (fb, bb) = (2.0 * bytes, (if relu { 4.0 } else { 3.0 }) * bytes);
            println!(
                "{label:<24} | {:>5.1} ms {:>5.1} | {:>5.1} ms {:>5.1}",
                fwd * 1e3,
                fb / fwd / 1e9,
                bwd * 1e3,
                bb / bwd / 1e9
            );
        }
    }
    if let Some(batch) = arg(&args, "--net").map(|s| s.parse::<usize>().expect("--net BATCH")) {
        let only = arg(&args, "--net-only").unwrap_or_default();
        for (label, sim) in
            [("plain", SimilarityChoice::Conv), ("dynamic DNS", SimilarityChoice::DynamicDns(PredictorKind::Sphere))]
                .into_iter()
                .filter(|(label, _)| only.is_empty() || *label == only)
        {
            let (train, _) = nsl_bench::network_step_seconds(&be, sim, false, batch, reps.min(3));
            println!(
                "CNN-9 {label} batch {batch}: train step {:.0} ms, {:.0} img/s",
                train * 1e3,
                batch as f64 / train
            );
        }
    }
    // Reference point: a large square product.
    if filter.is_empty() {
        let s = 2048;
        let (a, b) = (be.upload(&rand(s * s)), be.upload(&rand(s * s)));
        let mut c = be.zeros(s * s);
        let mut best = f64::INFINITY;
        for _ in 0..reps.max(3) {
            let t = Instant::now();
            be.gemm(&Gemm::new(s, s, s), &a, &b, &mut c);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("square {s}: {:.1} GFLOP/s", 2.0 * (s * s * s) as f64 / best / 1e9);
    }
}
