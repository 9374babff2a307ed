//! The `mlsdiag` binary: parse, run, map errors to the documented exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match mlsdiag::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; every usage error is UNKNOWN (3).
            return ExitCode::from(if e.use_stderr() { 3 } else { 0 });
        }
    };
    match mlsdiag::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // A closed pipe (`mlsdiag check | head -1`) is not a failure.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("mlsdiag: error: {e:#}");
            ExitCode::from(3)
        }
    }
}
