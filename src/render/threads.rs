//! `threads`' text: one row per thread, the states, and the wait groups.

use std::io::Write;

use super::{Style, clip_name, sanitize};
use crate::model::{Syscall, ThreadsReport};

/// The threads table, the state counts, and what the sleeping threads wait on.
pub fn threads(r: &ThreadsReport, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    let mut t = st.table(&[
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
        clip_name(&r.name),
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
    if let Some(g) = &r.gpu {
        writeln!(out, "  {}", g.describe())?;
    }
    if let Some(Syscall::Unavailable { reason }) =
        r.threads.iter().find_map(|t| match &t.thread.syscall {
            Some(s @ Syscall::Unavailable { .. }) => Some(s),
            _ => None,
        })
    {
        writeln!(out, "note: syscall details unavailable: {reason}")?;
    }
    Ok(())
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
