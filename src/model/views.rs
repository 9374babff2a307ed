//! The reports of the inspection commands (`threads`, `fds`, `mem`, `registry`): what they
//! print as tables or JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use super::leak::Judgement;
use super::process::{FdInfo, SystemMemory, ThreadInfo};
use super::registry::RegistryEntry;
use super::report::IpcSummary;
use super::stacks::WaitGroup;
use super::verdict::Status;

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
