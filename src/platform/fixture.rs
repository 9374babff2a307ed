//! Recordings: the neutral model serialized, and a backend that replays it.
//!
//! `mlsdiag record` saves what a backend saw (readings over time, threads, fds, system memory)
//! as JSON; the hidden `--fixture FILE` flag makes every command read a recording instead of the
//! live OS. That is how macOS data is diagnosed and rendered on Linux CI, and how a user's bug
//! report becomes a regression test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Platform;
use crate::error::{InputError, InspectError};
use crate::model::{FdInfo, ProcessInfo, SystemMemory, ThreadInfo};

pub const RECORDING_KIND: &str = "mlsdiag-recording";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    pub schema_version: u32,
    /// Always `mlsdiag-recording`.
    pub kind: String,
    /// `linux` or `macos`: the OS the data came from.
    pub os: String,
    /// Verdicts on a replay are judged at this time.
    pub captured_at: DateTime<Utc>,
    /// Where the data came from (machine, command, or how it was reconstructed).
    #[serde(default)]
    pub note: String,
    pub system_memory: Option<SystemMemory>,
    pub processes: Vec<RecordedProcess>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedProcess {
    pub pid: u32,
    /// Successive readings; a replay returns them in order and then repeats the last.
    pub readings: Vec<ProcessInfo>,
    #[serde(default)]
    pub threads: Option<Vec<ThreadInfo>>,
    #[serde(default)]
    pub fds: Option<Vec<FdInfo>>,
}

/// A backend answering from a recording.
pub struct Fixture {
    path: PathBuf,
    recording: Recording,
    cursors: Mutex<HashMap<u32, usize>>,
}

impl Fixture {
    pub fn load(path: &Path) -> Result<Fixture, InputError> {
        let bad = |message: String| InputError::BadFile {
            path: path.to_path_buf(),
            message,
        };
        let text = crate::input::read_to_string(path, crate::input::RECORDING_LIMIT)?;
        let recording: Recording = serde_json::from_str(&text).map_err(|e| {
            bad(format!(
                "not a recording: line {}, column {}: {e}",
                e.line(),
                e.column()
            ))
        })?;
        if recording.kind != RECORDING_KIND {
            return Err(bad(format!(
                "kind is {:?}, expected {RECORDING_KIND:?}",
                recording.kind
            )));
        }
        if recording.schema_version != 1 {
            return Err(bad(format!(
                "schema_version {} is not supported (expected 1)",
                recording.schema_version
            )));
        }
        if let Some(p) = recording.processes.iter().find(|p| p.readings.is_empty()) {
            return Err(bad(format!("process {} has no readings", p.pid)));
        }
        Ok(Fixture {
            path: path.to_path_buf(),
            recording,
            cursors: Mutex::new(HashMap::new()),
        })
    }

    fn find(&self, pid: u32) -> Result<&RecordedProcess, InspectError> {
        self.recording
            .processes
            .iter()
            .find(|p| p.pid == pid)
            .ok_or(InspectError::Gone { pid })
    }

    fn not_recorded(&self, pid: u32, what: &str) -> InspectError {
        InspectError::Unsupported(format!(
            "{}: the {what} of process {pid} were not recorded",
            self.path.display()
        ))
    }
}

impl Platform for Fixture {
    fn pids(&self) -> anyhow::Result<Vec<u32>> {
        Ok(self.recording.processes.iter().map(|p| p.pid).collect())
    }

    fn cmdline(&self, pid: u32) -> Result<Vec<String>, InspectError> {
        Ok(self.find(pid)?.readings[0].cmdline.clone())
    }

    fn process(&self, pid: u32) -> Result<ProcessInfo, InspectError> {
        let p = self.find(pid)?;
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        let i = cursors.entry(pid).or_insert(0);
        let reading = p.readings[(*i).min(p.readings.len() - 1)].clone();
        *i += 1;
        Ok(reading)
    }

    fn threads(&self, pid: u32) -> Result<Vec<ThreadInfo>, InspectError> {
        self.find(pid)?
            .threads
            .clone()
            .ok_or_else(|| self.not_recorded(pid, "threads"))
    }

    fn fds(&self, pid: u32, _peers_among: Option<&[u32]>) -> Result<Vec<FdInfo>, InspectError> {
        self.find(pid)?
            .fds
            .clone()
            .ok_or_else(|| self.not_recorded(pid, "descriptors"))
    }

    fn system_memory(&self) -> anyhow::Result<SystemMemory> {
        self.recording.system_memory.clone().ok_or_else(|| {
            anyhow::anyhow!("{}: system memory was not recorded", self.path.display())
        })
    }

    fn now(&self) -> DateTime<Utc> {
        self.recording.captured_at
    }

    fn live(&self) -> bool {
        false
    }
}
