//! `mlsdiag fds PID`: the seed's `lsof -p PID | grep -E "(PIPE|unix|shm)"`, with the other ends.
//!
//! A worker talks to its orchestrator over pipes, a unix socket and POSIX shared memory. The
//! seed's rule: channels missing means IPC failure; channels present but silent means deadlock.
//! So this lists every descriptor, finds the process at the other end of each pipe and unix
//! socket, and says whether the standard streams and the link to the parent are still there.

use std::io::Write;

use super::Ctx;
use crate::cli::FdsArgs;
use crate::diagnose::ipc::fds_report;
use crate::model::Status;
use crate::render;

pub fn run(args: &FdsArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let (report, name) = fds_report(ctx.platform.as_ref(), args.pid, !args.no_peers)?;
    ctx.emit(out, &report, |r, st, out| {
        render::fds::fds(r, &name, st, out)
    })?;
    Ok(Status::Ok)
}
