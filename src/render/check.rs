//! `check`'s text: the workers' table, each worker's findings and notes, the summary line;
//! and the findings block that the snapshot's text form shares.

use std::fmt::Write as _;
use std::io::Write;

use super::{Style, clip_name, sanitize};
use crate::fmt::{bytes, duration};
use crate::model::{CheckReport, Finding};

/// A worker's evidence as `check` prints it: `✗ [verdict] evidence` per finding, `· note`.
pub fn findings(findings: &[Finding], notes: &[String]) -> String {
    let mut t = String::new();
    for f in findings {
        for e in &f.evidence {
            let _ = writeln!(t, "  ✗ [{}] {}", f.verdict.label(), sanitize(e));
        }
    }
    for n in notes {
        let _ = writeln!(t, "  · {}", sanitize(n));
    }
    t
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

/// The check report as a table of workers, each worker's findings and notes, and the summary.
pub fn check(r: &CheckReport, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    if !r.workers.is_empty() {
        // TOK/S only when some worker keeps a token progress record.
        let tokens = r.workers.iter().any(|w| w.progress.is_some());
        let mut header = vec![
            "PID", "NAME", "S", "%CPU", "RSS", "VSZ", "ELAPSED", "THR", "VERDICT", "ACTIVITY",
        ];
        if tokens {
            header.push("TOK/S");
        }
        // GPU% only where the OS's GPU source knows some worker.
        let gpu = r.workers.iter().any(|w| w.gpu.is_some());
        if gpu {
            header.push("GPU%");
        }
        let mut t = st.table(&header);
        for w in &r.workers {
            let mut row = vec![
                comfy_table::Cell::new(w.pid),
                comfy_table::Cell::new(clip_name(&w.name)),
                comfy_table::Cell::new(opt(w.state, |c| c.to_string())),
                comfy_table::Cell::new(opt(w.cpu_percent, |c| format!("{c:.1}"))),
                comfy_table::Cell::new(opt(w.rss_bytes, bytes)),
                comfy_table::Cell::new(opt(w.vsz_bytes, bytes)),
                comfy_table::Cell::new(opt(w.elapsed_secs, |s| {
                    duration(std::time::Duration::from_secs(s))
                })),
                comfy_table::Cell::new(opt(w.threads, |n| n.to_string())),
                st.verdict_cell(w.verdict),
                comfy_table::Cell::new(w.activity.label()),
            ];
            if tokens {
                let rate = w.progress.as_ref().and_then(|p| p.tokens_per_sec);
                row.push(comfy_table::Cell::new(opt(rate, |r| format!("{r:.1}"))));
            }
            if gpu {
                let busy = w.gpu.as_ref().and_then(|g| g.busy_percent);
                row.push(comfy_table::Cell::new(opt(busy, |b| format!("{b:.0}"))));
            }
            t.add_row(row);
        }
        writeln!(out, "{t}")?;
        writeln!(out)?;
        for w in &r.workers {
            let found = if w.found_by.is_empty() {
                String::new()
            } else {
                format!(" (found by {})", w.found_by)
            };
            writeln!(
                out,
                "PID {} {}: {}{found}",
                w.pid,
                clip_name(&w.name),
                w.verdict.label().to_uppercase()
            )?;
            write!(out, "{}", findings(&w.findings, &w.notes))?;
        }
    }
    for (pid, n) in r.orchestrators.iter().map(|o| (o.pid, o.workers)) {
        writeln!(
            out,
            "orchestrator PID {pid} (parent of {n} worker(s)) is not counted as a worker"
        )?;
    }
    for n in &r.notes {
        writeln!(out, "note: {}", sanitize(n))?;
    }
    let counts: Vec<String> = r
        .summary
        .iter()
        .rev()
        .map(|(v, n)| format!("{n} {}", v.label()))
        .collect();
    writeln!(
        out,
        "{} worker(s){}{} → {} (exit {})",
        r.workers.len(),
        if counts.is_empty() { "" } else { ": " },
        counts.join(", "),
        r.status.label(),
        r.exit_code
    )
}
