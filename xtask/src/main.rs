//! `cargo xtask`: project tasks. `fetch-data` downloads and verifies CIFAR-10/100.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nsl_models::data::fetch::{fetch, ARCHIVES};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Project tasks for nsl")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download CIFAR-10 and CIFAR-100 (binary versions) from their canonical location at the
    /// University of Toronto, verify their MD5 checksums and unpack them into <data>/cifar-10 and
    /// <data>/cifar-100. Files already in place are not fetched again.
    FetchData {
        /// Data root (what `nsl train --data-dir` and `cargo xtask repro --data` read).
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::FetchData { data } => ARCHIVES.iter().try_for_each(|archive| {
            eprintln!("fetching {} …", archive.url);
            let dir = fetch(archive, &data).map_err(|e| e.to_string())?;
            eprintln!("ok: {}", dir.display());
            Ok::<(), String>(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
