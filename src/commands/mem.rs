//! `mlsdiag mem`: the seed's `vm_stat` step and its 30-second memory watch, in one command.
//!
//! System totals and a pressure level, then each worker's resident size (and footprint where the
//! OS reports one, which is the number to trend on macOS). With `--samples N` it prints the
//! series and the leak rule's judgement of it (`leak`: the baseline, not memory in use).

use std::io::Write;

use super::Ctx;
use crate::cli::MemArgs;
use crate::model::Status;
use crate::registry;
use crate::render;

pub fn run(args: &MemArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let search = args.discovery.search()?;
    let reg = registry::load(&args.discovery.registry).ok();
    let (report, status) = crate::diagnose::memory::memory(
        ctx.platform.as_ref(),
        &search,
        reg.as_ref(),
        &args.pids,
        (args.samples.max(1), args.interval),
        &args.leak.rule(),
    )?;
    let rule = args.leak.rule();
    ctx.emit(out, &report, |r, st, out| {
        render::mem::mem(r, &rule, st, out)
    })?;
    Ok(status)
}
