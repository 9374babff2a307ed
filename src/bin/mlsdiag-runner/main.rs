//! `mlsdiag-runner`: the child process that `mlsdiag repro --model DIR` drives. It loads an MLX
//! checkpoint once, then reads one run request per line on stdin and writes an event per
//! generated token on stdout (`mlsdiag::repro::protocol`).
//!
//! It is a binary of its own, built only with the cargo feature `mlx`, so that `mlsdiag`
//! itself never links libmlx: linking it starts MLX's and OpenBLAS's thread pools in every
//! process of the binary, the demo's simulated workers included, and costs every `check` the
//! load of a large library. A hung generation can only be ended by ending its process, which
//! is why the campaign runs it in a child at all.

mod mlx;
mod prompt;
mod qwen2;
mod serve;
mod tiny;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mlsdiag::repro::checkpoint::Quantization;

#[derive(Parser)]
#[command(
    name = "mlsdiag-runner",
    version,
    about = "The reference MLX generation loop that `mlsdiag repro --model` runs in a child process"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load a checkpoint, then serve run requests (JSON lines) on stdin
    Serve {
        /// MLX checkpoint directory (Qwen2 / Qwen2.5)
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
    },
    /// Write a tiny Qwen2 checkpoint with random weights (for tests and benchmarks)
    Tiny(TinyArgs),
}

#[derive(Args)]
struct TinyArgs {
    /// The directory to create
    dir: PathBuf,
    #[arg(long, default_value_t = 64)]
    hidden_size: usize,
    #[arg(long, default_value_t = 2)]
    layers: usize,
    #[arg(long, default_value_t = 128)]
    intermediate_size: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 2)]
    kv_heads: usize,
    /// Quantize the weights to 4 or 8 bits
    #[arg(long, value_parser = ["4", "8"])]
    bits: Option<String>,
    /// Quantization group size
    #[arg(long, default_value_t = 64, requires = "bits")]
    group_size: u32,
    /// Seed of the random weights
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { model } => serve::serve(&model),
        Command::Tiny(a) => {
            let model = tiny::TinyModel {
                hidden_size: a.hidden_size,
                layers: a.layers,
                intermediate_size: a.intermediate_size,
                heads: a.heads,
                kv_heads: a.kv_heads,
                quantization: a.bits.map(|b| Quantization {
                    bits: b.parse().unwrap_or(4),
                    group_size: a.group_size,
                }),
                seed: a.seed,
            };
            tiny::write_checkpoint(&a.dir, &model)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mlsdiag-runner: {e:#}");
            ExitCode::from(2)
        }
    }
}
