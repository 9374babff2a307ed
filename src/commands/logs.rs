//! `mlsdiag logs FILE…`: the seed's three greps and its incident tables, in one pass.
//!
//! Requests started/completed/failed/timed out, tokens and tok/s, latency percentiles, throughput
//! by prompt size, anomalies in time order, the hang trigger (the request in flight when a
//! worker stopped completing) and what queued behind it, what is in flight at the end, and the
//! last successes per worker. Streams files of any size in constant memory.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use comfy_table::Cell;
use serde::Serialize;

use super::Ctx;
use crate::cli::{LogFormatChoice, LogsArgs};
use crate::fmt::{bytes, local_time as ts, sanitize};
use crate::logs::analysis::{Anomaly, Band, HangTrigger};
use crate::logs::event::parse_user_time;
use crate::logs::formats::Custom;
use crate::logs::{self, Format, Options, SourceInfo};
use crate::model::SCHEMA_VERSION;
use crate::model::Status;
use crate::model::{InFlight, Stats, Success};
use crate::render;

#[derive(Debug, Serialize)]
pub struct Unparseable {
    pub source: String,
    pub line: u64,
    pub reason: &'static str,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct Filters {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub worker: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LogsReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub format: String,
    pub format_detected: bool,
    pub sources: Vec<SourceInfo>,
    pub filters: Filters,
    pub events: u64,
    pub totals: Stats,
    pub workers: std::collections::BTreeMap<String, Stats>,
    pub bands: Vec<Band>,
    pub anomalies: Vec<Anomaly>,
    pub anomalies_dropped: u64,
    pub hang_triggers: Vec<HangTrigger>,
    /// Open at the end and not superseded by a later request of the same worker.
    pub in_flight: Vec<InFlight>,
    /// Whether open requests prove work in flight (the format logs ends, or ends were seen).
    pub proves_in_flight: bool,
    /// Open at the end, but a later request of the same worker ended or progressed since.
    pub abandoned: Vec<InFlight>,
    /// The same, on a worker seen serving requests concurrently.
    pub stuck: Vec<InFlight>,
    /// Left open by an earlier incarnation of their worker (before a new pid or a spawn line).
    pub earlier_incarnation: Vec<InFlight>,
    /// Open at the end, but of a kind whose end the log never records (mlx_lm.server streams).
    pub unended: Vec<InFlight>,
    pub last_successes: std::collections::BTreeMap<String, Vec<Success>>,
    pub unmatched_ends: u64,
    pub unparseable: Vec<Unparseable>,
    pub unparseable_count: u64,
}

/// Parse `--bands 8K,10K,100K` (K = 1000, M = 1000000 characters).
pub fn parse_bands(s: &str) -> Result<Vec<u64>, String> {
    let mut edges = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (num, mult) = match part.chars().last() {
            Some('K' | 'k') => (&part[..part.len() - 1], 1_000.0),
            Some('M' | 'm') => (&part[..part.len() - 1], 1_000_000.0),
            _ => (part, 1.0),
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("invalid band edge {part:?} (try 8K,10K,100K)"))?;
        edges.push((v * mult) as u64);
    }
    if edges.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("band edges must increase: {s:?}"));
    }
    Ok(edges)
}

fn opt_f(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

pub fn collect(
    args: &LogsArgs,
    mut on_event: impl FnMut(&logs::Event),
) -> anyhow::Result<LogsReport> {
    let format = match (&args.format_file, args.format) {
        (Some(f), _) => Some(Format::Custom(Box::new(Custom::load(f)?))),
        (None, LogFormatChoice::Auto) => None,
        (None, LogFormatChoice::Mls) => Some(Format::Mls),
        (None, LogFormatChoice::MlxLm) => Some(Format::MlxLm),
    };
    let detected = format.is_none();
    let since = args
        .since
        .as_deref()
        .map(parse_user_time)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let until = args
        .until
        .as_deref()
        .map(parse_user_time)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--until: {e}"))?;
    let bands = parse_bands(&args.bands).map_err(|e| anyhow::anyhow!("--bands: {e}"))?;
    let opts = Options {
        format,
        strict: args.strict,
        since,
        until,
        worker: args.worker.clone(),
        bands,
        hung_after: args.hung_after,
    };
    let files: Vec<PathBuf> = args.files.clone();
    let o = logs::analyze(&files, opts, &mut on_event)?;
    let a = o.analysis;
    Ok(LogsReport {
        schema_version: SCHEMA_VERSION,
        command: "logs",
        format: o.format,
        format_detected: detected,
        sources: o.sources,
        filters: Filters {
            since,
            until,
            worker: args.worker.clone(),
        },
        events: a.events,
        totals: a.totals,
        workers: a.workers,
        bands: a.bands,
        anomalies: a.anomalies,
        anomalies_dropped: a.anomalies_dropped,
        hang_triggers: a.hang_triggers,
        in_flight: a.in_flight,
        proves_in_flight: a.proves_in_flight,
        abandoned: a.abandoned,
        stuck: a.stuck,
        earlier_incarnation: a.earlier_incarnation,
        unended: a.unended,
        last_successes: a.last_successes,
        unmatched_ends: a.unmatched_ends,
        unparseable: o
            .unparseable
            .into_iter()
            .map(|(source, line, reason, text)| Unparseable {
                source,
                line,
                reason,
                text,
            })
            .collect(),
        unparseable_count: o.unparseable_count,
    })
}

pub fn run(args: &LogsArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let mut write_error: Option<std::io::Error> = None;
    let report = if args.jsonl {
        let r = collect(args, |ev| {
            if write_error.is_none()
                && let Err(e) = serde_json::to_writer(&mut *out, ev)
                    .map_err(std::io::Error::from)
                    .and_then(|_| writeln!(out))
            {
                write_error = Some(e);
            }
        })?;
        if let Some(e) = write_error {
            return Err(e.into());
        }
        r
    } else {
        collect(args, |_| {})?
    };
    let status = if args.strict && report.unparseable_count > 0 {
        Status::Unknown
    } else {
        Status::Ok
    };
    if args.jsonl {
        if args.strict {
            for u in &report.unparseable {
                eprintln!(
                    "{}:{}: {}: {}",
                    u.source,
                    u.line,
                    u.reason,
                    sanitize(&u.text)
                );
            }
        }
        return Ok(status);
    }
    if ctx.json {
        render::json(out, &report)?;
    } else {
        print(&report, ctx, out)?;
    }
    Ok(status)
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

pub fn print(r: &LogsReport, ctx: &Ctx, out: &mut dyn Write) -> std::io::Result<()> {
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
    writeln!(out)?;
    let mut t = ctx.style.table(&[
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
    if r.bands.iter().any(|b| b.completed > 0) {
        writeln!(out, "\nThroughput by prompt size (characters):")?;
        let mut t = ctx
            .style
            .table(&["BAND", "DONE", "TOKENS", "TOK/S", "TOK/S p50"]);
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
    if !r.anomalies.is_empty() {
        writeln!(out, "\nAnomalies (time order):")?;
        for a in &r.anomalies {
            let what = match a.kind {
                "timeout" => format!("timeout after {}s", opt_f(a.timeout_secs, 0)),
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
                format!(" [{}]", sanitize(&a.worker))
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
    for h in &r.hang_triggers {
        writeln!(
            out,
            "\nHang trigger [{}]: {}",
            sanitize(&h.worker),
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
                    sanitize(name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_parse() {
        assert_eq!(parse_bands("8K,10K,100K").unwrap(), [8000, 10_000, 100_000]);
        assert_eq!(parse_bands("500, 1.5M").unwrap(), [500, 1_500_000]);
        assert!(parse_bands("10K,8K").is_err());
        assert!(parse_bands("big").is_err());
        assert!(parse_bands("").unwrap().is_empty());
    }
}
