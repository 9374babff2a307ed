//! `mlsdiag threads PID`: the seed's `ps -M -p PID`, plus what each thread waits on.
//!
//! "All threads sleeping" is the seed's deadlock signature, but every idle thread sleeps too.
//! What separates them is where they sleep: a deadlock shows threads parked in lock waits
//! (`futex` on Linux), and threads waiting on the same lock word share an address. Threads are
//! read twice, `--window` apart, for per-thread CPU%, without stopping the process.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::Ctx;
use crate::cli::ThreadsArgs;
use crate::fmt::sanitize;
use crate::model::SCHEMA_VERSION;
use crate::model::Status;
use crate::model::WaitGroup;
use crate::model::waits::group;
use crate::model::{Syscall, ThreadInfo};
use crate::render;

#[derive(Debug, Serialize)]
pub struct ThreadRow {
    #[serde(flatten)]
    pub thread: ThreadInfo,
    pub cpu_percent: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ThreadsReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub pid: u32,
    pub name: String,
    pub window_secs: f64,
    pub threads: Vec<ThreadRow>,
    pub states: BTreeMap<char, usize>,
    pub all_blocked: bool,
    pub groups: Vec<WaitGroup>,
}

fn syscall_text(s: &Option<Syscall>) -> String {
    match s {
        None => String::new(),
        Some(Syscall::Running) => "running".into(),
        Some(Syscall::NotInSyscall) => "-".into(),
        Some(Syscall::Blocked { number, name, arg0 }) => match name {
            Some(n) => format!("{n} {arg0:#x}"),
            None => format!("#{number} {arg0:#x}"),
        },
        Some(Syscall::Unavailable { .. }) => "(denied)".into(),
    }
}

pub fn collect(args: &ThreadsArgs, ctx: &Ctx) -> anyhow::Result<ThreadsReport> {
    let p = ctx.platform.process(args.pid)?;
    let before = ctx.platform.threads(args.pid)?;
    let started = std::time::Instant::now();
    let after = if args.window.is_zero() {
        before.clone()
    } else {
        std::thread::sleep(args.window);
        ctx.platform.threads(args.pid)?
    };
    let span = started.elapsed().as_secs_f64();
    let prev: BTreeMap<u64, u64> = before.iter().map(|t| (t.tid, t.cpu_ns())).collect();
    let mut states = BTreeMap::new();
    for t in &after {
        *states.entry(t.state).or_insert(0) += 1;
    }
    let all_blocked = !after.is_empty() && after.iter().all(|t| t.state != 'R');
    let groups = group(&after);
    let threads = after
        .into_iter()
        .map(|t| {
            let cpu_percent = (span > 0.0)
                .then(|| {
                    prev.get(&t.tid)
                        .map(|&b| t.cpu_ns().saturating_sub(b) as f64 / 1e9 / span * 100.0)
                })
                .flatten();
            ThreadRow {
                thread: t,
                cpu_percent,
            }
        })
        .collect();
    Ok(ThreadsReport {
        schema_version: SCHEMA_VERSION,
        command: "threads",
        pid: p.pid,
        name: p.name,
        window_secs: span,
        threads,
        states,
        all_blocked,
        groups,
    })
}

pub fn run(args: &ThreadsArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let r = collect(args, ctx)?;
    if ctx.json {
        render::json(out, &r)?;
        return Ok(Status::Ok);
    }
    let mut t = ctx.style.table(&[
        "TID", "NAME", "S", "%CPU", "USER s", "SYS s", "WCHAN", "SYSCALL",
    ]);
    for row in &r.threads {
        let th = &row.thread;
        t.add_row(vec![
            th.tid.to_string(),
            sanitize(&th.name),
            th.state.to_string(),
            row.cpu_percent.map_or("-".into(), |c| format!("{c:.1}")),
            format!("{:.2}", th.cpu_user_ns as f64 / 1e9),
            format!("{:.2}", th.cpu_system_ns as f64 / 1e9),
            th.wait_channel.clone().unwrap_or_else(|| "-".into()),
            syscall_text(&th.syscall),
        ]);
    }
    writeln!(out, "{t}")?;
    let states: Vec<String> = r.states.iter().map(|(s, n)| format!("{n} {s}")).collect();
    writeln!(
        out,
        "PID {} {}: {} thread(s) ({}); {}",
        r.pid,
        sanitize(&r.name),
        r.threads.len(),
        states.join(", "),
        if r.all_blocked {
            "all blocked, none running"
        } else {
            "some running"
        }
    )?;
    for g in &r.groups {
        let mut line = format!("  {} thread(s) in {}", g.tids.len(), g.wait);
        if !g.locks.is_empty() {
            let locks: Vec<String> = g
                .locks
                .iter()
                .map(|(a, tids)| format!("{a} ×{}", tids.len()))
                .collect();
            line.push_str(&format!(
                " on {} lock(s): {}",
                g.locks.len(),
                locks.join(", ")
            ));
        }
        writeln!(out, "{line}")?;
    }
    if let Some(Syscall::Unavailable { reason }) =
        r.threads.iter().find_map(|t| match &t.thread.syscall {
            Some(s @ Syscall::Unavailable { .. }) => Some(s),
            _ => None,
        })
    {
        writeln!(out, "note: syscall details unavailable: {reason}")?;
    }
    Ok(Status::Ok)
}
