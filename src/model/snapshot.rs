//! The snapshot record: everything mlsdiag knew about one worker at one moment, as it is kept
//! on disk for `history` and `postmortem` (`snapshot` writes and reads the files).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::process::{FdInfo, ProcessInfo, SystemMemory, ThreadInfo};
use super::registry::RegistryEntry;
use super::report::WorkerReport;
use super::request::{InFlight, Stats, Success};
use super::stacks::StacksReport;
use super::verdict::{Status, Verdict};

pub const SNAPSHOT_KIND: &str = "mlsdiag-snapshot";

/// A reading of a clock that does not count a suspend (Linux CLOCK_MONOTONIC, macOS
/// CLOCK_UPTIME_RAW), with the boot it belongs to. Two readings of one boot can be subtracted
/// whatever the wall clock did between them (a step, NTP, a sleep and wake of the machine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monotonic {
    pub secs: f64,
    /// Linux: /proc/sys/kernel/random/boot_id; macOS: kern.boottime.
    pub boot: String,
}

impl Monotonic {
    /// Seconds from `earlier` to `self`, when both are of one boot.
    pub fn since(&self, earlier: &Monotonic) -> Option<f64> {
        (self.boot == earlier.boot && self.secs >= earlier.secs).then_some(self.secs - earlier.secs)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotLog {
    pub path: String,
    pub format: String,
    /// This worker's counters from the log.
    pub stats: Option<Stats>,
    pub in_flight: Vec<InFlight>,
    pub last_successes: Vec<Success>,
    /// The last lines of the log file.
    pub tail: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema_version: u32,
    pub kind: String,
    pub taken_at: DateTime<Utc>,
    pub host: String,
    pub os: String,
    pub mlsdiag_version: String,
    pub pid: u32,
    pub name: String,
    pub registry_path: String,
    pub registry: Option<RegistryEntry>,
    /// The verdict, evidence and figures of `check`.
    pub worker: WorkerReport,
    /// A reading taken with the snapshot (cumulative CPU time, memory, footprint).
    pub process: Option<ProcessInfo>,
    pub threads: Option<Vec<ThreadInfo>>,
    pub fds: Option<Vec<FdInfo>>,
    /// Why threads or fds are missing, when they are.
    pub errors: Vec<String>,
    pub system_memory: Option<SystemMemory>,
    pub log: Option<SnapshotLog>,
    /// Stacks from the sources that never disturb the worker (no signal, no `sample`).
    #[serde(default)]
    pub stacks: Option<StacksReport>,
    /// The monotonic clock when the snapshot was taken, where the OS gives it: `history` times
    /// a frozen worker by it, so a sleep of the machine is not time the worker sat frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Monotonic>,
}

/// One snapshot written, as `snapshot` reports it.
#[derive(Debug, Serialize)]
pub struct SavedSnapshot {
    pub pid: u32,
    pub name: String,
    pub verdict: Verdict,
    pub json: String,
    pub txt: String,
}

/// What `snapshot` did: the files it saved, the ones retention deleted, and the temporary
/// files a killed write had left.
#[derive(Debug, Serialize)]
pub struct SnapshotReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub status: Status,
    pub dir: String,
    pub saved: Vec<SavedSnapshot>,
    pub deleted: Vec<String>,
    /// Temporary files of a snapshot write that was killed (see `store::remove_stale_temps`).
    pub cleaned: Vec<String>,
}
