//! `logs`'s whole fold (`mlsdiag::logs::report`) on one file, for instruction counts.
//!
//! The `mlsdiag` binary does not run under valgrind here (a dependency reads the auxiliary
//! vector in a way valgrind rejects); this calls the same library function with the same
//! defaults as `mlsdiag logs FILE`, and prints nothing but the request count. See
//! docs/benchmarks.md, "logs: instructions".
//!
//!   cargo build --release --example logs_report
//!   valgrind --tool=callgrind target/release/examples/logs_report FILE

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: logs_report FILE");
        std::process::exit(2);
    };
    let opts = mlsdiag::logs::Options {
        hung_after: Duration::from_secs(300),
        bands: mlsdiag::logs::parse_bands("8K,10K,100K").expect("the default bands"),
        ..Default::default()
    };
    match mlsdiag::logs::report(&[path], opts, true, None, |_| {}) {
        Ok(r) => println!("{}", r.totals.started),
        Err(e) => {
            eprintln!("logs_report: {e}");
            std::process::exit(1);
        }
    }
}
