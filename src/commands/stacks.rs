//! `mlsdiag stacks PID`: where each thread of a hung worker is stuck, without sudo, and which
//! known MLX hang it matches.

use std::io::Write;

use super::Ctx;
use crate::cli::StacksArgs;
use crate::model::Status;
use crate::render;
use crate::stacks::collect::{Collect, collect};

pub fn run(args: &StacksArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let p = ctx.platform.process(args.pid)?;
    // Without --faulthandler: the dump file in the worker's user directory (`mlsdiag run`,
    // the module's fallback), where its watchdog dumps too.
    let faulthandler = (args.faulthandler.clone()).or_else(|| {
        crate::progress::user_file("faulthandler", args.pid, p.uid)
            .ok()
            .flatten()
    });
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
