//! `mlsdiag history`: what only time shows. Leaks are slopes across snapshots; a hang is CPU
//! time that stops moving while a request waits; a restart is a new PID under the same name.
//! `check --history DIR` folds the same findings into a live check.

use std::io::Write;

use serde::Serialize;

use super::Ctx;
use crate::cli::HistoryArgs;
use crate::diagnose::history::{WorkerHistory, analyze};
use crate::diagnose::leak;
use crate::fmt::{bytes, duration, local_time, sanitize};
use crate::model::SCHEMA_VERSION;
use crate::model::Snapshot;
use crate::model::Status;
use crate::render;
use crate::store;

#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub dir: String,
    pub status: Status,
    pub workers: Vec<WorkerHistory>,
    pub unreadable: Vec<String>,
}

/// The TREND column: the baseline slope and what the leak rule made of it.
fn trend_cell(j: &leak::Judgement) -> String {
    format!(
        "{:+.1} MiB/min ({})",
        j.slope_mib_per_min,
        j.outcome.label()
    )
}

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
    if ctx.json {
        render::json(out, &report)?;
        return Ok(status);
    }
    if report.workers.is_empty() {
        writeln!(out, "no snapshots in {}", report.dir)?;
    }
    let mut t = ctx.style.table(&[
        "NAME",
        "PID",
        "SNAPSHOTS",
        "SPAN",
        "MEMORY",
        "TREND",
        "VERDICT",
    ]);
    for w in &report.workers {
        t.add_row(vec![
            comfy_table::Cell::new(sanitize(&w.name)),
            comfy_table::Cell::new(w.pid),
            comfy_table::Cell::new(format!("{} ({} this PID)", w.snapshots, w.snapshots_of_pid)),
            comfy_table::Cell::new(duration((w.last - w.first).to_std().unwrap_or_default())),
            comfy_table::Cell::new(format!(
                "{} {} → {}",
                w.memory_metric,
                w.memory_first_bytes.map_or("-".into(), bytes),
                w.memory_last_bytes.map_or("-".into(), bytes)
            )),
            comfy_table::Cell::new(w.memory_trend.as_ref().map_or("-".into(), trend_cell)),
            ctx.style.verdict_cell(w.verdict),
        ]);
    }
    if !report.workers.is_empty() {
        writeln!(out, "{t}")?;
    }
    for w in &report.workers {
        for f in &w.findings {
            for e in &f.evidence {
                writeln!(out, "{} ✗ [{}] {}", sanitize(&w.name), f.verdict.label(), e)?;
            }
        }
        for r in &w.restarts {
            writeln!(
                out,
                "{} restarted at {}: PID {} → {}",
                sanitize(&w.name),
                local_time(r.at),
                r.old_pid,
                r.new_pid
            )?;
        }
    }
    for u in &report.unreadable {
        writeln!(out, "note: {u}")?;
    }
    Ok(status)
}
