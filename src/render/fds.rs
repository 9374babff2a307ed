//! `fds`' text: one row per descriptor with the process at the other end, and the IPC line.

use std::io::Write;

use super::{Style, clip_name, sanitize};
use crate::model::FdsReport;

/// The descriptors table and the IPC judgement of process `name`.
pub fn fds(r: &FdsReport, name: &str, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    let mut t = st.table(&["FD", "KIND", "TARGET", "STATE", "PEER"]);
    for f in &r.fds {
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
    writeln!(out, "PID {} {}: {}", r.pid, clip_name(name), r.ipc.line())?;
    if r.ipc.warnings.is_empty() {
        writeln!(
            out,
            "channels present: if the worker is silent, suspect a deadlock, not IPC"
        )?;
    } else {
        writeln!(out, "channels missing: suspect an IPC failure")?;
    }
    Ok(())
}
