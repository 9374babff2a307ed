//! What only the rounds of a `watch` show: each process (PID and start time) tracked across
//! rounds with its CPU time, memory series and last progress, judged by history's rule
//! ([`super::history::judge`]) and folded into the round's report.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::check::CheckOptions;
use super::history::{Point, judge};
use crate::model::{Activity, CheckReport, SinceProgress, Verdict};

/// A process is its PID and its start time: a reused PID is another worker.
pub type Key = (u32, Option<DateTime<Utc>>);

pub struct Tracked {
    pub name: String,
    /// Rounds this process has been seen in.
    pub rounds: u64,
    pub points: VecDeque<Point>,
    pub last_progress: DateTime<Utc>,
    /// The verdict last printed.
    pub verdict: Verdict,
    /// The verdict last acted on (snapshot, hook, restart); cleared when healthy again.
    pub alerted: Option<Verdict>,
}

/// How the rounds are timed: `Monotonic` when the time between rounds comes from the monotonic
/// clock (a clock step, or a sleep and wake of the machine, does not count as time a worker
/// sat frozen), `Wall` when only the wall clock is known (a recording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    Monotonic,
    Wall,
}

/// Adds this round, observed at `now`, to each worker's series, folds what the series shows
/// (leak over rounds, CPU frozen with work in flight for --hung-after) into the report, and
/// returns each worker's seconds since its last progress. `now` is the round's time on the
/// clock `timing` names: on a live machine the first round's wall time plus the monotonic time
/// since (std's `Instant`: CLOCK_MONOTONIC on Linux, CLOCK_UPTIME_RAW on macOS, neither of
/// which counts a suspend), so a machine that slept for hours with a request open does not
/// wake to a worker "frozen for hours".
pub fn fold_rounds(
    opts: &CheckOptions,
    leak_span: Duration,
    report: &mut CheckReport,
    tracked: &mut BTreeMap<Key, Tracked>,
    now: DateTime<Utc>,
    timing: Timing,
) -> SinceProgress {
    let span = chrono::Duration::from_std(leak_span).unwrap_or(chrono::Duration::MAX);
    let mut since = SinceProgress::new();
    for i in 0..report.workers.len() {
        let w = &report.workers[i];
        let key = (w.pid, w.started_at);
        let t = tracked.entry(key).or_insert_with(|| Tracked {
            name: w.name.clone(),
            rounds: 0,
            points: VecDeque::new(),
            last_progress: now,
            verdict: w.verdict,
            alerted: None,
        });
        let point = Point {
            at: now,
            cpu_ns: w.cpu_seconds.map(|s| (s * 1e9).round() as u64),
            memory_bytes: w.footprint_bytes.or(w.rss_bytes),
            in_flight: w.in_flight_known.then_some(!w.in_flight.is_empty()),
            progress_at: w.progress.as_ref().and_then(|p| p.record.last_progress),
            working: w.activity == Activity::Working,
            // `now` is already on the monotonic clock where the machine gives one.
            clock: None,
        };
        let advanced = t.points.back().is_some_and(|prev| {
            let secs = (now - prev.at).as_seconds_f64();
            match (prev.cpu_ns, point.cpu_ns) {
                (Some(a), Some(b)) if secs > 0.0 => {
                    (b.saturating_sub(a) as f64 / 1e9) / secs * 100.0 > opts.progress_cpu
                }
                _ => false,
            }
        });
        if w.activity == Activity::Working || advanced {
            t.last_progress = now;
        }
        if w.cpu_seconds.is_some() {
            since.insert(w.pid, (now - t.last_progress).as_seconds_f64().max(0.0));
        }
        t.rounds += 1;
        t.points.push_back(point);
        while t.points.front().is_some_and(|p| now - p.at > span) {
            t.points.pop_front();
        }
        let metric = if w.footprint_bytes.is_some() {
            "footprint"
        } else {
            "rss"
        };
        let points: Vec<Point> = t.points.iter().cloned().collect();
        let what = match timing {
            Timing::Monotonic => "rounds (timed by the monotonic clock)",
            Timing::Wall => "rounds (timed by the wall clock)",
        };
        let judged = judge(&points, metric, &opts.leak, opts.hung_after, what);
        report.add_findings(i, &judged.findings);
    }
    since
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A report of one worker asleep with a request in flight, generated at `at`.
    fn report(at: DateTime<Utc>) -> CheckReport {
        let w: crate::model::WorkerReport = serde_json::from_value(serde_json::json!({
            "pid": 49387, "name": "mlx-server-v3-1", "registered": true, "model": null,
            "ppid": 4120, "state": "S", "cpu_percent": 0.0, "cpu_seconds": 302.3,
            "rss_bytes": 8_000_000_000u64, "vsz_bytes": null, "footprint_bytes": null,
            "elapsed_secs": 1000, "started_at": "2026-01-05T18:17:00Z", "threads": 18,
            "command": "python3 -m mls.worker mlx-server-v3-1", "verdict": "healthy",
            "activity": "stalled", "findings": [], "notes": [],
            "in_flight": [{"started": "2026-01-05T23:13:25Z", "line": 1, "source": 0,
                           "seq": 1, "timeouts": [], "end_logged": true}],
            "in_flight_known": true, "ipc": null
        }))
        .expect("a worker report");
        CheckReport {
            schema_version: crate::model::SCHEMA_VERSION,
            command: "watch",
            generated_at: at,
            status: crate::model::Status::Ok,
            exit_code: 0,
            pattern: "mlx-server-v3".into(),
            registry: crate::model::RegistryState {
                path: String::new(),
                state: "ok",
                error: None,
                entries: 1,
            },
            log: None,
            window_secs: 2.0,
            workers: vec![w],
            orchestrators: vec![],
            summary: Default::default(),
            notes: vec![],
            untrusted: vec![],
            gpu: None,
        }
    }

    #[test]
    fn a_sleep_between_rounds_is_not_time_spent_frozen() {
        let opts = CheckOptions {
            hung_after: Duration::from_secs(300),
            ..CheckOptions::default()
        };
        let t0 = Utc.with_ymd_and_hms(2026, 1, 5, 23, 20, 0).unwrap();
        let rounds = |gap: chrono::Duration, timing: Timing| {
            let mut tracked = BTreeMap::new();
            let mut last = report(t0);
            for i in 0..3 {
                // The wall clock jumps 8 hours between rounds (the lid was shut); the
                // monotonic clock advanced `gap`.
                let wall = t0 + chrono::Duration::hours(8 * i);
                let mono = t0 + gap * i as i32;
                let mut r = report(wall);
                let now = if timing == Timing::Monotonic {
                    mono
                } else {
                    wall
                };
                fold_rounds(
                    &opts,
                    Duration::from_secs(48 * 3600),
                    &mut r,
                    &mut tracked,
                    now,
                    timing,
                );
                last = r;
            }
            last
        };
        let slept = rounds(chrono::Duration::seconds(2), Timing::Monotonic);
        assert!(
            slept.workers[0].findings.is_empty(),
            "{:?}",
            slept.workers[0].findings
        );
        // The same rounds really 8 hours apart: CPU frozen with work in flight is a hang, and
        // the evidence says which clock timed it.
        let frozen = rounds(chrono::Duration::hours(8), Timing::Monotonic);
        let f = &frozen.workers[0].findings;
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].verdict, crate::model::Verdict::Hung);
        assert!(
            f[0].evidence[0].contains("rounds (timed by the monotonic clock)"),
            "{f:?}"
        );
    }
}
