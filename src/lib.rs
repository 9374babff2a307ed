//! mlsdiag: diagnose the worker processes of an MLX inference server.
//!
//! The binary is a thin shell over this library: [`cli`] parses, collectors ([`platform`],
//! [`sample`], [`logs`], [`stacks`], [`store`]) read facts into the neutral [`model`],
//! [`diagnose`] decides verdicts, [`render`] prints tables or JSON, and [`commands`] wire one
//! subcommand each. Imports only go down those layers (checked by `tests/cli/layers.rs`). The seed incident (a worker frozen for 8 hours at 0% CPU
//! with a request in flight) is the case every part is built around.

pub mod actions;
pub mod cli;
pub mod commands;
pub mod diagnose;
pub mod discover;
pub mod error;
pub mod fleet;
pub mod fmt;
pub mod input;
pub mod logs;
pub mod metrics;
pub mod model;
pub mod output;
pub mod platform;
pub mod probe;
pub mod progress;
pub mod registry;
pub mod render;
pub mod repro;
pub mod sample;
pub mod sim;
pub mod snapshot;
pub mod stacks;
pub mod store;
pub mod top;
pub mod watch;

use std::io::Write;

use cli::{Cli, Command};
use commands::Ctx;

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let platform: std::sync::Arc<dyn platform::Platform> = match &cli.global.fixture {
        Some(path) => std::sync::Arc::new(platform::fixture::Fixture::load(path)?),
        None => platform::native().into(),
    };
    let ctx = Ctx {
        platform,
        style: render::Style::detect(cli.global.color.forced()),
        json: cli.global.json,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let status = match cli.command {
        Command::Check(a) => commands::check::run(&a, &ctx, &mut out)?,
        Command::Watch(a) => commands::watch::run(&a, &ctx, &mut out)?,
        Command::Top(a) => commands::top::run(&a, &ctx, &mut out)?,
        Command::Fleet(a) => commands::fleet::run(&a, &ctx, &mut out)?,
        Command::Threads(a) => commands::threads::run(&a, &ctx, &mut out)?,
        Command::Fds(a) => commands::fds::run(&a, &ctx, &mut out)?,
        Command::Stacks(a) => commands::stacks::run(&a, &ctx, &mut out)?,
        Command::Registry(a) => commands::registry::run(&a, &ctx, &mut out)?,
        Command::Logs(a) => commands::logs::run(&a, &ctx, &mut out)?,
        Command::Mem(a) => commands::mem::run(&a, &ctx, &mut out)?,
        Command::Demo(a) => commands::demo::run(&a, &ctx, &mut out)?,
        Command::Record(a) => commands::record::run(&a, &ctx, &mut out)?,
        Command::Repro(a) => commands::repro::run(&a, &ctx, &mut out)?,
        Command::Snapshot(a) => commands::snapshot::run(&a, &ctx, &mut out)?,
        Command::History(a) => commands::history::run(&a, &ctx, &mut out)?,
        Command::Postmortem(a) => commands::postmortem::run(&a, &ctx, &mut out)?,
        Command::Run(a) => return commands::run::run(&a),
        Command::Completions(a) => commands::completions::completions(a.shell, &mut out)?,
        Command::Man(a) if a.list => {
            for name in commands::completions::man_pages() {
                writeln!(out, "{name}")?;
            }
            crate::model::Status::Ok
        }
        Command::Man(a) => commands::completions::man(a.subcommand.as_deref(), &mut out)?,
        Command::DemoOrchestrator(a) => sim::orchestrator(&a.into())?,
        Command::DemoWorker(a) => sim::worker(&a.into())?,
    };
    out.flush()?;
    Ok(status.code())
}
