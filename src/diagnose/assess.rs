//! Verdicts: healthy, hung, crashed, orphan, leaking (or unknown), each with its evidence.
//!
//! This is the seed's decision tree made strict. An idle worker also sleeps at 0% CPU, so "hung"
//! needs proof of work in flight without progress: a request logged and never finished, older
//! than `--hung-after`, while CPU time did not advance and no thread ran. A registry PID is only
//! trusted after its start time and command line are compared. Pure logic over recorded
//! readings, so it is tested on any OS, including on macOS data recorded as fixtures.

use std::time::Duration;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::Serialize;

use crate::diagnose::leak;
use crate::error::InspectError;
use crate::fmt::{duration, local_time as ts};
use crate::logs::WorkerLog;
use crate::model::InFlight;
use crate::model::RegistryEntry;
use crate::model::{Activity, Finding, ProcessInfo, Verdict};
use crate::sample::Series;

#[derive(Debug, Clone)]
pub struct Thresholds {
    pub hung_after: Duration,
    pub leak: leak::Rule,
    /// CPU% over the window at or below which the process counts as making no progress.
    pub progress_cpu_percent: f64,
    /// Tolerance when comparing a process start time with the registry's `spawned_at`.
    pub spawn_slack: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            hung_after: Duration::from_secs(300),
            leak: leak::Rule::DEFAULT,
            progress_cpu_percent: 1.0,
            spawn_slack: Duration::from_secs(5),
        }
    }
}

/// Whether the registry could be consulted.
#[derive(Debug, Clone)]
pub enum RegistryView<'a> {
    Loaded { path: &'a str },
    Unavailable { why: &'a str },
}

pub struct Observation<'a> {
    pub series: &'a Series,
    pub entry: Option<&'a RegistryEntry>,
    pub registry: RegistryView<'a>,
    pub pattern: &'a Regex,
    /// The worker's share of the log; `None` when no log was given.
    pub log: Option<&'a WorkerLog>,
    /// Name and pid of the parent, when it could be read.
    pub parent: Option<(u32, String)>,
    pub now: DateTime<Utc>,
    /// The worker's heartbeat file (registry field `heartbeat`) and how long ago it was touched.
    pub heartbeat: Option<(String, Duration)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub verdict: Verdict,
    pub activity: Activity,
    pub cpu_percent: Option<f64>,
    pub findings: Vec<Finding>,
    /// Facts that support the verdicts or explain what could not be decided.
    pub notes: Vec<String>,
}

/// Whether a request was in flight at the reading taken `secs` after the first one, where the
/// log can say: from the oldest request still in flight on (a format that logs ends), and after
/// the last progress when nothing is in flight. The last reading is taken at `o.now`.
fn busy_at(o: &Observation, secs: f64) -> Option<bool> {
    let l = o.log?;
    if !l.proves_in_flight {
        return None;
    }
    let back = chrono::Duration::milliseconds(((o.series.span_secs() - secs) * 1000.0) as i64);
    let at = o.now - back;
    match l.in_flight.iter().map(|r| r.started).min() {
        Some(oldest) => (at >= oldest).then_some(true),
        None => match l.last_progress.or(l.last_completion) {
            Some(p) if at <= p => None,
            _ => Some(false),
        },
    }
}

fn age(now: DateTime<Utc>, since: DateTime<Utc>) -> String {
    duration((now - since).to_std().unwrap_or_default())
}

fn timeouts_text(r: &InFlight) -> String {
    if r.timeouts.is_empty() {
        String::new()
    } else {
        let times: Vec<String> = r.timeouts.iter().map(|t| ts(*t)).collect();
        format!(", timed out at {}", times.join(", "))
    }
}

/// What the log says that is not evidence about this process's work in flight: requests of an
/// earlier incarnation, abandoned requests, stuck requests on a concurrent worker, and requests
/// a format that logs no completions cannot prove in flight. Each kind is one note.
fn log_context_notes(
    l: &WorkerLog,
    who: &str,
    last: &ProcessInfo,
    now: DateTime<Utc>,
    th: &Thresholds,
) -> Vec<String> {
    let mut notes = Vec::new();
    let more = |n: usize| {
        if n > 1 {
            format!(" (and {} more)", n - 1)
        } else {
            String::new()
        }
    };
    if let Some(r) = l.earlier.first() {
        notes.push(format!(
            "{} was in flight when the previous {who} ended: it started {}, before this process (PID {}, started {}){}; not evidence about this process",
            r.describe(),
            ts(r.started),
            last.pid,
            ts(last.start_time),
            more(l.earlier.len())
        ));
    }
    if let Some(r) = l.abandoned.first() {
        notes.push(format!(
            "abandoned: {} started {}{}, never finished, and later requests were served since (last progress {}){}; the worker moved on, so it is not hung on it",
            r.describe(),
            ts(r.started),
            timeouts_text(r),
            l.last_progress.map_or_else(|| "-".into(), ts),
            more(l.abandoned.len())
        ));
    }
    if let Some(r) = l.stuck.first() {
        let old = now - r.started >= chrono::Duration::from_std(th.hung_after).unwrap_or_default();
        notes.push(format!(
            "{}: {} in flight for {}{} while later requests completed (the log shows this worker serving requests concurrently; last progress {}){}",
            if old {
                "request stuck, worker progressing"
            } else {
                "request in flight beside others"
            },
            r.describe(),
            age(now, r.started),
            timeouts_text(r),
            l.last_progress.map_or_else(|| "-".into(), ts),
            more(l.stuck.len())
        ));
    }
    if let Some(r) = l.unended.first() {
        notes.push(format!(
            "{} streaming since {} ago: context only; mlx_lm.server logs no end for a streamed response, so it cannot prove work in flight{}",
            r.describe(),
            age(now, r.started),
            more(l.unended.len())
        ));
    }
    if !l.proves_in_flight
        && let Some(r) = l.in_flight.first()
    {
        notes.push(format!(
            "{} logged {} ago: context only; this log records no request ends (mlx_lm.server at INFO; at --log-level DEBUG it logs `Outgoing Response` for non-streaming requests), so it cannot prove work in flight",
            r.describe(),
            age(now, r.started)
        ));
    }
    notes
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

pub fn assess(o: &Observation, th: &Thresholds) -> Assessment {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let name = o.entry.and_then(|e| e.name.as_deref());
    let who = name.map_or_else(
        || format!("PID {}", o.series.pid),
        |n| format!("worker {n}"),
    );

    let Some(last) = o.series.last() else {
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
        return Assessment {
            verdict,
            activity,
            cpu_percent: None,
            findings: vec![Finding {
                verdict,
                evidence: vec![why],
            }],
            notes,
        };
    };
    let first = o.series.first().unwrap_or(last);
    let parent = o.parent.as_ref().map_or_else(
        || format!("PID {}", last.ppid),
        |(p, n)| format!("PID {p} ({n})"),
    );

    // Crashed: zombie, or the PID now belongs to another program.
    if last.is_zombie() {
        findings.push(Finding {
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
            findings.push(Finding {
                verdict: Verdict::Crashed,
                evidence: reused,
            });
        }
    }
    if findings.iter().any(|f| f.verdict == Verdict::Crashed) {
        return Assessment {
            verdict: Verdict::Crashed,
            activity: Activity::Gone,
            cpu_percent: o.series.cpu_percent(),
            findings,
            notes,
        };
    }
    if let Some(InspectError::Gone { pid }) = &o.series.error {
        notes.push(format!("PID {pid} exited during the sampling window"));
    }

    // Orphan: alive and matching but unknown to the registry.
    match (&o.registry, o.entry) {
        (RegistryView::Loaded { path }, None) => {
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
            findings.push(Finding {
                verdict: Verdict::Orphan,
                evidence: ev,
            });
        }
        (RegistryView::Unavailable { why }, None) => {
            notes.push(format!(
                "registry unavailable ({why}): cannot tell whether this worker is an orphan"
            ));
        }
        _ => {}
    }

    // Progress over the window.
    let cpu_percent = o.series.cpu_percent();
    let running = o.series.max_running() > 0 || last.state == 'R';
    let span = o.series.span_secs();
    // A heartbeat touched per decode step is the worker's own word on progress.
    let heartbeat_fresh = o.heartbeat.as_ref().map(|(_, age)| *age < th.hung_after);
    let progress = running
        || cpu_percent.is_some_and(|c| c > th.progress_cpu_percent)
        || heartbeat_fresh == Some(true);
    let cpu_fact = match (o.series.cpu_delta_ns(), cpu_percent) {
        (Some(d), Some(pct)) => format!(
            "CPU time advanced {} ms over {span:.1} s ({pct:.1}%)",
            d / 1_000_000
        ),
        _ => "CPU progress unknown: only one reading (--window 0)".to_string(),
    };

    // Only requests that started while this process was alive, and that nothing later
    // superseded, are evidence of work in flight (see `logs::analysis`).
    let in_flight: &[InFlight] = o
        .log
        .filter(|l| l.proves_in_flight)
        .map_or(&[], |l| &l.in_flight);
    if let Some(l) = o.log {
        notes.extend(log_context_notes(l, &who, last, o.now, th));
    }
    let hung_after = chrono::Duration::from_std(th.hung_after).unwrap_or_default();
    let activity = if progress {
        Activity::Working
    } else if in_flight.is_empty() {
        Activity::Idle
    } else {
        Activity::Stalled
    };
    if let (Some((path, age)), Some(oldest)) = (&o.heartbeat, in_flight.first()) {
        let beat = duration(*age);
        if heartbeat_fresh == Some(false) {
            findings.push(Finding {
                verdict: Verdict::Hung,
                evidence: vec![
                    format!(
                        "heartbeat {path} not touched for {beat} (stale: over {})",
                        duration(th.hung_after)
                    ),
                    format!(
                        "while {} is in flight since {}",
                        oldest.describe(),
                        ts(oldest.started)
                    ),
                ],
            });
        } else {
            notes.push(format!(
                "heartbeat {path} touched {beat} ago: the worker reports progress"
            ));
        }
    }
    if let Some(oldest) = in_flight
        .first()
        .filter(|_| !findings.iter().any(|f| f.verdict == Verdict::Hung))
    {
        let age = o.now - oldest.started;
        let age_text = duration(age.to_std().unwrap_or_default());
        if age >= hung_after && !progress && cpu_percent.is_some() {
            let mut ev = vec![
                format!(
                    "{} in flight for {age_text} (since {}), no completion logged",
                    oldest.describe(),
                    ts(oldest.started)
                ),
                format!(
                    "{cpu_fact}, within the {:.1}% progress threshold",
                    th.progress_cpu_percent
                ),
                format!(
                    "no thread running: {} threads, process state {}",
                    last.threads, last.state
                ),
            ];
            if !oldest.timeouts.is_empty() {
                let times: Vec<String> = oldest.timeouts.iter().map(|t| ts(*t)).collect();
                ev.push(format!(
                    "orchestrator timed out waiting at {}",
                    times.join(", ")
                ));
            }
            if in_flight.len() > 1 {
                ev.push(format!(
                    "{} more request(s) queued behind it",
                    in_flight.len() - 1
                ));
            }
            findings.push(Finding {
                verdict: Verdict::Hung,
                evidence: ev,
            });
        } else if progress {
            notes.push(format!(
                "{} in flight for {age_text} with CPU advancing: working, not hung",
                oldest.describe()
            ));
        } else {
            notes.push(format!(
                "{} in flight for {age_text} without CPU progress; hung if still so after {}",
                oldest.describe(),
                duration(th.hung_after)
            ));
        }
    } else if o.log.is_some() {
        let last_done = o.log.and_then(|l| l.last_completion);
        notes.push(match last_done {
            Some(t) if t < last.start_time => format!(
                "no request in flight; last completion {}, by the previous incarnation (this process started {})",
                ts(t),
                ts(last.start_time)
            ),
            Some(t) => format!("no request in flight; last completion {}", ts(t)),
            None => "no request in flight and no completion in the log".to_string(),
        });
    } else if !progress {
        notes.push(
            "no --log given: work in flight is unknown, so a hang cannot be proven".to_string(),
        );
    }
    if !findings.iter().any(|f| f.verdict == Verdict::Hung) {
        notes.insert(0, cpu_fact);
    }

    // Leaking: the memory baseline rising (see `leak`).
    let metric = if last.footprint_bytes.is_some() {
        "footprint"
    } else {
        "RSS"
    };
    let samples = o.series.memory_samples(|secs| busy_at(o, secs));
    if let Some(j) = leak::judge(&samples, &th.leak) {
        let fact = j.describe(metric, &th.leak);
        if j.is_leak() {
            findings.push(Finding {
                verdict: Verdict::Leaking,
                evidence: vec![fact],
            });
        } else {
            notes.push(fact);
        }
    }

    let verdict = Verdict::worst_of(&findings);
    Assessment {
        verdict,
        activity,
        cpu_percent,
        findings,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Analyzer;
    use crate::logs::event::ParseCtx;
    use crate::logs::formats::{Format, Parsed};
    use chrono::TimeZone;

    fn proc(pid: u32, cpu_ms: u64, rss_mib: u64, state: char, running: u32) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid: 4120,
            uid: 501,
            name: "python3".into(),
            cmdline: vec![
                "python3".into(),
                "-m".into(),
                "mls.worker".into(),
                "mlx-server-v3-1".into(),
            ],
            state,
            start_time: Utc.with_ymd_and_hms(2026, 1, 5, 18, 17, 0).unwrap(),
            cpu_user_ns: cpu_ms * 1_000_000,
            cpu_system_ns: 0,
            rss_bytes: rss_mib * 1024 * 1024,
            vsz_bytes: 444_689_440 * 1024,
            footprint_bytes: None,
            threads: 18,
            threads_running: running,
        }
    }

    fn series(readings: Vec<ProcessInfo>) -> Series {
        Series {
            pid: readings[0].pid,
            readings: readings
                .into_iter()
                .enumerate()
                .map(|(i, p)| (i as f64 * 0.2, p))
                .collect(),
            error: None,
        }
    }

    fn entry(pid: u32) -> RegistryEntry {
        RegistryEntry {
            pid,
            name: Some("mlx-server-v3-1".into()),
            model: None,
            spawned_at: Some(Utc.with_ymd_and_hms(2026, 1, 5, 18, 17, 0).unwrap()),
            port: None,
            extra: Default::default(),
        }
    }

    fn seed_log() -> WorkerLog {
        let mut a = Analyzer::new(&[], Duration::from_secs(300), false);
        let mut ctx = ParseCtx::default();
        for l in [
            "2026-01-05T23:12:40Z Chat completion: 412 tokens in 13.6s (30.2 tok/s) worker=mlx-server-v3-1",
            "2026-01-05T23:13:25Z Chat completion request: worker=mlx-server-v3-1 id=req-319 prompt_chars=8489 max_tokens=2000 temperature=0.3",
            "2026-01-05T23:23:25Z Worker timeout after 600s worker=mlx-server-v3-1 id=req-319",
        ] {
            let Parsed::Event(e) = Format::Mls.parse(l.as_bytes(), &mut ctx) else {
                panic!("{l}")
            };
            a.add(&e);
        }
        a.finish()
            .for_worker(Some("mlx-server-v3-1"), 49387, true, None)
    }

    fn observe<'a>(
        s: &'a Series,
        e: Option<&'a RegistryEntry>,
        log: Option<&'a WorkerLog>,
        re: &'a Regex,
    ) -> Observation<'a> {
        Observation {
            series: s,
            entry: e,
            registry: RegistryView::Loaded {
                path: "/tmp/mlx-server/worker_registry.json",
            },
            pattern: re,
            log,
            parent: Some((4120, "python3".into())),
            now: Utc.with_ymd_and_hms(2026, 1, 6, 7, 2, 46).unwrap(),
            heartbeat: None,
        }
    }

    #[test]
    fn the_seed_incident_is_hung_with_evidence() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let s = series(
            (0..10)
                .map(|_| proc(49387, 302_300, 8190, 'S', 0))
                .collect(),
        );
        let e = entry(49387);
        let log = seed_log();
        let a = assess(
            &observe(&s, Some(&e), Some(&log), &re),
            &Thresholds::default(),
        );
        assert_eq!(a.verdict, Verdict::Hung);
        assert_eq!(a.activity, Activity::Stalled);
        let ev = a.findings[0].evidence.join("\n");
        assert!(
            ev.contains("request req-319 (8489 chars, max_tokens 2000, temperature 0.3)"),
            "{ev}"
        );
        assert!(ev.contains("in flight for 7h49m"), "{ev}");
        assert!(ev.contains("CPU time advanced 0 ms"), "{ev}");
        assert!(ev.contains("orchestrator timed out"), "{ev}");
    }

    #[test]
    fn an_old_request_with_cpu_progress_is_working_not_hung() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let s = series(
            (0..10)
                .map(|i| proc(49387, 1000 + i * 190, 8190, 'R', 1))
                .collect(),
        );
        let e = entry(49387);
        let log = seed_log();
        let a = assess(
            &observe(&s, Some(&e), Some(&log), &re),
            &Thresholds::default(),
        );
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Working)
        );
    }

    #[test]
    fn idle_without_work_is_healthy_and_without_log_says_so() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let s = series((0..10).map(|_| proc(49387, 5000, 8190, 'S', 0)).collect());
        let e = entry(49387);
        let a = assess(&observe(&s, Some(&e), None, &re), &Thresholds::default());
        assert_eq!((a.verdict, a.activity), (Verdict::Healthy, Activity::Idle));
        assert!(
            a.notes.iter().any(|n| n.contains("no --log")),
            "{:?}",
            a.notes
        );
    }

    #[test]
    fn young_stall_is_not_yet_hung() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let s = series((0..10).map(|_| proc(49387, 5000, 8190, 'S', 0)).collect());
        let e = entry(49387);
        let log = seed_log();
        let mut o = observe(&s, Some(&e), Some(&log), &re);
        o.now = Utc.with_ymd_and_hms(2026, 1, 5, 23, 14, 0).unwrap();
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Stalled)
        );
    }

    #[test]
    fn crashed_gone_zombie_and_reused() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let gone = Series {
            pid: 49387,
            readings: vec![],
            error: Some(InspectError::Gone { pid: 49387 }),
        };
        let a = assess(&observe(&gone, Some(&e), None, &re), &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Crashed);
        assert!(a.findings[0].evidence[0].contains("is gone"));

        let z = series(vec![proc(49387, 5, 0, 'Z', 0); 3]);
        let a = assess(&observe(&z, Some(&e), None, &re), &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Crashed);
        assert!(a.findings[0].evidence[0].contains("zombie"));

        let mut late = proc(49387, 5, 10, 'S', 0);
        late.start_time = Utc.with_ymd_and_hms(2026, 1, 6, 1, 0, 0).unwrap();
        let a = assess(
            &observe(&series(vec![late.clone(); 3]), Some(&e), None, &re),
            &Thresholds::default(),
        );
        assert_eq!(a.verdict, Verdict::Crashed);
        assert!(
            a.findings[0].evidence[0].contains("started 2026-01-0"),
            "{:?}",
            a.findings
        );

        let mut other = proc(49387, 5, 10, 'S', 0);
        other.cmdline = vec!["/usr/sbin/cupsd".into()];
        let a = assess(
            &observe(&series(vec![other; 3]), Some(&e), None, &re),
            &Thresholds::default(),
        );
        assert!(
            a.findings[0].evidence[0].contains("now runs `/usr/sbin/cupsd`"),
            "{:?}",
            a.findings
        );

        // Start within the slack of spawned_at is the same process.
        let mut near = proc(49387, 5, 10, 'S', 0);
        near.start_time = e.spawned_at.unwrap() + chrono::Duration::seconds(2);
        let a = assess(
            &observe(&series(vec![near; 3]), Some(&e), None, &re),
            &Thresholds::default(),
        );
        assert_eq!(a.verdict, Verdict::Healthy);
    }

    #[test]
    fn orphan_and_leak_are_both_reported() {
        let re = Regex::new("mlx-server-v3").unwrap();
        // 20 MiB more at each of 11 readings 12 s apart: +100 MiB/min over two minutes.
        let mut readings: Vec<ProcessInfo> = (0..11)
            .map(|i| proc(777, 100 + i * 20, 500 + i * 20, 'S', 0))
            .collect();
        for p in &mut readings {
            p.ppid = 1;
        }
        let mut s = series(readings);
        for (i, r) in s.readings.iter_mut().enumerate() {
            r.0 = i as f64 * 12.0;
        }
        let mut o = observe(&s, None, None, &re);
        o.parent = Some((1, "systemd".into()));
        let a = assess(&o, &Thresholds::default());
        let verdicts: Vec<Verdict> = a.findings.iter().map(|f| f.verdict).collect();
        assert_eq!(verdicts, [Verdict::Orphan, Verdict::Leaking]);
        assert_eq!(a.verdict, Verdict::Leaking, "most severe of the findings");
        assert!(a.findings[0].evidence[1].contains("orchestrator is gone"));
        assert!(
            a.findings[1].evidence[0].contains("+100.0 MiB/min (Theil–Sen)"),
            "{:?}",
            a.findings[1]
        );
    }

    #[test]
    fn denied_is_unknown_with_the_remedy() {
        let re = Regex::new("x").unwrap();
        let s = Series {
            pid: 5,
            readings: vec![],
            error: Some(InspectError::PermissionDenied {
                pid: 5,
                path: "/proc/5/stat".into(),
                remedy: crate::error::permission_remedy(Some(0)),
            }),
        };
        let a = assess(&observe(&s, None, None, &re), &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Unknown);
        assert!(a.findings[0].evidence[0].contains("sudo"));
    }

    #[test]
    fn heartbeat_decides_when_the_registry_names_one() {
        let re = Regex::new("mlx-server-v3").unwrap();
        let e = entry(49387);
        let log = seed_log();
        // Burning CPU, but the heartbeat stopped 20 minutes ago while a request waits: hung.
        let busy = series(
            (0..10)
                .map(|i| proc(49387, 1000 + i * 190, 8190, 'R', 1))
                .collect(),
        );
        let mut o = observe(&busy, Some(&e), Some(&log), &re);
        o.heartbeat = Some(("/tmp/w1.beat".into(), Duration::from_secs(1200)));
        let a = assess(&o, &Thresholds::default());
        assert_eq!(a.verdict, Verdict::Hung);
        assert!(
            a.findings[0].evidence[0].contains("heartbeat /tmp/w1.beat not touched for 20m00s"),
            "{:?}",
            a.findings
        );
        // 0% CPU, but the heartbeat is fresh (a long prefill on the GPU): progressing.
        let idle = series((0..10).map(|_| proc(49387, 5000, 8190, 'S', 0)).collect());
        let mut o = observe(&idle, Some(&e), Some(&log), &re);
        o.heartbeat = Some(("/tmp/w1.beat".into(), Duration::from_secs(3)));
        let a = assess(&o, &Thresholds::default());
        assert_eq!(
            (a.verdict, a.activity),
            (Verdict::Healthy, Activity::Working)
        );
        assert!(a.notes.iter().any(|n| n.contains("touched 3s ago")));
    }
}
