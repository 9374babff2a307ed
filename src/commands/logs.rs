//! `mlsdiag logs FILE…`: the seed's three greps and its incident tables, in one pass.
//!
//! Requests started/completed/failed/timed out, tokens and tok/s, latency percentiles, throughput
//! by prompt size, anomalies in time order, the hang trigger (the request in flight when a
//! worker stopped completing) and what queued behind it, what is in flight at the end, and the
//! last successes per worker. Streams files of any size in constant memory.

use std::io::Write;
use std::path::PathBuf;

use super::Ctx;
use crate::cli::{LogFormatChoice, LogsArgs};
use crate::fmt::sanitize;
use crate::logs::event::parse_user_time;
use crate::logs::formats::Custom;
use crate::logs::{self, Format, Options};
use crate::model::SCHEMA_VERSION;
use crate::model::Status;
use crate::model::{Filters, LogsReport, Unparseable};
use crate::render;

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
    ctx.emit(out, &report, render::logs::logs)?;
    Ok(status)
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
