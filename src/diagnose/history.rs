//! Judging a worker across snapshots: what only time shows. A leak is the memory baseline
//! rising across snapshots, a hang is CPU time that stops moving while a request waits, a
//! restart is a new process under the same name. `history` prints it; `check --history DIR`
//! and `watch` fold the same findings into a live check.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::leak;
use crate::fmt::{duration, local_time};
use crate::model::{CheckReport, Finding, Snapshot, Verdict, same_process};
use crate::model::{Restart, WorkerHistory};
use crate::store;

fn memory(s: &Snapshot) -> Option<u64> {
    s.process.as_ref().map(|p| p.leak_metric_bytes())
}

/// Whether a request was in flight; `None` for a snapshot taken without a log.
fn in_flight(s: &Snapshot) -> Option<bool> {
    let any =
        !s.worker.in_flight.is_empty() || s.log.as_ref().is_some_and(|l| !l.in_flight.is_empty());
    (any || s.worker.in_flight_known).then_some(any)
}

/// One observation of a process, from a snapshot or a `watch` round.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub at: DateTime<Utc>,
    pub cpu_ns: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// Whether a request was in flight; `None` when no log was read.
    pub in_flight: Option<bool>,
    /// The worker's last token or prefill chunk (its progress record); `None` without one.
    pub progress_at: Option<DateTime<Utc>>,
    /// The check judged the worker working (tokens, the GPU, the log's progress lines, a
    /// heartbeat): not frozen, whatever CPU time says.
    pub working: bool,
}

/// What a series of observations of one process says.
#[derive(Debug, Clone, Default)]
pub struct Judged {
    pub memory_trend: Option<leak::Judgement>,
    /// CPU time unchanged with work in flight at every point since this time.
    pub frozen_since: Option<DateTime<Utc>>,
    pub frozen: usize,
    pub findings: Vec<Finding>,
}

/// Judges a series of one process (oldest first): a memory trend that is a leak, and CPU time
/// frozen with a request in flight for at least `min_frozen` (and two points). `what` names
/// the points in the evidence ("snapshots", "rounds").
pub fn judge(
    points: &[Point],
    metric: &str,
    rule: &leak::Rule,
    min_frozen: Duration,
    what: &str,
) -> Judged {
    let Some(t0) = points.first().map(|p| p.at) else {
        return Judged::default();
    };
    let Some(last) = points.last() else {
        return Judged::default();
    };
    let mem: Vec<crate::model::MemorySample> = points
        .iter()
        .filter_map(|p| {
            Some(crate::model::MemorySample {
                secs: (p.at - t0).as_seconds_f64(),
                bytes: p.memory_bytes?,
                busy: p.in_flight,
            })
        })
        .collect();
    let memory_trend = leak::judge(&mem, rule);
    // Walk back from the newest point while CPU time stands still with work in flight.
    let mut frozen = 0;
    for w in points.windows(2).rev() {
        let same_cpu = w[0].cpu_ns.is_some() && w[0].cpu_ns == w[1].cpu_ns;
        // Tokens or prefill chunks that came, or a check that saw other progress, are
        // progress whatever the CPU time says.
        let progressed = w[0].progress_at != w[1].progress_at || w[0].working || w[1].working;
        if same_cpu && !progressed && w[0].in_flight == Some(true) && w[1].in_flight == Some(true) {
            frozen = if frozen == 0 { 2 } else { frozen + 1 };
        } else {
            break;
        }
    }
    let frozen_since = (frozen >= 2)
        .then(|| points[points.len() - frozen].at)
        .filter(|since| (last.at - *since).to_std().unwrap_or_default() >= min_frozen);
    let mut findings = Vec::new();
    if let Some(since) = frozen_since {
        findings.push(Finding {
            verdict: Verdict::Hung,
            evidence: vec![format!(
                "history: CPU time unchanged across {frozen} {what} since {} ({}) with a request in flight",
                local_time(since),
                duration((last.at - since).to_std().unwrap_or_default())
            )],
        });
    }
    if let Some(j) = memory_trend.as_ref().filter(|j| j.is_leak()) {
        findings.push(Finding {
            verdict: Verdict::Leaking,
            evidence: vec![format!(
                "history: {} {what}: {}",
                j.readings,
                j.describe(metric, rule)
            )],
        });
    }
    Judged {
        memory_trend,
        frozen_since,
        frozen: if frozen_since.is_some() { frozen } else { 0 },
        findings,
    }
}

/// What identifies the process a snapshot is of: PID and start time (the worker report's, or
/// the reading's for snapshots that lack it).
fn identity(s: &Snapshot) -> (u32, Option<DateTime<Utc>>) {
    (
        s.pid,
        s.worker
            .started_at
            .or_else(|| s.process.as_ref().map(|p| p.start_time)),
    )
}

/// Judge each worker's snapshot series (sorted oldest first).
pub fn analyze(snaps: &[Snapshot], rule: &leak::Rule) -> Vec<WorkerHistory> {
    let mut names: Vec<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let series: Vec<&Snapshot> = snaps.iter().filter(|s| s.name == name).collect();
        let Some(last) = series.last() else { continue };
        // A process is its PID and its start time: a PID reused by a later process under the
        // same name is a restart, and the older process's snapshots say nothing about it.
        let restarts: Vec<Restart> = series
            .windows(2)
            .filter(|w| !same_process(identity(w[0]), identity(w[1])))
            .map(|w| Restart {
                at: w[1].taken_at,
                old_pid: w[0].pid,
                new_pid: w[1].pid,
            })
            .collect();
        let current: Vec<&Snapshot> = series
            .iter()
            .copied()
            .filter(|s| same_process(identity(s), identity(last)) && s.process.is_some())
            .collect();
        let metric = if current.iter().any(|s| {
            s.process
                .as_ref()
                .is_some_and(|p| p.footprint_bytes.is_some())
        }) {
            "footprint"
        } else {
            "rss"
        };
        let points: Vec<Point> = current
            .iter()
            .map(|s| Point {
                at: s.taken_at,
                cpu_ns: s.process.as_ref().map(|p| p.cpu_ns()),
                memory_bytes: memory(s),
                in_flight: in_flight(s),
                progress_at: s
                    .worker
                    .progress
                    .as_ref()
                    .and_then(|p| p.record.last_progress),
                working: s.worker.activity == crate::model::Activity::Working,
            })
            .collect();
        let judged = judge(&points, metric, rule, Duration::ZERO, "snapshots");
        let (memory_trend, frozen_since, frozen, findings) = (
            judged.memory_trend,
            judged.frozen_since,
            judged.frozen,
            judged.findings,
        );
        let mem: Vec<u64> = points.iter().filter_map(|p| p.memory_bytes).collect();
        let verdict = Verdict::worst_of(&findings);
        out.push(WorkerHistory {
            name: name.to_string(),
            pid: last.pid,
            started_at: identity(last).1,
            snapshots: series.len(),
            snapshots_of_pid: current.len(),
            first: series[0].taken_at,
            last: last.taken_at,
            memory_metric: metric,
            memory_first_bytes: mem.first().copied(),
            memory_last_bytes: mem.last().copied(),
            memory_trend,
            frozen_since,
            frozen_snapshots: frozen,
            restarts,
            verdict,
            findings,
        });
    }
    out
}

/// `check --history DIR`: add the history's findings to live workers with the same PID.
pub fn fold_into(report: &mut CheckReport, dir: &Path, rule: &leak::Rule) -> anyhow::Result<()> {
    let (snaps, problems) = store::load_all(dir)?;
    let snaps: Vec<Snapshot> = snaps.into_iter().map(|(_, s)| s).collect();
    for p in problems {
        report.notes.push(format!("history: {p}"));
    }
    let history = analyze(&snaps, rule);
    for i in 0..report.workers.len() {
        let w = &report.workers[i];
        // Only the history of this very process (PID and start time), never of a predecessor.
        let Some(h) = history.iter().find(|h| {
            h.name == w.name && same_process((h.pid, h.started_at), (w.pid, w.started_at))
        }) else {
            continue;
        };
        if !h.restarts.is_empty() {
            report.workers[i].notes.push(format!(
                "history: {} restart(s) under this name",
                h.restarts.len()
            ));
        }
        report.add_findings(i, &h.findings);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: leak::Rule = leak::Rule::DEFAULT;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_654_000 + secs, 0).unwrap()
    }

    fn point(secs: i64, cpu: u64, mem: u64, in_flight: bool) -> Point {
        Point {
            at: at(secs),
            cpu_ns: Some(cpu),
            memory_bytes: Some(mem),
            in_flight: Some(in_flight),
            progress_at: None,
            working: false,
        }
    }

    #[test]
    fn frozen_cpu_with_work_in_flight_is_hung_once_it_lasts_min_frozen() {
        let mib = 1 << 20;
        let points: Vec<Point> = (0..5)
            .map(|i| point(i * 30, if i == 0 { 1 } else { 7 }, 100 * mib, true))
            .collect();
        // CPU unchanged from 30 s to 120 s: 4 rounds, 90 s.
        let j = judge(&points, "rss", &R, Duration::ZERO, "rounds");
        assert_eq!((j.frozen, j.frozen_since), (4, Some(at(30))));
        assert_eq!(j.findings.len(), 1);
        assert!(
            j.findings[0].evidence[0].contains("across 4 rounds"),
            "{:?}",
            j.findings
        );
        let j = judge(&points, "rss", &R, Duration::from_secs(90), "rounds");
        assert_eq!(j.findings.len(), 1, "90 s frozen meets a 90 s --hung-after");
        let j = judge(&points, "rss", &R, Duration::from_secs(91), "rounds");
        assert!(j.findings.is_empty(), "not yet: {:?}", j.findings);
        // Idle (nothing in flight) is never hung, however still its CPU time.
        let idle: Vec<Point> = (0..5).map(|i| point(i * 30, 7, 100 * mib, false)).collect();
        assert!(
            judge(&idle, "rss", &R, Duration::ZERO, "rounds")
                .findings
                .is_empty()
        );
    }

    #[test]
    fn steady_growth_is_a_leak_and_noise_is_not() {
        let mib: u64 = 1 << 20;
        let growing: Vec<Point> = (0..6)
            .map(|i| point(i * 60, i as u64, (100 + 20 * i as u64) * mib, false))
            .collect();
        let j = judge(&growing, "footprint", &R, Duration::ZERO, "rounds");
        assert_eq!(j.findings.len(), 1, "{:?}", j.findings);
        assert_eq!(j.findings[0].verdict, Verdict::Leaking);
        assert!(
            j.findings[0].evidence[0].starts_with("history: 6 rounds: footprint"),
            "{:?}",
            j.findings
        );
        let flat: Vec<Point> = (0..6)
            .map(|i| point(i * 60, i as u64, (100 + (i % 2) as u64) * mib, false))
            .collect();
        assert!(
            judge(&flat, "rss", &R, Duration::ZERO, "rounds")
                .findings
                .is_empty()
        );
        assert!(
            judge(&[], "rss", &R, Duration::ZERO, "rounds")
                .findings
                .is_empty()
        );
    }
}
