//! The registry checked against the process table: is each entry's PID alive and still the
//! same process (a start after `spawned_at`, or a command line the pattern no longer matches,
//! means the PID was reused)? And the other way: live matching processes it does not list.

use super::assess::Thresholds;
use super::rules::crashed::identity_problems;
use crate::discover::{Search, discover};
use crate::error::InspectError;
use crate::fmt::local_time;
use crate::model::{EntryRow, Liveness, RegistryReport, SCHEMA_VERSION, Status, Unlisted};
use crate::platform::Platform;
use crate::registry::Registry;

/// Every entry's liveness and the unlisted workers, with the status they add up to.
pub fn check_registry(
    platform: &dyn Platform,
    search: &Search,
    reg: &Registry,
) -> anyhow::Result<RegistryReport> {
    let re = search.regex();
    let mut status = Status::Ok;
    let mut entries = Vec::new();
    for e in &reg.entries {
        let (liveness, detail) = match platform.process(e.pid) {
            Err(InspectError::Gone { pid }) => (Liveness::Dead, format!("PID {pid} is gone")),
            Err(err) => (Liveness::Unknown, err.to_string()),
            Ok(p) if p.is_zombie() => (
                Liveness::Zombie,
                format!("zombie, not reaped by parent PID {}", p.ppid),
            ),
            Ok(p) => {
                let problems = identity_problems(e, &p, &p, re, Thresholds::default().spawn_slack);
                if problems.is_empty() {
                    let started = local_time(p.start_time);
                    (
                        Liveness::Alive,
                        format!(
                            "started {started}, state {}, {} thread(s)",
                            p.state, p.threads
                        ),
                    )
                } else {
                    (Liveness::Reused, problems.join("; "))
                }
            }
        };
        status = status.worst(match liveness {
            Liveness::Alive => Status::Ok,
            Liveness::Unknown => Status::Unknown,
            _ => Status::Critical,
        });
        entries.push(EntryRow {
            entry: e.clone(),
            liveness,
            detail,
        });
    }
    let found = discover(platform, search, Some(reg))?;
    let mut unlisted = Vec::new();
    // Only the registry's kind of worker (`--pattern`, or MLS's) should be listed in it.
    for c in (found.workers.iter()).filter(|c| c.registered.is_none() && c.matched) {
        if let Ok(p) = platform.process(c.pid) {
            unlisted.push(Unlisted {
                pid: p.pid,
                ppid: p.ppid,
                command: p.command(),
            });
            status = status.worst(Status::Warning);
        }
    }
    Ok(RegistryReport {
        schema_version: SCHEMA_VERSION,
        command: "registry",
        path: reg.path.display().to_string(),
        status,
        entries,
        unlisted,
    })
}
