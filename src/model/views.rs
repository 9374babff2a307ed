//! The reports of the inspection commands (`threads`, `fds`): what they print as tables or
//! JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use super::process::{FdInfo, ThreadInfo};
use super::report::IpcSummary;
use super::stacks::WaitGroup;

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
