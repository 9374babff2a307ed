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
use crate::model::{Activity, Finding, GpuUsage, InFlight, ProcessInfo, TokenProgress, Verdict};

/// The activity over the window, and the CPU% it was judged on; a hang finding when proven.
pub fn judge(
    o: &Observation,
    th: &Thresholds,
    last: &ProcessInfo,
    who: &str,
    j: &mut Judging,
) -> (Activity, Option<f64>) {
    // Only requests that started while this process was alive, and that nothing later
    // superseded, are evidence of work in flight (see `logs::analysis`).
    let in_flight: &[InFlight] = o
        .log
        .filter(|l| l.proves_in_flight)
        .map_or(&[], |l| &l.in_flight);
    let p = Progress::read(o, th, last, in_flight.first());
    if let Some(activity) = o.tokens.and_then(|t| tokens(t, &p, th, last, j)) {
        if let Some(l) = o.log {
            j.notes.extend(log_context_notes(l, who, last, o.now, th));
        }
        return (activity, p.cpu_percent);
    }
    if let Some(l) = o.log {
        j.notes.extend(log_context_notes(l, who, last, o.now, th));
    }
    if let Some(note) = &p.log_progress {
        j.notes.push(note.clone());
    }
    if let Some(g) = p.gpu {
        j.notes.push(if p.gpu_busy && !p.cpu_busy {
            format!(
                "{} with the CPU idle: GPU-bound work (without a token record a GPU spin looks the same)",
                g.describe()
            )
        } else {
            g.describe()
        });
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
struct Progress<'a> {
    cpu_percent: Option<f64>,
    /// Whether the worker's heartbeat was touched within --hung-after (None: it has none).
    heartbeat_fresh: Option<bool>,
    /// A thread ran, CPU advanced past the threshold, the heartbeat is fresh, or the log
    /// shows progress of this process within --hung-after.
    made: bool,
    /// Whether CPU time advanced past the threshold, or a thread ran.
    cpu_busy: bool,
    /// The worker's GPU use over the window, where the OS's GPU source knows it.
    gpu: Option<&'a GpuUsage>,
    /// Whether that GPU use is the worker's work (see [`GpuUsage::busy`]).
    gpu_busy: bool,
    /// The log's recent progress for this process, in words, when it counts.
    log_progress: Option<String>,
    /// How far CPU time advanced, in words.
    cpu_fact: String,
}

impl<'a> Progress<'a> {
    /// Which signal showed the progress, in words.
    fn what_advanced(&self) -> &'static str {
        if self.cpu_busy {
            "CPU"
        } else if self.gpu_busy {
            "the GPU"
        } else if self.log_progress.is_some() {
            "the log's progress"
        } else {
            "the heartbeat"
        }
    }

    fn read(
        o: &Observation<'a>,
        th: &Thresholds,
        last: &ProcessInfo,
        oldest: Option<&InFlight>,
    ) -> Progress<'a> {
        let cpu_percent = o.series.cpu_percent();
        let running = o.series.max_running() > 0 || last.state == 'R';
        let span = o.series.span_secs();
        // A heartbeat touched per decode step is the worker's own word on progress.
        let heartbeat_fresh = o.heartbeat.as_ref().map(|(_, age)| *age < th.hung_after);
        let cpu_busy = running || cpu_percent.is_some_and(|c| c > th.progress_cpu_percent);
        // A progress line (a prefill chunk, a generated segment), an end or a failure the log
        // shows for this very process, since its oldest request in flight started and within
        // --hung-after, is progress whatever the CPU does.
        let log_progress = (o.log.and_then(|l| l.last_progress))
            .filter(|t| oldest.is_some_and(|r| *t >= r.started && *t >= last.start_time))
            .map(|t| (t, (o.now - t).to_std().unwrap_or_default()))
            .filter(|(_, age)| *age < th.hung_after)
            .map(|(t, age)| {
                format!(
                    "the log shows progress {} ago ({}): working",
                    duration(age),
                    ts(t)
                )
            });
        // GPU-bound work idles the CPU: the GPU busy for this process is progress too (without
        // a token record a GPU spin cannot be told from it; the note says so).
        let gpu = o.gpu;
        let gpu_busy = gpu.is_some_and(GpuUsage::busy);
        let made = cpu_busy || gpu_busy || heartbeat_fresh == Some(true) || log_progress.is_some();
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
            cpu_busy,
            gpu,
            gpu_busy,
            log_progress,
            cpu_fact,
        }
    }
}

/// The worker's token record, read first: during a generation, tokens (or prefill chunks)
/// within --hung-after are work whatever the CPU does, and none for --hung-after is a hang even
/// at 100% CPU. Returns the activity when the record decides it (a generation is in progress).
fn tokens(
    t: &TokenProgress,
    p: &Progress,
    th: &Thresholds,
    last: &ProcessInfo,
    j: &mut Judging,
) -> Option<Activity> {
    let rate = match (t.window_tokens, t.tokens_per_sec) {
        (Some(n), Some(r)) => format!("{n} tokens over the window ({r:.1} tok/s)"),
        _ => "one reading of the token record".to_string(),
    };
    let Some(since) = t.record.generating_since else {
        j.notes.push(format!(
            "token record {}: not generating ({} generations finished, {} tokens in all)",
            t.source, t.record.generations, t.record.tokens
        ));
        return None;
    };
    let what = match &t.record.request {
        Some(id) => format!("generation of request {id}"),
        None => "a generation".to_string(),
    };
    let quiet = std::time::Duration::from_secs_f64(t.secs_since_progress.unwrap_or(0.0));
    let prefill = t
        .record
        .prompt
        .map(|[d, n]| format!(", prefill {d}/{n}"))
        .unwrap_or_default();
    if quiet < th.hung_after {
        let head = if t.window_tokens.is_some_and(|n| n > 0) {
            "tokens advancing"
        } else {
            "generation progressing"
        };
        j.notes.push(format!(
            "{head}: {what} in progress since {}, {} tokens so far{prefill}, last token or prefill chunk {} ago (within --hung-after {}); {rate}",
            ts(since),
            t.record.request_tokens,
            duration(quiet),
            duration(th.hung_after)
        ));
        j.notes.insert(0, p.cpu_fact.clone());
        if let Some(g) = p.gpu {
            j.notes.push(g.describe());
        }
        return Some(Activity::Working);
    }
    if let Some(w) = t.record.waiting_since {
        // Blocked outside MLX, in the code that consumes the tokens: the record does not
        // decide (a client that stopped reading is no hang of MLX; a deadlock in the worker's
        // own code may be one), the other rules do, as without a record.
        j.notes.push(format!(
            "{what}: its last token was handed to the consumer at {} and the consumer has not asked for the next one since: the generation waits on the worker's own code or its client, not on MLX; the token record does not decide",
            ts(w)
        ));
        return None;
    }
    if let Some(note) = not_judged(t, p, &what, quiet) {
        // The record alone does not decide: the other rules do.
        j.notes.push(note);
        return None;
    }
    let mut ev = vec![
        format!(
            "{what} in progress since {}, no token or prefill progress for {} (over --hung-after {}); token record {}",
            ts(since),
            duration(quiet),
            duration(th.hung_after),
            t.source
        ),
        format!(
            "{} tokens in this generation{prefill}; {rate}",
            t.record.request_tokens
        ),
    ];
    if let Some(g) = p.gpu.filter(|_| p.gpu_busy) {
        ev.push(format!(
            "{} while no token comes: the GPU spins, or runs one operation that does not end (the shape of mlx#3830 / mlx#3142, a fence_wait that is never signalled)",
            g.describe()
        ));
    }
    let activity = if p.cpu_busy {
        ev.push(format!(
            "{}, or a thread running: the CPU is busy while no token comes (spinning)",
            p.cpu_fact
        ));
        Activity::Spinning
    } else {
        ev.push(format!(
            "{}; no thread running: {} threads, process state {}",
            p.cpu_fact, last.threads, last.state
        ));
        // The GPU busy while no token comes spins as well, with the host asleep in its wait.
        if p.gpu_busy {
            Activity::Spinning
        } else {
            Activity::Stalled
        }
    };
    j.findings.push(Finding {
        verdict: Verdict::Hung,
        evidence: ev,
    });
    Some(activity)
}

/// Why a generation quiet past --hung-after is not a hang by its record alone, when it is not:
/// another signal shows progress (a fresh heartbeat, the log's progress lines); or it is still in its
/// prefill with the CPU or GPU at work (one prefill chunk of a huge prompt can outlast
/// --hung-after, and a generation that cannot report prefill progress looks the same).
fn not_judged(
    t: &TokenProgress,
    p: &Progress,
    what: &str,
    quiet: std::time::Duration,
) -> Option<String> {
    let q = duration(quiet);
    if p.heartbeat_fresh == Some(true) || p.log_progress.is_some() {
        return Some(format!(
            "{what}: the token record shows no progress for {q}, but the heartbeat or the log shows progress since: not judged hung by the record"
        ));
    }
    if t.record.request_tokens == 0 && (p.cpu_busy || p.gpu_busy) {
        return Some(format!(
            "{what}: still in its prefill, no prefill chunk for {q}, with the {} busy: a long prefill chunk is not judged hung by the record",
            if p.cpu_busy { "CPU" } else { "GPU" }
        ));
    }
    None
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
        if let Some(g) = p.gpu {
            ev.push(g.describe());
        }
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
            "{} in flight for {age_text} with {} advancing: working, not hung",
            oldest.describe(),
            p.what_advanced()
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
