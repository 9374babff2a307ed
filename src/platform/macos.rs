//! macOS backend: libproc, mach2 and libc, without sudo for the user's own processes.
//!
//! Every call here is a `proc_pidinfo`/`proc_pidfdinfo`/`proc_pid_rusage`/`sysctl`/
//! `host_statistics64` read, which XNU allows for processes of the same uid. `task_for_pid` is
//! never called (on another user's process it needs root and can block forever, psutil#2885),
//! so per-thread state comes from `PROC_PIDTHREADINFO`, not from Mach thread ports. A denied
//! call becomes a permission error (verdict `unknown` with the remedy). The interpretation of
//! what the kernel returns lives in [`super::xnu`], where it is unit-tested on every OS.
//!
//! # Platform specific behavior
//! - CPU times in `proc_taskinfo` are Mach ticks, converted with `mach_timebase_info`.
//! - The state letter is derived from the threads, as `ps` does (`I` = asleep > 20 s).
//! - Memory trends use `ri_phys_footprint`, not RSS (what Activity Monitor and jetsam use).
//! - There is no wait channel or syscall on macOS without root; threads report sleep time.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;

use chrono::{TimeZone, Utc};
use libproc::file_info::{ListFDs, PIDFDInfo, PIDFDInfoFlavor, pidfdinfo};
use libproc::net_info::{SocketFDInfo, SocketInfoKind};
use libproc::pid_rusage::{RUsageInfoV4, pidrusage};
use libproc::proc_pid::listpidinfo;
use libproc::processes::{ProcFilter, pids_by_type};

use super::Platform;
use super::xnu::{self, PipeFdInfo, PshmFdInfo, VmPages, VnodeFdInfoWithPath, c_chars};
use crate::error::{InspectError, permission_remedy};
use crate::model::{FdInfo, FdKind, ProcessInfo, SystemMemory, ThreadInfo};

impl PIDFDInfo for PipeFdInfo {
    fn flavor() -> PIDFDInfoFlavor {
        PIDFDInfoFlavor::PipeInfo
    }
}
impl PIDFDInfo for PshmFdInfo {
    fn flavor() -> PIDFDInfoFlavor {
        PIDFDInfoFlavor::PSHMInfo
    }
}
impl PIDFDInfo for VnodeFdInfoWithPath {
    fn flavor() -> PIDFDInfoFlavor {
        PIDFDInfoFlavor::VNodePathInfo
    }
}

pub struct Macos {
    numer: u32,
    denom: u32,
    page_size: u64,
}

impl Default for Macos {
    fn default() -> Self {
        Self::new()
    }
}

/// `proc_pidinfo` into a plain-data struct, keeping errno.
fn pidinfo<T: Copy>(pid: u32, flavor: i32, arg: u64) -> io::Result<T> {
    let mut out = MaybeUninit::<T>::zeroed();
    let size = size_of::<T>() as i32;
    // SAFETY: `out` is a zeroed buffer of exactly `size` bytes; proc_pidinfo(3) writes at most
    // `size` bytes into it and returns how many it wrote.
    let n = unsafe { libc::proc_pidinfo(pid as i32, flavor, arg, out.as_mut_ptr().cast(), size) };
    if n <= 0 {
        return Err(io::Error::last_os_error());
    }
    if n < size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short proc_pidinfo reply",
        ));
    }
    // SAFETY: the kernel filled all `size` bytes of a plain-old-data C struct (all-zero is valid too).
    Ok(unsafe { out.assume_init() })
}

/// `proc_pidinfo` flavors that return an array of u64 (thread ids or handles).
fn pidinfo_u64s(pid: u32, flavor: i32, hint: usize) -> io::Result<Vec<u64>> {
    let mut buf = vec![0u64; hint + 32];
    let bytes = (buf.len() * size_of::<u64>()) as i32;
    // SAFETY: `buf` is a writable allocation of `bytes` bytes; the kernel writes at most that.
    let n = unsafe { libc::proc_pidinfo(pid as i32, flavor, 0, buf.as_mut_ptr().cast(), bytes) };
    if n <= 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize / size_of::<u64>());
    buf.retain(|&v| v != 0);
    Ok(buf)
}

/// A sysctl by MIB into `buf`, truncated to the bytes the kernel wrote.
fn sysctl_mib(mib: &mut [libc::c_int], buf: &mut Vec<u8>) -> io::Result<()> {
    let mut len = buf.len();
    // SAFETY: `mib` holds `mib.len()` names, `buf` is writable for `len` bytes and sysctl(3)
    // writes at most `len`.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as libc::c_uint,
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(len);
    Ok(())
}

/// A numeric sysctl by name.
fn sysctl<T: Copy + Default>(name: &str) -> io::Result<T> {
    let cname = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut value = T::default();
    let mut len = size_of::<T>();
    // SAFETY: `value` is a valid, writable T of `len` bytes; sysctlbyname(3) writes at most `len`.
    let rc = unsafe {
        libc::sysctlbyname(
            cname.as_ptr(),
            (&mut value as *mut T).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

fn exists(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks whether the process exists.
    let rc = unsafe { libc::kill(pid as i32, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Macos {
    pub fn new() -> Self {
        let mut tb = mach2::mach_time::mach_timebase_info { numer: 1, denom: 1 };
        // SAFETY: `tb` is a valid mach_timebase_info the call fills in; it cannot fail on macOS.
        unsafe { mach2::mach_time::mach_timebase_info(&mut tb) };
        // SAFETY: vm_page_size is a read-only global set by libSystem before main.
        let page_size = unsafe { mach2::vm_page_size::vm_page_size } as u64;
        Macos {
            numer: tb.numer,
            denom: tb.denom,
            page_size: page_size.max(4096),
        }
    }

    fn map_err(&self, pid: u32, call: &str, e: io::Error) -> InspectError {
        match e.raw_os_error() {
            Some(libc::ESRCH) => InspectError::Gone { pid },
            _ if !exists(pid) => InspectError::Gone { pid },
            Some(libc::EPERM | libc::EACCES) => InspectError::PermissionDenied {
                pid,
                path: call.to_string(),
                remedy: permission_remedy(self.owner(pid)),
            },
            _ => InspectError::Io {
                pid,
                path: call.to_string(),
                message: e.to_string(),
            },
        }
    }

    /// A libproc call failed with a message only: decide gone/denied by probing the pid.
    fn map_libproc(&self, pid: u32, call: &str, message: String) -> InspectError {
        if !exists(pid) {
            InspectError::Gone { pid }
        } else if message.contains("not permitted") || message.contains("denied") {
            InspectError::PermissionDenied {
                pid,
                path: call.to_string(),
                remedy: permission_remedy(self.owner(pid)),
            }
        } else {
            InspectError::Io {
                pid,
                path: call.to_string(),
                message,
            }
        }
    }

    fn owner(&self, pid: u32) -> Option<u32> {
        // PROC_PIDT_SHORTBSDINFO is allowed for any uid.
        pidinfo::<libc::proc_bsdshortinfo>(pid, libc::PROC_PIDT_SHORTBSDINFO, 0)
            .ok()
            .map(|s| s.pbsi_uid)
    }

    /// Every thread's `proc_threadinfo`, keyed by thread id (or by handle on systems without
    /// `PROC_PIDLISTTHREADIDS`).
    fn thread_infos(&self, pid: u32, hint: usize) -> io::Result<Vec<(u64, libc::proc_threadinfo)>> {
        if let Ok(ids) = pidinfo_u64s(pid, xnu::PROC_PIDLISTTHREADIDS, hint) {
            return Ok(ids
                .into_iter()
                .filter_map(|id| {
                    pidinfo::<libc::proc_threadinfo>(pid, xnu::PROC_PIDTHREADID64INFO, id)
                        .ok()
                        .map(|t| (id, t))
                })
                .collect());
        }
        let handles = pidinfo_u64s(pid, xnu::PROC_PIDLISTTHREADS, hint)?;
        Ok(handles
            .into_iter()
            .filter_map(|h| {
                pidinfo::<libc::proc_threadinfo>(pid, libc::PROC_PIDTHREADINFO, h)
                    .ok()
                    .map(|t| (h, t))
            })
            .collect())
    }

    fn zombie(&self, pid: u32) -> Option<ProcessInfo> {
        let bsd = pidinfo::<libc::proc_bsdinfo>(pid, libc::PROC_PIDTBSDINFO, 0).ok()?;
        (bsd.pbi_status == xnu::SZOMB).then(|| ProcessInfo {
            pid,
            ppid: bsd.pbi_ppid,
            uid: bsd.pbi_uid,
            name: c_chars(&bsd.pbi_comm),
            cmdline: vec![],
            state: 'Z',
            start_time: Utc
                .timestamp_opt(bsd.pbi_start_tvsec as i64, 0)
                .single()
                .unwrap_or_default(),
            cpu_user_ns: 0,
            cpu_system_ns: 0,
            rss_bytes: 0,
            vsz_bytes: 0,
            footprint_bytes: None,
            threads: 0,
            threads_running: 0,
        })
    }

    /// Socket and pipe identities held by `pids`: kernel object address -> holders.
    fn holders(&self, pids: &[u32]) -> super::Holders {
        let mut map = super::Holders::new();
        for &pid in pids {
            let Ok(list) = listpidinfo::<ListFDs>(pid as i32, 4096) else {
                continue;
            };
            for f in list {
                let id = match f.proc_fdtype {
                    xnu::PROX_FDTYPE_PIPE => pidfdinfo::<PipeFdInfo>(pid as i32, f.proc_fd)
                        .ok()
                        .map(|p| p.pipe_handle),
                    xnu::PROX_FDTYPE_SOCKET => pidfdinfo::<SocketFDInfo>(pid as i32, f.proc_fd)
                        .ok()
                        .map(|s| s.psi.soi_so),
                    _ => None,
                };
                if let Some(id) = id.filter(|&id| id != 0) {
                    map.entry(id).or_default().push((pid, f.proc_fd));
                }
            }
        }
        map
    }

    fn comm(&self, pid: u32) -> String {
        pidinfo::<libc::proc_bsdshortinfo>(pid, libc::PROC_PIDT_SHORTBSDINFO, 0)
            .map(|s| c_chars(&s.pbsi_comm))
            .unwrap_or_default()
    }

    fn socket(&self, fd: i32, s: &SocketFDInfo) -> (FdInfo, Option<u64>) {
        let psi = &s.psi;
        let base = |kind: FdKind, target: String, state: Option<String>| {
            FdInfo::new(fd, kind, target)
                .with_id(psi.soi_so)
                .with_state(state)
        };
        match SocketInfoKind::from(psi.soi_kind) {
            SocketInfoKind::Un => {
                // SAFETY: soi_kind says the union holds the unix-domain variant.
                let un = unsafe { psi.soi_proto.pri_un };
                // SAFETY: both union variants are plain bytes; sun_path is NUL-terminated or full.
                let path = c_chars(unsafe { &un.unsi_addr.ua_sun.sun_path });
                let listening = psi.soi_options as i32 & libc::SO_ACCEPTCONN != 0;
                let state = if listening {
                    "listening"
                } else if un.unsi_conn_so != 0 {
                    "connected"
                } else {
                    "unconnected"
                };
                let target = if path.is_empty() {
                    "(unnamed)".to_string()
                } else {
                    path
                };
                (
                    base(FdKind::UnixSocket, target, Some(state.into())),
                    Some(un.unsi_conn_so).filter(|&p| p != 0),
                )
            }
            SocketInfoKind::Tcp => {
                // SAFETY: soi_kind says the union holds the TCP variant.
                let tcp = unsafe { psi.soi_proto.pri_tcp };
                let text = inet_text(&tcp.tcpsi_ini);
                (
                    base(
                        FdKind::Tcp,
                        text,
                        Some(xnu::tcp_state(tcp.tcpsi_state).into()),
                    ),
                    None,
                )
            }
            SocketInfoKind::In => {
                // SAFETY: soi_kind says the union holds the internet variant.
                let ini = unsafe { psi.soi_proto.pri_in };
                let kind = if psi.soi_protocol == libc::IPPROTO_UDP {
                    FdKind::Udp
                } else {
                    FdKind::OtherSocket
                };
                (base(kind, inet_text(&ini), None), None)
            }
            other => (
                base(FdKind::OtherSocket, format!("socket ({other:?})"), None),
                None,
            ),
        }
    }
}

/// A vnode descriptor by its path: a deleted file (no links left), a device, or a file.
fn vnode_fd(fd: i32, v: &VnodeFdInfoWithPath) -> FdInfo {
    let path = c_chars(&v.vip_path);
    let kind = if v.vi_stat.vst_nlink == 0 && !path.starts_with("/dev/") {
        FdKind::DeletedFile
    } else if path.starts_with("/dev/") {
        FdKind::Device
    } else {
        FdKind::File
    };
    FdInfo::new(fd, kind, path)
}

fn inet_text(ini: &libproc::net_info::InSockInfo) -> String {
    let port = |p: i32| u16::from_be(p as u16);
    let addr = |a: &libproc::net_info::InSIAddr| -> String {
        if ini.insi_vflag & 0x1 != 0 {
            // SAFETY: INI_IPV4 says the union holds an IPv4 address in its 4-in-6 layout.
            let v4 = unsafe { a.ina_46.i46a_addr4.s_addr };
            std::net::Ipv4Addr::from(u32::from_be(v4)).to_string()
        } else {
            // SAFETY: otherwise the union holds an IPv6 address.
            let v6 = unsafe { a.ina_6.s6_addr };
            format!("[{}]", std::net::Ipv6Addr::from(v6))
        }
    };
    format!(
        "{}:{} -> {}:{}",
        addr(&ini.insi_laddr),
        port(ini.insi_lport),
        addr(&ini.insi_faddr),
        port(ini.insi_fport)
    )
}

/// One end of an internet socket as `address:port` (`[v6]:port`).
fn inet_end(ini: &libproc::net_info::InSockInfo, local: bool) -> String {
    let (a, p) = if local {
        (&ini.insi_laddr, ini.insi_lport)
    } else {
        (&ini.insi_faddr, ini.insi_fport)
    };
    let port = u16::from_be(p as u16);
    if ini.insi_vflag & 0x1 != 0 {
        // SAFETY: INI_IPV4 says the union holds an IPv4 address in its 4-in-6 layout.
        let v4 = unsafe { a.ina_46.i46a_addr4.s_addr };
        format!("{}:{port}", std::net::Ipv4Addr::from(u32::from_be(v4)))
    } else {
        // SAFETY: otherwise the union holds an IPv6 address.
        let v6 = unsafe { a.ina_6.s6_addr };
        format!("[{}]:{port}", std::net::Ipv6Addr::from(v6))
    }
}

/// The TCP clock (`tcp_now`, ms) now, from the start XNU publishes; `None` where it does not.
fn tcp_clock() -> Option<u32> {
    let now_init: u32 = sysctl("net.inet.tcp.now_init").ok()?;
    let uptime_init: u32 = sysctl("net.inet.tcp.microuptime_init").ok()?;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, which is valid and writable.
    if unsafe { libc::clock_gettime(libc::CLOCK_UPTIME_RAW, &mut ts) } != 0 {
        return None;
    }
    let uptime_us = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
    Some(super::xnu_tcp::tcp_now(now_init, uptime_init, uptime_us))
}

/// A variable-size sysctl by name (a table such as `net.inet.tcp.pcblist_n`), sized by a first
/// call; a table that grew in between is read again with room to spare.
fn sysctl_bytes(name: &str) -> io::Result<Vec<u8>> {
    let cname = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    for _ in 0..3 {
        let mut len = 0usize;
        // SAFETY: a null buffer asks only for the size, written into `len`.
        let rc = unsafe {
            libc::sysctlbyname(
                cname.as_ptr(),
                std::ptr::null_mut(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; len + len / 4 + 4096];
        let mut got = buf.len();
        // SAFETY: `buf` is writable for `got` bytes; sysctlbyname(3) writes at most `got`.
        let rc = unsafe {
            libc::sysctlbyname(
                cname.as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut got,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc == 0 {
            buf.truncate(got);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOMEM) {
            return Err(e);
        }
    }
    Err(io::Error::other(format!("{name} kept growing")))
}

impl Platform for Macos {
    fn monotonic(&self) -> Option<crate::model::Monotonic> {
        // CLOCK_UPTIME_RAW stops while the Mac sleeps (CLOCK_MONOTONIC does not, on macOS); the
        // boot time tells readings of another boot apart.
        let boot: libc::timeval = sysctl_struct("kern.boottime").ok()?;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec into `ts`, which is valid and writable.
        if unsafe { libc::clock_gettime(libc::CLOCK_UPTIME_RAW, &mut ts) } != 0 {
            return None;
        }
        Some(crate::model::Monotonic {
            secs: ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9,
            boot: format!("{}.{:06}", boot.tv_sec, boot.tv_usec),
        })
    }

    fn unread_output(&self, pid: u32) -> Result<Vec<String>, InspectError> {
        // A pipe's state carries PIPE_EOF once its other end is closed (XNU bsd/sys/pipe.h);
        // `proc_pidfdinfo` reads it without opening anything. Unix sockets on fd 1/2 are not
        // judged here: launchd gives its services files or /dev/null.
        let mut out = Vec::new();
        for fd in [1, 2] {
            let Ok(p) = pidfdinfo::<PipeFdInfo>(pid as i32, fd) else {
                continue;
            };
            if p.pipe_status & xnu::PIPE_EOF != 0 {
                let name = ["", "stdout", "stderr"][fd as usize];
                out.push(format!(
                    "its {name} (fd {fd}, pipe {:#x}) is a pipe nothing reads any more",
                    p.pipe_handle
                ));
            }
        }
        Ok(out)
    }

    fn tcp_connections(&self, pid: u32) -> Result<Vec<crate::model::TcpConnection>, InspectError> {
        let bsd = pidinfo::<libc::proc_bsdinfo>(pid, libc::PROC_PIDTBSDINFO, 0)
            .map_err(|e| self.map_err(pid, "proc_pidinfo(PROC_PIDTBSDINFO)", e))?;
        let list = listpidinfo::<ListFDs>(pid as i32, bsd.pbi_nfiles.max(64) as usize)
            .map_err(|m| self.map_libproc(pid, "proc_pidinfo(PROC_PIDLISTFDS)", m))?;
        let mut conns = Vec::new();
        for f in list
            .iter()
            .filter(|f| f.proc_fdtype == xnu::PROX_FDTYPE_SOCKET)
        {
            let Ok(s) = pidfdinfo::<SocketFDInfo>(pid as i32, f.proc_fd) else {
                continue;
            };
            if !matches!(SocketInfoKind::from(s.psi.soi_kind), SocketInfoKind::Tcp) {
                continue;
            }
            // SAFETY: soi_kind says the union holds the TCP variant.
            let tcp = unsafe { s.psi.soi_proto.pri_tcp };
            let listen = tcp.tcpsi_state == 1;
            conns.push((
                s.psi.soi_so,
                crate::model::TcpConnection {
                    fd: Some(f.proc_fd),
                    local: inet_end(&tcp.tcpsi_ini, true),
                    peer: inet_end(&tcp.tcpsi_ini, false),
                    state: super::xnu_tcp::state_name(tcp.tcpsi_state).to_string(),
                    accepted: false,
                    last_recv_ms: None,
                    last_sent_ms: None,
                    bytes_received: None,
                    bytes_sent: None,
                    rx_queue: (!listen).then_some(u64::from(s.psi.soi_rcv.sbi_cc)),
                    tx_queue: (!listen).then_some(u64::from(s.psi.soi_snd.sbi_cc)),
                    server_reading: None,
                    server_writing: None,
                },
            ));
        }
        let listening: Vec<String> = (conns.iter())
            .filter(|(_, c)| c.state == "listen")
            .map(|(_, c)| c.local.clone())
            .collect();
        for (_, c) in conns.iter_mut().filter(|(_, c)| c.state != "listen") {
            c.accepted = crate::model::on_listening_port(&c.local, &listening);
        }
        // The machine's TCP control blocks, only when there is a connection to judge: the
        // counters and the time of the last segment received, matched by the socket's handle.
        if conns.iter().any(|(_, c)| c.accepted) {
            let pcbs = sysctl_bytes("net.inet.tcp.pcblist_n")
                .map(|b| super::xnu_tcp::parse_pcblist_n(&b))
                .unwrap_or_default();
            let now = tcp_clock();
            for (so, c) in conns.iter_mut().filter(|(_, c)| c.accepted) {
                if let Some(p) = pcbs.iter().find(|p| p.so == *so && *so != 0) {
                    super::xnu_tcp::fill_from_pcb(c, p, now);
                }
            }
        }
        Ok(conns.into_iter().map(|(_, c)| c).collect())
    }

    fn pids(&self) -> anyhow::Result<Vec<u32>> {
        let mut pids = pids_by_type(ProcFilter::All)?;
        pids.retain(|&p| p != 0);
        pids.sort_unstable();
        Ok(pids)
    }

    fn cmdline(&self, pid: u32) -> Result<Vec<String>, InspectError> {
        let argmax: i32 = sysctl("kern.argmax").unwrap_or(1 << 20);
        let mut buf = vec![0u8; argmax.max(4096) as usize];
        if let Err(e) = sysctl_mib(
            &mut [libc::CTL_KERN, libc::KERN_PROCARGS2, pid as i32],
            &mut buf,
        ) {
            // EINVAL means "no arguments you may read": none for our own zombies, denied for
            // another user's process.
            if e.raw_os_error() == Some(libc::EINVAL) && exists(pid) {
                let owner = self.owner(pid);
                if owner == Some(my_uid()) {
                    return Ok(vec![]);
                }
                return Err(InspectError::PermissionDenied {
                    pid,
                    path: "sysctl(KERN_PROCARGS2)".into(),
                    remedy: permission_remedy(owner),
                });
            }
            return Err(self.map_err(pid, "sysctl(KERN_PROCARGS2)", e));
        }
        Ok(xnu::parse_procargs2(&buf).unwrap_or_default())
    }

    fn environ(&self, pid: u32, names: &[&str]) -> Result<Vec<(String, String)>, InspectError> {
        let argmax: i32 = sysctl("kern.argmax").unwrap_or(1 << 20);
        let mut buf = vec![0u8; argmax.max(4096) as usize];
        sysctl_mib(
            &mut [libc::CTL_KERN, libc::KERN_PROCARGS2, pid as i32],
            &mut buf,
        )
        .map_err(|e| self.map_err(pid, "sysctl(KERN_PROCARGS2)", e))?;
        Ok(xnu::procargs2_env(&buf, names).unwrap_or_default())
    }

    fn caught_signals(&self, pid: u32) -> Result<Option<u64>, InspectError> {
        let mut buf = vec![0u8; xnu::KINFO_PROC_LEN];
        let mut mib = [
            libc::CTL_KERN,
            libc::KERN_PROC,
            libc::KERN_PROC_PID,
            pid as i32,
        ];
        sysctl_mib(&mut mib, &mut buf)
            .map_err(|e| self.map_err(pid, "sysctl(KERN_PROC_PID)", e))?;
        // A PID that does not exist returns no bytes.
        if buf.is_empty() {
            return Err(InspectError::Gone { pid });
        }
        Ok(xnu::sigcatch(&buf).map(u64::from))
    }

    fn exe_id(&self, pid: u32) -> Result<Option<(u64, u64)>, InspectError> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::MetadataExt;
        let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
        // SAFETY: `buf` is writable for its whole length, which is the size passed.
        let n =
            unsafe { libc::proc_pidpath(pid as i32, buf.as_mut_ptr().cast(), buf.len() as u32) };
        if n <= 0 {
            return Err(self.map_err(pid, "proc_pidpath", io::Error::last_os_error()));
        }
        let path = std::ffi::OsStr::from_bytes(&buf[..n as usize]);
        let m = std::fs::metadata(path).map_err(|e| self.map_err(pid, "proc_pidpath", e))?;
        Ok(Some((m.dev() as u64, m.ino())))
    }

    fn mlx_image(&self, pid: u32, argv: &[String]) -> Result<Option<String>, InspectError> {
        // One proc_pidinfo call per file-backed region (a Python process has hundreds): only
        // processes that may load MLX, by their command line, or by their executable when a
        // title rewrote the command line, are read.
        if !crate::discover::may_load_mlx(argv, None) {
            if !crate::discover::retitled(argv) {
                return Ok(None);
            }
            let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
            // SAFETY: `buf` is writable for its whole length, which is the size passed.
            let n = unsafe {
                libc::proc_pidpath(pid as i32, buf.as_mut_ptr().cast(), buf.len() as u32)
            };
            let exe = String::from_utf8_lossy(&buf[..n.max(0) as usize]);
            if !crate::discover::may_load_mlx(&[], Some(&exe)) {
                return Ok(None);
            }
        }
        let mut addr = 0u64;
        // A bound on the calls, whatever the kernel answers.
        for _ in 0..65_536 {
            let r =
                match pidinfo::<xnu::RegionWithPathInfo>(pid, xnu::PROC_PIDREGIONPATHINFO2, addr) {
                    Ok(r) => r,
                    // EINVAL: no file-backed region at or after `addr`, the end of the list.
                    Err(e) => {
                        return match e.raw_os_error() {
                            Some(libc::EPERM | libc::EACCES | libc::ESRCH) => {
                                Err(self.map_err(pid, "proc_pidinfo(PROC_PIDREGIONPATHINFO2)", e))
                            }
                            _ => Ok(None),
                        };
                    }
                };
            let path = xnu::c_chars(&r.vip_path);
            if crate::discover::is_mlx_image(&path) {
                return Ok(Some(path));
            }
            let Some(next) = r.next_address(addr) else {
                break;
            };
            addr = next;
        }
        Ok(None)
    }

    fn gpu(
        &self,
        pids: &[u32],
        _since: Option<chrono::DateTime<Utc>>,
    ) -> Option<crate::model::GpuReading> {
        let at = Utc::now();
        let clients = agx_clients();
        let mut reading = match &clients {
            Ok(clients) => super::agx::reading(clients, pids, at),
            Err(why) => crate::model::GpuReading::unavailable("iokit", why.clone()),
        };
        // One GPU, device 0, with its draw from IOReport's energy counters (200 ms more of
        // this call); Apple silicon publishes no power limit. Its processes are every process
        // holding an AGX client (WindowServer among them), not only `pids`: the energy is the
        // whole GPU's, so it is shared as soon as another process holds a client. Without the
        // clients, the processes of the reading (none) are counted.
        let holders = match &clients {
            Ok(clients) => clients
                .iter()
                .filter_map(|c| super::agx::creator_pid(&c.creator))
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            Err(_) => reading.processes.len(),
        };
        let power = super::ioreport::gpu_power_mw(std::time::Duration::from_millis(200));
        reading.devices.insert(
            0,
            crate::model::GpuDevice {
                power_mw: power.ok(),
                power_limit_mw: None,
                processes: u32::try_from(holders).unwrap_or(u32::MAX),
            },
        );
        for p in reading.processes.values_mut() {
            p.device = Some(0);
        }
        Some(reading)
    }

    fn process(&self, pid: u32) -> Result<ProcessInfo, InspectError> {
        let all = match pidinfo::<libc::proc_taskallinfo>(pid, libc::PROC_PIDTASKALLINFO, 0) {
            Ok(all) => all,
            Err(e) => {
                if let Some(z) = self.zombie(pid) {
                    return Ok(z);
                }
                return Err(self.map_err(pid, "proc_pidinfo(PROC_PIDTASKALLINFO)", e));
            }
        };
        let bsd = &all.pbsd;
        let task = &all.ptinfo;
        let threads = self
            .thread_infos(pid, task.pti_threadnum.max(0) as usize)
            .unwrap_or_default();
        let states: Vec<(i32, u64)> = threads
            .iter()
            .map(|(_, t)| (t.pth_run_state, t.pth_sleep_time.max(0) as u64))
            .collect();
        let name = {
            let n = c_chars(&bsd.pbi_name);
            if n.is_empty() {
                c_chars(&bsd.pbi_comm)
            } else {
                n
            }
        };
        Ok(ProcessInfo {
            pid,
            ppid: bsd.pbi_ppid,
            uid: bsd.pbi_uid,
            name,
            cmdline: self.cmdline(pid).unwrap_or_default(),
            state: xnu::process_letter(bsd.pbi_status, &states),
            start_time: Utc
                .timestamp_opt(
                    bsd.pbi_start_tvsec as i64,
                    (bsd.pbi_start_tvusec as u32).saturating_mul(1000),
                )
                .single()
                .unwrap_or_default(),
            cpu_user_ns: xnu::ticks_to_ns(task.pti_total_user, self.numer, self.denom),
            cpu_system_ns: xnu::ticks_to_ns(task.pti_total_system, self.numer, self.denom),
            rss_bytes: task.pti_resident_size,
            vsz_bytes: task.pti_virtual_size,
            footprint_bytes: pidrusage::<RUsageInfoV4>(pid as i32)
                .ok()
                .map(|r| r.ri_phys_footprint),
            threads: task.pti_threadnum.max(0) as u32,
            threads_running: states
                .iter()
                .filter(|(s, _)| *s == xnu::TH_STATE_RUNNING)
                .count() as u32,
        })
    }

    fn threads(&self, pid: u32) -> Result<Vec<ThreadInfo>, InspectError> {
        let task = pidinfo::<libc::proc_taskinfo>(pid, libc::PROC_PIDTASKINFO, 0)
            .map_err(|e| self.map_err(pid, "proc_pidinfo(PROC_PIDTASKINFO)", e))?;
        let infos = self
            .thread_infos(pid, task.pti_threadnum.max(0) as usize)
            .map_err(|e| self.map_err(pid, "proc_pidinfo(PROC_PIDLISTTHREADS)", e))?;
        let mut out: Vec<ThreadInfo> = infos
            .into_iter()
            .map(|(tid, t)| {
                let sleep = t.pth_sleep_time.max(0) as u64;
                ThreadInfo {
                    tid,
                    name: c_chars(&t.pth_name),
                    state: xnu::thread_letter(t.pth_run_state, sleep),
                    cpu_user_ns: t.pth_user_time,
                    cpu_system_ns: t.pth_system_time,
                    wait_channel: None,
                    syscall: None,
                    sleep_secs: Some(sleep),
                }
            })
            .collect();
        out.sort_by_key(|t| t.tid);
        Ok(out)
    }

    fn fds(&self, pid: u32, peers_among: Option<&[u32]>) -> Result<Vec<FdInfo>, InspectError> {
        let bsd = pidinfo::<libc::proc_bsdinfo>(pid, libc::PROC_PIDTBSDINFO, 0)
            .map_err(|e| self.map_err(pid, "proc_pidinfo(PROC_PIDTBSDINFO)", e))?;
        let list = listpidinfo::<ListFDs>(pid as i32, bsd.pbi_nfiles.max(64) as usize)
            .map_err(|m| self.map_libproc(pid, "proc_pidinfo(PROC_PIDLISTFDS)", m))?;
        let holders = super::peer_search_set(self, pid, peers_among)
            .map(|set| self.holders(&set))
            .unwrap_or_default();
        let peers_of =
            |id: u64, me: (u32, i32)| super::peers_of(&holders, id, me, |p| self.comm(p));
        let mut out = Vec::with_capacity(list.len());
        for f in list {
            let me = (pid, f.proc_fd);
            // An fd closed between listing and reading is skipped, not an error.
            let info = match f.proc_fdtype {
                xnu::PROX_FDTYPE_VNODE => {
                    let Ok(v) = pidfdinfo::<VnodeFdInfoWithPath>(pid as i32, f.proc_fd) else {
                        continue;
                    };
                    vnode_fd(f.proc_fd, &v)
                }
                xnu::PROX_FDTYPE_SOCKET => {
                    let Ok(s) = pidfdinfo::<SocketFDInfo>(pid as i32, f.proc_fd) else {
                        continue;
                    };
                    let (mut info, peer) = self.socket(f.proc_fd, &s);
                    if let Some(peer) = peer {
                        info.peers = peers_of(peer, me);
                    }
                    info
                }
                xnu::PROX_FDTYPE_PIPE => {
                    let Ok(p) = pidfdinfo::<PipeFdInfo>(pid as i32, f.proc_fd) else {
                        continue;
                    };
                    let target = format!("pipe {:#x} -> {:#x}", p.pipe_handle, p.pipe_peerhandle);
                    FdInfo::new(f.proc_fd, FdKind::Pipe, target)
                        .with_id(p.pipe_handle)
                        .with_peers(peers_of(p.pipe_peerhandle, me))
                }
                xnu::PROX_FDTYPE_PSHM => {
                    let Ok(s) = pidfdinfo::<PshmFdInfo>(pid as i32, f.proc_fd) else {
                        continue;
                    };
                    FdInfo::new(f.proc_fd, FdKind::Shm, c_chars(&s.pshm_name))
                }
                xnu::PROX_FDTYPE_KQUEUE => FdInfo::new(f.proc_fd, FdKind::AnonInode, "kqueue"),
                xnu::PROX_FDTYPE_PSEM => FdInfo::new(f.proc_fd, FdKind::Other, "posix semaphore"),
                other => FdInfo::new(f.proc_fd, FdKind::Other, format!("fd type {other}")),
            };
            out.push(info);
        }
        out.sort_by_key(|f| f.fd);
        Ok(out)
    }

    fn system_memory(&self) -> anyhow::Result<SystemMemory> {
        let mut stats = MaybeUninit::<libc::vm_statistics64>::zeroed();
        let mut count = libc::HOST_VM_INFO64_COUNT;
        // SAFETY: mach_host_self() returns this task's host port; `stats` has room for
        // HOST_VM_INFO64_COUNT integers, which is what `count` tells the kernel.
        let kr = unsafe {
            libc::host_statistics64(
                mach2::mach_init::mach_host_self(),
                libc::HOST_VM_INFO64,
                stats.as_mut_ptr().cast(),
                &mut count,
            )
        };
        anyhow::ensure!(
            kr == libc::KERN_SUCCESS,
            "host_statistics64(HOST_VM_INFO64) failed: kern_return {kr}"
        );
        // SAFETY: the kernel filled the struct (and all-zero is a valid value for it anyway).
        let s = unsafe { stats.assume_init() };
        let pages = VmPages {
            free: u64::from(s.free_count),
            active: u64::from(s.active_count),
            inactive: u64::from(s.inactive_count),
            speculative: u64::from(s.speculative_count),
            wired: u64::from(s.wire_count),
            purgeable: u64::from(s.purgeable_count),
            external: u64::from(s.external_page_count),
            compressor: u64::from(s.compressor_page_count),
        };
        let (free, available, cached) = xnu::vm_bytes(&pages, self.page_size);
        let total: u64 = sysctl("hw.memsize")?;
        let swap: libc::xsw_usage = sysctl_struct("vm.swapusage").unwrap_or(libc::xsw_usage {
            xsu_total: 0,
            xsu_avail: 0,
            xsu_used: 0,
            xsu_pagesize: 0,
            xsu_encrypted: 0,
        });
        let (pressure, pressure_evidence) = xnu::pressure(
            sysctl::<i32>("kern.memorystatus_vm_pressure_level").ok(),
            sysctl::<u32>("kern.memorystatus_level").ok(),
        );
        Ok(SystemMemory {
            total_bytes: total,
            free_bytes: free,
            available_bytes: available,
            cached_bytes: cached,
            swap_total_bytes: swap.xsu_total,
            swap_free_bytes: swap.xsu_avail,
            pressure,
            pressure_evidence,
        })
    }
}

/// A struct-valued sysctl by name (e.g. `vm.swapusage`).
fn sysctl_struct<T: Copy>(name: &str) -> io::Result<T> {
    let cname = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>();
    // SAFETY: `value` is a zeroed buffer of `len` bytes; sysctlbyname(3) writes at most `len`.
    let rc = unsafe {
        libc::sysctlbyname(
            cname.as_ptr(),
            value.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: filled by the kernel; a plain-old-data C struct.
    Ok(unsafe { value.assume_init() })
}

fn my_uid() -> u32 {
    // SAFETY: getuid(2) cannot fail.
    unsafe { libc::getuid() }
}

/// Every AGX user client under every `IOAccelerator` service (service plane), with its creator
/// and `AppUsage` GPU times. User clients are not registered services, so matching on their
/// class finds none: they are walked as the accelerators' children. Readable without root.
fn agx_clients() -> Result<Vec<super::agx::AgxClient>, String> {
    use core_foundation::base::{CFType, TCFType, kCFAllocatorDefault};
    use core_foundation::string::CFString;
    use io_kit_sys::types::io_iterator_t;

    let creator_key = CFString::from_static_string("IOUserClientCreator");
    let usage_key = CFString::from_static_string("AppUsage");
    // A property of a registry entry, owned (the create rule), or `None` when absent.
    let property = |entry: io_kit_sys::types::io_registry_entry_t, key: &CFString| {
        // SAFETY: `entry` is a live registry entry of the iteration below and `key` a valid
        // CFString; the returned object follows the create rule, so it is wrapped once.
        unsafe {
            let r = io_kit_sys::IORegistryEntryCreateCFProperty(
                entry,
                key.as_concrete_TypeRef(),
                kCFAllocatorDefault,
                0,
            );
            (!r.is_null()).then(|| CFType::wrap_under_create_rule(r))
        }
    };
    let mut clients = Vec::new();
    let mut services: io_iterator_t = 0;
    // SAFETY: IOServiceMatching returns a dictionary that IOServiceGetMatchingServices
    // consumes; `services` is an out-parameter released below.
    let kr = unsafe {
        let matching = io_kit_sys::IOServiceMatching(c"IOAccelerator".as_ptr());
        io_kit_sys::IOServiceGetMatchingServices(
            io_kit_sys::kIOMasterPortDefault,
            matching,
            &mut services,
        )
    };
    if kr != 0 {
        return Err(format!(
            "IOServiceGetMatchingServices(IOAccelerator) failed: {kr:#x}"
        ));
    }
    loop {
        // SAFETY: `services` is a valid iterator until released after the loop.
        let service = unsafe { io_kit_sys::IOIteratorNext(services) };
        if service == 0 {
            break;
        }
        let mut children: io_iterator_t = 0;
        // SAFETY: `service` is a live entry; the plane name is a static C string.
        let kr = unsafe {
            io_kit_sys::IORegistryEntryGetChildIterator(
                service,
                io_kit_sys::keys::kIOServicePlane,
                &mut children,
            )
        };
        if kr == 0 {
            loop {
                // SAFETY: `children` is a valid iterator until released below.
                let child = unsafe { io_kit_sys::IOIteratorNext(children) };
                if child == 0 {
                    break;
                }
                if let Some(creator) =
                    property(child, &creator_key).and_then(|c| c.downcast::<CFString>())
                {
                    clients.push(super::agx::AgxClient {
                        creator: creator.to_string(),
                        gpu_ns: property(child, &usage_key)
                            .map(|u| app_usage(&u))
                            .unwrap_or_default(),
                    });
                }
                // SAFETY: each object IOIteratorNext returns is released once.
                unsafe { io_kit_sys::IOObjectRelease(child) };
            }
            // SAFETY: the child iterator is released once, after its last use.
            unsafe { io_kit_sys::IOObjectRelease(children) };
        }
        // SAFETY: each service IOIteratorNext returns is released once.
        unsafe { io_kit_sys::IOObjectRelease(service) };
    }
    // SAFETY: the service iterator is released once, after its last use.
    unsafe { io_kit_sys::IOObjectRelease(services) };
    Ok(clients)
}

/// The `accumulatedGPUTime` of each entry of an `AppUsage` array.
fn app_usage(usage: &core_foundation::base::CFType) -> Vec<u64> {
    use core_foundation::array::CFArray;
    use core_foundation::base::{CFType, TCFType};
    use core_foundation::dictionary::CFDictionary;
    use core_foundation::number::CFNumber;
    use core_foundation::string::CFString;

    let Some(entries) = usage.downcast::<CFArray>() else {
        return Vec::new();
    };
    let key = CFString::from_static_string("accumulatedGPUTime");
    entries
        .iter()
        .filter_map(|e| {
            // SAFETY: an element of a live array, retained for the wrapper's life (the get
            // rule).
            let e = unsafe { CFType::wrap_under_get_rule(*e) };
            let d = e.downcast::<CFDictionary>()?;
            let v = d.find(key.as_CFTypeRef())?;
            // SAFETY: a value found in a live dictionary, retained for the wrapper's life
            // (the get rule).
            let v = unsafe { CFType::wrap_under_get_rule(*v) };
            v.downcast::<CFNumber>()?
                .to_i64()
                .and_then(|n| u64::try_from(n).ok())
        })
        .collect()
}
