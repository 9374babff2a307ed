//! Which processes are MLS workers: the seed's `ps aux | grep mlx-server-v3`, done carefully.
//!
//! A worker is any live process whose command line matches the pattern, plus every PID the
//! registry lists (alive or not: a listed PID that is gone is exactly a crash). mlsdiag never
//! counts itself or the shell that launched it, and a matching process that is the parent of
//! other workers is their orchestrator, not an orphan worker.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::Serialize;

use crate::model::RegistryEntry;
use crate::platform::Platform;
use crate::registry::Registry;

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub pid: u32,
    pub registered: Option<RegistryEntry>,
    /// The command line matched the pattern when discovered.
    pub matched: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Discovery {
    pub workers: Vec<Candidate>,
    /// Matching processes that are parents of workers: `(pid, number of worker children)`.
    pub orchestrators: Vec<(u32, usize)>,
}

/// Our own pid and every ancestor whose command line mentions mlsdiag (`sh -c 'mlsdiag …'`,
/// `timeout 5 mlsdiag …`): their command lines contain the pattern but they are not workers.
fn self_and_launchers(platform: &dyn Platform) -> Vec<u32> {
    let mut out = vec![std::process::id()];
    let mut pid = std::process::id();
    for _ in 0..16 {
        let Ok(p) = platform.process(pid) else { break };
        if p.ppid <= 1 {
            break;
        }
        pid = p.ppid;
        if platform
            .cmdline(pid)
            .is_ok_and(|c| c.iter().any(|a| a.contains("mlsdiag")))
        {
            out.push(pid);
        }
    }
    out
}

/// The PIDs a command was given, or else every worker that discovery finds.
pub fn pids_or_workers(
    platform: &dyn Platform,
    pattern: &Regex,
    registry: Option<&Registry>,
    pids: &[u32],
) -> anyhow::Result<Vec<u32>> {
    if !pids.is_empty() {
        return Ok(pids.to_vec());
    }
    let found = discover(platform, pattern, registry)?;
    Ok(found.workers.iter().map(|c| c.pid).collect())
}

pub fn discover(
    platform: &dyn Platform,
    pattern: &Regex,
    registry: Option<&Registry>,
) -> anyhow::Result<Discovery> {
    let skip = self_and_launchers(platform);
    let mut found: BTreeMap<u32, Candidate> = BTreeMap::new();
    let mut commands: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for pid in platform.pids()? {
        if skip.contains(&pid) {
            continue;
        }
        let Ok(cmd) = platform.cmdline(pid) else {
            continue;
        };
        if !cmd.is_empty() && pattern.is_match(&cmd.join(" ")) {
            commands.insert(pid, cmd);
            found.insert(
                pid,
                Candidate {
                    pid,
                    registered: None,
                    matched: true,
                },
            );
        }
    }
    if let Some(reg) = registry {
        for e in &reg.entries {
            found
                .entry(e.pid)
                .or_insert(Candidate {
                    pid: e.pid,
                    registered: None,
                    matched: false,
                })
                .registered = Some(e.clone());
        }
    }
    // A matching, unregistered process whose children are workers is the orchestrator; a child
    // with its parent's very command line is a forked helper of that worker, which makes the
    // parent no orchestrator (both are judged, and the log's lines are the parent's).
    let mut children: BTreeMap<u32, usize> = BTreeMap::new();
    for c in found.values() {
        if let Ok(p) = platform.process(c.pid) {
            let forked = commands
                .get(&p.ppid)
                .is_some_and(|parent| commands.get(&c.pid) == Some(parent));
            if !forked {
                *children.entry(p.ppid).or_default() += 1;
            }
        }
    }
    let mut d = Discovery::default();
    for (pid, c) in found {
        match children.get(&pid) {
            Some(&n) if c.registered.is_none() => d.orchestrators.push((pid, n)),
            _ => d.workers.push(c),
        }
    }
    Ok(d)
}

/// The best human name for a worker: the registry's, else the argument that matched, else comm.
pub fn worker_name(
    entry: Option<&RegistryEntry>,
    cmdline: &[String],
    comm: &str,
    re: &Regex,
) -> String {
    if let Some(n) = entry.and_then(|e| e.name.clone()) {
        return n;
    }
    cmdline
        .iter()
        .find(|a| re.is_match(a))
        .map(|a| {
            Path::new(a)
                .file_name()
                .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| comm.to_string())
}

/// The default `--pattern`: the command lines of MLS workers.
pub const DEFAULT_PATTERN: &str = "mlx-server-v3";

/// Compile the discovery pattern, with an error that names the flag.
pub fn pattern(p: &str) -> anyhow::Result<regex::Regex> {
    regex::Regex::new(p).map_err(|e| anyhow::anyhow!("--pattern {p:?} is not a valid regex: {e}"))
}
