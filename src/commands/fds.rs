//! `mlsdiag fds PID`: the seed's `lsof -p PID | grep -E "(PIPE|unix|shm)"`, with the other ends.
//!
//! A worker talks to its orchestrator over pipes, a unix socket and POSIX shared memory. The
//! seed's rule: channels missing means IPC failure; channels present but silent means deadlock.
//! So this lists every descriptor, finds the process at the other end of each pipe and unix
//! socket, and says whether the standard streams and the link to the parent are still there.

use std::io::Write;

use serde::Serialize;

use super::Ctx;
use crate::cli::FdsArgs;
use crate::diagnose::ipc::summarize;
use crate::fmt::sanitize;
use crate::model::FdInfo;
use crate::model::IpcSummary;
use crate::model::SCHEMA_VERSION;
use crate::model::Status;
use crate::render;

#[derive(Debug, Serialize)]
pub struct FdsReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub pid: u32,
    pub ppid: u32,
    pub fds: Vec<FdInfo>,
    pub ipc: IpcSummary,
}

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
    if ctx.json {
        render::json(out, &report)?;
        return Ok(Status::Ok);
    }
    let mut t = ctx.style.table(&["FD", "KIND", "TARGET", "STATE", "PEER"]);
    for f in &report.fds {
        let peer = f
            .peers
            .iter()
            .map(|p| format!("{} {} fd {}", p.pid, sanitize(&p.name), p.fd))
            .collect::<Vec<_>>()
            .join(", ");
        t.add_row(vec![
            f.fd.to_string(),
            f.kind.label().to_string(),
            sanitize(&f.target),
            f.state.clone().unwrap_or_default(),
            peer,
        ]);
    }
    writeln!(out, "{t}")?;
    writeln!(
        out,
        "PID {} {}: {}",
        p.pid,
        sanitize(&p.name),
        report.ipc.line()
    )?;
    if report.ipc.warnings.is_empty() {
        writeln!(
            out,
            "channels present: if the worker is silent, suspect a deadlock, not IPC"
        )?;
    } else {
        writeln!(out, "channels missing: suspect an IPC failure")?;
    }
    Ok(Status::Ok)
}
