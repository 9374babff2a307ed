//! `history`'s text: one row per worker across its snapshots, then the findings and restarts.

use std::io::Write;

use super::{Style, clip_name, sanitize};
use crate::fmt::{bytes, duration, local_time};
use crate::model::HistoryReport;
use crate::model::leak::Judgement;

/// The workers' table, their findings across snapshots and their restarts.
pub fn history(r: &HistoryReport, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    if r.workers.is_empty() {
        writeln!(out, "no snapshots in {}", r.dir)?;
    }
    let mut t = st.table(&[
        "NAME",
        "PID",
        "SNAPSHOTS",
        "SPAN",
        "MEMORY",
        "TREND",
        "SNAPSHOTS SAID",
        "HISTORY",
    ]);
    for w in &r.workers {
        t.add_row(vec![
            comfy_table::Cell::new(clip_name(&w.name)),
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
            comfy_table::Cell::new(said(&w.snapshot_verdicts)),
            st.verdict_cell(w.verdict),
        ]);
    }
    if !r.workers.is_empty() {
        writeln!(out, "{t}")?;
    }
    for w in &r.workers {
        for f in &w.findings {
            for e in &f.evidence {
                writeln!(
                    out,
                    "{} ✗ [{}] {}",
                    clip_name(&w.name),
                    f.verdict.label(),
                    sanitize(e)
                )?;
            }
        }
        for r in &w.restarts {
            writeln!(
                out,
                "{} restarted at {}: PID {} → {}",
                clip_name(&w.name),
                local_time(r.at),
                r.old_pid,
                r.new_pid
            )?;
        }
    }
    for u in &r.unreadable {
        writeln!(out, "note: {u}")?;
    }
    Ok(())
}

/// The SNAPSHOTS SAID column: `crashed ×4`, `hung ×2, healthy ×1`.
fn said(verdicts: &[crate::model::SaidCount]) -> String {
    if verdicts.is_empty() {
        return "-".into();
    }
    let parts: Vec<String> = (verdicts.iter())
        .map(|c| format!("{} ×{}", c.verdict.label(), c.snapshots))
        .collect();
    parts.join(", ")
}

/// The TREND column: the baseline slope and what the leak rule made of it.
fn trend_cell(j: &Judgement) -> String {
    format!(
        "{:+.1} MiB/min ({})",
        j.slope_mib_per_min,
        j.outcome.label()
    )
}
