//! Linux backend: procfs, plus sock_diag for unix-socket peers.
//!
//! All reads are of `/proc` files (or a recorded tree given as `root`), so the inspected worker is
//! never stopped or attached to. Files readable only by the owner (`fd/`, `syscall`) degrade into
//! a permission error or an `Unavailable` field with the reason, never a crash.

pub mod gpu;
pub mod sockdiag;
mod syscalls;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use procfs::process::{FDTarget, Process};
use procfs::{FromRead, ProcError};

use super::Platform;
use crate::error::{InspectError, permission_remedy};
use crate::model::pressure_level;
use crate::model::{FdInfo, FdKind, Peer, ProcessInfo, Syscall, SystemMemory, ThreadInfo};

pub use sockdiag::{UnixDiag, parse_unix_diag_dump};
pub use syscalls::syscall_name;

pub struct Linux {
    root: PathBuf,
    ticks_per_second: u64,
    page_size: u64,
    /// Boot time, seconds since the epoch: from the clocks on the live system (sub-second),
    /// from `btime` (whole seconds) for a recorded tree.
    boot_time_secs: Option<f64>,
}

impl Default for Linux {
    fn default() -> Self {
        Self::new()
    }
}

impl Linux {
    pub fn new() -> Self {
        Self::with_root("/proc")
    }

    /// A backend reading a procfs tree at `root` (used by tests on recorded trees).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let btime = || {
            std::fs::read_to_string(root.join("stat"))
                .ok()
                .and_then(|s| parse_btime(&s))
                .map(|b| b as f64)
        };
        let boot_time_secs = if root == Path::new("/proc") {
            live_boot_time().or_else(btime)
        } else {
            btime()
        };
        Linux {
            root,
            ticks_per_second: procfs::ticks_per_second().max(1),
            page_size: procfs::page_size(),
            boot_time_secs,
        }
    }

    fn open(&self, pid: u32) -> Result<Process, InspectError> {
        Process::new_with_root(self.root.join(pid.to_string())).map_err(|e| self.map_err(pid, e))
    }

    fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ticks.saturating_mul(1_000_000_000) / self.ticks_per_second
    }

    /// Turn a procfs error into the neutral error, telling "gone" apart from "denied".
    fn map_err(&self, pid: u32, e: ProcError) -> InspectError {
        let alive = self.root.join(pid.to_string()).exists();
        match e {
            _ if !alive => InspectError::Gone { pid },
            ProcError::PermissionDenied(path) => InspectError::PermissionDenied {
                pid,
                path: path
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| format!("/proc/{pid}")),
                remedy: permission_remedy(self.owner(pid)),
            },
            ProcError::NotFound(_) => InspectError::Gone { pid },
            ProcError::Io(err, path) if err.raw_os_error() == Some(libc::ESRCH) => {
                let _ = path;
                InspectError::Gone { pid }
            }
            other => InspectError::Io {
                pid,
                path: format!("/proc/{pid}"),
                message: other.to_string(),
            },
        }
    }

    /// A failed read of `/proc/PID/<file>` as the neutral error: gone, denied, or other.
    fn read_error(&self, pid: u32, file: &str, e: std::io::Error) -> InspectError {
        let path = format!("/proc/{pid}/{file}");
        match e.kind() {
            _ if e.raw_os_error() == Some(libc::ESRCH) => InspectError::Gone { pid },
            std::io::ErrorKind::NotFound if !self.root.join(pid.to_string()).exists() => {
                InspectError::Gone { pid }
            }
            std::io::ErrorKind::PermissionDenied => InspectError::PermissionDenied {
                pid,
                path,
                remedy: permission_remedy(self.owner(pid)),
            },
            _ => InspectError::Io {
                pid,
                path,
                message: e.to_string(),
            },
        }
    }

    fn owner(&self, pid: u32) -> Option<u32> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(self.root.join(pid.to_string()))
            .ok()
            .map(|m| m.uid())
    }

    fn start_time(&self, starttime_ticks: u64) -> DateTime<Utc> {
        let boot = self.boot_time_secs.unwrap_or(0.0);
        let secs = boot + starttime_ticks as f64 / self.ticks_per_second as f64;
        Utc.timestamp_opt(secs.trunc() as i64, (secs.fract() * 1e9) as u32)
            .single()
            .unwrap_or_default()
    }

    fn read_task_file(&self, pid: u32, tid: u32, file: &str) -> std::io::Result<String> {
        std::fs::read_to_string(self.root.join(format!("{pid}/task/{tid}/{file}")))
    }

    /// For every pipe and socket inode held by one of `pids`, who holds it.
    fn holders(&self, pids: &[u32]) -> super::Holders {
        let mut map = super::Holders::new();
        for &pid in pids {
            let Ok(proc) = Process::new_with_root(self.root.join(pid.to_string())) else {
                continue;
            };
            let Ok(fds) = proc.fd() else { continue };
            for fd in fds.flatten() {
                if let FDTarget::Pipe(ino) | FDTarget::Socket(ino) = fd.target {
                    map.entry(ino).or_default().push((pid, fd.fd));
                }
            }
        }
        map
    }

    fn comm(&self, pid: u32) -> String {
        std::fs::read_to_string(self.root.join(format!("{pid}/comm")))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default()
    }
}

/// The boot instant on the realtime clock, to the nanosecond: CLOCK_REALTIME − CLOCK_BOOTTIME,
/// the base that `/proc/PID/stat`'s start times count from. `btime` is the same instant
/// truncated to whole seconds, which would put every start time up to a second early.
fn live_boot_time() -> Option<f64> {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec into the valid, owned `ts`.
        (unsafe { libc::clock_gettime(clock, &mut ts) } == 0)
            .then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
    };
    Some(read(libc::CLOCK_REALTIME)? - read(libc::CLOCK_BOOTTIME)?)
}

/// The `SigCgt:` mask of `/proc/PID/status` (hex): the signals the process has handlers for.
pub fn parse_sigcgt(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// `btime` from `/proc/stat`: boot time in seconds since the epoch.
pub fn parse_btime(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Split `/proc/PID/cmdline` (NUL-separated, maybe NUL-terminated) into arguments.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Parse `/proc/PID/task/TID/wchan`: `0` or empty means "not sleeping in a known function".
pub fn parse_wchan(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s == "0" {
        None
    } else {
        Some(s.to_string())
    }
}

/// Parse `/proc/PID/task/TID/syscall` into the neutral form.
pub fn parse_syscall(s: &str) -> Syscall {
    let s = s.trim();
    if s == "running" {
        return Syscall::Running;
    }
    let mut parts = s.split_whitespace();
    let Some(Ok(number)) = parts.next().map(str::parse::<i64>) else {
        return Syscall::Unavailable {
            reason: format!("unparseable syscall line {s:?}"),
        };
    };
    if number < 0 {
        return Syscall::NotInSyscall;
    }
    let arg0 = parts
        .next()
        .and_then(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    Syscall::Blocked {
        number,
        name: syscall_name(number).map(str::to_string),
        arg0,
    }
}

/// Classify a path-like descriptor target.
pub fn classify_path(path: &Path) -> (FdKind, String) {
    let text = path.display().to_string();
    if let Some(name) = text.strip_prefix("/dev/shm/") {
        return (FdKind::Shm, format!("/{name}"));
    }
    if text.ends_with(" (deleted)") {
        return (FdKind::DeletedFile, text);
    }
    if text.starts_with("/dev/") {
        return (FdKind::Device, text);
    }
    (FdKind::File, text)
}

/// Whether the pipe `link` (a `/proc/PID/fd/N` link to its write end) has no reader left.
/// The pipe is opened for writing, without blocking (an anonymous pipe opens even with no
/// reader, unlike a FIFO), and polled once without waiting: POLLERR on a write end means no
/// process holds the read end (pipe(7)). Nothing is written, and the descriptor is closed at
/// once; the worker still holds its own write end, so a reader sees no end of file. Any
/// failure to open or poll says nothing.
fn pipe_has_no_reader(link: &Path) -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(link)
    else {
        return false;
    };
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd for a descriptor `file` keeps open for this call;
    // a timeout of 0 returns at once.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLERR != 0
}

/// The values of the variables named in `names` in a `/proc/PID/environ` text (NUL-separated
/// `NAME=value` entries).
fn environ_vars(raw: &[u8], names: &[&str]) -> Vec<(String, String)> {
    raw.split(|&b| b == 0)
        .filter_map(|e| {
            let text = String::from_utf8_lossy(e);
            let (k, v) = text.split_once('=')?;
            names.contains(&k).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The access mode (`O_RDONLY`, `O_WRONLY`, `O_RDWR`) in a `/proc/PID/fdinfo/N` text, whose
/// `flags:` line is the descriptor's open flags in octal.
fn fdinfo_access_mode(text: &str) -> Option<i32> {
    let flags = text.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
    i32::from_str_radix(flags, 8)
        .ok()
        .map(|f| f & libc::O_ACCMODE)
}

fn unix_state_label(state: u8) -> &'static str {
    // sock_diag reports unix socket states with the TCP constants.
    match state {
        1 => "connected",
        2 => "connecting",
        7 => "unconnected",
        10 => "listening",
        _ => "unknown",
    }
}

/// A socket from the `/proc/PID/net` tcp/udp tables: kind, address pair, state.
type InetSocket = (FdKind, String, Option<String>);

/// The socket tables one [`Platform::fds`] call needs, read once.
struct Sockets {
    /// Unix sockets from sock_diag, by inode.
    unix: HashMap<u64, UnixDiag>,
    /// Why unix peers are unknown, when sock_diag failed.
    unix_note: Option<String>,
    /// TCP and UDP sockets, by inode.
    inet: HashMap<u64, InetSocket>,
}

impl Sockets {
    /// Read only the tables that the descriptors in `entries` need.
    fn read(proc: &Process, entries: &[procfs::process::FDInfo]) -> Sockets {
        let has_sockets = entries
            .iter()
            .any(|e| matches!(e.target, FDTarget::Socket(_)));
        // Socket tables are read once, only when there is a socket to describe.
        let (unix, unix_note) = if has_sockets {
            match sockdiag::unix_sockets() {
                Ok(map) => (map, None),
                Err(e) => (
                    HashMap::new(),
                    Some(format!("unix peers unknown: sock_diag failed: {e}")),
                ),
            }
        } else {
            (HashMap::new(), None)
        };
        // The inet tables cost milliseconds each to read; only when a socket is not a unix one.
        let has_inet = entries
            .iter()
            .any(|e| matches!(e.target, FDTarget::Socket(ino) if !unix.contains_key(&ino)));
        let inet = if has_inet {
            inet_table(proc)
        } else {
            HashMap::new()
        };
        Sockets {
            unix,
            unix_note,
            inet,
        }
    }
}

/// Index the tcp, tcp6, udp and udp6 tables of `proc`'s network namespace by socket inode.
fn inet_table(proc: &Process) -> HashMap<u64, InetSocket> {
    let mut inet: HashMap<u64, InetSocket> = HashMap::new();
    for t in proc
        .tcp()
        .into_iter()
        .flatten()
        .chain(proc.tcp6().into_iter().flatten())
    {
        let text = format!("{} -> {}", t.local_address, t.remote_address);
        inet.insert(
            t.inode,
            (
                FdKind::Tcp,
                text,
                Some(format!("{:?}", t.state).to_lowercase()),
            ),
        );
    }
    for u in proc
        .udp()
        .into_iter()
        .flatten()
        .chain(proc.udp6().into_iter().flatten())
    {
        let text = format!("{} -> {}", u.local_address, u.remote_address);
        inet.insert(
            u.inode,
            (
                FdKind::Udp,
                text,
                Some(format!("{:?}", u.state).to_lowercase()),
            ),
        );
    }
    inet
}

/// Turn one procfs descriptor of `pid` into the neutral form, with peers from `peers_of`.
fn describe_fd(
    e: procfs::process::FDInfo,
    pid: u32,
    sockets: &Sockets,
    peers_of: &impl Fn(u64, (u32, i32)) -> Vec<Peer>,
) -> FdInfo {
    let fd = e.fd;
    let me = (pid, fd);
    match e.target {
        FDTarget::Path(p) => {
            let (kind, target) = classify_path(&p);
            FdInfo::new(fd, kind, target)
        }
        FDTarget::Pipe(ino) => FdInfo::new(fd, FdKind::Pipe, format!("pipe:[{ino}]"))
            .with_id(ino)
            .with_peers(peers_of(ino, me)),
        FDTarget::Socket(ino) => describe_socket(fd, ino, sockets, |peer| peers_of(peer, me)),
        FDTarget::AnonInode(name) => {
            FdInfo::new(fd, FdKind::AnonInode, format!("anon_inode:{name}"))
        }
        FDTarget::MemFD(name) => FdInfo::new(fd, FdKind::Memfd, format!("memfd:{name}")),
        FDTarget::Net(ino) => FdInfo::new(fd, FdKind::Other, format!("net:[{ino}]")).with_id(ino),
        FDTarget::Other(kind, ino) => {
            FdInfo::new(fd, FdKind::Other, format!("{kind}:[{ino}]")).with_id(ino)
        }
        FDTarget::Unknown(kind, text) => FdInfo::new(fd, FdKind::Other, format!("{kind}:{text}")),
    }
}

/// Describe socket inode `ino` held as `fd`: a unix socket with its peers (from `peers_of`,
/// given the peer's inode), a TCP/UDP socket, or a bare inode.
fn describe_socket(
    fd: i32,
    ino: u64,
    sockets: &Sockets,
    peers_of: impl Fn(u64) -> Vec<Peer>,
) -> FdInfo {
    if let Some(u) = sockets.unix.get(&ino) {
        let peers = match u.peer {
            Some(peer) => peers_of(u64::from(peer)),
            None => vec![],
        };
        let mut target = u.name.clone().unwrap_or_else(|| "(unnamed)".to_string());
        if let Some(peer) = u.peer {
            target = format!("{target} peer socket:[{peer}]");
        }
        FdInfo::new(fd, FdKind::UnixSocket, target)
            .with_id(ino)
            .with_state(Some(unix_state_label(u.state).to_string()))
            .with_peers(peers)
    } else if let Some((kind, text, state)) = sockets.inet.get(&ino) {
        FdInfo::new(fd, *kind, text.clone())
            .with_id(ino)
            .with_state(state.clone())
    } else {
        let target = match &sockets.unix_note {
            Some(note) => format!("socket:[{ino}] ({note})"),
            None => format!("socket:[{ino}]"),
        };
        FdInfo::new(fd, FdKind::OtherSocket, target).with_id(ino)
    }
}

impl Platform for Linux {
    fn monotonic(&self) -> Option<crate::model::Monotonic> {
        // CLOCK_MONOTONIC does not count a suspend (CLOCK_BOOTTIME would); the boot id tells
        // readings of another boot apart.
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec into `ts`, which is valid and writable.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
            return None;
        }
        Some(crate::model::Monotonic {
            secs: ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9,
            boot: boot.trim().to_string(),
        })
    }

    fn pids(&self) -> anyhow::Result<Vec<u32>> {
        let dir = std::fs::read_dir(&self.root)
            .map_err(|e| anyhow::anyhow!("{}: {e}", self.root.display()))?;
        let mut pids: Vec<u32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    fn cmdline(&self, pid: u32) -> Result<Vec<String>, InspectError> {
        match std::fs::read(self.root.join(format!("{pid}/cmdline"))) {
            Ok(bytes) => Ok(parse_cmdline(&bytes)),
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ESRCH) =>
            {
                Err(InspectError::Gone { pid })
            }
            Err(e) => Err(InspectError::Io {
                pid,
                path: format!("/proc/{pid}/cmdline"),
                message: e.to_string(),
            }),
        }
    }

    fn caught_signals(&self, pid: u32) -> Result<Option<u64>, InspectError> {
        let path = self.root.join(pid.to_string()).join("status");
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => InspectError::Gone { pid },
            _ => InspectError::Io {
                pid,
                path: path.display().to_string(),
                message: e.to_string(),
            },
        })?;
        Ok(parse_sigcgt(&text))
    }

    fn exe_id(&self, pid: u32) -> Result<Option<(u64, u64)>, InspectError> {
        use std::os::unix::fs::MetadataExt;
        // The link's target: the file the process runs (also after it was replaced on disk).
        let m = std::fs::metadata(self.root.join(format!("{pid}/exe")))
            .map_err(|e| self.read_error(pid, "exe", e))?;
        Ok(Some((m.dev(), m.ino())))
    }

    fn mlx_image(&self, pid: u32, argv: &[String]) -> Result<Option<String>, InspectError> {
        // Only processes that may load MLX, by their command line, or by their executable when
        // a title rewrote the command line: the maps of every process cost ~60 µs each.
        if !crate::discover::may_load_mlx(argv, None) {
            if !crate::discover::retitled(argv) {
                return Ok(None);
            }
            let exe = std::fs::read_link(self.root.join(format!("{pid}/exe")))
                .map_err(|e| self.read_error(pid, "exe", e));
            match exe {
                Ok(exe) if crate::discover::may_load_mlx(&[], exe.to_str()) => {}
                Err(e @ InspectError::PermissionDenied { .. }) => return Err(e),
                _ => return Ok(None),
            }
        }
        // One read of the text (the kernel writes it as it is read); only lines holding "mlx"
        // are parsed. Another user's maps cannot be opened without root: a permission error.
        let maps = std::fs::read(self.root.join(format!("{pid}/maps")))
            .map_err(|e| self.read_error(pid, "maps", e))?;
        Ok(crate::discover::mlx_image_in_maps(&maps).map(str::to_string))
    }

    fn gpu(
        &self,
        pids: &[u32],
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<crate::model::GpuReading> {
        // A recorded tree has no GPU to ask.
        (self.root == std::path::Path::new("/proc")).then(|| gpu::read(pids, since))
    }

    fn unread_output(&self, pid: u32) -> Result<Vec<String>, InspectError> {
        // The kernel's answer holds for this machine, not for a recorded tree.
        if self.root != std::path::Path::new("/proc") {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        let mut unix: Option<HashMap<u64, sockdiag::UnixDiag>> = None;
        for fd in [1, 2] {
            let link = self.root.join(format!("{pid}/fd/{fd}"));
            let target = match std::fs::read_link(&link) {
                Ok(t) => t.to_string_lossy().into_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.read_error(pid, &format!("fd/{fd}"), e)),
            };
            let name = ["", "stdout", "stderr"][fd];
            if target.starts_with("pipe:") {
                let info = std::fs::read_to_string(self.root.join(format!("{pid}/fdinfo/{fd}")))
                    .map_err(|e| self.read_error(pid, &format!("fdinfo/{fd}"), e))?;
                if fdinfo_access_mode(&info) == Some(libc::O_WRONLY) && pipe_has_no_reader(&link) {
                    out.push(format!(
                        "its {name} (fd {fd}, {target}) is a pipe nothing reads any more"
                    ));
                }
            } else if let Some(ino) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            {
                if unix.is_none() {
                    unix = Some(sockdiag::unix_sockets().unwrap_or_default());
                }
                let closed = unix
                    .as_ref()
                    .and_then(|m| m.get(&ino))
                    .is_some_and(|u| u.state == 1 && u.peer.is_none());
                if closed {
                    out.push(format!(
                        "its {name} (fd {fd}, {target}) is a unix socket whose peer closed"
                    ));
                }
            }
        }
        Ok(out)
    }

    fn environ(&self, pid: u32, names: &[&str]) -> Result<Vec<(String, String)>, InspectError> {
        let raw = std::fs::read(self.root.join(format!("{pid}/environ")))
            .map_err(|e| self.read_error(pid, "environ", e))?;
        Ok(environ_vars(&raw, names))
    }

    fn tcp_peer_processes(&self, pairs: &[(String, String)]) -> Vec<Option<u32>> {
        if self.root != std::path::Path::new("/proc") || pairs.is_empty() {
            return vec![None; pairs.len()];
        }
        let Ok(all) = sockdiag::tcp_sockets() else {
            return vec![None; pairs.len()];
        };
        // The sockets at the other ends: local and remote swapped.
        let inodes: Vec<Option<u64>> = pairs
            .iter()
            .map(|(local, remote)| {
                all.iter()
                    .find(|d| d.local.to_string() == *remote && d.peer.to_string() == *local)
                    .map(|d| d.inode)
                    .filter(|&i| i != 0)
            })
            .collect();
        if inodes.iter().all(Option::is_none) {
            return vec![None; pairs.len()];
        }
        let holders = self.holders(&self.pids().unwrap_or_default());
        inodes
            .iter()
            .map(|i| {
                i.and_then(|i| holders.get(&i))
                    .and_then(|h| h.first())
                    .map(|h| h.0)
            })
            .collect()
    }

    fn tcp_connections(&self, pid: u32) -> Result<Vec<crate::model::TcpConnection>, InspectError> {
        // sock_diag answers for this machine, not for a recorded tree.
        if self.root != std::path::Path::new("/proc") {
            return Err(InspectError::Unsupported(
                "a recorded /proc has no socket table".to_string(),
            ));
        }
        let proc = self.open(pid)?;
        let sockets: Vec<(i32, u64)> = (proc.fd().map_err(|e| self.map_err(pid, e))?.flatten())
            .filter_map(|e| match e.target {
                FDTarget::Socket(ino) => Some((e.fd, ino)),
                _ => None,
            })
            .collect();
        sockdiag::process_connections(pid, &sockets)
    }

    fn process(&self, pid: u32) -> Result<ProcessInfo, InspectError> {
        let proc = self.open(pid)?;
        let stat = proc.stat().map_err(|e| self.map_err(pid, e))?;
        let cmdline = self.cmdline(pid).unwrap_or_default();
        let uid = proc.uid().map_err(|e| self.map_err(pid, e))?;
        let threads_running = if stat.num_threads <= 1 {
            u32::from(stat.state == 'R')
        } else {
            proc.tasks()
                .map(|tasks| {
                    tasks
                        .flatten()
                        .filter(|t| t.stat().is_ok_and(|s| s.state == 'R'))
                        .count() as u32
                })
                .unwrap_or(0)
        };
        Ok(ProcessInfo {
            pid,
            ppid: stat.ppid.max(0) as u32,
            uid,
            name: stat.comm.clone(),
            cmdline,
            state: stat.state,
            start_time: self.start_time(stat.starttime),
            cpu_user_ns: self.ticks_to_ns(stat.utime),
            cpu_system_ns: self.ticks_to_ns(stat.stime),
            rss_bytes: stat.rss.saturating_mul(self.page_size),
            vsz_bytes: stat.vsize,
            footprint_bytes: None,
            threads: stat.num_threads.max(0) as u32,
            threads_running,
        })
    }

    fn threads(&self, pid: u32) -> Result<Vec<ThreadInfo>, InspectError> {
        let proc = self.open(pid)?;
        let tasks = proc.tasks().map_err(|e| self.map_err(pid, e))?;
        let mut out = Vec::new();
        for task in tasks {
            // A thread that exits between listing and reading is skipped, not an error.
            let Ok(task) = task else { continue };
            let Ok(stat) = task.stat() else { continue };
            let tid = task.tid as u32;
            let thread_id = u64::from(tid);
            let wait_channel = self
                .read_task_file(pid, tid, "wchan")
                .ok()
                .and_then(|s| parse_wchan(&s));
            let syscall = match self.read_task_file(pid, tid, "syscall") {
                Ok(s) => parse_syscall(&s),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    Syscall::Unavailable {
                        reason: format!(
                            "permission denied: {}",
                            permission_remedy(self.owner(pid))
                        ),
                    }
                }
                Err(e) => Syscall::Unavailable {
                    reason: e.to_string(),
                },
            };
            out.push(ThreadInfo {
                tid: thread_id,
                name: stat.comm.clone(),
                state: stat.state,
                cpu_user_ns: self.ticks_to_ns(stat.utime),
                cpu_system_ns: self.ticks_to_ns(stat.stime),
                wait_channel: if stat.state == 'R' {
                    None
                } else {
                    wait_channel
                },
                syscall: Some(syscall),
                sleep_secs: None,
            });
        }
        if out.is_empty() && !self.root.join(pid.to_string()).exists() {
            return Err(InspectError::Gone { pid });
        }
        out.sort_by_key(|t| t.tid);
        Ok(out)
    }

    fn fds(&self, pid: u32, peers_among: Option<&[u32]>) -> Result<Vec<FdInfo>, InspectError> {
        let proc = self.open(pid)?;
        let entries: Vec<_> = proc
            .fd()
            .map_err(|e| self.map_err(pid, e))?
            .flatten()
            .collect();
        let sockets = Sockets::read(&proc, &entries);
        let holders = super::peer_search_set(self, pid, peers_among)
            .map(|set| self.holders(&set))
            .unwrap_or_default();
        let peers_of =
            |id: u64, me: (u32, i32)| super::peers_of(&holders, id, me, |p| self.comm(p));
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(describe_fd(e, pid, &sockets, &peers_of));
        }
        out.sort_by_key(|f| f.fd);
        Ok(out)
    }

    fn system_memory(&self) -> anyhow::Result<SystemMemory> {
        let path = self.root.join("meminfo");
        let mi = procfs::Meminfo::from_file(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let available = mi.mem_available.unwrap_or(mi.mem_free + mi.cached);
        let psi = std::fs::read_to_string(self.root.join("pressure/memory"))
            .ok()
            .and_then(|s| parse_psi(&s));
        let (pressure, pressure_evidence) = pressure_level(mi.mem_total, available, psi);
        Ok(SystemMemory {
            total_bytes: mi.mem_total,
            free_bytes: mi.mem_free,
            available_bytes: available,
            cached_bytes: mi.cached + mi.buffers,
            swap_total_bytes: mi.swap_total,
            swap_free_bytes: mi.swap_free,
            pressure,
            pressure_evidence,
        })
    }
}

/// Parse `/proc/pressure/memory` into (some avg10, full avg10), in percent.
pub fn parse_psi(s: &str) -> Option<(f64, f64)> {
    let field = |prefix: &str| -> Option<f64> {
        let line = s.lines().find(|l| l.starts_with(prefix))?;
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix("avg10="))
            .and_then(|v| v.parse().ok())
    };
    Some((field("some ")?, field("full ").unwrap_or(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environ_vars_picks_the_named_ones() {
        let raw = b"HOME=/root\0MLX_RANK=1\0MLX_HOSTFILE=/tmp/h=1.json\0BROKEN\0\0";
        assert_eq!(
            environ_vars(raw, &["MLX_RANK", "MLX_HOSTFILE"]),
            [
                ("MLX_RANK".to_string(), "1".to_string()),
                ("MLX_HOSTFILE".to_string(), "/tmp/h=1.json".to_string())
            ]
        );
        assert!(environ_vars(b"", &["MLX_RANK"]).is_empty());
    }
    use procfs::process::Stat;

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        // A worker that renamed itself "mlx (gen) 1)" — the comm field holds spaces and parens.
        let line = "49387 (mlx (gen) 1)) S 4120 49387 4120 0 -1 4194560 9 0 0 0 25703 4527 0 0 20 0 18 0 \
                    123456 444689440 2096616 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 3 0 0 0 0 0";
        let stat = Stat::from_read(line.as_bytes()).unwrap();
        assert_eq!(stat.comm, "mlx (gen) 1)");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 4120);
        assert_eq!(stat.num_threads, 18);
        assert_eq!(stat.utime, 25703);
    }

    #[test]
    fn truncated_stat_is_an_error_not_a_panic() {
        assert!(Stat::from_read("49387 (python3) S 1".as_bytes()).is_err());
        assert!(Stat::from_read("".as_bytes()).is_err());
    }

    #[test]
    fn syscall_forms() {
        assert_eq!(parse_syscall("running\n"), Syscall::Running);
        assert_eq!(parse_syscall("-1 0x7ffd 0x7f00\n"), Syscall::NotInSyscall);
        match parse_syscall("202 0x55d0c3a8 0x80 0x2 0x0 0x0 0x0 0x7ffc 0x7f12\n") {
            Syscall::Blocked { number, arg0, name } => {
                assert_eq!(number, 202);
                assert_eq!(arg0, 0x55d0_c3a8);
                if cfg!(target_arch = "x86_64") {
                    assert_eq!(name.as_deref(), Some("futex"));
                }
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_syscall("garbage"),
            Syscall::Unavailable { .. }
        ));
    }

    #[test]
    fn cmdline_forms() {
        assert_eq!(
            parse_cmdline(b"python3\0-m\0mls.worker\0"),
            ["python3", "-m", "mls.worker"]
        );
        assert_eq!(parse_cmdline(b"no-trailing-nul"), ["no-trailing-nul"]);
        assert!(parse_cmdline(b"").is_empty());
        assert_eq!(parse_cmdline(b"a\0\0b\0"), ["a", "", "b"]);
    }

    #[test]
    fn wchan_zero_means_none() {
        assert_eq!(parse_wchan("0"), None);
        assert_eq!(parse_wchan(""), None);
        assert_eq!(
            parse_wchan("futex_wait_queue"),
            Some("futex_wait_queue".into())
        );
    }

    #[test]
    fn path_kinds() {
        assert_eq!(
            classify_path(Path::new("/dev/shm/mls_kv_0")),
            (FdKind::Shm, "/mls_kv_0".into())
        );
        assert_eq!(classify_path(Path::new("/dev/null")).0, FdKind::Device);
        assert_eq!(
            classify_path(Path::new("/tmp/x.log (deleted)")).0,
            FdKind::DeletedFile
        );
        assert_eq!(classify_path(Path::new("/tmp/x.log")).0, FdKind::File);
    }

    #[test]
    fn sigcgt_masks() {
        let status = "Name:\tpython3\nSigIgn:\t0000000001001000\nSigCgt:\t0000000180000200\n";
        let m = parse_sigcgt(status).unwrap();
        assert_eq!(
            m & (1 << (libc::SIGUSR1 - 1)),
            1 << 9,
            "SIGUSR1 (10) is caught"
        );
        assert_eq!(parse_sigcgt("Name:\tx\n"), None);
        // This test process: the Rust runtime catches SIGSEGV/SIGBUS, not SIGUSR1.
        use crate::platform::Platform;
        let me = Linux::new()
            .caught_signals(std::process::id())
            .unwrap()
            .unwrap();
        assert_eq!(me & (1 << (libc::SIGUSR1 - 1)), 0);
    }

    #[test]
    fn btime_and_psi() {
        assert_eq!(
            parse_btime("cpu 1 2 3\nbtime 1767650245\nprocesses 9\n"),
            Some(1_767_650_245)
        );
        assert_eq!(parse_btime("cpu 1 2 3\n"), None);
        let psi = "some avg10=12.50 avg60=3.00 avg300=1.00 total=99\nfull avg10=0.40 avg60=0 avg300=0 total=1\n";
        assert_eq!(parse_psi(psi), Some((12.5, 0.4)));
        assert_eq!(parse_psi("nonsense"), None);
    }

    #[test]
    fn live_start_times_are_precise_to_the_clock_tick() {
        use crate::platform::Platform;
        // A start time derived from btime alone can be up to a second early; a respawn a second
        // after a request must still tell the two processes apart (see logs::slack_for).
        let before = Utc::now();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let after = Utc::now();
        let p = Linux::new().process(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let start = p.unwrap().start_time;
        let tick = chrono::Duration::milliseconds(20);
        assert!(
            start >= before - tick && start <= after + tick,
            "{before} <= {start} <= {after}"
        );
    }
}
