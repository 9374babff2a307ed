//! `mlsdiag completions SHELL` and `mlsdiag man`: generated from the parser, never hand-kept.
//! The copies in `completions/` and `docs/mlsdiag.1` are checked against these by a test.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::model::Status;

pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> anyhow::Result<Status> {
    clap_complete::generate(shell, &mut Cli::command(), "mlsdiag", out);
    Ok(Status::Ok)
}

pub fn man(out: &mut dyn Write) -> anyhow::Result<Status> {
    clap_mangen::Man::new(Cli::command()).render(out)?;
    Ok(Status::Ok)
}
