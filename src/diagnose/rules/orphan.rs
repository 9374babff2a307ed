//! Orphan: a worker its orchestrator lost. Two kinds of evidence, each enough:
//! - a registry that should list the worker and does not: it lists workers (an orchestrator
//!   keeps one), and the worker runs the command its workers run (`--pattern`, or MLS's);
//! - a parent that started it and died: the worker was adopted (its parent is PID 1, a
//!   service manager that adopts orphans, or a process younger than the worker), and the
//!   channel its starter read its output from has no reader left (stdout or stderr a pipe
//!   nothing reads, a unix socket whose peer closed). A launchd or systemd service writes to
//!   a file, /dev/null or the journal, so that evidence is never there for it.
//!
//! A parent alone is never the evidence. PID 1 (init, launchd, systemd) and a user's systemd
//! both start services and adopt orphans, so there the registry or the lost channel decides;
//! a supervisor (supervisord, runit, s6, daemontools) keeps the worker it started, so a worker
//! under one is never an orphan. Without a registry and without a lost channel there is no
//! orchestrator: the worker is standalone, and so is one found only as a known server or by
//! MLX loaded in it.

use super::Judging;
use crate::diagnose::assess::{Observation, RegistryView};
use crate::model::{Finding, ProcessInfo, Verdict};
use chrono::{DateTime, Utc};

pub fn judge(o: &Observation, last: &ProcessInfo, parent: &str, j: &mut Judging) {
    let parent_name = o.parent.as_ref().map(|(_, n)| n.as_str());
    let lineage = Lineage {
        parent: parent_name,
        adopted: adopted(last.ppid, last.start_time, parent_name, o.parent_started),
        unread_output: &o.unread_output,
    };
    let listed = o.entry.is_some();
    match decide(&o.registry, listed, &last.command(), &lineage) {
        Decision::LostParent => {
            let mut ev = vec![format!(
                "parent is {parent}, which adopted it: the process that started it is gone"
            )];
            ev.extend(o.unread_output.iter().map(|c| {
                format!("{c}: whoever started it with that channel (its orchestrator) died")
            }));
            j.findings.push(Finding {
                verdict: Verdict::Orphan,
                evidence: ev,
            });
        }
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

/// What the process tree and the worker's output channels say about who started it.
#[derive(Debug, Clone, Default)]
pub struct Lineage<'a> {
    /// The parent's name, where it could be read.
    pub parent: Option<&'a str>,
    /// The parent adopted the worker ([`adopted`]) rather than being the one that started it
    /// (or it may be either).
    pub adopted: bool,
    /// Output channels of the worker whose other end nothing holds any more.
    pub unread_output: &'a [String],
}

/// Whether the worker's parent may have adopted it: PID 1 (init, launchd, systemd), a service
/// manager that adopts orphans of its session (a user's systemd, launchd), or a parent that
/// started after the worker and so cannot have started it.
/// `ppid` and `started`: the worker's.
pub fn adopted(
    ppid: u32,
    started: DateTime<Utc>,
    parent_name: Option<&str>,
    parent_started: Option<DateTime<Utc>>,
) -> bool {
    ppid <= 1
        || parent_name.is_some_and(|n| matches!(n, "systemd" | "launchd" | "init"))
        || parent_started.is_some_and(|t| t > started)
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
    /// Adopted, and the channel its starter read its output from has no reader: the
    /// orchestrator that started it died.
    LostParent,
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
/// command line, and its lineage (parent, adoption, output nobody reads).
pub fn decide<'a>(
    registry: &RegistryView<'a>,
    listed: bool,
    command: &str,
    lineage: &Lineage,
) -> Decision<'a> {
    if listed {
        return Decision::Kept;
    }
    let supervised = lineage.parent.and_then(supervisor);
    let by_registry = match registry {
        RegistryView::Absent { .. } => Decision::Standalone,
        RegistryView::Unavailable { why } => Decision::Unknown { why },
        RegistryView::Loaded { lists, .. } if !lists.is_match(command) => Decision::Standalone,
        RegistryView::Loaded {
            path, entries: 0, ..
        } => Decision::EmptyRegistry { path },
        RegistryView::Loaded { path, .. } => match supervised {
            Some(supervisor) => Decision::Supervised { path, supervisor },
            None => Decision::Orphan { path },
        },
    };
    // The registry's word first; a lost starter where the registry does not make an orphan.
    let lost = lineage.adopted && !lineage.unread_output.is_empty() && supervised.is_none();
    match by_registry {
        Decision::Orphan { .. } => by_registry,
        _ if lost => Decision::LostParent,
        _ => by_registry,
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

    fn lineage(name: Option<&str>) -> Lineage<'_> {
        Lineage {
            parent: name,
            ..Lineage::default()
        }
    }

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
                decide(&reg, false, MLS, &lineage(Some(parent))),
                Decision::Orphan {
                    path: "/tmp/r.json"
                },
                "{parent}"
            );
        }
        assert_eq!(
            decide(&reg, false, MLS, &lineage(Some("bash"))),
            Decision::Orphan {
                path: "/tmp/r.json"
            }
        );
        assert_eq!(
            decide(&reg, true, MLS, &lineage(Some("launchd"))),
            Decision::Kept
        );
        // A supervisor keeps what it starts.
        for (parent, s) in [
            ("supervisord", "supervisord"),
            ("runsv", "runit"),
            ("s6-supervise", "s6"),
            ("supervise", "daemontools"),
        ] {
            assert_eq!(
                decide(&reg, false, MLS, &lineage(Some(parent))),
                Decision::Supervised {
                    path: "/tmp/r.json",
                    supervisor: s
                }
            );
        }
        // A stock server is not the registry's kind of worker.
        assert_eq!(
            decide(&reg, false, STOCK, &lineage(Some("launchd"))),
            Decision::Standalone
        );
        // An empty registry: nothing lost this worker.
        let empty = RegistryView::Loaded {
            path: "/tmp/r.json",
            entries: 0,
            lists: &re,
        };
        assert_eq!(
            decide(&empty, false, MLS, &lineage(Some("systemd"))),
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
                decide(&none, false, MLS, &lineage(Some(parent))),
                Decision::Standalone
            );
            assert_eq!(
                decide(&none, false, STOCK, &lineage(Some(parent))),
                Decision::Standalone
            );
        }
        let unreadable = RegistryView::Unavailable { why: "line 3" };
        assert_eq!(
            decide(&unreadable, false, MLS, &lineage(None)),
            Decision::Unknown { why: "line 3" }
        );
        assert_eq!(supervisor("systemd"), None);
        assert_eq!(supervisor("launchd"), None);
    }

    #[test]
    fn a_dead_starter_whose_output_nobody_reads_makes_an_orphan() {
        let none = RegistryView::Absent { why: "none" };
        let lost = ["its stdout (fd 1, pipe:[7]) is a pipe nothing reads any more".to_string()];
        let adopted = |parent| Lineage {
            parent: Some(parent),
            adopted: true,
            unread_output: &lost,
        };
        // Without a registry, and over a registry that does not list it.
        assert_eq!(
            decide(&none, false, STOCK, &adopted("systemd")),
            Decision::LostParent
        );
        let re = Regex::new("mlx-server-v3").unwrap();
        let reg = RegistryView::Loaded {
            path: "/tmp/r.json",
            entries: 0,
            lists: &re,
        };
        assert_eq!(
            decide(&reg, false, MLS, &adopted("launchd")),
            Decision::LostParent
        );
        // Listed: its orchestrator knows it. Under a supervisor: kept.
        assert_eq!(decide(&reg, true, MLS, &adopted("init")), Decision::Kept);
        assert_ne!(
            decide(&none, false, MLS, &adopted("supervisord")),
            Decision::LostParent
        );
        // Each condition alone is not enough: its parent started it (output unread: a
        // `| head` that exited), or adopted with its output read (a systemd service).
        let not_adopted = Lineage {
            adopted: false,
            ..adopted("bash")
        };
        assert_eq!(
            decide(&none, false, STOCK, &not_adopted),
            Decision::Standalone
        );
        let read = Lineage {
            unread_output: &[],
            ..adopted("systemd")
        };
        assert_eq!(decide(&none, false, STOCK, &read), Decision::Standalone);
    }

    #[test]
    fn adopted_by_pid_1_a_service_manager_or_a_younger_parent() {
        use chrono::TimeZone;
        let t = Utc.with_ymd_and_hms(2026, 1, 6, 7, 0, 0).unwrap();
        let older = Some(t - chrono::Duration::seconds(5));
        let younger = Some(t + chrono::Duration::seconds(5));
        assert!(adopted(1, t, Some("systemd"), None));
        assert!(adopted(1, t, None, None), "PID 1 whatever its name");
        assert!(adopted(900, t, Some("systemd"), older), "a user's systemd");
        assert!(!adopted(900, t, Some("bash"), None));
        assert!(!adopted(900, t, Some("bash"), older));
        assert!(
            adopted(900, t, Some("subreaper"), younger),
            "a parent younger than the worker did not start it"
        );
    }
}
