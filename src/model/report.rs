//! The check report: every worker's verdict with its evidence, and what the check could see.
//!
//! `check` builds it; `watch`, `snapshot`, `history`, the metrics exporter, hooks and `fleet`
//! read it (snapshots persist it), so it is the product's central noun.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::process::FdKind;
use super::request::InFlight;
use super::verdict::{Activity, Finding, Status, Verdict};

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub generated_at: DateTime<Utc>,
    pub status: Status,
    pub exit_code: u8,
    pub pattern: String,
    pub registry: RegistryState,
    pub log: Option<LogSource>,
    pub window_secs: f64,
    pub workers: Vec<WorkerReport>,
    pub orchestrators: Vec<Orchestrator>,
    pub summary: BTreeMap<Verdict, usize>,
    pub notes: Vec<String>,
    /// Evidence files that may not make mlsdiag act (owned by someone else, or writable by
    /// others; see `input::trust`), each with why. Their findings are shown; `watch` does not
    /// act on them.
    pub untrusted: Vec<String>,
    /// The GPU source asked (NVML, the IORegistry) and, when it could not be read, why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::model::GpuSource>,
}

#[derive(Debug, Serialize)]
pub struct RegistryState {
    pub path: String,
    /// `ok`, `missing` or `invalid`.
    pub state: &'static str,
    pub error: Option<String>,
    pub entries: usize,
}

#[derive(Debug, Serialize)]
pub struct LogSource {
    pub path: String,
    /// The log format used (detected).
    pub format: String,
    pub events: u64,
}

#[derive(Debug, Serialize)]
pub struct Orchestrator {
    pub pid: u32,
    pub workers: usize,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct WorkerReport {
    pub pid: u32,
    pub name: String,
    pub registered: bool,
    /// How discovery found it: `registry`, `pattern`, `known server: NAME` or `mlx loaded`
    /// (empty in snapshots written before it was recorded).
    #[serde(default)]
    pub found_by: String,
    pub model: Option<String>,
    pub ppid: Option<u32>,
    pub state: Option<char>,
    pub cpu_percent: Option<f64>,
    /// User + system CPU time so far (a counter).
    pub cpu_seconds: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub vsz_bytes: Option<u64>,
    pub footprint_bytes: Option<u64>,
    pub elapsed_secs: Option<u64>,
    /// Process start time: with the PID, what identifies this process.
    pub started_at: Option<DateTime<Utc>>,
    pub threads: Option<u32>,
    pub command: Option<String>,
    pub verdict: Verdict,
    pub activity: Activity,
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
    /// The hung rule's conditions on the oldest request in flight, each with whether it held
    /// (empty when no request of this process is in flight).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hung_rule: Vec<crate::model::Condition>,
    pub in_flight: Vec<InFlight>,
    /// The log can prove work in flight (it logs ends): an empty `in_flight` then means idle.
    #[serde(default)]
    pub in_flight_known: bool,
    pub ipc: Option<IpcSummary>,
    /// The worker's token progress record over the window, when its registry entry names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<crate::model::TokenProgress>,
    /// The worker's GPU use over the window, where the OS's GPU source knows the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<crate::model::GpuUsage>,
    /// The worker's TCP connections from the socket table, where it serves a TCP port (or why
    /// they could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<crate::model::Connections>,
    /// The `--probe` request to the worker's server, when one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::model::ProbeReport>,
    /// Its MLX distributed group and peers, where it is a rank (`MLX_RANK` set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributed: Option<crate::model::Distributed>,
}

impl CheckReport {
    /// Adds findings from outside one check (snapshot history, earlier `watch` rounds) to
    /// worker `index`, one per verdict, and recomputes its verdict, the status and the summary.
    pub fn add_findings(&mut self, index: usize, findings: &[Finding]) {
        let Some(w) = self.workers.get_mut(index) else {
            return;
        };
        for f in findings {
            if !w.findings.iter().any(|x| x.verdict == f.verdict) {
                w.findings.push(f.clone());
            }
        }
        w.verdict = Verdict::worst_of(&w.findings);
        self.status = self.status.worst(w.verdict.status());
        self.exit_code = self.status.code();
        self.summary.clear();
        for w in &self.workers {
            *self.summary.entry(w.verdict).or_insert(0) += 1;
        }
    }
}
/// The IPC picture of one process.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct IpcSummary {
    pub counts: BTreeMap<FdKind, usize>,
    pub shm_objects: Vec<String>,
    /// Pipes and unix sockets whose other end is held by the parent process.
    pub channels_to_parent: Option<usize>,
    pub warnings: Vec<String>,
}

impl IpcSummary {
    /// One line for `check`'s evidence.
    pub fn line(&self) -> String {
        let n = |k: FdKind| self.counts.get(&k).copied().unwrap_or(0);
        let mut parts = vec![
            format!("{} pipe(s)", n(FdKind::Pipe)),
            format!("{} unix socket(s)", n(FdKind::UnixSocket)),
            format!("{} shm", n(FdKind::Shm)),
        ];
        if n(FdKind::Tcp) > 0 {
            parts.push(format!("{} tcp", n(FdKind::Tcp)));
        }
        let mut line = format!("IPC: {}", parts.join(", "));
        if let Some(c) = self.channels_to_parent {
            line.push_str(&format!("; {c} channel(s) to the parent"));
        }
        for w in &self.warnings {
            line.push_str(&format!("; WARNING {w}"));
        }
        line
    }
}

/// What `watch` knows beyond one check: per worker PID, seconds since it last made progress.
pub type SinceProgress = BTreeMap<u32, f64>;
