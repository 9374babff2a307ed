//! A worker's channels judged: counts by kind, shared memory, the link to its parent, and the
//! warnings the seed looked for by hand in `lsof` output (closed standard streams, a lost
//! orchestrator). The link is judged only where there is an orchestrator: a standalone server
//! (started by hand, launchd or systemd) has no channel to its parent, and that is no failure.

use std::collections::BTreeMap;

use crate::model::{FdInfo, FdKind, FdsReport, IpcSummary, SCHEMA_VERSION};
use crate::platform::Platform;

/// `fds PID`'s report: every descriptor, with the process at the other end of each pipe and
/// unix socket when `peers` (searched among all processes), judged by [`summarize`]; and the
/// process's name.
pub fn fds_report(
    platform: &dyn Platform,
    pid: u32,
    peers: bool,
) -> anyhow::Result<(FdsReport, String)> {
    let p = platform.process(pid)?;
    let fds = platform.fds(pid, peers.then_some(&[][..]))?;
    // `fds PID` does not know whether the parent is an orchestrator: it says what it sees.
    let ipc = summarize(&fds, Some(p.ppid), None);
    let report = FdsReport {
        schema_version: SCHEMA_VERSION,
        command: "fds",
        pid,
        ppid: p.ppid,
        fds,
        ipc,
    };
    Ok((report, p.name))
}

/// Count channels and judge them: closed standard streams are warnings, and so is a lost link
/// to the orchestrator. `orchestrated`: whether the worker has one (listed in a registry, or
/// its parent is a found orchestrator); `Some(false)` judges no link, `None` (not known)
/// judges the parent as one. A worker whose output its parent sends to a file (a shell's or
/// systemd's redirection) has no link to it by design.
pub fn summarize(fds: &[FdInfo], parent: Option<u32>, orchestrated: Option<bool>) -> IpcSummary {
    let mut counts = BTreeMap::new();
    for f in fds {
        *counts.entry(f.kind).or_insert(0) += 1;
    }
    let mut shm_objects: Vec<String> = fds
        .iter()
        .filter(|f| f.kind == FdKind::Shm)
        .map(|f| f.target.clone())
        .collect();
    shm_objects.dedup();
    let mut warnings = Vec::new();
    for std_fd in 0..3 {
        if !fds.iter().any(|f| f.fd == std_fd) {
            let name = ["stdin", "stdout", "stderr"][std_fd as usize];
            warnings.push(format!("fd {std_fd} ({name}) is closed"));
        }
    }
    let channels_to_parent = parent.filter(|&p| p > 1).map(|p| {
        fds.iter()
            .filter(|f| matches!(f.kind, FdKind::Pipe | FdKind::UnixSocket))
            .filter(|f| f.peers.iter().any(|peer| peer.pid == p))
            .count()
    });
    let output_to_file = fds
        .iter()
        .any(|f| (f.fd == 1 || f.fd == 2) && f.kind == FdKind::File);
    match (parent, channels_to_parent) {
        _ if orchestrated == Some(false) => {}
        (Some(p), _) if p <= 1 => {
            warnings.push("parent is init/launchd: the orchestrator that owned these channels is gone".into())
        }
        (Some(p), Some(0)) if !output_to_file => warnings.push(format!(
            "no pipe or unix socket connects to parent PID {p}: orchestrator link missing = IPC failure"
        )),
        _ => {}
    }
    IpcSummary {
        counts,
        shm_objects,
        channels_to_parent,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Peer;

    fn fd(fd: i32, kind: FdKind, peer: Option<u32>) -> FdInfo {
        FdInfo {
            fd,
            kind,
            target: if kind == FdKind::Shm {
                "/mls_kv".into()
            } else {
                String::new()
            },
            object_id: None,
            state: None,
            peers: peer
                .map(|pid| Peer {
                    pid,
                    name: "orch".into(),
                    fd: 9,
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn healthy_worker_links_to_its_parent() {
        let fds = [
            fd(0, FdKind::Pipe, Some(10)),
            fd(1, FdKind::Pipe, Some(10)),
            fd(2, FdKind::File, None),
            fd(13, FdKind::UnixSocket, Some(10)),
            fd(14, FdKind::Shm, None),
        ];
        let s = summarize(&fds, Some(10), Some(true));
        assert_eq!(s.channels_to_parent, Some(3));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(s.shm_objects, ["/mls_kv"]);
        assert!(
            s.line()
                .starts_with("IPC: 2 pipe(s), 1 unix socket(s), 1 shm; 3 channel(s)")
        );
    }

    #[test]
    fn missing_streams_and_lost_parent_are_warnings() {
        let fds = [fd(1, FdKind::Pipe, Some(99)), fd(2, FdKind::Pipe, None)];
        let s = summarize(&fds, Some(10), Some(true));
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("fd 0 (stdin) is closed"))
        );
        assert!(s.warnings.iter().any(|w| w.contains("IPC failure")));
        let orphan = summarize(&fds, Some(1), Some(true));
        assert!(orphan.warnings.iter().any(|w| w.contains("init/launchd")));
        // `fds PID` does not know: it judges the parent as the orchestrator.
        assert!(
            summarize(&fds, Some(10), None)
                .warnings
                .iter()
                .any(|w| w.contains("IPC failure"))
        );
    }

    #[test]
    fn a_standalone_server_has_no_orchestrator_link_to_lose() {
        // Started by hand, launchd or systemd: no channel to the parent, no warning about it.
        let fds = [
            fd(0, FdKind::Device, None),
            fd(1, FdKind::Pipe, None),
            fd(2, FdKind::Pipe, None),
            fd(5, FdKind::Tcp, None),
        ];
        for parent in [1, 4120] {
            let s = summarize(&fds, Some(parent), Some(false));
            assert!(s.warnings.is_empty(), "{:?}", s.warnings);
            assert_eq!(s.channels_to_parent, (parent > 1).then_some(0));
        }
        // A parent that writes the worker's output to a file (`> server.log 2>&1`) is no
        // IPC failure, even for a registered worker.
        let to_file = [
            fd(0, FdKind::Device, None),
            fd(1, FdKind::File, None),
            fd(2, FdKind::File, None),
        ];
        let s = summarize(&to_file, Some(4120), Some(true));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(s.channels_to_parent, Some(0));
    }
}
