//! `mlsdiag registry`: the seed's `cat worker_registry.json`, checked against the process table.
//!
//! For each entry: is the PID alive, and is it still the same process (start time after
//! `spawned_at`, or a command line that no longer matches, means the PID was reused)? Then the
//! other direction: live matching processes the registry does not list (orphans).

use std::io::Write;

use super::Ctx;
use crate::cli::RegistryArgs;
use crate::model::Status;
use crate::registry::{self, Loaded};
use crate::render;

pub fn run(args: &RegistryArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let search = args.discovery.search()?;
    let reg = match registry::load(&args.discovery.registry) {
        Loaded::Ok(r) => r,
        Loaded::Missing(p) => anyhow::bail!("{}: registry does not exist", p.display()),
        Loaded::Invalid(e) => return Err(e.into()),
    };
    let report = crate::diagnose::registry::check_registry(ctx.platform.as_ref(), &search, &reg)?;
    let status = report.status;
    ctx.emit(out, &report, render::registry::registry)?;
    Ok(status)
}
