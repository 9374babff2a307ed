//! `mlsdiag check`: the seed's whole procedure in one command.
//!
//! Find the workers (pattern + registry), read each several times over the window, fold in the
//! server log's in-flight requests and the IPC state, and give every worker a verdict with the
//! evidence that produced it. The exit code follows the monitoring-plugin convention so cron,
//! Nagios/Icinga checks and humans all read the same result.

use std::io::Write;

use super::Ctx;
use crate::cli::CheckCmdArgs;
use crate::diagnose::check::check;
use crate::fmt::{bytes, duration, sanitize};
use crate::metrics;
use crate::model::CheckReport;
use crate::model::Status;
use crate::render;

pub fn run(args: &CheckCmdArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let started = std::time::Instant::now();
    let report = match check(&(&args.check).into(), ctx.platform.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            // The collector must still learn that this check failed (mlsdiag_up 0).
            if let Some(dir) = &args.textfile {
                let _ =
                    metrics::write_textfile(dir, &metrics::render(None, started.elapsed(), None));
            }
            return Err(e);
        }
    };
    if let Some(dir) = &args.textfile {
        metrics::write_textfile(
            dir,
            &metrics::render(Some(&report), started.elapsed(), None),
        )?;
    }
    if ctx.json {
        render::json(out, &report)?;
    } else {
        print(&report, ctx, out)?;
    }
    Ok(report.status)
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

pub fn print(r: &CheckReport, ctx: &Ctx, out: &mut dyn Write) -> std::io::Result<()> {
    let st = &ctx.style;
    if !r.workers.is_empty() {
        let mut t = st.table(&[
            "PID", "NAME", "S", "%CPU", "RSS", "VSZ", "ELAPSED", "THR", "VERDICT", "ACTIVITY",
        ]);
        for w in &r.workers {
            t.add_row(vec![
                comfy_table::Cell::new(w.pid),
                comfy_table::Cell::new(sanitize(&w.name)),
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
            ]);
        }
        writeln!(out, "{t}")?;
        writeln!(out)?;
        for w in &r.workers {
            writeln!(
                out,
                "PID {} {}: {}",
                w.pid,
                sanitize(&w.name),
                w.verdict.label().to_uppercase()
            )?;
            for f in &w.findings {
                for e in &f.evidence {
                    writeln!(out, "  ✗ [{}] {}", f.verdict.label(), sanitize(e))?;
                }
            }
            for n in &w.notes {
                writeln!(out, "  · {}", sanitize(n))?;
            }
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
