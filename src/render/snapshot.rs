//! The readable `.txt` form of a snapshot, in the spirit of the seed's step-8 file.

use std::fmt::Write as _;

use super::{clip_name, sanitize};
use crate::fmt::{bytes, duration};
use crate::model::{FdInfo, Snapshot, ThreadInfo};

/// The readable form of a snapshot, in the spirit of the seed's step-8 file.
pub fn text(s: &Snapshot) -> String {
    let mut t = String::new();
    header(s, &mut t);
    verdict(s, &mut t);
    process(s, &mut t);
    threads_and_fds(s, &mut t);
    registry(s, &mut t);
    memory(s, &mut t);
    stacks(s, &mut t);
    log(s, &mut t);
    t
}

/// The heading: when, where, which worker.
fn header(s: &Snapshot, t: &mut String) {
    let w = &s.worker;
    let local = |d: chrono::DateTime<chrono::Utc>| {
        d.with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    };
    let _ = writeln!(t, "=== Worker Diagnostic Snapshot ===");
    let _ = writeln!(t, "Date: {}", local(s.taken_at));
    let _ = writeln!(
        t,
        "Host: {} ({}), mlsdiag {}",
        s.host, s.os, s.mlsdiag_version
    );
    let _ = writeln!(
        t,
        "PID: {}  Name: {}  Model: {}",
        s.pid,
        clip_name(&s.name),
        clip_name(w.model.as_deref().unwrap_or("-"))
    );
}

/// The verdict and its evidence.
fn verdict(s: &Snapshot, t: &mut String) {
    let w = &s.worker;
    let _ = writeln!(
        t,
        "\n=== Verdict: {} ({}) ===",
        w.verdict.label().to_uppercase(),
        w.activity.label()
    );
    t.push_str(&super::check::findings(&w.findings, &w.notes));
}

/// The process reading.
fn process(s: &Snapshot, t: &mut String) {
    let w = &s.worker;
    let local = |d: chrono::DateTime<chrono::Utc>| {
        d.with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    };
    let _ = writeln!(t, "\n=== Process State ===");
    match &s.process {
        Some(p) => {
            let _ = writeln!(
                t,
                "PID {} PPID {} UID {} STATE {} THREADS {} RSS {} VSZ {}{} CPU user {:.2}s system {:.2}s started {}",
                p.pid,
                p.ppid,
                p.uid,
                p.state,
                p.threads,
                bytes(p.rss_bytes),
                bytes(p.vsz_bytes),
                p.footprint_bytes
                    .map(|f| format!(" FOOTPRINT {}", bytes(f)))
                    .unwrap_or_default(),
                p.cpu_user_ns as f64 / 1e9,
                p.cpu_system_ns as f64 / 1e9,
                local(p.start_time)
            );
            let _ = writeln!(t, "Command: {}", sanitize(&p.command()));
        }
        None => {
            let _ = writeln!(
                t,
                "(no process: {})",
                w.findings
                    .first()
                    .and_then(|f| f.evidence.first())
                    .map_or("gone", |e| e)
            );
        }
    }
}

/// Threads, descriptors, and why either is missing.
fn threads_and_fds(s: &Snapshot, t: &mut String) {
    let w = &s.worker;
    if let Some(threads) = &s.threads {
        let _ = writeln!(t, "\n=== Threads ({}) ===", threads.len());
        for th in threads {
            let _ = writeln!(t, "{}", thread_line(th));
        }
    }
    if let Some(fds) = &s.fds {
        let _ = writeln!(t, "\n=== File Descriptors ({}) ===", fds.len());
        for f in fds {
            let _ = writeln!(t, "{}", fd_line(f));
        }
        if let Some(ipc) = &w.ipc {
            let _ = writeln!(t, "{}", ipc.line());
        }
    }
    for e in &s.errors {
        let _ = writeln!(t, "note: {}", sanitize(e));
    }
}

/// The registry entry.
fn registry(s: &Snapshot, t: &mut String) {
    let _ = writeln!(t, "\n=== Worker Registry ({}) ===", s.registry_path);
    match &s.registry {
        Some(r) => {
            let _ = writeln!(t, "{}", serde_json::to_string(r).unwrap_or_default());
        }
        None => {
            let _ = writeln!(t, "not listed");
        }
    }
}

/// System memory.
fn memory(s: &Snapshot, t: &mut String) {
    if let Some(m) = &s.system_memory {
        let _ = writeln!(t, "\n=== System Memory ===");
        let _ = writeln!(
            t,
            "total {}, free {}, available {}, cached {}, swap {} of {} free; pressure {} ({})",
            bytes(m.total_bytes),
            bytes(m.free_bytes),
            bytes(m.available_bytes),
            bytes(m.cached_bytes),
            bytes(m.swap_free_bytes),
            bytes(m.swap_total_bytes),
            m.pressure.label(),
            m.pressure_evidence
        );
    }
}

/// The stacks from the sources that never disturb the worker.
fn stacks(s: &Snapshot, t: &mut String) {
    if let Some(st) = &s.stacks {
        let _ = writeln!(t, "\n=== Stacks ===");
        for src in &st.sources {
            let _ = writeln!(
                t,
                "  {} {}: {}",
                if src.ok { "✓" } else { "✗" },
                src.name,
                sanitize(&src.detail)
            );
        }
        for th in st
            .threads
            .iter()
            .chain(&st.python_threads)
            .filter(|t| !t.python.is_empty() || !t.native.is_empty())
        {
            let _ = writeln!(
                t,
                "  thread {} {}",
                th.tid,
                sanitize(th.name.as_deref().unwrap_or(""))
            );
            for f in th.python.iter().rev().take(8) {
                let _ = writeln!(
                    t,
                    "    py {} ({}:{})",
                    sanitize(&f.function),
                    sanitize(f.location.as_deref().unwrap_or("?")),
                    f.line.unwrap_or(0)
                );
            }
            for f in th.native.iter().rev().take(8) {
                let _ = writeln!(t, "    c  {}", sanitize(&f.function));
            }
        }
        for m in &st.signatures {
            let _ = writeln!(t, "  matches {}: {} ({})", m.id, m.title, m.url);
        }
    }
}

/// The worker's requests and the log tail.
fn log(s: &Snapshot, t: &mut String) {
    let local = |d: chrono::DateTime<chrono::Utc>| {
        d.with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    };
    if let Some(l) = &s.log {
        let _ = writeln!(t, "\n=== Log ({}, format {}) ===", l.path, l.format);
        if let Some(st) = &l.stats {
            let _ = writeln!(
                t,
                "requests: {} started, {} completed, {} failed, {} timed out; {} tokens",
                st.started, st.completed, st.failed, st.timed_out, st.tokens
            );
        }
        for r in &l.in_flight {
            let _ = writeln!(
                t,
                "in flight: {} since {} ({} chars, max_tokens {}), {} timeout(s)",
                r.id.as_ref().map_or("request".into(), |i| i.to_string()),
                local(r.started),
                r.prompt_chars.map_or("?".into(), |c| c.to_string()),
                r.max_tokens.map_or("?".into(), |c| c.to_string()),
                r.timeouts.len()
            );
        }
        let _ = writeln!(t, "--- last {} lines ---", l.tail.len());
        for line in &l.tail {
            let _ = writeln!(t, "{}", sanitize(line));
        }
    }
}

fn thread_line(th: &ThreadInfo) -> String {
    format!(
        "  {:>8} {:<16} {} user {:.2}s sys {:.2}s {}{}",
        th.tid,
        sanitize(&th.name),
        th.state,
        th.cpu_user_ns as f64 / 1e9,
        th.cpu_system_ns as f64 / 1e9,
        th.wait_channel.clone().unwrap_or_default(),
        th.sleep_secs
            .map(|s| format!(" asleep {}", duration(std::time::Duration::from_secs(s))))
            .unwrap_or_default()
    )
}

fn fd_line(f: &FdInfo) -> String {
    let peers: Vec<String> = f
        .peers
        .iter()
        .map(|p| format!("{} {} fd {}", p.pid, sanitize(&p.name), p.fd))
        .collect();
    format!(
        "  {:>4} {:<7} {}{}{}",
        f.fd,
        f.kind.label(),
        sanitize(&f.target),
        f.state
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default(),
        if peers.is_empty() {
            String::new()
        } else {
            format!(" <-> {}", peers.join(", "))
        }
    )
}
