//! `fleet`'s text: every host's workers in one table, and the fleet's status.

use std::io::Write;

use super::{Style, clip_name, sanitize};
use crate::fmt::bytes;
use crate::model::FleetReport;

/// One row per worker of every host (a host without workers gets one row saying why), then
/// the fleet's status.
pub fn fleet(r: &FleetReport, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    let mut t = st.table(&[
        "HOST", "STATUS", "PID", "WORKER", "VERDICT", "ACTIVITY", "%CPU", "MEM", "EVIDENCE",
    ]);
    fn cell(v: impl ToString) -> comfy_table::Cell {
        comfy_table::Cell::new(v.to_string())
    }
    for h in &r.hosts {
        if h.workers.is_empty() {
            let why = h
                .reason
                .clone()
                .unwrap_or_else(|| "no workers found".to_string());
            t.add_row(vec![
                cell(clip_name(&h.host)),
                cell(h.status.label()),
                cell("-"),
                cell("-"),
                cell("-"),
                cell("-"),
                cell("-"),
                cell("-"),
                cell(sanitize(&why)),
            ]);
        }
        for w in &h.workers {
            let evidence = w
                .findings
                .iter()
                .find(|f| f.verdict == w.verdict)
                .and_then(|f| f.evidence.first())
                .map_or("", String::as_str);
            t.add_row(vec![
                cell(clip_name(&h.host)),
                cell(h.status.label()),
                cell(w.pid),
                cell(clip_name(&w.name)),
                st.verdict_cell(w.verdict),
                cell(sanitize(w.activity.as_deref().unwrap_or("-"))),
                cell(w.cpu_percent.map_or("-".into(), |c| format!("{c:.1}"))),
                cell(w.footprint_bytes.or(w.rss_bytes).map_or("-".into(), bytes)),
                cell(sanitize(evidence)),
            ]);
        }
    }
    writeln!(out, "{t}")?;
    let unreachable = r.hosts.iter().filter(|h| h.reason.is_some()).count();
    let workers: usize = r.hosts.iter().map(|h| h.workers.len()).sum();
    writeln!(
        out,
        "{} host(s), {} worker(s), {} host(s) not checked → {} (exit {})",
        r.hosts.len(),
        workers,
        unreachable,
        r.status.label(),
        r.exit_code
    )
}
