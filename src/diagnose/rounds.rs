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

/// Adds this round to each worker's series, folds what the series shows (leak over rounds, CPU
/// frozen with work in flight for --hung-after) into the report, and returns each worker's
/// seconds since its last progress.
pub fn fold_rounds(
    opts: &CheckOptions,
    leak_span: Duration,
    report: &mut CheckReport,
    tracked: &mut BTreeMap<Key, Tracked>,
) -> SinceProgress {
    let now = report.generated_at;
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
        let judged = judge(&points, metric, &opts.leak, opts.hung_after, "rounds");
        report.add_findings(i, &judged.findings);
    }
    since
}
