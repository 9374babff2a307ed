//! `mlsdiag registry`: the seed's `cat worker_registry.json`, checked against the process table.
//!
//! For each entry: is the PID alive, and is it still the same process (start time after
//! `spawned_at`, or a command line that no longer matches, means the PID was reused)? Then the
//! other direction: live matching processes the registry does not list (orphans).

use std::io::Write;

use serde::Serialize;

use super::Ctx;
use crate::cli::RegistryArgs;
use crate::diagnose::assess::Thresholds;
use crate::diagnose::rules::crashed::identity_problems;
use crate::discover::discover;
use crate::discover::pattern;
use crate::error::InspectError;
use crate::fmt::{local_time, sanitize};
use crate::model::RegistryEntry;
use crate::model::SCHEMA_VERSION;
use crate::model::Status;
use crate::registry::{self, Loaded};
use crate::render;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    Alive,
    Dead,
    Zombie,
    Reused,
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct EntryRow {
    #[serde(flatten)]
    pub entry: RegistryEntry,
    pub liveness: Liveness,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Unlisted {
    pub pid: u32,
    pub ppid: u32,
    pub command: String,
}

#[derive(Debug, Serialize)]
pub struct RegistryReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub path: String,
    pub status: crate::model::Status,
    pub entries: Vec<EntryRow>,
    pub unlisted: Vec<Unlisted>,
}

pub fn run(args: &RegistryArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let re = pattern(&args.discovery.pattern)?;
    let reg = match registry::load(&args.discovery.registry) {
        Loaded::Ok(r) => r,
        Loaded::Missing(p) => anyhow::bail!("{}: registry does not exist", p.display()),
        Loaded::Invalid(e) => return Err(e.into()),
    };
    let platform = ctx.platform.as_ref();
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
                let problems = identity_problems(e, &p, &p, &re, Thresholds::default().spawn_slack);
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
    let found = discover(platform, &re, Some(&reg))?;
    let mut unlisted = Vec::new();
    for c in found.workers.iter().filter(|c| c.registered.is_none()) {
        if let Ok(p) = platform.process(c.pid) {
            unlisted.push(Unlisted {
                pid: p.pid,
                ppid: p.ppid,
                command: p.command(),
            });
            status = status.worst(Status::Warning);
        }
    }
    let report = RegistryReport {
        schema_version: SCHEMA_VERSION,
        command: "registry",
        path: reg.path.display().to_string(),
        status,
        entries,
        unlisted,
    };
    if ctx.json {
        render::json(out, &report)?;
        return Ok(status);
    }
    let mut t = ctx.style.table(&[
        "PID", "NAME", "MODEL", "PORT", "SPAWNED", "LIVENESS", "DETAIL",
    ]);
    for r in &report.entries {
        let e = &r.entry;
        t.add_row(vec![
            e.pid.to_string(),
            sanitize(e.name.as_deref().unwrap_or("-")),
            sanitize(e.model.as_deref().unwrap_or("-")),
            e.port.map_or("-".into(), |p| p.to_string()),
            e.spawned_at.map_or("-".into(), local_time),
            format!("{:?}", r.liveness).to_lowercase(),
            sanitize(&r.detail),
        ]);
    }
    writeln!(
        out,
        "{}: {} entr{}",
        report.path,
        report.entries.len(),
        if report.entries.len() == 1 {
            "y"
        } else {
            "ies"
        }
    )?;
    writeln!(out, "{t}")?;
    for u in &report.unlisted {
        writeln!(
            out,
            "not in registry: PID {} (parent {}) {}",
            u.pid,
            u.ppid,
            sanitize(&u.command)
        )?;
    }
    Ok(status)
}
