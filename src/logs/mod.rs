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
            ev.worker == Some(w) || ev.pid.map(|p| p.to_string()).as_deref() == Some(w)
        })
}

/// Read `inputs` (empty = stdin) in time order and fold them; `on_event` sees every kept event.
pub fn analyze(
    inputs: &[PathBuf],
    opts: Options,
    mut on_event: impl FnMut(&Event),
) -> Result<Outcome, InputError> {
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
    for (i, path) in ordered.iter().enumerate() {
        let mut sink = |ev: &Event| {
            if keep(ev, &opts) {
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
