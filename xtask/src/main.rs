//! `cargo xtask`: project tasks.
//! - `repro`: rerun every experiment of the paper and write a report with plots.
//! - `bench`: throughput table of a backend (`--backend cpu|cuda`).
//! - `compare-backends`: CPU vs CUDA training-loss curves of one run.
//! - `fetch-data`: download and verify CIFAR-10/100; link or download Fashion-MNIST.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

mod compare;

use clap::{Parser, Subcommand};
use nsl_models::backend_choice::{run_on_backend, BackendJob};
use nsl_models::data::fashion_mnist;
use nsl_models::data::fetch::{fetch, fetch_fashion_mnist, Placed, ARCHIVES};
use nsl_models::repro::{
    apply_overrides, experiments, run_all, run_fewshot_row, summary_table, use_paper_schedule, write_report,
    ReportHeader, Row, RunnerOptions, Scale, TABLES,
};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project tasks for nsl")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rerun every experiment of the paper (Tables 1–6 and 8, plus the PSD and ℓ1 extensions and an
    /// ablation of the DNS init) and write `<out>/report.md` with our numbers next to the paper's,
    /// and plots under `<out>/plots`. Finished runs are reused and killed runs resume, so rerunning
    /// the command is cheap. The report lists every row with every seed that has finished in
    /// `<out>/runs`, whichever rows and seeds this invocation runs.
    Repro {
        /// Run only these tables (comma-separated ids: table1..table6, table8, extensions).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Run only the rows with these labels (comma-separated, exactly as in the report, e.g.
        /// "Baseline CNN,Dynamic NSN w/ DNS").
        #[arg(long, value_delimiter = ',')]
        rows: Vec<String>,
        /// The paper's CIFAR schedule (÷10 at 34K and 54K, stop at 64K) instead of the code's
        /// (÷10 at 20K/30K/37.5K, stop at 42.5K); paper scale only.
        #[arg(long)]
        paper_schedule: bool,
        /// Override a run-config field of every row (repeatable; TOML values), e.g.
        /// `--set uns_identity=false` (UNS without +I, the paper's appendix), `--set predictor_hidden=32`
        /// (the appendix's CNN-10 predictor), `--set hidden_fc=256` (Table 7's FC layer),
        /// `--set shared_bn_stats=pooled`. Overridden rows train into their own run folders.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Train nothing: report the runs that have finished (e.g. while a long tier is still
        /// running in another process, or to rebuild the report and plots).
        #[arg(long)]
        report_only: bool,
        /// smoke: every table at reduced size on the embedded Fashion-MNIST subset and synthetic
        /// sets (minutes on 2 cores); real: the CIFAR-10 rows on the full Fashion-MNIST at full width
        /// (hours on a CPU, minutes on a GPU; finds Debian's files by itself); paper: the spec's
        /// exact settings on real data from --data.
        #[arg(long, default_value = "smoke")]
        scale: String,
        /// Data root for --scale paper: cifar-10/ and cifar-100/ (`cargo xtask fetch-data`),
        /// `imagenet/{train,val}/<wnid>/*.JPEG` (Table 5) and mini-imagenet/{train,val,test}.csv with
        /// mini-imagenet/images/ (Table 6); a missing file is reported with how to get it.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Output folder (runs/, plots/, report.md).
        #[arg(long, default_value = "repro-out")]
        out: PathBuf,
        /// Seeds per row; the report shows mean ± std.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// CPU threads (0 = all cores). `NSL_CPU_FLUSH_DENORMALS=1` makes them flush subnormal
        /// floats to zero (faster where values underflow; off by default, see the README).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// cpu, or cuda when built with `--features cuda`.
        #[arg(long, default_value = "cpu")]
        backend: String,
        /// Progress bars for each run.
        #[arg(long)]
        progress: bool,
    },
    /// Measure throughput: img/s of CNN-9 variants (training and inference) and each 3×3 conv
    /// layer's GFLOP/s as a ratio of a same-FLOP sgemm measured in the same run. Prints a
    /// markdown table (paste it into nsl-bench/RESULTS.md with the machine and date).
    Bench {
        /// Batch size (the paper's is 128).
        #[arg(long, default_value_t = 128)]
        batch: usize,
        /// Timed repetitions per measurement (best is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// CPU threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// `cpu` or `cuda` (`cuda` needs `cargo xtask --features cuda` and an NVIDIA GPU).
        #[arg(long, default_value = "cpu")]
        backend: String,
        /// Only these rows (comma-separated): plain, static-dns, static-dns-folded, static-uns,
        /// dynamic-dns, dynamic-uns, layers, latency (batch-1 ms of plain, folded static DNS and
        /// dynamic DNS CNN-9 in nsl and as ONNX exports in tract). With `NSL_CUDA_PROFILE=1` the CUDA backend prints
        /// its kernel-time table at exit: pick one row to profile one network.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Train the same smoke CNN-9 run (embedded data, same seed) on the CPU and on CUDA and print
    /// both training-loss curves with their relative difference; fails if the first steps disagree.
    /// Needs `cargo xtask --features cuda` and an NVIDIA GPU.
    CompareBackends {
        /// The two backends to compare (`cpu,cpu` checks the comparison itself without a GPU).
        #[arg(long, value_delimiter = ',', default_value = "cpu,cuda")]
        backends: Vec<String>,
        /// Similarity of the NSL slots (see `nsl train --help`).
        #[arg(long, default_value = "dynamic-dns")]
        similarity: String,
        #[arg(long, default_value_t = 100)]
        iterations: u64,
        /// Run folders `<out>/cpu` and `<out>/cuda`.
        #[arg(long, default_value = "compare-out")]
        out: PathBuf,
        /// Largest relative loss difference allowed over the first 3 steps.
        #[arg(long, default_value_t = 1e-3)]
        tolerance: f64,
    },
    /// Get data sets into `<data>`: CIFAR-10 and CIFAR-100 (binary versions) are downloaded from the
    /// University of Toronto, MD5-checked and unpacked into `<data>/cifar-10` and `<data>/cifar-100`;
    /// Fashion-MNIST's four IDX files are linked from Debian's /usr/share/datasets/fashion-mnist
    /// (`apt-get install dataset-fashion-mnist`) when present, else downloaded from Zalando's
    /// server, into `<data>/fashion-mnist`, each checked against the MD5 of its decompressed bytes.
    /// Files already in place are not fetched again.
    FetchData {
        /// Data sets to get: cifar-10, cifar-100, fashion-mnist.
        #[arg(default_values = ["cifar-10", "cifar-100"])]
        datasets: Vec<String>,
        /// Data root (what `nsl train --data-dir` and `cargo xtask repro --data` read).
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
}

fn git_revision() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(rev) => {
            // tracked files only: the run folders a tier is still writing are not code changes
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev} (with uncommitted changes to tracked files)")
            } else {
                rev
            }
        }
        None => "unknown (not a git checkout)".into(),
    }
}

/// `cargo xtask fetch-data <name>`.
fn fetch_data(name: &str, data: &std::path::Path) -> Result<(), String> {
    if name == fashion_mnist::NAME {
        eprintln!("placing Fashion-MNIST in {} …", data.join(fashion_mnist::NAME).display());
        let placed =
            fetch_fashion_mnist(data, std::path::Path::new(fashion_mnist::DEBIAN_DIR)).map_err(|e| e.to_string())?;
        for p in placed {
            match p {
                Placed::Present(f) => eprintln!("ok (already there): {}", f.display()),
                Placed::Linked(f) => eprintln!("ok (linked from Debian's package): {}", f.display()),
                Placed::Downloaded(f) => eprintln!("ok (downloaded): {}", f.display()),
            }
        }
        return Ok(());
    }
    let archive = ARCHIVES
        .iter()
        .find(|a| a.format.name == name)
        .ok_or_else(|| format!("unknown data set `{name}`; expected cifar-10, cifar-100 or {}", fashion_mnist::NAME))?;
    eprintln!("fetching {} …", archive.url);
    let dir = fetch(archive, data).map_err(|e| e.to_string())?;
    eprintln!("ok: {}", dir.display());
    Ok(())
}

/// The CPU model and core count (Linux), for the report header.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)))
        .map_or("unknown CPU".to_string(), |m| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

/// One `cargo xtask bench` table.
struct Bench {
    batch: usize,
    reps: usize,
    only: Vec<String>,
}

impl BackendJob for Bench {
    type Output = ();
    fn run<B: nsl_core::Backend>(self, be: &B) -> Result<(), String> {
        nsl_bench::throughput_report(be, self.batch, self.reps, &self.only, |line| println!("{line}"));
        Ok(())
    }
}

/// One `cargo xtask repro` invocation.
struct Repro {
    only: Vec<String>,
    rows: Vec<String>,
    report_only: bool,
    paper_schedule: bool,
    overrides: Vec<String>,
    scale: String,
    data: PathBuf,
    out: PathBuf,
    seeds: u64,
    progress: bool,
}

impl BackendJob for Repro {
    type Output = ();
    fn run<B: nsl_core::Backend>(self, be: &B) -> Result<(), String> {
        repro(be, self)
    }
}

fn repro<B: nsl_core::Backend>(be: &B, job: Repro) -> Result<(), String> {
    let Repro { only, rows: labels, report_only, paper_schedule, overrides, scale, data, out, seeds, progress } = job;
    let scale: Scale = scale.parse()?;
    let known: Vec<&str> = TABLES.iter().map(|(id, _)| *id).collect();
    if let Some(bad) = only.iter().find(|t| !known.contains(&t.as_str())) {
        return Err(format!("unknown table `{bad}`; expected one of {}", known.join(", ")));
    }
    let all = experiments(scale);
    if let Some(bad) = labels.iter().find(|l| !all.iter().any(|r| &r.label == *l)) {
        let mut known: Vec<&str> = all.iter().map(|r| r.label.as_str()).collect();
        known.dedup();
        return Err(format!("--rows: no row is labelled `{bad}`; labels at this scale: {}", known.join(", ")));
    }
    // every row goes into the report; the selected ones train, the others show what finished
    let selected = |r: &Row| {
        (only.is_empty() || only.iter().any(|t| t == r.table)) && (labels.is_empty() || labels.contains(&r.label))
    };
    let mut rows = all;
    if paper_schedule {
        if scale != Scale::Paper {
            return Err("--paper-schedule changes the paper-scale CIFAR schedule: use it with --scale paper".into());
        }
        eprintln!("--paper-schedule: {} rows use ÷10 at 34K/54K, stop at 64K", use_paper_schedule(&mut rows));
    }
    apply_overrides(&mut rows, &overrides)?;
    let started = Instant::now();
    let opts = RunnerOptions { out: out.clone(), data, seeds: seeds.max(1), progress, train: !report_only };
    let part = |pick: bool| -> Vec<Row> { rows.iter().filter(|r| selected(r) == pick).cloned().collect() };
    let mut trained = run_all(be, &part(true), &opts, |row, seed, dir| run_fewshot_row(be, row, seed, dir)).into_iter();
    let others = RunnerOptions { train: false, ..opts.clone() };
    let mut reported = run_all(be, &part(false), &others, |_, _, _| unreachable!("report only")).into_iter();
    // back in the registry's order
    let results: Vec<_> = rows
        .iter()
        .map(|r| if selected(r) { trained.next() } else { reported.next() }.expect("a result per row"))
        .collect();
    let header = ReportHeader {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        git_revision: git_revision(),
        scale: format!("{scale:?}").to_lowercase(),
        seeds: results.iter().map(|r| r.values.len() as u64).max().unwrap_or(0).max(seeds.max(1)),
        backend: be.name(),
        machine: machine(),
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    let path = write_report(&out, &header, &results).map_err(|e| format!("{}: {e}", out.display()))?;
    let missing = results.iter().filter(|r| r.note.is_some()).count();
    let pending = results.iter().filter(|r| r.note.is_none() && r.values.is_empty()).count();
    println!("\n{}", summary_table(&results, selected));
    eprintln!(
        "\nreport: {} ({} rows, {} could not run, {} not run yet, {:.0} s)",
        path.display(),
        results.len(),
        missing,
        pending,
        header.wall_seconds
    );
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.note.is_some())
        .map(|r| format!("{} {} ({})", r.row.table, r.row.label, r.row.column))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} rows could not run (the report says why): {}", failed.len(), failed.join("; ")))
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Repro {
            only,
            rows,
            report_only,
            paper_schedule,
            overrides,
            scale,
            data,
            out,
            seeds,
            threads,
            backend,
            progress,
        } => {
            let job = Repro { only, rows, report_only, paper_schedule, overrides, scale, data, out, seeds, progress };
            run_on_backend(&backend, threads, job)
        }
        Command::Bench { batch, reps, threads, backend, only } => {
            match only.iter().find(|o| !nsl_bench::report_rows().any(|r| r == o.as_str())) {
                Some(bad) => Err(format!(
                    "--only: unknown row `{bad}` (rows: {})",
                    nsl_bench::report_rows().collect::<Vec<_>>().join(", ")
                )),
                None => run_on_backend(&backend, threads, Bench { batch, reps, only }),
            }
        }
        Command::CompareBackends { backends, similarity, iterations, out, tolerance } => match backends.as_slice() {
            [a, b] => compare::compare_backends([a, b], &similarity, iterations, &out, tolerance),
            _ => Err(format!("--backends takes two names (e.g. cpu,cuda), got {}", backends.join(","))),
        },
        Command::FetchData { datasets, data } => datasets.iter().try_for_each(|name| fetch_data(name, &data)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
