//! `logs`' text: the incident's tables as the seed's step 6 greps them by hand.

use std::io::Write;

use comfy_table::Cell;

use super::{Style, clip_name, sanitize};
use crate::fmt::{bytes, local_time as ts};
use crate::model::{InFlight, LogsReport, Stats};

fn opt_f(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn stats_row(name: &str, s: &Stats) -> Vec<String> {
    vec![
        name.to_string(),
        s.started.to_string(),
        s.completed.to_string(),
        s.failed.to_string(),
        s.timed_out.to_string(),
        s.tokens.to_string(),
        opt_f(s.mean_tokens_per_sec, 1),
        opt_f(s.median_tokens_per_sec, 1),
        opt_f(s.latency_p50_secs, 1),
        opt_f(s.latency_p95_secs, 1),
        opt_f(s.latency_p99_secs, 1),
    ]
}

/// The incident's tables: sources, per-worker counters and throughput, prompt-size bands,
/// anomalies, hang triggers, the requests left open, the last successes.
pub fn logs(r: &LogsReport, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    summary(r, st, out)?;
    bands(r, st, out)?;
    anomalies(r, out)?;
    hang_triggers(r, out)?;
    open_requests(r, out)?;
    successes(r, out)?;
    Ok(())
}

/// The sources, the span, and the per-worker counters and throughput.
fn summary(r: &LogsReport, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    let total_bytes: u64 = r.sources.iter().map(|s| s.bytes).sum();
    let total_lines: u64 = r.sources.iter().map(|s| s.lines).sum();
    writeln!(
        out,
        "format: {}{}; {} source(s), {}, {} lines, {} request events",
        r.format,
        if r.format_detected { " (detected)" } else { "" },
        r.sources.len(),
        bytes(total_bytes),
        total_lines,
        r.events
    )?;
    if let (Some(f), Some(l)) = (r.totals.first, r.totals.last) {
        writeln!(out, "span: {} → {}", ts(f), ts(l))?;
    }
    if r.workers_evicted > 0 {
        writeln!(
            out,
            "note: the log names more workers than are kept; {} of the least recently seen were forgotten (their counts stay in the totals)",
            r.workers_evicted
        )?;
    }
    writeln!(out)?;
    let mut t = st.table(&[
        "WORKER",
        "STARTED",
        "DONE",
        "FAILED",
        "TIMED OUT",
        "TOKENS",
        "TOK/S",
        "TOK/S p50",
        "LAT p50 s",
        "p95 s",
        "p99 s",
    ]);
    for (name, s) in &r.workers {
        let shown = if name.is_empty() { "(unnamed)" } else { name };
        t.add_row(stats_row(&sanitize(shown), s));
    }
    if r.workers.len() > 1 {
        t.add_row(
            stats_row("all", &r.totals)
                .into_iter()
                .map(Cell::new)
                .collect::<Vec<_>>(),
        );
    }
    writeln!(out, "{t}")?;
    Ok(())
}

/// Throughput by prompt size.
fn bands(r: &LogsReport, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    if r.bands.iter().any(|b| b.completed > 0) {
        writeln!(out, "\nThroughput by prompt size (characters):")?;
        let mut t = st.table(&["BAND", "DONE", "TOKENS", "TOK/S", "TOK/S p50"]);
        for b in &r.bands {
            t.add_row(vec![
                b.label.clone(),
                b.completed.to_string(),
                b.tokens.to_string(),
                opt_f(b.mean_tokens_per_sec, 1),
                opt_f(b.median_tokens_per_sec, 1),
            ]);
        }
        writeln!(out, "{t}")?;
    }
    Ok(())
}

/// Timeouts and failures, in time order.
fn anomalies(r: &LogsReport, out: &mut dyn Write) -> std::io::Result<()> {
    if !r.anomalies.is_empty() {
        writeln!(out, "\nAnomalies (time order):")?;
        for a in &r.anomalies {
            let what = match a.kind {
                "timeout" => format!("timeout after {}s", opt_f(a.timeout_secs, 0)),
                "died" => format!(
                    "the generation thread died ({}): every later request waits forever",
                    sanitize(a.message.as_deref().unwrap_or(""))
                ),
                _ => format!("failure: {}", sanitize(a.message.as_deref().unwrap_or(""))),
            };
            let req = match (&a.id, a.request_started) {
                (Some(id), Some(s)) => format!(" request {} (started {})", sanitize(id), ts(s)),
                (Some(id), None) => format!(" request {}", sanitize(id)),
                (None, Some(s)) => format!(" request started {}", ts(s)),
                (None, None) => String::new(),
            };
            let worker = if a.worker.is_empty() {
                String::new()
            } else {
                format!(" [{}]", clip_name(&a.worker))
            };
            writeln!(
                out,
                "  {} {what}{worker}{req} (line {})",
                ts(a.time),
                a.line
            )?;
        }
        if r.anomalies_dropped > 0 {
            writeln!(out, "  … and {} more", r.anomalies_dropped)?;
        }
    }
    Ok(())
}

/// The request each stopped worker was serving, and what queued behind it.
fn hang_triggers(r: &LogsReport, out: &mut dyn Write) -> std::io::Result<()> {
    for h in &r.hang_triggers {
        writeln!(
            out,
            "\nHang trigger [{}]: {}",
            clip_name(&h.worker),
            h.request.describe_started()
        )?;
        writeln!(out, "  why: {}", h.reason)?;
        match h.last_completion {
            Some(t) => writeln!(out, "  last completion before it: {}", ts(t))?,
            None => writeln!(out, "  no completion logged for this worker")?,
        }
        for q in &h.queued {
            writeln!(out, "  queued behind it: {}", q.describe_started())?;
        }
    }
    Ok(())
}

/// The requests left open, by what they prove.
fn open_requests(r: &LogsReport, out: &mut dyn Write) -> std::io::Result<()> {
    let lists: [(&str, &Vec<InFlight>); 5] = [
        (
            if r.proves_in_flight {
                "In flight at end of log"
            } else {
                "Open at end of log (context only: this format logs no request ends)"
            },
            &r.in_flight,
        ),
        (
            "Abandoned (never finished; a later request of the same worker was served since)",
            &r.abandoned,
        ),
        (
            "Stuck while the worker progressed (it serves requests concurrently)",
            &r.stuck,
        ),
        (
            "Left open by an earlier incarnation (the worker was respawned since)",
            &r.earlier_incarnation,
        ),
        (
            "Streaming at end of log (context only: no end is logged for a stream)",
            &r.unended,
        ),
    ];
    for (title, list) in lists.iter().filter(|(_, l)| !l.is_empty()) {
        writeln!(out, "\n{title} ({}):", list.len())?;
        for f in list.iter().take(20) {
            let who = f
                .worker
                .as_deref()
                .map(str::to_string)
                .or(f.pid.map(|p| format!("pid {p}")))
                .unwrap_or_default();
            let timeouts = if f.timeouts.is_empty() {
                String::new()
            } else {
                format!(", {} timeout(s)", f.timeouts.len())
            };
            writeln!(
                out,
                "  {} {}{timeouts}",
                sanitize(&who),
                f.describe_started()
            )?;
        }
        if list.len() > 20 {
            writeln!(out, "  … and {} more", list.len() - 20)?;
        }
    }
    Ok(())
}

/// The last successes per worker, and the lines that could not be read.
fn successes(r: &LogsReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "\nLast successes:")?;
    for (name, list) in &r.last_successes {
        for s in list {
            writeln!(
                out,
                "  {} {} {} tokens in {}s ({} tok/s){}",
                ts(s.time),
                if name.is_empty() {
                    "(unnamed)".to_string()
                } else {
                    clip_name(name)
                },
                s.tokens.map_or("?".into(), |t| t.to_string()),
                opt_f(s.seconds, 1),
                opt_f(s.tokens_per_sec, 1),
                s.id.as_ref()
                    .map_or(String::new(), |id| format!(" {}", sanitize(id)))
            )?;
        }
    }
    if r.unparseable_count > 0 {
        writeln!(out, "\n{} unparseable line(s):", r.unparseable_count)?;
        for u in &r.unparseable {
            writeln!(
                out,
                "  {}:{}: {}: {}",
                u.source,
                u.line,
                u.reason,
                sanitize(&u.text)
            )?;
        }
    }
    Ok(())
}
