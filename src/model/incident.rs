//! A postmortem's facts: who, what state, how long, which request, what the log and the
//! snapshots say; `diagnose::incident` gathers them, `render::postmortem` writes them.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::logs::{Anomaly, HangTrigger};
use super::request::{InFlight, Stats};
use super::snapshot::Snapshot;

/// The facts a postmortem states, gathered once from the snapshots and the log.
#[derive(Debug, Clone)]
pub struct Incident {
    /// The incident's worker: the most severe verdict in the newest snapshots.
    pub worker: String,
    /// That worker's snapshots, oldest first (never empty), with their files.
    pub series: Vec<(PathBuf, Snapshot)>,
    /// Snapshots read in all.
    pub snapshots_read: usize,
    pub log_path: Option<PathBuf>,
    /// Every anomaly of the log, when a log was read.
    pub log_anomalies: Option<Vec<Anomaly>>,
    pub model: Option<String>,
    pub trigger: Option<HangTrigger>,
    pub stats: Option<Stats>,
    /// The request it was serving when it stopped (the hang trigger, else the oldest open).
    pub oldest: Option<InFlight>,
    pub hang_start: Option<DateTime<Utc>>,
    /// How long it has been stuck, at the last snapshot.
    pub hang_for: Option<String>,
    /// The orchestrator's timeouts on this worker.
    pub timeouts: Vec<DateTime<Utc>>,
    pub hung: bool,
    pub crashed: bool,
    /// CPU at or under the progress threshold.
    pub cpu_idle: bool,
    pub leaking: bool,
    /// `footprint` or `RSS`.
    pub metric: &'static str,
    pub mem_first: Option<u64>,
    pub mem_last: Option<u64>,
    /// The memory trend as the leak rule judged it across the snapshots.
    pub trend_text: String,
    /// `8,489 chars, 8.5 KB`.
    pub prompt: Option<String>,
    /// Requests completed before the hang (`318`).
    pub before: Option<String>,
    /// The worker process's age at the last snapshot.
    pub runtime: Option<String>,
    pub last_done: Option<DateTime<Utc>>,
    /// The normal operation before it.
    pub served: Option<Served>,
}

/// First and last completion, tokens and mean tok/s of the normal operation before the hang.
pub type Served = (DateTime<Utc>, DateTime<Utc>, u64, Option<f64>);

impl Incident {
    pub fn first(&self) -> &Snapshot {
        &self.series[0].1
    }
    pub fn last(&self) -> &Snapshot {
        &self.series[self.series.len() - 1].1
    }
}
