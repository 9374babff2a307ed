//! `mlsdiag threads PID`: the seed's `ps -M -p PID`, plus what each thread waits on.
//!
//! "All threads sleeping" is the seed's deadlock signature, but every idle thread sleeps too.
//! What separates them is where they sleep: a deadlock shows threads parked in lock waits
//! (`futex` on Linux), and threads waiting on the same lock word share an address. Threads are
//! read twice, `--window` apart, for per-thread CPU%, without stopping the process.

use std::io::Write;

use super::Ctx;
use crate::cli::ThreadsArgs;
use crate::model::Status;
use crate::render;

pub fn run(args: &ThreadsArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let r = crate::sample::threads(ctx.platform.as_ref(), args.pid, args.window)?;
    ctx.emit(out, &r, render::threads::threads)?;
    Ok(Status::Ok)
}
