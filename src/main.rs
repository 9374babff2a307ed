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
    // With --json, a failure is a JSON document on stdout too, so a consumer parsing stdout
    // always gets one (the error also goes to stderr, for a person).
    let json = cli.global.json;
    let command = cli.command.name();
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
            let text = mlsdiag::error::one_line(&e);
            if json {
                let doc = serde_json::json!({
                    "schema_version": mlsdiag::model::SCHEMA_VERSION,
                    "command": command,
                    "error": text,
                    "exit_code": 3,
                });
                println!("{doc}");
            }
            eprintln!("mlsdiag: error: {text}");
            ExitCode::from(3)
        }
    }
}
