//! `mlsdiag fds PID`: the seed's `lsof -p PID | grep -E "(PIPE|unix|shm)"`, with the other ends.
//!
//! A worker talks to its orchestrator over pipes, a unix socket and POSIX shared memory. The
//! seed's rule: channels missing means IPC failure; channels present but silent means deadlock.
//! So this lists every descriptor, finds the process at the other end of each pipe and unix
//! socket, and says whether the standard streams and the link to the parent are still there.

use std::io::Write;

use super::Ctx;
use crate::cli::FdsArgs;
use crate::diagnose::ipc::summarize;
use crate::model::FdsReport;
use crate::model::SCHEMA_VERSION;
use crate::model::Status;
use crate::render;

pub fn run(args: &FdsArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let p = ctx.platform.process(args.pid)?;
    let peers: Option<&[u32]> = if args.no_peers { None } else { Some(&[]) };
    let fds = ctx.platform.fds(args.pid, peers)?;
    let ipc = summarize(&fds, Some(p.ppid));
    let report = FdsReport {
        schema_version: SCHEMA_VERSION,
        command: "fds",
        pid: args.pid,
        ppid: p.ppid,
        fds,
        ipc,
    };
    ctx.emit(out, &report, |r, st, out| {
        render::fds::fds(r, &p.name, st, out)
    })?;
    Ok(Status::Ok)
}
