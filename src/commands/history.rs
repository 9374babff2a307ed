//! `mlsdiag history`: what only time shows. Leaks are slopes across snapshots; a hang is CPU
//! time that stops moving while a request waits; a restart is a new PID under the same name.
//! `check --history DIR` folds the same findings into a live check.

use std::io::Write;

use super::Ctx;
use crate::cli::HistoryArgs;
use crate::diagnose::history::analyze;
use crate::model::HistoryReport;
use crate::model::SCHEMA_VERSION;
use crate::model::Snapshot;
use crate::model::Status;
use crate::render;
use crate::store;

pub fn run(args: &HistoryArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let dir = args.dir.clone().unwrap_or_else(store::default_dir);
    let (snaps, unreadable) = store::load_all(&dir)?;
    let snaps: Vec<Snapshot> = snaps
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| args.pid.is_none_or(|p| p == s.pid))
        .collect();
    let workers = analyze(&snaps, &args.leak.rule());
    let status = workers
        .iter()
        .fold(Status::Ok, |s, w| s.worst(w.verdict.status()));
    let report = HistoryReport {
        schema_version: SCHEMA_VERSION,
        command: "history",
        dir: dir.display().to_string(),
        status,
        workers,
        unreadable,
    };
    ctx.emit(out, &report, render::history::history)?;
    Ok(status)
}
