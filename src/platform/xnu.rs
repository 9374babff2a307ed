//! What the macOS kernel reports, and how it becomes the neutral model: pure, on every OS.
//!
//! The macOS backend only makes calls; everything that interprets their results lives here so
//! it is unit-tested on Linux CI: Mach ticks to nanoseconds, per-thread run states to the
//! letter `ps` prints, VM page counts to bytes, memory pressure, the `KERN_PROCARGS2` layout,
//! and the `proc_pidfdinfo` structs that neither libc nor libproc declare (with size tests
//! against XNU's `sys/proc_info.h`).

#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::os::raw::c_char;

use crate::model::PressureLevel;

/// `pth_run_state` values (`mach/thread_info.h`).
pub const TH_STATE_RUNNING: i32 = 1;
pub const TH_STATE_STOPPED: i32 = 2;
pub const TH_STATE_WAITING: i32 = 3;
pub const TH_STATE_UNINTERRUPTIBLE: i32 = 4;
pub const TH_STATE_HALTED: i32 = 5;

/// `pbi_status` values (`sys/proc.h`).
pub const SIDL: u32 = 1;
pub const SRUN: u32 = 2;
pub const SSLEEP: u32 = 3;
pub const SSTOP: u32 = 4;
pub const SZOMB: u32 = 5;

/// A thread asleep longer than this is "idle" (`I`) to `ps`, shorter is `S`.
pub const IDLE_AFTER_SECS: u64 = 20;

/// Mach absolute-time ticks to nanoseconds (`mach_timebase_info`: 125/3 on Apple silicon,
/// 1/1 on Intel). 128-bit intermediate: no overflow for any u64 tick count.
pub fn ticks_to_ns(ticks: u64, numer: u32, denom: u32) -> u64 {
    if denom == 0 {
        return ticks;
    }
    (u128::from(ticks) * u128::from(numer) / u128::from(denom)).min(u128::from(u64::MAX)) as u64
}

/// The letter `ps` prints for one thread (`ps/print.c`: R, U, S, I, T, H).
pub fn thread_letter(run_state: i32, sleep_secs: u64) -> char {
    match run_state {
        TH_STATE_RUNNING => 'R',
        TH_STATE_UNINTERRUPTIBLE => 'U',
        TH_STATE_WAITING if sleep_secs > IDLE_AFTER_SECS => 'I',
        TH_STATE_WAITING => 'S',
        TH_STATE_STOPPED => 'T',
        TH_STATE_HALTED => 'H',
        _ => '?',
    }
}

/// The process letter as `ps` derives it: zombie and stopped from the BSD status, otherwise
/// the most active thread's state wins (R, then U, S, I, T, H). sysinfo's `pbi_status`-based
/// status says "running" for nearly every process, which is why this exists.
pub fn process_letter(bsd_status: u32, threads: &[(i32, u64)]) -> char {
    match bsd_status {
        SZOMB => return 'Z',
        SSTOP => return 'T',
        _ => {}
    }
    let rank = |c: char| "RUSITH?".find(c).unwrap_or(usize::MAX);
    threads
        .iter()
        .map(|&(state, sleep)| thread_letter(state, sleep))
        .min_by_key(|&c| rank(c))
        .unwrap_or(match bsd_status {
            SRUN => 'R',
            SSLEEP => 'S',
            SIDL => 'I',
            _ => '?',
        })
}

/// VM page counts from `host_statistics64(HOST_VM_INFO64)` (the counts `vm_stat` prints).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VmPages {
    pub free: u64,
    pub active: u64,
    pub inactive: u64,
    pub speculative: u64,
    pub wired: u64,
    pub purgeable: u64,
    /// File-backed pages (`external_page_count`): the page cache.
    pub external: u64,
    /// Pages held compressed (`compressor_page_count`).
    pub compressor: u64,
}

/// System memory in bytes: `(free, available, cached)`.
///
/// free = (free − speculative) pages, as `vm_stat`'s "Pages free" minus speculative reads;
/// available = free (speculative included) + inactive + purgeable: what can be reclaimed
/// without swapping;
/// cached = file-backed pages.
pub fn vm_bytes(p: &VmPages, page_size: u64) -> (u64, u64, u64) {
    let free = p.free.saturating_sub(p.speculative) * page_size;
    let available = (p.free + p.inactive + p.purgeable) * page_size;
    (free, available, p.external * page_size)
}

/// Pressure from `kern.memorystatus_vm_pressure_level` (1 normal, 2 warning, 4 critical) when the
/// kernel gives it, else from `kern.memorystatus_level` (percent of memory free) with the same
/// thresholds as on Linux.
pub fn pressure(
    vm_pressure_level: Option<i32>,
    memorystatus_level: Option<u32>,
) -> (PressureLevel, String) {
    let pct = memorystatus_level.map(|l| format!("kern.memorystatus_level {l}% free"));
    match vm_pressure_level {
        Some(level @ (1 | 2 | 4)) => {
            let p = match level {
                1 => PressureLevel::Normal,
                2 => PressureLevel::Warning,
                _ => PressureLevel::Critical,
            };
            let mut why = format!("kernel memory pressure level {level} ({})", p.label());
            if let Some(pct) = pct {
                why.push_str(&format!("; {pct}"));
            }
            (p, why)
        }
        _ => match memorystatus_level {
            Some(l) => {
                let (p, _) = crate::model::pressure_level(100, u64::from(l.min(100)), None);
                (p, pct.unwrap_or_default())
            }
            None => (
                PressureLevel::Normal,
                "no pressure figure from the kernel".into(),
            ),
        },
    }
}

/// Size of `struct kinfo_proc` on 64-bit macOS (sysctl `CTL_KERN.KERN_PROC.KERN_PROC_PID`).
pub const KINFO_PROC_LEN: usize = 648;
/// Offset of `kp_proc.p_sigcatch` in it: `extern_proc` (sys/proc.h) on LP64 puts `p_sigmask`,
/// `p_sigignore` and `p_sigcatch` (each a 32-bit `sigset_t`) at 228, 232 and 236.
const P_SIGCATCH: usize = 236;

/// The caught-signals mask of a `kinfo_proc` as the kernel returned it.
pub fn sigcatch(kinfo_proc: &[u8]) -> Option<u32> {
    if kinfo_proc.len() < KINFO_PROC_LEN {
        return None;
    }
    let b = kinfo_proc.get(P_SIGCATCH..P_SIGCATCH + 4)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parse the `KERN_PROCARGS2` sysctl buffer: `argc` (i32, native endian), the executable path,
/// NUL padding, then `argc` NUL-terminated arguments (then the environment, ignored).
pub fn parse_procargs2(buf: &[u8]) -> Option<Vec<String>> {
    let argc = i32::from_ne_bytes(buf.get(..4)?.try_into().ok()?);
    if argc < 0 {
        return None;
    }
    let mut rest = &buf[4..];
    // Skip the executable path and the NULs after it.
    let path_end = rest.iter().position(|&b| b == 0)?;
    rest = &rest[path_end..];
    let start = rest.iter().position(|&b| b != 0)?;
    rest = &rest[start..];
    // `argc` comes from the buffer: never trust it for an allocation (each argument is at least
    // its NUL, so there cannot be more than bytes left).
    let mut args = Vec::with_capacity((argc as usize).min(rest.len()));
    for part in rest.split(|&b| b == 0).take(argc as usize) {
        args.push(String::from_utf8_lossy(part).into_owned());
    }
    (args.len() == argc as usize).then_some(args)
}

/// The environment in a `KERN_PROCARGS2` buffer (after the `argc` arguments): the values of
/// the variables named in `names`, in the order found. `None` for a malformed buffer.
pub fn procargs2_env(buf: &[u8], names: &[&str]) -> Option<Vec<(String, String)>> {
    let argc = i32::from_ne_bytes(buf.get(..4)?.try_into().ok()?);
    let mut rest = &buf[4..];
    let path_end = rest.iter().position(|&b| b == 0)?;
    rest = &rest[path_end..];
    let start = rest.iter().position(|&b| b != 0)?;
    rest = &rest[start..];
    let mut parts = rest.split(|&b| b == 0).skip(usize::try_from(argc).ok()?);
    let mut out = Vec::new();
    // The environment ends at the first empty string (the padding after it).
    for part in parts.by_ref().take_while(|p| !p.is_empty()) {
        let text = String::from_utf8_lossy(part);
        if let Some((k, v)) = text.split_once('=')
            && names.contains(&k)
        {
            out.push((k.to_string(), v.to_string()));
        }
    }
    Some(out)
}

/// A fixed-size C string field to a Rust string (stops at the first NUL).
pub fn c_chars(field: &[c_char]) -> String {
    let bytes: Vec<u8> = field
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---- proc_pidfdinfo structs not declared by libc or libproc (sys/proc_info.h) ----

/// `struct proc_fileinfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcFileInfo {
    pub fi_openflags: u32,
    pub fi_status: u32,
    pub fi_offset: i64,
    pub fi_type: i32,
    pub fi_guardflags: u32,
}

/// `struct vinfo_stat`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct VinfoStat {
    pub vst_dev: u32,
    pub vst_mode: u16,
    pub vst_nlink: u16,
    pub vst_ino: u64,
    pub vst_uid: u32,
    pub vst_gid: u32,
    pub vst_atime: i64,
    pub vst_atimensec: i64,
    pub vst_mtime: i64,
    pub vst_mtimensec: i64,
    pub vst_ctime: i64,
    pub vst_ctimensec: i64,
    pub vst_birthtime: i64,
    pub vst_birthtimensec: i64,
    pub vst_size: i64,
    pub vst_blocks: i64,
    pub vst_blksize: i32,
    pub vst_flags: u32,
    pub vst_gen: u32,
    pub vst_rdev: u32,
    pub vst_qspare: [i64; 2],
}

/// `struct pipe_fdinfo` (`PROC_PIDFDPIPEINFO`): a pipe end and the handle of the other end.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PipeFdInfo {
    pub pfi: ProcFileInfo,
    pub pipe_stat: VinfoStat,
    pub pipe_handle: u64,
    pub pipe_peerhandle: u64,
    pub pipe_status: i32,
    pub rfu_1: i32,
}

/// `pipe_status` bit (XNU `bsd/sys/pipe.h`): the pipe's other end is closed.
pub const PIPE_EOF: i32 = 0x080;

pub const MAXPATHLEN: usize = 1024;

/// `struct pshm_fdinfo` (`PROC_PIDFDPSHMINFO`): a POSIX shared-memory object and its name.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PshmFdInfo {
    pub pfi: ProcFileInfo,
    pub pshm_stat: VinfoStat,
    pub pshm_mappaddr: u64,
    pub pshm_name: [c_char; MAXPATHLEN],
}

impl Default for PshmFdInfo {
    fn default() -> Self {
        PshmFdInfo {
            pfi: Default::default(),
            pshm_stat: Default::default(),
            pshm_mappaddr: 0,
            pshm_name: [0; MAXPATHLEN],
        }
    }
}

/// `struct vnode_info` followed by the path: `struct vnode_fdinfowithpath` (`PROC_PIDFDVNODEPATHINFO`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VnodeFdInfoWithPath {
    pub pfi: ProcFileInfo,
    pub vi_stat: VinfoStat,
    pub vi_type: i32,
    pub vi_pad: i32,
    pub vi_fsid: [i32; 2],
    pub vip_path: [c_char; MAXPATHLEN],
}

impl Default for VnodeFdInfoWithPath {
    fn default() -> Self {
        VnodeFdInfoWithPath {
            pfi: Default::default(),
            vi_stat: Default::default(),
            vi_type: 0,
            vi_pad: 0,
            vi_fsid: [0; 2],
            vip_path: [0; MAXPATHLEN],
        }
    }
}

/// `proc_pidinfo` flavors and `proc_pidfdinfo` flavors libc does not define.
pub const PROC_PIDLISTTHREADS: i32 = 6;
pub const PROC_PIDTHREADID64INFO: i32 = 15;
pub const PROC_PIDLISTTHREADIDS: i32 = 28;
pub const PROC_PIDFDVNODEPATHINFO: i32 = 2;
pub const PROC_PIDFDSOCKETINFO: i32 = 3;
pub const PROC_PIDFDPSHMINFO: i32 = 5;
pub const PROC_PIDFDPIPEINFO: i32 = 6;

/// `proc_fdtype` values (`PROX_FDTYPE_*`).
pub const PROX_FDTYPE_VNODE: u32 = 1;
pub const PROX_FDTYPE_SOCKET: u32 = 2;
pub const PROX_FDTYPE_PSHM: u32 = 3;
pub const PROX_FDTYPE_PSEM: u32 = 4;
pub const PROX_FDTYPE_KQUEUE: u32 = 5;
pub const PROX_FDTYPE_PIPE: u32 = 6;

/// TCP states as `tcpsi_state` reports them (`netinet/tcp_fsm.h`), lower-case like Linux's.
pub fn tcp_state(state: i32) -> &'static str {
    match state {
        0 => "close",
        1 => "listen",
        2 => "synsent",
        3 => "synrecv",
        4 => "established",
        5 => "closewait",
        6 => "finwait1",
        7 => "closing",
        8 => "lastack",
        9 => "finwait2",
        10 => "timewait",
        _ => "unknown",
    }
}

// ---- loaded images: PROC_PIDREGIONPATHINFO2 (sys/proc_info.h), for discovery ----

/// `proc_pidinfo` flavor: the first region at or after the address that a file (vnode) backs,
/// with that file's path (`struct proc_regionwithpathinfo`); EINVAL past the last one.
pub const PROC_PIDREGIONPATHINFO2: i32 = 22;

/// `struct proc_regioninfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcRegionInfo {
    pub pri_protection: u32,
    pub pri_max_protection: u32,
    pub pri_inheritance: u32,
    pub pri_flags: u32,
    pub pri_offset: u64,
    pub pri_behavior: u32,
    pub pri_user_wired_count: u32,
    pub pri_user_tag: u32,
    pub pri_pages_resident: u32,
    pub pri_pages_shared_now_private: u32,
    pub pri_pages_swapped_out: u32,
    pub pri_pages_dirtied: u32,
    pub pri_ref_count: u32,
    pub pri_shadow_depth: u32,
    pub pri_share_mode: u32,
    pub pri_private_pages_resident: u32,
    pub pri_shared_pages_resident: u32,
    pub pri_obj_id: u32,
    pub pri_depth: u32,
    pub pri_address: u64,
    pub pri_size: u64,
}

/// `struct proc_regionwithpathinfo`: the region, then `struct vnode_info_path` (its file's
/// `vnode_info` and path).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RegionWithPathInfo {
    pub prp_prinfo: ProcRegionInfo,
    pub vi_stat: VinfoStat,
    pub vi_type: i32,
    pub vi_pad: i32,
    pub vi_fsid: [i32; 2],
    pub vip_path: [c_char; MAXPATHLEN],
}

impl RegionWithPathInfo {
    /// Where the next region may start: this one's end (`None` when it does not advance).
    pub fn next_address(&self, asked: u64) -> Option<u64> {
        let end = self
            .prp_prinfo
            .pri_address
            .saturating_add(self.prp_prinfo.pri_size);
        (end > asked).then_some(end)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn sigcatch_is_read_at_its_offset() {
        let mut buf = vec![0u8; KINFO_PROC_LEN];
        // SIGUSR1 is 30 on macOS: bit 29.
        buf[236..240].copy_from_slice(&(1u32 << 29).to_ne_bytes());
        assert_eq!(sigcatch(&buf), Some(1 << 29));
        assert_eq!(
            sigcatch(&buf[..600]),
            None,
            "a short buffer is not a kinfo_proc"
        );
    }

    use super::*;

    #[test]
    fn ticks() {
        // Apple silicon: 24 MHz timebase, numer/denom 125/3.
        assert_eq!(ticks_to_ns(24_000_000, 125, 3), 1_000_000_000);
        assert_eq!(ticks_to_ns(123, 1, 1), 123, "Intel: ticks are nanoseconds");
        assert_eq!(
            ticks_to_ns(u64::MAX, 125, 3),
            u64::MAX,
            "saturates instead of wrapping"
        );
        assert_eq!(ticks_to_ns(7, 125, 0), 7);
    }

    #[test]
    fn letters_like_ps() {
        assert_eq!(thread_letter(TH_STATE_WAITING, 3), 'S');
        assert_eq!(thread_letter(TH_STATE_WAITING, 21), 'I');
        assert_eq!(thread_letter(TH_STATE_UNINTERRUPTIBLE, 0), 'U');
        // The seed: 17 threads asleep for hours and one that woke 3 s ago -> S, not I.
        let mut seed = vec![(TH_STATE_WAITING, 31_000u64); 17];
        seed.push((TH_STATE_WAITING, 3));
        assert_eq!(process_letter(SRUN, &seed), 'S');
        assert_eq!(
            process_letter(SRUN, &seed[..17]),
            'I',
            "all asleep > 20 s is idle"
        );
        seed.push((TH_STATE_RUNNING, 0));
        assert_eq!(process_letter(SRUN, &seed), 'R');
        assert_eq!(
            process_letter(
                SRUN,
                &[(TH_STATE_UNINTERRUPTIBLE, 0), (TH_STATE_WAITING, 1)]
            ),
            'U'
        );
        assert_eq!(process_letter(SZOMB, &[]), 'Z');
        assert_eq!(process_letter(SSTOP, &seed), 'T');
        assert_eq!(
            process_letter(SSLEEP, &[]),
            'S',
            "no thread readable: fall back to the BSD status"
        );
    }

    #[test]
    fn pages_to_bytes() {
        // 16 KiB pages on Apple silicon; the seed's "5.0 GB free" is 327,680 free pages.
        let p = VmPages {
            free: 330_000,
            speculative: 2_320,
            inactive: 1_000_000,
            purgeable: 20_000,
            external: 1_300_000,
            ..Default::default()
        };
        let (free, available, cached) = vm_bytes(&p, 16_384);
        assert_eq!(free, 327_680 * 16_384);
        assert_eq!(free as f64 / (1u64 << 30) as f64, 5.0);
        assert_eq!(available, 1_350_000 * 16_384);
        assert_eq!(cached, 1_300_000 * 16_384);
    }

    #[test]
    fn pressure_levels() {
        assert_eq!(pressure(Some(1), Some(40)).0, PressureLevel::Normal);
        assert_eq!(pressure(Some(2), None).0, PressureLevel::Warning);
        assert_eq!(pressure(Some(4), Some(3)).0, PressureLevel::Critical);
        assert_eq!(pressure(None, Some(10)).0, PressureLevel::Warning);
        assert_eq!(pressure(None, Some(4)).0, PressureLevel::Critical);
        assert!(pressure(Some(2), Some(12)).1.contains("12% free"));
        assert_eq!(pressure(None, None).0, PressureLevel::Normal);
    }

    #[test]
    fn procargs2_layout() {
        let mut buf = 3i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(
            b"/opt/homebrew/bin/python3.12\0\0\0\0python3\0-m\0mls.worker\0PATH=/usr/bin\0",
        );
        assert_eq!(
            parse_procargs2(&buf).unwrap(),
            ["python3", "-m", "mls.worker"]
        );
        assert!(parse_procargs2(&buf[..10]).is_none(), "truncated");
        assert!(parse_procargs2(&(-1i32).to_ne_bytes()).is_none());
        // Found by fuzzing (scripts/fuzz os_decoders): an argc of 2^31-1 before a short buffer
        // was trusted for an allocation and aborted.
        let mut big = i32::MAX.to_ne_bytes().to_vec();
        big.extend_from_slice(b"/bin/python3\0-m\0mls.worker\0");
        assert!(parse_procargs2(&big).is_none());
        let mut short = 5i32.to_ne_bytes().to_vec();
        short.extend_from_slice(b"/bin/x\0a\0b\0");
        assert!(
            parse_procargs2(&short).is_none(),
            "fewer arguments than argc"
        );
    }

    #[test]
    fn struct_sizes_match_xnu() {
        // sizeof() values from XNU bsd/sys/proc_info.h on LP64 (arm64 and x86_64).
        assert_eq!(size_of::<ProcFileInfo>(), 24);
        assert_eq!(size_of::<VinfoStat>(), 136);
        assert_eq!(size_of::<PipeFdInfo>(), 184);
        assert_eq!(size_of::<PshmFdInfo>(), 1192);
        assert_eq!(size_of::<VnodeFdInfoWithPath>(), 1200);
        assert_eq!(align_of::<PipeFdInfo>(), 8);
        assert_eq!(std::mem::offset_of!(PipeFdInfo, pipe_handle), 160);
        assert_eq!(std::mem::offset_of!(PshmFdInfo, pshm_name), 168);
        assert_eq!(std::mem::offset_of!(VnodeFdInfoWithPath, vip_path), 176);
    }

    #[test]
    fn region_structs_match_xnu() {
        // sizeof(struct proc_regioninfo) and sizeof(struct proc_regionwithpathinfo), LP64.
        assert_eq!(size_of::<ProcRegionInfo>(), 96);
        assert_eq!(std::mem::offset_of!(ProcRegionInfo, pri_address), 80);
        assert_eq!(size_of::<RegionWithPathInfo>(), 1272);
        assert_eq!(std::mem::offset_of!(RegionWithPathInfo, vip_path), 248);
        let mut r = RegionWithPathInfo {
            prp_prinfo: ProcRegionInfo {
                pri_address: 0x1000,
                pri_size: 0x2000,
                ..Default::default()
            },
            vi_stat: Default::default(),
            vi_type: 0,
            vi_pad: 0,
            vi_fsid: [0; 2],
            vip_path: [0; MAXPATHLEN],
        };
        assert_eq!(r.next_address(0), Some(0x3000));
        r.prp_prinfo.pri_size = 0;
        assert_eq!(r.next_address(0x1000), None);
    }

    #[test]
    fn c_strings() {
        let mut field = [0 as c_char; 8];
        for (i, b) in b"/mls".iter().enumerate() {
            field[i] = *b as c_char;
        }
        assert_eq!(c_chars(&field), "/mls");
    }

    #[test]
    fn procargs2_env_reads_named_variables_after_the_arguments() {
        let mut buf = 2i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/usr/bin/python3\0\0\0python3\0ring.py\0");
        buf.extend_from_slice(b"HOME=/Users/me\0MLX_RANK=1\0MLX_HOSTFILE=/tmp/h.json\0\0\0");
        let env = procargs2_env(&buf, &["MLX_RANK", "MLX_HOSTFILE"]).unwrap();
        assert_eq!(
            env,
            [
                ("MLX_RANK".to_string(), "1".to_string()),
                ("MLX_HOSTFILE".to_string(), "/tmp/h.json".to_string())
            ]
        );
        // An argument that looks like a variable is not one.
        let mut buf = 1i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/bin/x\0MLX_RANK=9\0\0");
        assert!(procargs2_env(&buf, &["MLX_RANK"]).unwrap().is_empty());
        assert!(procargs2_env(b"\x01", &["MLX_RANK"]).is_none());
    }
}
