//! A worker's channels judged: counts by kind, shared memory, the link to its parent, and the
//! warnings the seed looked for by hand in `lsof` output (closed standard streams, a lost
//! orchestrator).

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
    let ipc = summarize(&fds, Some(p.ppid));
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

/// Count channels and judge them: closed standard streams and a lost parent link are warnings.
pub fn summarize(fds: &[FdInfo], parent: Option<u32>) -> IpcSummary {
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
    match (parent, channels_to_parent) {
        (Some(p), _) if p <= 1 => {
            warnings.push("parent is init/launchd: the orchestrator that owned these channels is gone".into())
        }
        (Some(p), Some(0)) => warnings.push(format!(
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
        let s = summarize(&fds, Some(10));
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
        let s = summarize(&fds, Some(10));
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("fd 0 (stdin) is closed"))
        );
        assert!(s.warnings.iter().any(|w| w.contains("IPC failure")));
        let orphan = summarize(&fds, Some(1));
        assert!(orphan.warnings.iter().any(|w| w.contains("init/launchd")));
    }
}
