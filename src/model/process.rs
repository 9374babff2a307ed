//! Platform-neutral data model.
//!
//! Every backend (procfs on Linux, libproc/mach on macOS, recorded fixtures) produces these types
//! and every command consumes them, so classification and rendering never see an OS type. The
//! fields are chosen so that both kernels can fill them: per-thread run state and CPU time, fd
//! kinds with peers, and a `footprint` that only macOS reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How far two readings of one process's start time may differ and still be that process. On
/// Linux a start time is the boot instant (CLOCK_REALTIME − CLOCK_BOOTTIME, which NTP slews)
/// plus clock ticks since boot, so two runs of mlsdiag compute it a few microseconds to
/// milliseconds apart; a PID reused by another process within this time is not a real case.
pub const SAME_START_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether two (PID, start time) pairs name the same process.
pub fn same_process(
    a: (u32, Option<chrono::DateTime<chrono::Utc>>),
    b: (u32, Option<chrono::DateTime<chrono::Utc>>),
) -> bool {
    let tolerance = chrono::Duration::from_std(SAME_START_TOLERANCE).unwrap_or_default();
    a.0 == b.0
        && match (a.1, b.1) {
            (Some(x), Some(y)) => (x - y).abs() <= tolerance,
            (None, None) => true,
            _ => false,
        }
}

/// One reading of a process. Counters (`cpu_*_ns`, `rss_bytes`) are cumulative or current values;
/// rates are computed by [`crate::sample`] from several readings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// Short name (Linux `comm`, macOS `pbi_name`).
    pub name: String,
    pub cmdline: Vec<String>,
    /// State letter as `ps -o state` prints it: R, S, D, T, t, Z, X, I, U.
    pub state: char,
    pub start_time: DateTime<Utc>,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub rss_bytes: u64,
    pub vsz_bytes: u64,
    /// Physical footprint (macOS `ri_phys_footprint`); `None` where the OS has no such figure.
    pub footprint_bytes: Option<u64>,
    pub threads: u32,
    /// Threads in the running state at the time of this reading.
    pub threads_running: u32,
}

impl ProcessInfo {
    pub fn cpu_ns(&self) -> u64 {
        self.cpu_user_ns + self.cpu_system_ns
    }
    pub fn command(&self) -> String {
        if self.cmdline.is_empty() {
            format!("[{}]", self.name)
        } else {
            self.cmdline.join(" ")
        }
    }
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
    /// The memory figure leak detection should trend: footprint where the OS has one, else RSS.
    pub fn leak_metric_bytes(&self) -> u64 {
        self.footprint_bytes.unwrap_or(self.rss_bytes)
    }
}

/// What a blocked thread is doing in the kernel (Linux `/proc/PID/task/TID/syscall`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Syscall {
    /// The thread is on a CPU, not in a system call.
    Running,
    /// Blocked, but not inside a system call.
    NotInSyscall,
    Blocked {
        number: i64,
        name: Option<String>,
        /// First argument; for `futex` the address of the lock word.
        arg0: u64,
    },
    /// The file could not be read; the reason says why.
    Unavailable { reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThreadInfo {
    /// Kernel thread id (Linux TID; macOS thread id, or the thread handle where ids are unavailable).
    pub tid: u64,
    pub name: String,
    /// State letter as `ps -L`/`ps -M` prints it.
    pub state: char,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    /// Kernel function the thread sleeps in (Linux `wchan`); `None` when running or unknown.
    pub wait_channel: Option<String>,
    pub syscall: Option<Syscall>,
    /// Seconds since the thread last ran (macOS `pth_sleep_time`); `None` where not reported.
    pub sleep_secs: Option<u64>,
}

impl ThreadInfo {
    pub fn cpu_ns(&self) -> u64 {
        self.cpu_user_ns + self.cpu_system_ns
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FdKind {
    Pipe,
    UnixSocket,
    Tcp,
    Udp,
    OtherSocket,
    Shm,
    File,
    DeletedFile,
    Device,
    AnonInode,
    Memfd,
    Other,
}

impl FdKind {
    pub fn label(self) -> &'static str {
        match self {
            FdKind::Pipe => "pipe",
            FdKind::UnixSocket => "unix",
            FdKind::Tcp => "tcp",
            FdKind::Udp => "udp",
            FdKind::OtherSocket => "socket",
            FdKind::Shm => "shm",
            FdKind::File => "file",
            FdKind::DeletedFile => "deleted",
            FdKind::Device => "device",
            FdKind::AnonInode => "anon",
            FdKind::Memfd => "memfd",
            FdKind::Other => "other",
        }
    }
    /// Kinds that carry inter-process communication.
    pub fn is_ipc(self) -> bool {
        matches!(
            self,
            FdKind::Pipe | FdKind::UnixSocket | FdKind::Tcp | FdKind::Udp | FdKind::Shm
        )
    }
}

/// The other end of a pipe or socket, when it could be found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Peer {
    pub pid: u32,
    pub name: String,
    pub fd: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FdInfo {
    pub fd: i32,
    pub kind: FdKind,
    /// Path, address pair or kernel object name, human-readable.
    pub target: String,
    /// Kernel identity of the object (inode on Linux, handle on macOS), used to match peers.
    pub object_id: Option<u64>,
    /// Connection or socket state (TCP state, unix `connected`/`listening`).
    pub state: Option<String>,
    pub peers: Vec<Peer>,
}

impl FdInfo {
    /// A descriptor with no kernel identity, no state and no peers.
    pub fn new(fd: i32, kind: FdKind, target: impl Into<String>) -> FdInfo {
        FdInfo {
            fd,
            kind,
            target: target.into(),
            object_id: None,
            state: None,
            peers: vec![],
        }
    }

    /// The same descriptor with kernel identity `id`.
    pub fn with_id(self, id: u64) -> FdInfo {
        FdInfo {
            object_id: Some(id),
            ..self
        }
    }

    /// The same descriptor with connection or socket state `state`.
    pub fn with_state(self, state: Option<String>) -> FdInfo {
        FdInfo { state, ..self }
    }

    /// The same descriptor with `peers` as the other ends.
    pub fn with_peers(self, peers: Vec<Peer>) -> FdInfo {
        FdInfo { peers, ..self }
    }
}

/// System-wide memory, in bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SystemMemory {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub available_bytes: u64,
    pub cached_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
    pub pressure: PressureLevel,
    /// The facts behind `pressure`.
    pub pressure_evidence: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum PressureLevel {
    Normal,
    Warning,
    Critical,
}

impl PressureLevel {
    pub fn label(self) -> &'static str {
        match self {
            PressureLevel::Normal => "normal",
            PressureLevel::Warning => "warning",
            PressureLevel::Critical => "critical",
        }
    }
}

/// One memory reading of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemorySample {
    /// Seconds since some fixed origin (the first reading, the first snapshot).
    pub secs: f64,
    pub bytes: u64,
    /// Whether a request was in flight at this reading; `None` when no log says.
    pub busy: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_across_runs_despite_start_time_jitter() {
        let t = chrono::DateTime::from_timestamp(1_767_654_000, 250_000_000).unwrap();
        let ms = chrono::Duration::milliseconds;
        assert!(same_process((7, Some(t)), (7, Some(t + ms(3)))));
        assert!(same_process((7, Some(t)), (7, Some(t - ms(1500)))));
        assert!(
            !same_process((7, Some(t)), (7, Some(t + ms(10_000)))),
            "a reused PID"
        );
        assert!(!same_process((7, Some(t)), (8, Some(t))));
        assert!(!same_process((7, Some(t)), (7, None)));
        assert!(same_process((7, None), (7, None)));
    }
}
