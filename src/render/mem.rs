//! `mem`'s text: system memory and pressure, each worker's readings, and the leak rule's
//! judgement of them.

use std::io::Write;

use super::{Style, clip_name, sanitize};
use crate::fmt::bytes;
use crate::model::MemReport;
use crate::model::leak::Rule;

/// System memory, the readings table, and each worker's trend as `rule` judged it.
pub fn mem(r: &MemReport, rule: &Rule, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    let m = &r.system;
    writeln!(
        out,
        "system: total {}, free {}, available {}, cached {}, swap {} of {} free",
        bytes(m.total_bytes),
        bytes(m.free_bytes),
        bytes(m.available_bytes),
        bytes(m.cached_bytes),
        bytes(m.swap_free_bytes),
        bytes(m.swap_total_bytes)
    )?;
    writeln!(
        out,
        "pressure: {} ({})",
        m.pressure.label(),
        m.pressure_evidence
    )?;
    if r.workers.is_empty() {
        writeln!(out, "no workers found")?;
        return Ok(());
    }
    let mut t = st.table(&["PID", "NAME", "T+s", "RSS", "FOOTPRINT"]);
    for w in &r.workers {
        for s in &w.samples {
            t.add_row(vec![
                w.pid.to_string(),
                clip_name(&w.name),
                format!("{:.1}", s.at_secs),
                bytes(s.rss_bytes),
                s.footprint_bytes.map_or("-".into(), bytes),
            ]);
        }
    }
    writeln!(out, "{t}")?;
    for w in &r.workers {
        if let Some(e) = &w.error {
            writeln!(out, "PID {}: {}", w.pid, sanitize(e))?;
        }
        if let Some(j) = &w.trend {
            let metric = if w.samples.iter().any(|s| s.footprint_bytes.is_some()) {
                "footprint"
            } else {
                "RSS"
            };
            writeln!(out, "PID {} {}", w.pid, j.describe(metric, rule))?;
        }
    }
    Ok(())
}
