//! The reports of the inspection commands (`threads`, `fds`, `mem`, `registry`, `history`,
//! `fleet`) and `watch`'s events: what they print as tables, lines or JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use super::leak::Judgement;
use super::process::{FdInfo, SystemMemory, ThreadInfo};
use super::registry::RegistryEntry;
use super::report::IpcSummary;
use super::stacks::WaitGroup;
use super::verdict::{Finding, Status, Verdict};

#[derive(Debug, Serialize)]
pub struct ThreadRow {
    #[serde(flatten)]
    pub thread: ThreadInfo,
    pub cpu_percent: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ThreadsReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub pid: u32,
    pub name: String,
    pub window_secs: f64,
    pub threads: Vec<ThreadRow>,
    pub states: BTreeMap<char, usize>,
    pub all_blocked: bool,
    pub groups: Vec<WaitGroup>,
    /// The process's GPU use over the window, where the OS's GPU source knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::model::GpuUsage>,
}

#[derive(Debug, Serialize)]
pub struct FdsReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub pid: u32,
    pub ppid: u32,
    pub fds: Vec<FdInfo>,
    pub ipc: IpcSummary,
}

#[derive(Debug, Serialize)]
pub struct MemSample {
    pub at_secs: f64,
    pub rss_bytes: u64,
    pub footprint_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct WorkerMem {
    pub pid: u32,
    pub name: String,
    pub samples: Vec<MemSample>,
    /// The leak rule's judgement of the samples (see `leak`).
    pub trend: Option<Judgement>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MemReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub system: SystemMemory,
    pub workers: Vec<WorkerMem>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    Alive,
    Dead,
    Zombie,
    Reused,
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct EntryRow {
    #[serde(flatten)]
    pub entry: RegistryEntry,
    pub liveness: Liveness,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Unlisted {
    pub pid: u32,
    pub ppid: u32,
    pub command: String,
}

#[derive(Debug, Serialize)]
pub struct RegistryReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub path: String,
    pub status: Status,
    pub entries: Vec<EntryRow>,
    pub unlisted: Vec<Unlisted>,
}

#[derive(Debug, Serialize, Clone)]
pub struct Restart {
    pub at: DateTime<Utc>,
    pub old_pid: u32,
    pub new_pid: u32,
}

#[derive(Debug, Serialize, Clone)]
pub struct WorkerHistory {
    pub name: String,
    /// The PID of the newest snapshot.
    pub pid: u32,
    /// The start time of the newest snapshot's process (with the PID, its identity).
    pub started_at: Option<DateTime<Utc>>,
    pub snapshots: usize,
    /// Snapshots of the current PID.
    pub snapshots_of_pid: usize,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// `footprint` on macOS, else `rss`.
    pub memory_metric: &'static str,
    pub memory_first_bytes: Option<u64>,
    pub memory_last_bytes: Option<u64>,
    /// The leak rule's judgement of the memory series (see `leak`).
    pub memory_trend: Option<Judgement>,
    /// CPU time unchanged and a request in flight in every snapshot since this time.
    pub frozen_since: Option<DateTime<Utc>>,
    pub frozen_snapshots: usize,
    pub restarts: Vec<Restart>,
    /// What the snapshots themselves said: each verdict and how many said it, the most severe
    /// first.
    pub snapshot_verdicts: Vec<SaidCount>,
    /// History's own judgement across the snapshots (the memory trend, CPU frozen with work in
    /// flight), not the snapshots' verdicts.
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
}

/// How many snapshots said one verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaidCount {
    pub verdict: Verdict,
    pub snapshots: usize,
}

#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub dir: String,
    pub status: Status,
    pub workers: Vec<WorkerHistory>,
    pub unreadable: Vec<String>,
    /// Why the directory, or a snapshot file in it, may not make mlsdiag act (see
    /// `input::trust`). Such a file is left out of `workers`.
    pub untrusted: Vec<String>,
}

/// One line of `watch` output: a verdict change and what was done about it.
#[derive(Debug, Serialize)]
pub struct WatchEvent {
    pub schema_version: u32,
    pub command: &'static str,
    pub at: DateTime<Utc>,
    pub pid: u32,
    pub worker: String,
    /// The previous verdict; null when the worker is new to this watch.
    pub from: Option<Verdict>,
    /// The new verdict; null when the worker is gone.
    pub to: Option<Verdict>,
    pub evidence: Vec<String>,
    pub snapshot: Option<String>,
    pub hook: Option<String>,
    pub restart: Option<String>,
}

/// The part of a remote `check --json` the merged table shows (older and newer mlsdiag
/// versions agree on these fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteWorker {
    pub pid: u32,
    pub name: String,
    pub verdict: Verdict,
    #[serde(default)]
    pub activity: Option<String>,
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    #[serde(default)]
    pub footprint_bytes: Option<u64>,
    #[serde(default)]
    pub findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
pub struct HostResult {
    pub host: String,
    pub status: Status,
    /// Why the host could not be checked (status UNKNOWN).
    pub reason: Option<String>,
    pub workers: Vec<RemoteWorker>,
    pub notes: Vec<String>,
    pub seconds: f64,
    /// The host's whole `check --json` document.
    pub check: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct FleetReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub status: Status,
    pub exit_code: u8,
    pub hosts: Vec<HostResult>,
}
