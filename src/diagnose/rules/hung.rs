//! Hung: proof of work in flight without progress. A request the log shows in flight (one
//! that started while this process was alive and that nothing later superseded), older than
//! `--hung-after`, while CPU time did not advance past the threshold, no thread ran and the
//! worker's heartbeat (where it has one) went stale. Also the activity every worker gets
//! (working, idle, stalled), and the log's context notes (requests of an earlier incarnation,
//! abandoned, stuck or unprovable ones), which never prove a hang.

use chrono::{DateTime, Utc};

use super::Judging;
use crate::diagnose::assess::{Observation, Thresholds};
use crate::fmt::{duration, local_time as ts};
use crate::logs::WorkerLog;
use crate::model::{Activity, Finding, InFlight, ProcessInfo, Verdict};

/// The activity over the window, and the CPU% it was judged on; a hang finding when proven.
pub fn judge(
    o: &Observation,
    th: &Thresholds,
    last: &ProcessInfo,
    who: &str,
    j: &mut Judging,
) -> (Activity, Option<f64>) {
    let p = Progress::read(o, th, last);
    // Only requests that started while this process was alive, and that nothing later
    // superseded, are evidence of work in flight (see `logs::analysis`).
    let in_flight: &[InFlight] = o
        .log
        .filter(|l| l.proves_in_flight)
        .map_or(&[], |l| &l.in_flight);
    if let Some(l) = o.log {
        j.notes.extend(log_context_notes(l, who, last, o.now, th));
    }
    let activity = if p.made {
        Activity::Working
    } else if in_flight.is_empty() {
        Activity::Idle
    } else {
        Activity::Stalled
    };
    if let (Some((path, age)), Some(oldest)) = (&o.heartbeat, in_flight.first()) {
        heartbeat(path, *age, oldest, &p, th, j);
    }
    if let Some(oldest) = in_flight.first().filter(|_| !j.hung()) {
        oldest_in_flight(o, th, last, &p, in_flight, oldest, j);
    } else if let Some(l) = o.log {
        j.notes.push(match l.last_completion {
            Some(t) if t < last.start_time => format!(
                "no request in flight; last completion {}, by the previous incarnation (this process started {})",
                ts(t),
                ts(last.start_time)
            ),
            Some(t) => format!("no request in flight; last completion {}", ts(t)),
            None => "no request in flight and no completion in the log".to_string(),
        });
    } else if !p.made {
        j.notes.push(
            "no --log given: work in flight is unknown, so a hang cannot be proven".to_string(),
        );
    }
    if !j.hung() {
        j.notes.insert(0, p.cpu_fact);
    }
    (activity, p.cpu_percent)
}

/// What the window shows of the worker's progress.
struct Progress {
    cpu_percent: Option<f64>,
    /// Whether the worker's heartbeat was touched within --hung-after (None: it has none).
    heartbeat_fresh: Option<bool>,
    /// A thread ran, CPU advanced past the threshold, or the heartbeat is fresh.
    made: bool,
    /// How far CPU time advanced, in words.
    cpu_fact: String,
}

impl Progress {
    fn read(o: &Observation, th: &Thresholds, last: &ProcessInfo) -> Progress {
        let cpu_percent = o.series.cpu_percent();
        let running = o.series.max_running() > 0 || last.state == 'R';
        let span = o.series.span_secs();
        // A heartbeat touched per decode step is the worker's own word on progress.
        let heartbeat_fresh = o.heartbeat.as_ref().map(|(_, age)| *age < th.hung_after);
        let made = running
            || cpu_percent.is_some_and(|c| c > th.progress_cpu_percent)
            || heartbeat_fresh == Some(true);
        let cpu_fact = match (o.series.cpu_delta_ns(), cpu_percent) {
            (Some(d), Some(pct)) => format!(
                "CPU time advanced {} ms over {span:.1} s ({pct:.1}%)",
                d / 1_000_000
            ),
            _ => "CPU progress unknown: only one reading (--window 0)".to_string(),
        };
        Progress {
            cpu_percent,
            heartbeat_fresh,
            made,
            cpu_fact,
        }
    }
}

/// A stale heartbeat while a request is in flight is a hang; a fresh one is noted.
fn heartbeat(
    path: &str,
    age: std::time::Duration,
    oldest: &InFlight,
    p: &Progress,
    th: &Thresholds,
    j: &mut Judging,
) {
    let beat = duration(age);
    if p.heartbeat_fresh == Some(false) {
        j.findings.push(Finding {
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
        j.notes.push(format!(
            "heartbeat {path} touched {beat} ago: the worker reports progress"
        ));
    }
}

/// The oldest request in flight: a hang when older than --hung-after without progress, else a
/// note on why it is not (yet) one.
fn oldest_in_flight(
    o: &Observation,
    th: &Thresholds,
    last: &ProcessInfo,
    p: &Progress,
    in_flight: &[InFlight],
    oldest: &InFlight,
    j: &mut Judging,
) {
    let hung_after = chrono::Duration::from_std(th.hung_after).unwrap_or_default();
    let age = o.now - oldest.started;
    let age_text = duration(age.to_std().unwrap_or_default());
    if age >= hung_after && !p.made && p.cpu_percent.is_some() {
        let mut ev = vec![
            format!(
                "{} in flight for {age_text} (since {}), no completion logged",
                oldest.describe(),
                ts(oldest.started)
            ),
            format!(
                "{}, within the {:.1}% progress threshold",
                p.cpu_fact, th.progress_cpu_percent
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
        j.findings.push(Finding {
            verdict: Verdict::Hung,
            evidence: ev,
        });
    } else if p.made {
        j.notes.push(format!(
            "{} in flight for {age_text} with CPU advancing: working, not hung",
            oldest.describe()
        ));
    } else {
        j.notes.push(format!(
            "{} in flight for {age_text} without CPU progress; hung if still so after {}",
            oldest.describe(),
            duration(th.hung_after)
        ));
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
