//! The one boundary between mlsdiag and the operating system.
//!
//! Everything mlsdiag learns about a process comes through [`Platform`], which returns only the
//! neutral types of [`crate::model`]. Linux reads procfs (and sock_diag for unix-socket peers);
//! the macOS backend (libproc, mach2, libc) implements the same trait. Nothing here stops or
//! attaches to the inspected process: every call is a read of kernel-exported state.

use chrono::{DateTime, Utc};

use crate::error::InspectError;
use crate::model::{FdInfo, GpuReading, ProcessInfo, SystemMemory, ThreadInfo};

pub mod agx;
pub mod energy;
pub mod fixture;
#[cfg(target_os = "macos")]
pub mod ioreport;
#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "macos")]
pub mod macos;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub mod unsupported;
pub mod xnu;
pub mod xnu_tcp;

/// Read-only access to processes.
pub trait Platform: Send + Sync {
    /// Every process id currently visible.
    fn pids(&self) -> anyhow::Result<Vec<u32>>;
    /// The argument vector of a process (empty for kernel threads and zombies).
    fn cmdline(&self, pid: u32) -> Result<Vec<String>, InspectError>;
    /// One reading of a process.
    fn process(&self, pid: u32) -> Result<ProcessInfo, InspectError>;
    /// Every thread of a process, with what it waits on where the OS tells.
    fn threads(&self, pid: u32) -> Result<Vec<ThreadInfo>, InspectError>;
    /// Every open descriptor. When `peers_among` is given, pipe and socket peers are searched
    /// in those processes (`Some(&[])` = all visible processes, `None` = no peer search).
    fn fds(&self, pid: u32, peers_among: Option<&[u32]>) -> Result<Vec<FdInfo>, InspectError>;
    /// System-wide memory and pressure.
    fn system_memory(&self) -> anyhow::Result<SystemMemory>;
    /// The time verdicts are judged at: now, or the capture time of a recording.
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    /// The monotonic clock now, with the boot it belongs to (see [`crate::model::Monotonic`]);
    /// `None` where the OS gives none or for a recording.
    fn monotonic(&self) -> Option<crate::model::Monotonic> {
        None
    }
    /// Whether the processes are live (false when replaying a recording, so tools that act on
    /// a real PID — py-spy, `sample`, signals — are not pointed at whatever has that PID here).
    fn live(&self) -> bool {
        true
    }
    /// The signals the process has a handler for, as a mask (bit `n - 1` for signal `n`):
    /// Linux `SigCgt` in /proc/PID/status, macOS `p_sigcatch`. `None` where the OS cannot say.
    /// Used before sending SIGUSR1, whose default action ends the process.
    fn caught_signals(&self, _pid: u32) -> Result<Option<u64>, InspectError> {
        Ok(None)
    }
    /// GPU use of `pids` from the OS's GPU source, without root; `since` is the window's start
    /// (a source that samples utilisation gives the share since then). `None`: this platform
    /// has no GPU source (a recording, an unsupported OS).
    fn gpu(&self, _pids: &[u32], _since: Option<DateTime<Utc>>) -> Option<GpuReading> {
        None
    }
    /// The process's TCP sockets from the kernel's socket table, without root: the listening
    /// ones and its connections, with data times, byte counts and queues where the OS gives
    /// them (Linux sock_diag; macOS `proc_pidfdinfo` and `net.inet.tcp.pcblist_n`; see
    /// docs/sockets.md). `Err`: this platform or recording cannot say.
    fn tcp_connections(&self, _pid: u32) -> Result<Vec<crate::model::TcpConnection>, InspectError> {
        Err(InspectError::Unsupported(
            "the socket table is not read on this platform".to_string(),
        ))
    }
    /// The identity of the process's executable file, `(device, inode)`: processes running
    /// the same program have the same one, whatever their arguments (discovery never counts
    /// mlsdiag's own processes). `None` where the OS or a recording cannot say.
    fn exe_id(&self, _pid: u32) -> Result<Option<(u64, u64)>, InspectError> {
        Ok(None)
    }
    /// The first file mapped into the process (Linux: `/proc/PID/maps`; macOS: the loaded
    /// images) that is MLX ([`crate::discover::is_mlx_image`]): libmlx or MLX's Python
    /// extension. `Ok(None)`: none, or the platform cannot say (a recording); a permission
    /// error for another user's process. `argv` is the process's argument vector: reading the
    /// mapped files is costly (Linux ~60 µs a process, macOS one call per image), so only
    /// processes that may load MLX by their command line or executable
    /// ([`crate::discover::may_load_mlx`]) are read; for the others `Ok(None)`.
    fn mlx_image(&self, _pid: u32, _argv: &[String]) -> Result<Option<String>, InspectError> {
        Ok(None)
    }
    /// The process's standard output and error (fd 1, 2) where nothing holds the other end
    /// any more: a pipe with no reader, a unix stream socket whose peer closed; each a sentence.
    /// Whoever started the worker with that channel (an orchestrator reading its output) is
    /// gone. Nothing is written to the channel and the process is not disturbed (Linux: a
    /// non-blocking open of the write end, which the kernel refuses with ENXIO when no reader
    /// is left; macOS: the pipe's EOF state from `proc_pidfdinfo`). Empty where the platform or
    /// a recording cannot say, or the channel is a file, a terminal or /dev/null.
    fn unread_output(&self, _pid: u32) -> Result<Vec<String>, InspectError> {
        Ok(vec![])
    }
    /// The values of the environment variables named in `names` that the process started
    /// with (Linux `/proc/PID/environ`, macOS `KERN_PROCARGS2`; the same user's processes
    /// only). Read for what says how a worker runs: an MLX distributed rank (`MLX_RANK`,
    /// `MLX_HOSTFILE`). Empty where the platform or a recording cannot say.
    fn environ(&self, _pid: u32, _names: &[&str]) -> Result<Vec<(String, String)>, InspectError> {
        Ok(vec![])
    }
    /// For each TCP connection `(local, remote)` (as `ip:port`), the process on this machine
    /// that holds its other end, where one does and it can be seen (Linux: the socket table
    /// and the descriptors of the processes this user may read). `None` for a remote peer or
    /// where the platform cannot say (macOS: not read yet).
    fn tcp_peer_processes(&self, pairs: &[(String, String)]) -> Vec<Option<u32>> {
        vec![None; pairs.len()]
    }
}

/// Who holds each pipe or socket object: kernel object id → `(pid, fd)`.
pub type Holders = std::collections::HashMap<u64, Vec<(u32, i32)>>;

/// The processes in which to look for the other ends of `pid`'s pipes and sockets, as
/// [`Platform::fds`]'s `peers_among` asks: none, all visible, or the given ones plus `pid`.
pub fn peer_search_set(
    platform: &dyn Platform,
    pid: u32,
    peers_among: Option<&[u32]>,
) -> Option<Vec<u32>> {
    match peers_among {
        None => None,
        Some([]) => Some(platform.pids().unwrap_or_default()),
        Some(pids) => Some(pids.iter().copied().chain(std::iter::once(pid)).collect()),
    }
}

/// The holders of object `id` other than `me`, named with `comm`.
pub fn peers_of(
    holders: &Holders,
    id: u64,
    me: (u32, i32),
    comm: impl Fn(u32) -> String,
) -> Vec<crate::model::Peer> {
    holders
        .get(&id)
        .into_iter()
        .flatten()
        .filter(|&&h| h != me)
        .map(|&(pid, fd)| crate::model::Peer {
            pid,
            name: comm(pid),
            fd,
        })
        .collect()
}

/// The backend for the OS mlsdiag was built for.
pub fn native() -> Box<dyn Platform> {
    #[cfg(target_os = "linux")]
    {
        Box::new(linux::Linux::new())
    }
    #[cfg(target_os = "macos")]
    {
        Box::new(macos::Macos::new())
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        Box::new(unsupported::Unsupported)
    }
}
