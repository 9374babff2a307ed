//! Judging a worker across snapshots: what only time shows. A leak is the memory baseline
//! rising across snapshots, a hang is CPU time that stops moving while a request waits, a
//! restart is a new process under the same name. `history` prints it; `check --history DIR`
//! and `watch` fold the same findings into a live check.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::leak;
use crate::fmt::{duration, local_time};
use crate::model::{
    Activity, CheckReport, Finding, Monotonic, ProcessInfo, Snapshot, Verdict, same_process,
};
use crate::model::{Restart, WorkerHistory};
use crate::store;

/// What the history needs of one snapshot, read from its file without the rest (threads,
/// descriptors, stacks, the log's tail): 100k of them fit in memory and parse in seconds.
/// The fields are [`Snapshot`]'s, under the same names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Seen {
    kind: String,
    pub taken_at: DateTime<Utc>,
    pub pid: u32,
    pub name: String,
    worker: SeenWorker,
    /// The reading taken with the snapshot (cumulative CPU time, memory, footprint).
    pub process: Option<ProcessInfo>,
    #[serde(default)]
    log: Option<SeenLog>,
    /// The monotonic clock at the snapshot, where it was recorded.
    #[serde(default)]
    clock: Option<Monotonic>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct SeenWorker {
    started_at: Option<DateTime<Utc>>,
    /// What the check that took the snapshot said.
    #[serde(default)]
    verdict: Option<Verdict>,
    activity: Activity,
    #[serde(deserialize_with = "count")]
    in_flight: usize,
    #[serde(default)]
    in_flight_known: bool,
    #[serde(default)]
    progress: Option<SeenProgress>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct SeenProgress {
    #[serde(default)]
    last_progress: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct SeenLog {
    #[serde(deserialize_with = "count")]
    in_flight: usize,
}

/// The length of a list, its items skipped unread.
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Ok(Vec::<serde::de::IgnoredAny>::deserialize(d)?.len())
}

impl From<&Snapshot> for Seen {
    fn from(s: &Snapshot) -> Seen {
        Seen {
            kind: s.kind.clone(),
            taken_at: s.taken_at,
            pid: s.pid,
            name: s.name.clone(),
            worker: SeenWorker {
                started_at: s.worker.started_at,
                verdict: Some(s.worker.verdict),
                activity: s.worker.activity,
                in_flight: s.worker.in_flight.len(),
                in_flight_known: s.worker.in_flight_known,
                progress: s.worker.progress.as_ref().map(|p| SeenProgress {
                    last_progress: p.record.last_progress,
                }),
            },
            process: s.process.clone(),
            log: s.log.as_ref().map(|l| SeenLog {
                in_flight: l.in_flight.len(),
            }),
            clock: s.clock.clone(),
        }
    }
}

impl store::Record for Seen {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn taken_at(&self) -> DateTime<Utc> {
        self.taken_at
    }
}

fn memory(s: &Seen) -> Option<u64> {
    s.process.as_ref().map(|p| p.leak_metric_bytes())
}

/// Whether a request was in flight; `None` for a snapshot taken without a log.
fn in_flight(s: &Seen) -> Option<bool> {
    let any = s.worker.in_flight > 0 || s.log.as_ref().is_some_and(|l| l.in_flight > 0);
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
    /// The monotonic clock at this point, where known: how long the worker sat frozen is
    /// measured by it when two points share a boot (a sleep of the machine is not time frozen).
    pub clock: Option<Monotonic>,
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
    // How long it sat frozen: by the monotonic clock when both ends have it and share a boot,
    // else by the wall clock (which counts a sleep of the machine, and any clock step).
    let first_frozen = (frozen >= 2).then(|| &points[points.len() - frozen]);
    let span = first_frozen.map(|f| {
        match (f.clock.as_ref(), last.clock.as_ref()) {
            (Some(a), Some(b)) => b
                .since(a)
                .map(|s| (Duration::from_secs_f64(s), "monotonic")),
            _ => None,
        }
        .unwrap_or_else(|| ((last.at - f.at).to_std().unwrap_or_default(), "wall"))
    });
    let frozen_since = first_frozen
        .zip(span)
        .filter(|(_, (span, _))| *span >= min_frozen)
        .map(|(f, _)| f.at);
    let mut findings = Vec::new();
    if let (Some(since), Some((span, clock))) = (frozen_since, span) {
        findings.push(Finding {
            verdict: Verdict::Hung,
            evidence: vec![format!(
                "history: CPU time unchanged across {frozen} {what} since {} ({} by the {clock} clock, --hung-after {}) with a request in flight",
                local_time(since),
                duration(span),
                duration(min_frozen)
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
fn identity(s: &Seen) -> (u32, Option<DateTime<Utc>>) {
    (
        s.pid,
        s.worker
            .started_at
            .or_else(|| s.process.as_ref().map(|p| p.start_time)),
    )
}

/// Judge each worker's snapshot series (sorted oldest first), by name.
pub fn analyze(snaps: &[Seen], rule: &leak::Rule, hung_after: Duration) -> Vec<WorkerHistory> {
    // One pass to group them: each name's series keeps the order of `snaps`.
    let mut by_name: BTreeMap<&str, Vec<&Seen>> = BTreeMap::new();
    for s in snaps {
        by_name.entry(s.name.as_str()).or_default().push(s);
    }
    let mut out = Vec::new();
    for (name, series) in by_name {
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
        // The newest process's snapshots (a crashed one's carry no reading, and count too).
        let of_pid = series
            .iter()
            .filter(|s| same_process(identity(s), identity(last)))
            .count();
        let current: Vec<&Seen> = series
            .iter()
            .copied()
            .filter(|s| same_process(identity(s), identity(last)) && s.process.is_some())
            .collect();
        // What the snapshots themselves said, beside the trend history judges below.
        let mut said: std::collections::BTreeMap<Verdict, usize> = Default::default();
        for v in series.iter().filter_map(|s| s.worker.verdict) {
            *said.entry(v).or_default() += 1;
        }
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
                progress_at: s.worker.progress.as_ref().and_then(|p| p.last_progress),
                working: s.worker.activity == Activity::Working,
                clock: s.clock.clone(),
            })
            .collect();
        let judged = judge(&points, metric, rule, hung_after, "snapshots");
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
            snapshots_of_pid: of_pid,
            snapshot_verdicts: said
                .into_iter()
                .rev()
                .map(|(verdict, snapshots)| crate::model::SaidCount { verdict, snapshots })
                .collect(),
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

/// Listed one by one up to this many; the rest are counted (100k bad files make no 100k notes).
const LISTED: usize = 20;

/// `items`, the first [`LISTED`] of them, then how many more there are.
pub fn listed(items: Vec<String>, what: &str) -> Vec<String> {
    let more = items.len().saturating_sub(LISTED);
    let mut out: Vec<String> = items.into_iter().take(LISTED).collect();
    if more > 0 {
        out.push(format!("and {more} more {what}"));
    }
    out
}

/// `check --history DIR`: add the history's findings to live workers with the same PID.
///
/// Each snapshot file is judged (see [`store::read_all`]): one that may not make mlsdiag act is
/// left out of the history and listed in the report's `untrusted`, so `watch` acts on nothing
/// while it is there (the directory itself is judged with the rest of the evidence).
pub fn fold_into(
    report: &mut CheckReport,
    dir: &Path,
    rule: &leak::Rule,
    hung_after: Duration,
) -> anyhow::Result<()> {
    let read = store::read_all::<Seen>(dir, Some(crate::input::euid()))?;
    for p in listed(read.unreadable, "unreadable snapshot files") {
        report.notes.push(format!("history: {p}"));
    }
    for why in listed(read.untrusted, "untrusted snapshot files") {
        report.notes.push(format!(
            "WARNING untrusted evidence, history: {why}: left out of the history, and `watch` will not act while it is there"
        ));
        report.untrusted.push(format!("history: {why}"));
    }
    let snaps: Vec<Seen> = read.snaps.into_iter().map(|(_, s)| s).collect();
    let history = analyze(&snaps, rule, hung_after);
    let by_name: BTreeMap<&str, &WorkerHistory> =
        history.iter().map(|h| (h.name.as_str(), h)).collect();
    for i in 0..report.workers.len() {
        let w = &report.workers[i];
        // Only the history of this very process (PID and start time), never of a predecessor.
        let Some(h) = by_name
            .get(w.name.as_str())
            .filter(|h| same_process((h.pid, h.started_at), (w.pid, w.started_at)))
        else {
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
            clock: None,
        }
    }

    /// The seed's hung worker, snapshotted (`mlsdiag --fixture fixtures/macos/seed-incident.json
    /// snapshot`, its log tail cut to 5 lines), with a token record added.
    fn seed_snapshot() -> serde_json::Value {
        let mut v: serde_json::Value =
            serde_json::from_str(include_str!("../../fixtures/seed/snapshot.json")).unwrap();
        v["worker"]["progress"] = serde_json::json!({
            "source": "/tmp/mlx-server/progress/49387.json",
            "pid": 49387,
            "created": "2026-01-05T22:13:30Z",
            "tokens": 91234,
            "last_token": "2026-01-05T23:13:31Z",
            "generating_since": "2026-01-05T23:13:25Z",
            "request_tokens": 12,
            "prompt": [2100, 2100],
            "last_progress": "2026-01-05T23:13:31Z",
            "generations": 318,
            "request": "req-319",
            "read_at": "2026-01-06T07:02:46Z",
            "window_tokens": 0,
            "tokens_per_sec": 0.0,
            "secs_since_progress": 28155.0
        });
        v
    }

    #[test]
    fn seen_reads_what_the_whole_snapshot_says() {
        let v = seed_snapshot();
        let whole: Snapshot = serde_json::from_value(v.clone()).unwrap();
        let seen: Seen = serde_json::from_value(v).unwrap();
        assert_eq!(seen, Seen::from(&whole));
        assert_eq!(in_flight(&seen), Some(true));
        assert_eq!(
            seen.worker.progress.as_ref().and_then(|p| p.last_progress),
            Some(
                DateTime::parse_from_rfc3339("2026-01-05T23:13:31Z")
                    .unwrap()
                    .into()
            )
        );
        assert_eq!(identity(&seen), (49387, whole.worker.started_at));
    }

    #[test]
    fn many_workers_are_grouped_in_one_pass() {
        // 60k snapshots of 30k workers, interleaved: filtering all snapshots once per name
        // (as the history once did) is 1.8G comparisons, half a minute; grouping is one pass.
        let base: Seen = serde_json::from_value(seed_snapshot()).unwrap();
        let mut snaps = Vec::new();
        for round in 0..2 {
            for w in 0..30_000u32 {
                let mut s = base.clone();
                s.name = format!("worker-{w}");
                s.taken_at += chrono::Duration::seconds(60 * round);
                if let Some(p) = s.process.as_mut() {
                    p.cpu_user_ns += u64::from(w);
                }
                snaps.push(s);
            }
        }
        let h = analyze(&snaps, &R, Duration::from_secs(60));
        assert_eq!(h.len(), 30_000);
        assert!(
            h.iter()
                .all(|w| w.snapshots == 2 && w.snapshots_of_pid == 2)
        );
        // CPU time unchanged between the two snapshots, with the request in flight.
        assert!(h.iter().all(|w| w.verdict == Verdict::Hung), "{:?}", h[0]);
    }

    #[test]
    fn frozen_time_is_taken_by_the_monotonic_clock_within_one_boot() {
        let clock = |secs: f64, boot: &str| {
            Some(Monotonic {
                secs,
                boot: boot.into(),
            })
        };
        // Three snapshots 8 hours apart by the wall clock, 2 s apart by the monotonic clock:
        // the machine slept between them. Not frozen for --hung-after.
        let slept: Vec<Point> = (0..3)
            .map(|i| Point {
                clock: clock(100.0 + 2.0 * i as f64, "b1"),
                ..point(i * 8 * 3600, 7, 1 << 20, true)
            })
            .collect();
        let j = judge(&slept, "rss", &R, Duration::from_secs(300), "snapshots");
        assert!(j.findings.is_empty(), "{:?}", j.findings);
        // Really 8 hours apart on one boot: hung, and the evidence names the clock.
        let awake: Vec<Point> = (0..3)
            .map(|i| Point {
                clock: clock(100.0 + 8.0 * 3600.0 * i as f64, "b1"),
                ..point(i * 8 * 3600, 7, 1 << 20, true)
            })
            .collect();
        let j = judge(&awake, "rss", &R, Duration::from_secs(300), "snapshots");
        assert_eq!(j.findings.len(), 1, "{:?}", j.findings);
        assert!(
            j.findings[0].evidence[0].contains("16h00m by the monotonic clock"),
            "{:?}",
            j.findings
        );
        // Another boot between them: the readings cannot be compared, the wall clock decides.
        let rebooted: Vec<Point> = (0..3)
            .map(|i| Point {
                clock: clock(100.0 + i as f64, if i == 0 { "b0" } else { "b1" }),
                ..point(i * 8 * 3600, 7, 1 << 20, true)
            })
            .collect();
        let j = judge(&rebooted, "rss", &R, Duration::from_secs(300), "snapshots");
        assert!(
            j.findings[0].evidence[0].contains("by the wall clock"),
            "{:?}",
            j.findings
        );
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
