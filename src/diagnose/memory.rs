//! Memory of the workers over a few readings: system totals and pressure, each worker's
//! resident size and footprint, and the leak rule's judgement of the series.

use std::time::Duration;

use super::leak;
use crate::discover::{Search, pids_or_workers, worker_name};
use crate::error::InspectError;
use crate::model::{MemReport, MemSample, SCHEMA_VERSION, Status, WorkerMem};
use crate::platform::Platform;
use crate::registry::Registry;
use crate::sample::sample;

/// `samples` readings `interval` apart of `pids` (or of every worker found); the report and
/// its status (UNKNOWN when a live worker could not be read).
pub fn memory(
    platform: &dyn Platform,
    search: &Search,
    reg: Option<&Registry>,
    pids: &[u32],
    (samples, interval): (usize, Duration),
    rule: &leak::Rule,
) -> anyhow::Result<(MemReport, Status)> {
    let system = platform.system_memory()?;
    let pids = pids_or_workers(platform, search, reg, pids)?;
    let re = search.regex();
    let window = interval * (samples as u32 - 1);
    let series = sample(platform, &pids, window, samples);
    let mut status = Status::Ok;
    let workers: Vec<WorkerMem> = series
        .iter()
        .map(|s| {
            // A worker that is gone has no memory to report; one we may not read is UNKNOWN.
            if s.readings.is_empty() && !matches!(s.error, Some(InspectError::Gone { .. })) {
                status = status.worst(Status::Unknown);
            }
            let entry = reg.and_then(|r| r.get(s.pid));
            WorkerMem {
                pid: s.pid,
                name: s
                    .last()
                    .map(|p| worker_name(entry, &p.cmdline, &p.name, re))
                    .unwrap_or_default(),
                samples: s
                    .readings
                    .iter()
                    .map(|(t, p)| MemSample {
                        at_secs: *t,
                        rss_bytes: p.rss_bytes,
                        footprint_bytes: p.footprint_bytes,
                    })
                    .collect(),
                trend: leak::judge(&s.memory_samples(|_| None), rule),
                error: s.error.as_ref().map(|e| e.to_string()),
            }
        })
        .collect();
    let report = MemReport {
        schema_version: SCHEMA_VERSION,
        command: "mem",
        system,
        workers,
    };
    Ok((report, status))
}
