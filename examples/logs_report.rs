//! `logs`'s whole read and fold on one file, for instruction counts.
//!
//! The `mlsdiag` binary does not run under valgrind here (a dependency reads the auxiliary
//! vector in a way valgrind rejects). This parses `mlsdiag logs FILE` with the CLI's own
//! parser (so its defaults are the CLI's) and makes the same library call as the command,
//! printing nothing but the number of requests started. See docs/benchmarks.md, "logs:
//! instructions".
//!
//!   cargo build --release --example logs_report
//!   valgrind --tool=callgrind target/release/examples/logs_report FILE

use clap::Parser;
use mlsdiag::cli::{Cli, Command};

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: logs_report FILE");
        std::process::exit(2);
    };
    let cli = Cli::parse_from(["mlsdiag".into(), "logs".into(), path]);
    let Command::Logs(args) = cli.command else {
        unreachable!("parsed as `mlsdiag logs FILE`")
    };
    match mlsdiag::commands::logs::collect(&args, |_| {}) {
        Ok(r) => println!("{}", r.totals.started),
        Err(e) => {
            eprintln!("logs_report: {e:#}");
            std::process::exit(1);
        }
    }
}
