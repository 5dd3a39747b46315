//! Property tests that feed nonsense (issue 19): random and mutated files for every parser nsl
//! reads, random run configs and random `nsl` command lines. Every input must be accepted or
//! refused with a message; none may panic, and none may allocate more than [`CAP`] at once (a
//! header claiming 10¹² elements is an error, not an allocation: the capped allocator below
//! turns such an allocation into a test failure).
//!
//! Case counts: `NSL_FUZZ_CASES` (default 48 per parser, a third of that for training-backed
//! properties); `NSL_FUZZ_CASES=2000 cargo test --release --test fuzz_inputs` is the long run.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::OnceLock;

use clap::Parser;
use nsl_core::nn::Layer;
use nsl_core::Rng;
use nsl_cpu::Cpu;
use nsl_models::checkpoint;
use nsl_models::cli::{Cli, Command};
use nsl_models::data::cifar::{load_cifar, CifarFormat, CIFAR10};
use nsl_models::data::{decode, fashion_mnist, idx, mini_imagenet};
use nsl_models::nets::SimilarityChoice;
use nsl_models::train::{
    build_network, train, AugmentChoice, DatasetChoice, NetworkChoice, NormalizeChoice, OptimizerChoice, Resume,
    RunConfig, RunOptions,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

/// The largest single allocation a test may make.
const CAP: usize = 1 << 30;

struct Capped;

// SAFETY: every call is forwarded to the system allocator unchanged, except requests above
// CAP, which fail (null) as an out-of-memory allocator would.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

fn cases(divisor: u32) -> u32 {
    let base: u32 = std::env::var("NSL_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    (base / divisor).max(4)
}

/// A runner with a fixed seed (`NSL_FUZZ_SEED`, default 0), so a run is reproducible.
fn runner(cases: u32) -> TestRunner {
    let seed: u64 = std::env::var("NSL_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
    TestRunner::new_with_rng(RunnerConfig { cases, failure_persistence: None, ..RunnerConfig::default() }, rng)
}

/// `base` with up to 8 random byte edits (overwrite, truncate, insert, or a 4-byte big or
/// little-endian integer stamped somewhere, which is how headers lie).
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len().max(1);
    prop::collection::vec((0..4u8, 0..len, any::<u32>()), 0..8).prop_map(move |edits| {
        let mut b = base.clone();
        for (kind, at, value) in edits {
            let at = at.min(b.len());
            match kind {
                0 if at < b.len() => b[at] = value as u8,
                1 => b.truncate(at),
                2 => b.insert(at, value as u8),
                _ if at + 4 <= b.len() => {
                    let bytes = if value % 2 == 0 { value.to_be_bytes() } else { value.to_le_bytes() };
                    b[at..at + 4].copy_from_slice(&bytes);
                }
                _ => {}
            }
        }
        b
    })
}

/// Random bytes, or a mutation of `valid`.
fn bytes_like(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..2048), mutated(valid)]
}

fn no_panic<T>(what: &str, input_len: usize, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => panic!("{what} panicked on a {input_len}-byte input"),
    }
}

#[test]
fn idx_files() {
    let valid = idx::encode(&[3, 28, 28], &vec![7u8; 3 * 784]);
    let gz = idx::gzip(&valid);
    runner(cases(1))
        .run(&(bytes_like(valid), bytes_like(gz), 1..4usize), |(raw, gz, nd)| {
            for b in [&raw, &gz] {
                let r = no_panic("idx::decode", b.len(), || idx::decode("fashion-mnist", Path::new("f"), b, nd));
                if let Ok(idx) = r {
                    prop_assert_eq!(idx.dims.iter().product::<usize>(), idx.data.len());
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fashion_mnist_splits() {
    let images = idx::encode(&[2, 28, 28], &vec![9u8; 2 * 784]);
    let labels = idx::encode(&[2], &[3, 9]);
    runner(cases(1))
        .run(&(bytes_like(images), bytes_like(labels)), |(i, l)| {
            let r = no_panic("fashion_mnist::decode_split", i.len() + l.len(), || {
                fashion_mnist::decode_split("t", (Path::new("i"), &i), (Path::new("l"), &l), None)
            });
            if let Err(e) = r {
                prop_assert!(e.to_string().contains("fashion-mnist file"), "{}", e);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn cifar_files() {
    let dir = common::TestDir::new("fuzz-cifar");
    let small = CifarFormat { train_records: 2, test_records: 1, ..CIFAR10 };
    let record = |label: u8| [vec![label], vec![label; 3072]].concat();
    let valid = [record(1), record(9)].concat();
    runner(cases(2))
        .run(&bytes_like(valid.clone()), |bytes| {
            for (i, f) in small.train_files.iter().enumerate() {
                std::fs::write(dir.join(f), if i == 2 { &bytes } else { &valid }).unwrap();
            }
            std::fs::write(dir.join(small.test_files[0]), record(4)).unwrap();
            no_panic("load_cifar", bytes.len(), || load_cifar(&*dir, &small)).map(drop).unwrap_or(());
            Ok(())
        })
        .unwrap();
}

/// A PNG and a JPEG of a small gradient.
fn images() -> &'static (Vec<u8>, Vec<u8>) {
    static IMAGES: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let img = image::RgbImage::from_fn(24, 17, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 77]));
        let encode = |format| {
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, format).unwrap();
            out.into_inner()
        };
        (encode(image::ImageFormat::Png), encode(image::ImageFormat::Jpeg))
    })
}

#[test]
fn png_and_jpeg_images() {
    let dir = common::TestDir::new("fuzz-images");
    let (png, jpeg) = images().clone();
    runner(cases(1))
        .run(&(bytes_like(png), bytes_like(jpeg)), |(a, b)| {
            for (name, bytes) in [("a.png", &a), ("b.jpg", &b)] {
                let path = dir.join(name);
                std::fs::write(&path, bytes).unwrap();
                if let Ok((pixels, shape)) = no_panic("decode_rgb", bytes.len(), || decode::decode_rgb(&path, "fuzz")) {
                    prop_assert_eq!(pixels.len(), shape.iter().product::<usize>());
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn mini_imagenet_csv_files() {
    let dir = common::TestDir::new("fuzz-csv");
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::write(dir.join("images").join("a.png"), &images().0).unwrap();
    let valid = b"filename,label\na.png,n01\na.png,n02\n".to_vec();
    runner(cases(2))
        .run(&bytes_like(valid), |csv| {
            std::fs::write(dir.join("train.csv"), &csv).unwrap();
            let _ = std::fs::remove_file(dir.join("train.84x84.nslcache"));
            let r = no_panic("mini_imagenet::load_split", csv.len(), || mini_imagenet::load_split(&dir, "train"));
            if let Ok(split) = r {
                // a valid file caches its decoded split: mutate the cache too
                let cache = dir.join("train.84x84.nslcache");
                let bytes = std::fs::read(&cache).unwrap();
                for cut in [bytes.len() / 2, 40, 16] {
                    std::fs::write(&cache, &bytes[..cut.min(bytes.len())]).unwrap();
                    let again = no_panic("the split cache", cut, || mini_imagenet::load_split(&dir, "train"));
                    prop_assert_eq!(again.map(|s| s.labels).ok(), Some(split.labels.clone()));
                }
            }
            Ok(())
        })
        .unwrap();
}

/// The bytes of a small real checkpoint, and a network it loads into.
fn checkpoint_bytes() -> Vec<u8> {
    let be = Cpu::with_threads(1);
    let cfg =
        RunConfig { similarity: SimilarityChoice::StaticDns { code_init: true }, width: 0.125, ..RunConfig::default() };
    let mut net = build_network(&be, &cfg, 10, [8, 8, 1], &mut Rng::new(0)).unwrap();
    let dir = common::TestDir::new("fuzz-ckpt-src");
    let path = dir.join("c.safetensors");
    let mut meta = checkpoint::Meta { step: 3, ..Default::default() };
    meta.extra.insert("config".into(), cfg.to_toml());
    checkpoint::save(&be, &path, &mut net, None, &meta).unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn checkpoints() {
    let be = Cpu::with_threads(1);
    let dir = common::TestDir::new("fuzz-ckpt");
    let cfg =
        RunConfig { similarity: SimilarityChoice::StaticDns { code_init: true }, width: 0.125, ..RunConfig::default() };
    let path = dir.join("c.safetensors");
    runner(cases(1))
        .run(&bytes_like(checkpoint_bytes()), |bytes| {
            std::fs::write(&path, &bytes).unwrap();
            let mut net = build_network(&be, &cfg, 10, [8, 8, 1], &mut Rng::new(0)).unwrap();
            let before: Vec<String> = {
                let mut v = vec![];
                net.visit_params(&mut |p| v.push(format!("{:?}", p.value.to_vec(&be))));
                v
            };
            let r = no_panic("checkpoint::load", bytes.len(), || checkpoint::load(&be, &path, &mut net, None));
            if r.is_err() {
                let mut after = vec![];
                net.visit_params(&mut |p| after.push(format!("{:?}", p.value.to_vec(&be))));
                prop_assert_eq!(before, after, "a failed load changes nothing");
            }
            no_panic("checkpoint::read_meta", bytes.len(), || checkpoint::read_meta(&path)).map(drop).unwrap_or(());
            Ok(())
        })
        .unwrap();
}

#[test]
fn toml_run_files() {
    let valid = RunConfig::default().to_toml().into_bytes();
    let text = prop_oneof![".{0,400}", mutated(valid).prop_map(|b| String::from_utf8_lossy(&b).into_owned())];
    runner(cases(1))
        .run(&text, |text| {
            for parsed in [RunConfig::from_toml(&text), RunConfig::from_user_toml(&text)] {
                if let Ok(cfg) = no_panic("RunConfig::from_toml", text.len(), || parsed) {
                    let _ = no_panic("RunConfig::validate", text.len(), || cfg.validate());
                }
            }
            Ok(())
        })
        .unwrap();
}

/// The fields of a run config, for checking that refusals name one.
fn field_names() -> Vec<String> {
    toml::Table::try_from(RunConfig::default()).unwrap().keys().cloned().collect()
}

fn choice<T: Clone + std::fmt::Debug + 'static>(values: Vec<T>) -> impl Strategy<Value = T> {
    prop::sample::select(values)
}

/// A field of a run config set out of its range.
#[derive(Clone, Debug)]
enum Spoil {
    Width(f32),
    Lr(f32),
    Smoothing(f32),
    BnDecay(f32),
    L1(f32),
    Iterations(u64),
    BatchSize(usize),
    EvalEvery(u64),
    Milestones(Vec<u64>),
    Input(AugmentChoice, NormalizeChoice),
    Dataset(DatasetChoice),
    SyntheticTrain(usize),
    Seed(u64),
}

/// Random run configs: three quarters in range over every field (networks, similarities, input
/// pipelines, schedules, widths), a quarter with one field spoiled (out of range, at an edge, or
/// data that is not there).
fn run_configs() -> impl Strategy<Value = RunConfig> {
    use clap::ValueEnum;
    let valid = (
        choice(NetworkChoice::value_variants().to_vec()),
        choice(SimilarityChoice::names().iter().map(|n| n.parse::<SimilarityChoice>().unwrap()).collect()),
        choice(vec![DatasetChoice::Synthetic, DatasetChoice::FashionMnistEmbedded]),
        (
            choice(vec![AugmentChoice::PadCropFlip, AugmentChoice::Flip, AugmentChoice::None]),
            choice(vec![NormalizeChoice::Raw, NormalizeChoice::Centered]),
        ),
        (
            1u64..4,
            1usize..17,
            1u64..3,
            prop::collection::vec(0u64..10, 0..3).prop_map(|mut m| {
                m.sort_unstable();
                m.dedup();
                m
            }),
        ),
        (
            choice(vec![0.05f32, 0.1, 0.25]),
            choice(vec![1e-3f32, 0.01, 0.1]),
            choice(vec![0.0f32, 0.01, 0.5]),
            choice(vec![0.0f32, 0.9, 0.99]),
            choice(vec![0.0f32, 1e-4]),
        ),
        choice(vec![OptimizerChoice::Sgd, OptimizerChoice::Adam]),
        (20usize..80, 0..=i64::MAX as u64),
    )
        .prop_map(
            |(
                network,
                similarity,
                dataset,
                (augment, normalize),
                (iterations, batch_size, eval_every, milestones),
                (width, lr, smoothing, bn_decay, l1),
                optimizer,
                (synthetic, seed),
            )| RunConfig {
                network,
                similarity,
                dataset,
                augment,
                normalize,
                iterations,
                batch_size,
                eval_every,
                checkpoint_every: eval_every,
                eval_batch: batch_size,
                milestones,
                width,
                lr,
                smoothing,
                bn_decay,
                l1,
                optimizer,
                synthetic_train: synthetic,
                synthetic_test: synthetic / 2,
                warmup: 0,
                seed,
                data_dir: "no-such-data-folder".into(),
                ..RunConfig::default()
            },
        );
    let bad_f32 = || choice(vec![0.0f32, -1.0, f32::NAN, f32::INFINITY, 1e9]);
    let spoil = prop_oneof![
        bad_f32().prop_map(Spoil::Width),
        bad_f32().prop_map(Spoil::Lr),
        choice(vec![1.0f32, 5.0, -0.1, f32::NAN]).prop_map(Spoil::Smoothing),
        choice(vec![1.0f32, 1.5, -0.5, f32::NAN]).prop_map(Spoil::BnDecay),
        choice(vec![-1.0f32, f32::NAN, f32::INFINITY]).prop_map(Spoil::L1),
        Just(Spoil::Iterations(0)),
        choice(vec![0usize, 1 << 20]).prop_map(Spoil::BatchSize),
        Just(Spoil::EvalEvery(0)),
        Just(Spoil::Milestones(vec![5, 1])),
        (choice(AugmentChoice::value_variants().to_vec()), choice(NormalizeChoice::value_variants().to_vec()))
            .prop_map(|(a, n)| Spoil::Input(a, n)),
        choice(vec![
            DatasetChoice::Cifar10,
            DatasetChoice::Imagenet,
            DatasetChoice::SyntheticFewshot,
            DatasetChoice::MiniImagenet
        ])
        .prop_map(Spoil::Dataset),
        choice(vec![0usize, 3]).prop_map(Spoil::SyntheticTrain),
        Just(Spoil::Seed(u64::MAX)),
    ];
    (valid, prop::option::weighted(0.25, spoil)).prop_map(|(mut cfg, spoil)| {
        match spoil {
            None => {}
            Some(Spoil::Width(v)) => cfg.width = v,
            Some(Spoil::Lr(v)) => cfg.lr = v,
            Some(Spoil::Smoothing(v)) => cfg.smoothing = v,
            Some(Spoil::BnDecay(v)) => cfg.bn_decay = v,
            Some(Spoil::L1(v)) => cfg.l1 = v,
            Some(Spoil::Iterations(v)) => cfg.iterations = v,
            Some(Spoil::BatchSize(v)) => cfg.batch_size = v,
            Some(Spoil::EvalEvery(v)) => cfg.eval_every = v,
            Some(Spoil::Milestones(v)) => cfg.milestones = v,
            Some(Spoil::Input(a, n)) => (cfg.augment, cfg.normalize) = (a, n),
            Some(Spoil::Dataset(d)) => cfg.dataset = d,
            Some(Spoil::SyntheticTrain(v)) => cfg.synthetic_train = v,
            Some(Spoil::Seed(v)) => cfg.seed = v,
        }
        cfg
    })
}

#[test]
fn random_run_configs_train_a_step_or_are_refused_naming_a_field() {
    let fields = field_names();
    let dir = common::TestDir::new("fuzz-configs");
    let be = Cpu::with_threads(1);
    let n = std::sync::atomic::AtomicUsize::new(0);
    let trained = std::sync::atomic::AtomicUsize::new(0);
    runner(cases(3))
        .run(&run_configs(), |cfg| {
            let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match cfg.validate() {
                Err(e) => prop_assert!(fields.iter().any(|f| e.field == f), "refusal names no field: {}", e),
                Ok(()) => {
                    let opts = RunOptions {
                        out_dir: dir.join(format!("{n}")),
                        resume: Resume::No,
                        progress: false,
                        stop_at: Some(1),
                    };
                    let r = no_panic(&format!("training {cfg:?}"), 0, || train(&be, &cfg, &opts));
                    match r {
                        Ok(s) => {
                            prop_assert_eq!(s.steps, 1);
                            trained.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => prop_assert!(!e.to_string().contains("internal error"), "{}", e),
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    let (n, trained) = (n.into_inner(), trained.into_inner());
    eprintln!("{n} configs, {trained} trained a step");
    assert!(trained > 0, "no config of {n} was trained: the strategy draws too few valid ones");
}

/// Random `nsl train` command lines from the flags users type, with good and bad values.
fn command_lines() -> impl Strategy<Value = Vec<String>> {
    let pool: Vec<(&str, Vec<&str>)> = vec![
        ("--network", vec!["cnn9", "cnn4", "cnn10", "cnn9pp", "spherenet9-attention", "resnet"]),
        ("--similarity", vec!["conv", "dynamic-dns", "static-uns", "shared-dns", "joint-static-dns", "nope"]),
        ("--width", vec!["0.125", "0.05", "0", "-1", "nan", "inf", "x"]),
        ("--dataset", vec!["fashion-mnist-embedded", "cifar10", "imagenet", "mini-imagenet", "mnist"]),
        ("--iterations", vec!["1", "3", "0", "-5", "99999999999999999999"]),
        ("--batch-size", vec!["8", "0", "100000", "7"]),
        ("--lr", vec!["0.1", "0", "-0.1", "nan", "1e39"]),
        ("--milestones", vec!["1,2", "5,1", "", "a"]),
        ("--warmup", vec!["0", "2", "-1"]),
        ("--augment", vec!["none", "crop-flip", "pad-crop-flip", "rotate"]),
        ("--normalize", vec!["raw", "mean-std", "centered"]),
        ("--eval-every", vec!["1", "0"]),
        ("--checkpoint-every", vec!["1", "0"]),
        ("--bn-decay", vec!["0.9", "1", "-0.5"]),
        ("--bn-debias", vec!["true", "false", "maybe"]),
        ("--l1", vec!["0", "1e-4", "-1"]),
        ("--predictor-gamma", vec!["0", "1", "nan"]),
        ("--predictor-hidden", vec!["4", "0"]),
        ("--hidden-fc", vec!["0", "16", "99999999"]),
        ("--bn-eps", vec!["1e-3", "0", "-1"]),
        ("--seed", vec!["3", "-3", "18446744073709551615"]),
        ("--resume", vec![]),
        ("--paper-schedule", vec![]),
    ];
    prop::collection::vec((0..pool.len(), 0..8usize), 0..7).prop_map(move |picks| {
        let mut args = vec!["nsl".to_string(), "--threads".into(), "1".into(), "train".into(), "--quiet".into()];
        for (flag, value) in picks {
            let (name, values) = &pool[flag];
            args.push(name.to_string());
            if !values.is_empty() {
                args.push(values[value % values.len()].to_string());
            }
        }
        args
    })
}

#[test]
fn random_command_lines_never_panic() {
    let dir = common::TestDir::new("fuzz-cli");
    let be = Cpu::with_threads(1);
    let n = std::sync::atomic::AtomicUsize::new(0);
    let trained = std::sync::atomic::AtomicUsize::new(0);
    runner(cases(3))
        .run(&command_lines(), |mut args| {
            let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            args.extend(["--out".into(), dir.join(format!("{n}")).display().to_string()]);
            let Ok(cli) = Cli::try_parse_from(&args) else { return Ok(()) }; // the parser's own message
            let Command::Train(train_args) = cli.command else { unreachable!("only train lines are drawn") };
            let cfg = no_panic(&format!("{args:?}"), 0, || train_args.config());
            if let Ok(cfg) = cfg {
                // keep each accepted line to one step on a narrow network
                let cfg = RunConfig { width: cfg.width.min(0.125), ..cfg };
                let opts = RunOptions {
                    out_dir: dir.join(format!("{n}")),
                    resume: Resume::IfPresent,
                    progress: false,
                    stop_at: Some(1),
                };
                let r = no_panic(&format!("{args:?}"), 0, || train(&be, &cfg, &opts));
                match r {
                    Ok(_) => drop(trained.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
                    Err(e) => prop_assert!(!e.to_string().contains("internal error"), "{}", e),
                }
            }
            Ok(())
        })
        .unwrap();
    let (n, trained) = (n.into_inner(), trained.into_inner());
    eprintln!("{n} command lines, {trained} trained a step");
    assert!(trained > 0, "no command line of {n} was trained");
}
