//! `registry`'s text: each entry with its liveness, then live workers the registry misses.

use std::io::Write;

use super::{Style, clip_name, sanitize};
use crate::fmt::local_time;
use crate::model::RegistryReport;

/// The entries table and the unlisted processes.
pub fn registry(rep: &RegistryReport, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    let mut t = st.table(&[
        "PID", "NAME", "MODEL", "PORT", "SPAWNED", "LIVENESS", "DETAIL",
    ]);
    for row in &rep.entries {
        let e = &row.entry;
        t.add_row(vec![
            e.pid.to_string(),
            clip_name(e.name.as_deref().unwrap_or("-")),
            clip_name(e.model.as_deref().unwrap_or("-")),
            e.port.map_or("-".into(), |p| p.to_string()),
            e.spawned_at.map_or("-".into(), local_time),
            format!("{:?}", row.liveness).to_lowercase(),
            sanitize(&row.detail),
        ]);
    }
    writeln!(
        out,
        "{}: {} entr{}",
        rep.path,
        rep.entries.len(),
        if rep.entries.len() == 1 { "y" } else { "ies" }
    )?;
    writeln!(out, "{t}")?;
    for u in &rep.unlisted {
        writeln!(
            out,
            "not in registry: PID {} (parent {}) {}",
            u.pid,
            u.ppid,
            sanitize(&u.command)
        )?;
    }
    Ok(())
}
