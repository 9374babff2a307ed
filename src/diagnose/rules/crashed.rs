//! Crashed: the registered worker is gone, a zombie, or its PID now belongs to another
//! process (started after the worker was spawned, or running a command the pattern does not
//! match).

use std::time::Duration;

use regex::Regex;

use super::Judging;
use crate::diagnose::assess::{Assessment, Observation, Thresholds};
use crate::error::InspectError;
use crate::fmt::local_time as ts;
use crate::model::{Activity, Finding, ProcessInfo, RegistryEntry, Verdict};

/// Not a single reading: the verdict of a process that is gone or could not be read.
pub fn gone(o: &Observation, who: &str) -> Assessment {
    let notes = Vec::new();
    // Not a single reading: gone or unreadable.
    let (verdict, why) = match &o.series.error {
        Some(InspectError::Gone { pid }) if o.entry.is_some() => (
            Verdict::Crashed,
            format!(
                "registered {who}{} but PID {pid} is gone (no such process)",
                o.entry
                    .and_then(|e| e.spawned_at)
                    .map(|t| format!(", spawned {}", ts(t)))
                    .unwrap_or_default()
            ),
        ),
        Some(InspectError::Gone { pid }) => (
            Verdict::Unknown,
            format!("PID {pid} exited during inspection"),
        ),
        Some(e) => (Verdict::Unknown, e.to_string()),
        None => (Verdict::Unknown, "no reading taken".to_string()),
    };
    let activity = if verdict == Verdict::Crashed {
        Activity::Gone
    } else {
        Activity::Idle
    };
    Assessment {
        verdict,
        activity,
        cpu_percent: None,
        findings: vec![Finding {
            verdict,
            evidence: vec![why],
        }],
        notes,
        hung_rule: Vec::new(),
    }
}

/// Zombie or reused PID; true when the worker is crashed (then no other rule applies).
pub fn judge(
    o: &Observation,
    th: &Thresholds,
    (first, last): (&ProcessInfo, &ProcessInfo),
    who: &str,
    parent: &str,
    j: &mut Judging,
) -> bool {
    if last.is_zombie() {
        j.findings.push(Finding {
            verdict: Verdict::Crashed,
            evidence: vec![format!(
                "{who} exited: PID {} is a zombie (state Z) not yet reaped by its parent {parent}",
                last.pid
            )],
        });
    }
    if let Some(e) = o.entry {
        let reused = identity_problems(e, first, last, o.pattern, th.spawn_slack);
        if !reused.is_empty() {
            j.findings.push(Finding {
                verdict: Verdict::Crashed,
                evidence: reused,
            });
        }
    }
    if j.findings.iter().any(|f| f.verdict == Verdict::Crashed) {
        return true;
    }
    if let Some(InspectError::Gone { pid }) = &o.series.error {
        j.notes
            .push(format!("PID {pid} exited during the sampling window"));
    }
    false
}

/// Why the process now behind a registered PID is not the worker that was registered: it started
/// after the worker was spawned, or it runs a command the pattern does not match. Empty = same.
pub fn identity_problems(
    e: &RegistryEntry,
    first: &ProcessInfo,
    last: &ProcessInfo,
    pattern: &Regex,
    slack: Duration,
) -> Vec<String> {
    let who = e
        .name
        .as_deref()
        .map_or_else(|| format!("PID {}", e.pid), |n| format!("worker {n}"));
    let mut reused = Vec::new();
    if let Some(spawned) = e.spawned_at {
        let slack = chrono::Duration::from_std(slack).unwrap_or_default();
        if first.start_time > spawned + slack {
            reused.push(format!(
                "PID {} reused: the process started {}, after {who} was spawned {}",
                last.pid,
                ts(first.start_time),
                ts(spawned)
            ));
        }
    }
    if !last.is_zombie() && !pattern.is_match(&last.command()) {
        reused.push(format!(
            "PID {} reused: it now runs `{}`, which does not match --pattern {}",
            last.pid,
            last.command(),
            pattern.as_str()
        ));
    }
    reused
}
