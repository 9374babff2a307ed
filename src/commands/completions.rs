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

/// mlsdiag(1), or `subcommand`'s page, mlsdiag-SUBCOMMAND(1), which mlsdiag(1) points to.
pub fn man(subcommand: Option<&str>, out: &mut dyn Write) -> anyhow::Result<Status> {
    let mut root = Cli::command();
    // Built, so the global flags (--json, --color) are on each subcommand's page too.
    root.build();
    let cmd = match subcommand {
        None => root,
        Some(name) => {
            let sub = root
                .get_subcommands()
                .find(|c| c.get_name() == name && !c.is_hide_set())
                .ok_or_else(|| anyhow::anyhow!("man: no subcommand {name:?}"))?;
            // clap names are 'static; one small name per `man` run.
            let page: &'static str = Box::leak(format!("mlsdiag-{name}").into_boxed_str());
            sub.clone().name(page).version(env!("CARGO_PKG_VERSION"))
        }
    };
    clap_mangen::Man::new(cmd).render(out)?;
    Ok(Status::Ok)
}

/// The subcommands that have a page of their own (the hidden ones have none).
pub fn man_pages() -> Vec<String> {
    (Cli::command().get_subcommands())
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| c.get_name().to_string())
        .collect()
}
