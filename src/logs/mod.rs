//! Server logs: what the seed's step 6 greps by hand, in one streaming pass.
//!
//! [`formats`] knows the line formats (MLS, `mlx_lm.server`, user TOML), [`read`] streams
//! files, gzip, stdin and rotated sets at disk speed, and [`analysis`] folds the events into
//! the incident tables. `logs` prints those tables; `check --log` uses the same fold for the
//! in-flight requests that prove a hang.

pub mod analysis;
pub mod event;
pub mod follow;
pub mod formats;
pub mod read;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use analysis::{Analysis, Analyzer, WorkerLog};
pub use event::{Event, EventKind, parse_timestamp};
pub use formats::Format;
use read::ScanStats;

use crate::error::InputError;
use crate::model::SourceInfo;
use crate::model::{Filters, LogsReport, SCHEMA_VERSION, Unparseable};

/// How to read the logs.
#[derive(Debug, Default)]
pub struct Options {
    /// `None`: detect from the head of the first source.
    pub format: Option<Format>,
    pub strict: bool,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub worker: Option<String>,
    /// Prompt-size band edges in characters.
    pub bands: Vec<u64>,
    pub hung_after: Duration,
}

/// Everything a read produced.
#[derive(Debug)]
pub struct Outcome {
    pub format: String,
    pub sources: Vec<SourceInfo>,
    pub analysis: Analysis,
    pub unparseable: Vec<(String, u64, &'static str, String)>,
    pub unparseable_count: u64,
}

fn keep(ev: &Event, opts: &Options) -> bool {
    opts.since.is_none_or(|s| ev.time >= s)
        && opts.until.is_none_or(|u| ev.time <= u)
        && opts.worker.as_deref().is_none_or(|w| {
            ev.worker.as_deref() == Some(w) || ev.pid.map(|p| p.to_string()).as_deref() == Some(w)
        })
}

/// Read `inputs` (empty = stdin) in time order and fold them; `on_event` sees every kept event.
pub fn analyze(
    inputs: &[PathBuf],
    mut opts: Options,
    mut on_event: impl FnMut(&Event),
) -> Result<Outcome, InputError> {
    // Events carry long names bounded: the filter matches them by the same form.
    opts.worker = (opts.worker.take())
        .map(|w| crate::model::bounded_text(w.as_bytes(), crate::model::ID_CAP).into_owned());
    let stdin = [PathBuf::from("-")];
    let inputs = if inputs.is_empty() {
        &stdin[..]
    } else {
        inputs
    };
    let ordered = read::order_by_first_timestamp(inputs)?;
    // The first source: mapped when it is a plain file, else read; its head picks the format.
    let first_map = read::map_file(&ordered[0])?;
    let (head, mut first_reader) = match &first_map {
        Some(map) => (map[..map.len().min(64 << 10)].to_vec(), None),
        None => {
            let (head, r) =
                read::peek(read::open(&ordered[0])?).map_err(InputError::io(&ordered[0]))?;
            (head, Some(r))
        }
    };
    let format = match opts.format {
        Some(ref f) => f,
        None => &Format::detect(&head),
    };
    let mut analyzer = Analyzer::for_format(&opts.bands, opts.hung_after, format);
    let mut sources = Vec::new();
    let mut unparseable = Vec::new();
    let mut unparseable_count = 0;
    let mut first_map = Some(first_map);
    let filtered = opts.since.is_some() || opts.until.is_some() || opts.worker.is_some();
    for (i, path) in ordered.iter().enumerate() {
        let mut sink = |ev: &Event| {
            if !filtered || keep(ev, &opts) {
                on_event(ev);
                analyzer.add(ev);
            }
        };
        let map = match first_map.take() {
            Some(m) => m,
            None => read::map_file(path)?,
        };
        let stats: ScanStats = match map {
            Some(map) => {
                let _guard = read::SigbusGuard::install();
                read::scan_slice(&map, format, opts.strict, i, &mut sink)
            }
            None => {
                let reader = match first_reader.take() {
                    Some(r) => r,
                    None => read::open(path)?,
                };
                read::scan(reader, format, opts.strict, i, &mut sink)
                    .map_err(InputError::io(path))?
            }
        };
        let label = path.display().to_string();
        unparseable_count += stats.bad_count;
        unparseable.extend(
            stats
                .bad
                .into_iter()
                .map(|(l, why, t)| (label.clone(), l, why, t)),
        );
        sources.push(SourceInfo {
            path: label,
            bytes: stats.bytes,
            lines: stats.lines,
        });
    }
    Ok(Outcome {
        format: format.name(),
        sources,
        analysis: analyzer.finish(),
        unparseable,
        unparseable_count,
    })
}

/// The fold `check --log` needs: auto-detected format, no filters.
pub fn for_check(path: &Path, hung_after: Duration) -> Result<Outcome, InputError> {
    analyze(
        &[path.to_path_buf()],
        Options {
            hung_after,
            ..Options::default()
        },
        |_| {},
    )
}

/// `logs`' report: `inputs` read and folded with `opts`; `on_event` sees every kept event.
pub fn report(
    inputs: &[PathBuf],
    opts: Options,
    format_detected: bool,
    worker: Option<String>,
    on_event: impl FnMut(&Event),
) -> Result<LogsReport, InputError> {
    let (since, until) = (opts.since, opts.until);
    let o = analyze(inputs, opts, on_event)?;
    let a = o.analysis;
    Ok(LogsReport {
        schema_version: SCHEMA_VERSION,
        command: "logs",
        format: o.format,
        format_detected,
        sources: o.sources,
        filters: Filters {
            since,
            until,
            worker,
        },
        events: a.events,
        totals: a.totals,
        workers: a.workers,
        bands: a.bands,
        anomalies: a.anomalies,
        anomalies_dropped: a.anomalies_dropped,
        workers_evicted: a.workers_evicted,
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
