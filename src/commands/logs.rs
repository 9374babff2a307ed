//! `mlsdiag logs FILE…`: the seed's three greps and its incident tables, in one pass.
//!
//! Requests started/completed/failed/timed out, tokens and tok/s, latency percentiles, throughput
//! by prompt size, anomalies in time order, the hang trigger (the request in flight when a
//! worker stopped completing) and what queued behind it, what is in flight at the end, and the
//! last successes per worker. Streams files of any size in constant memory.

use std::io::Write;

use super::Ctx;
use crate::cli::{LogFormatChoice, LogsArgs};
use crate::fmt::sanitize;
use crate::logs::event::parse_user_time;
use crate::logs::formats::Custom;
use crate::logs::{self, Format, Options};
use crate::model::LogsReport;
use crate::model::Status;
use crate::render;

pub fn collect(args: &LogsArgs, on_event: impl FnMut(&logs::Event)) -> anyhow::Result<LogsReport> {
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
    let bands = logs::parse_bands(&args.bands).map_err(|e| anyhow::anyhow!("--bands: {e}"))?;
    let opts = Options {
        format,
        strict: args.strict,
        since,
        until,
        worker: args.worker.clone(),
        bands,
        hung_after: args.hung_after,
    };
    let worker = args.worker.clone();
    Ok(logs::report(&args.files, opts, detected, worker, on_event)?)
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
