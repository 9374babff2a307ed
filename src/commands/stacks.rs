//! `mlsdiag stacks PID`: where each thread of a hung worker is stuck, without sudo, and which
//! known MLX hang it matches.

use std::io::Write;

use super::Ctx;
use crate::cli::StacksArgs;
use crate::model::Status;
use crate::render;
use crate::stacks::collect::{Collect, collect};

pub fn run(args: &StacksArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    ctx.platform.process(args.pid)?;
    // Without --faulthandler: the registry's dump file for this PID, else the one in the
    // worker's user directory (`mlsdiag run`, the module's fallback), where its watchdog dumps.
    let registry = crate::registry::load(&args.registry).ok();
    let faulthandler = (args.faulthandler.clone()).or_else(|| {
        crate::progress::faulthandler_file(registry.as_ref(), args.pid, ctx.platform.as_ref())
    });
    if args.signal && faulthandler.is_none() {
        anyhow::bail!(
            "--signal: no dump file is known for PID {}: pass --faulthandler FILE, list it in the registry's field \"faulthandler\" ({}), or start the worker under `mlsdiag run` (docs/worker-snippet.md); SIGUSR1 was not sent",
            args.pid,
            args.registry.display()
        );
    }
    let how = Collect {
        native: !args.no_native,
        signal: args.signal,
        faulthandler,
        reuse_refusal: false,
    };
    let r = collect(ctx.platform.as_ref(), args.pid, &how);
    ctx.emit(out, &r, render::stacks::stacks)?;
    Ok(Status::Ok)
}
