//! Orphan: a worker its orchestrator lost. The evidence is a registry that should list the
//! worker and does not: it lists workers (an orchestrator keeps one), and the worker runs the
//! command its workers run (`--pattern`, or MLS's).
//!
//! A parent alone is never the evidence. PID 1 (init, launchd, systemd) and a user's systemd
//! both start services and adopt orphans, so there the registry decides; a supervisor
//! (supervisord, runit, s6, daemontools) keeps the worker it started, so a worker under one is
//! never an orphan. Without a registry there is no orchestrator: every worker is standalone,
//! and so is one found only as a known server or by MLX loaded in it.

use super::Judging;
use crate::diagnose::assess::{Observation, RegistryView};
use crate::model::{Finding, ProcessInfo, Verdict};

pub fn judge(o: &Observation, last: &ProcessInfo, parent: &str, j: &mut Judging) {
    let parent_name = o.parent.as_ref().map(|(_, n)| n.as_str());
    let listed = o.entry.is_some();
    match decide(&o.registry, listed, &last.command(), parent_name) {
        Decision::Orphan { path } => {
            let mut ev = vec![format!(
                "alive and matching, but not listed in the registry {path}"
            )];
            if last.ppid <= 1 {
                ev.push(format!(
                    "parent is {parent}: its orchestrator is gone (re-parented to init/launchd)"
                ));
            } else {
                ev.push(format!("parent is {parent}"));
            }
            j.findings.push(Finding {
                verdict: Verdict::Orphan,
                evidence: ev,
            });
        }
        Decision::Unknown { why } => j.notes.push(format!(
            "registry unavailable ({why}): cannot tell whether this worker is an orphan"
        )),
        Decision::EmptyRegistry { path } => j.notes.push(format!(
            "not listed in the registry {path}, which lists no worker: no orchestrator is known to have lost it, so it is judged standalone"
        )),
        Decision::Supervised { path, supervisor } => j.notes.push(format!(
            "not listed in the registry {path}, but its parent {parent} is a supervisor ({supervisor}) that keeps it: not an orphan"
        )),
        Decision::Kept | Decision::Standalone => {}
    }
}

/// What the orphan rule makes of one worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<'a> {
    /// Listed in the registry: its orchestrator knows it.
    Kept,
    /// No orchestrator speaks for it: no registry, or not the registry's kind of worker.
    Standalone,
    /// The registry lists no worker at all: nothing says an orchestrator lost this one.
    EmptyRegistry { path: &'a str },
    /// Not listed, but its parent is a supervisor that keeps it.
    Supervised {
        path: &'a str,
        supervisor: &'static str,
    },
    /// The registry should list it and does not.
    Orphan { path: &'a str },
    /// The registry that would tell cannot be read.
    Unknown { why: &'a str },
}

/// The orphan rule on what it reads: the registry, whether it lists the worker, the worker's
/// command line, its parent's name.
pub fn decide<'a>(
    registry: &RegistryView<'a>,
    listed: bool,
    command: &str,
    parent: Option<&str>,
) -> Decision<'a> {
    if listed {
        return Decision::Kept;
    }
    match registry {
        RegistryView::Absent { .. } => Decision::Standalone,
        RegistryView::Unavailable { why } => Decision::Unknown { why },
        RegistryView::Loaded { lists, .. } if !lists.is_match(command) => Decision::Standalone,
        RegistryView::Loaded {
            path, entries: 0, ..
        } => Decision::EmptyRegistry { path },
        RegistryView::Loaded { path, .. } => match parent.and_then(supervisor) {
            Some(supervisor) => Decision::Supervised { path, supervisor },
            None => Decision::Orphan { path },
        },
    }
}

/// The supervisor a parent's name is, if it is one: a process that starts services and keeps
/// them (restarts them when they exit), and adopts no orphans. PID 1 and systemd are not here:
/// they adopt orphans too, so a worker under them is judged by the registry.
pub fn supervisor(name: &str) -> Option<&'static str> {
    Some(match name {
        "supervisord" => "supervisord",
        "runsv" | "runsvdir" => "runit",
        "s6-supervise" | "s6-svscan" => "s6",
        "supervise" | "svscan" => "daemontools",
        "circusd" => "circus",
        "monit" => "monit",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    const MLS: &str = "python3 -m mls.worker mlx-server-v3-1";
    const STOCK: &str = "/venv/bin/python /venv/bin/mlx_lm.server --port 8080";

    #[test]
    fn a_registry_that_should_list_the_worker_decides() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let reg = RegistryView::Loaded {
            path: "/tmp/r.json",
            entries: 5,
            lists: &re,
        };
        // Re-parented to init or to a user's systemd (both adopt orphans): the registry says.
        for parent in ["launchd", "systemd", "init"] {
            assert_eq!(
                decide(&reg, false, MLS, Some(parent)),
                Decision::Orphan {
                    path: "/tmp/r.json"
                },
                "{parent}"
            );
        }
        assert_eq!(
            decide(&reg, false, MLS, Some("bash")),
            Decision::Orphan {
                path: "/tmp/r.json"
            }
        );
        assert_eq!(decide(&reg, true, MLS, Some("launchd")), Decision::Kept);
        // A supervisor keeps what it starts.
        for (parent, s) in [
            ("supervisord", "supervisord"),
            ("runsv", "runit"),
            ("s6-supervise", "s6"),
            ("supervise", "daemontools"),
        ] {
            assert_eq!(
                decide(&reg, false, MLS, Some(parent)),
                Decision::Supervised {
                    path: "/tmp/r.json",
                    supervisor: s
                }
            );
        }
        // A stock server is not the registry's kind of worker.
        assert_eq!(
            decide(&reg, false, STOCK, Some("launchd")),
            Decision::Standalone
        );
        // An empty registry: nothing lost this worker.
        let empty = RegistryView::Loaded {
            path: "/tmp/r.json",
            entries: 0,
            lists: &re,
        };
        assert_eq!(
            decide(&empty, false, MLS, Some("systemd")),
            Decision::EmptyRegistry {
                path: "/tmp/r.json"
            }
        );
    }

    #[test]
    fn no_registry_no_orchestrator() {
        // launchd, systemd or a double fork: PID 1 alone never makes an orphan.
        let none = RegistryView::Absent {
            why: "/tmp/mlx-server/worker_registry.json does not exist",
        };
        for parent in ["launchd", "systemd", "supervisord", "bash"] {
            assert_eq!(
                decide(&none, false, MLS, Some(parent)),
                Decision::Standalone
            );
            assert_eq!(
                decide(&none, false, STOCK, Some(parent)),
                Decision::Standalone
            );
        }
        let unreadable = RegistryView::Unavailable { why: "line 3" };
        assert_eq!(
            decide(&unreadable, false, MLS, None),
            Decision::Unknown { why: "line 3" }
        );
        assert_eq!(supervisor("systemd"), None);
        assert_eq!(supervisor("launchd"), None);
    }
}
