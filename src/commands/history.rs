//! `mlsdiag history`: what only time shows. Leaks are slopes across snapshots; a hang is CPU
//! time that stops moving while a request waits; a restart is a new PID under the same name.
//! `check --history DIR` folds the same findings into a live check.

use std::io::Write;

use super::Ctx;
use crate::cli::HistoryArgs;
use crate::diagnose::history::{Seen, analyze, listed};
use crate::fmt::sanitize;
use crate::model::HistoryReport;
use crate::model::SCHEMA_VERSION;
use crate::model::Status;
use crate::{input, render, store};

pub fn run(args: &HistoryArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let dir = args.dir.clone().unwrap_or_else(store::default_dir);
    let euid = input::euid();
    // Each file is judged as it is read (an untrusted one is left out); the directory once.
    let read = store::read_all::<Seen>(&dir, Some(euid))?;
    let mut untrusted = Vec::new();
    if let input::Trust::Untrusted(why) = input::trust(&dir, euid) {
        untrusted.push(why);
    }
    let left_out = read
        .untrusted
        .into_iter()
        .map(|why| format!("{why}; left out"));
    untrusted.extend(listed(
        left_out.collect(),
        "untrusted snapshot files, left out",
    ));
    let snaps: Vec<Seen> = read
        .snaps
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| args.pid.is_none_or(|p| p == s.pid))
        .collect();
    let workers = analyze(&snaps, &args.leak.rule(), args.hung_after);
    let status = workers
        .iter()
        .fold(Status::Ok, |s, w| s.worst(w.verdict.status()));
    let report = HistoryReport {
        schema_version: SCHEMA_VERSION,
        command: "history",
        dir: dir.display().to_string(),
        status,
        workers,
        unreadable: listed(read.unreadable, "unreadable snapshot files"),
        untrusted,
    };
    ctx.emit(out, &report, render::history::history)?;
    if !ctx.json {
        for u in &report.untrusted {
            writeln!(out, "WARNING untrusted: {}", sanitize(u))?;
        }
    }
    Ok(status)
}
