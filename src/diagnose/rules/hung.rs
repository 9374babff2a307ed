//! Hung: proof of work in flight without progress. Work in flight is the oldest of: a request
//! the log shows in flight (one that started while this process was alive and that nothing
//! later superseded); an accepted connection whose request arrived and got nothing back (the
//! kernel's socket table); the `--probe` request, unanswered. It is a hang when that work is
//! older than `--hung-after` while CPU time did not advance past the threshold, no thread ran,
//! the GPU did no work for the process, the log showed no progress, the worker's heartbeat
//! (where it has one) went stale and the probe (where one was sent) got no answer. Also the
//! activity every worker gets (working, idle, stalled), and the context notes (the log's
//! requests of an earlier incarnation, abandoned, stuck or unprovable ones; connections whose
//! response went quiet), which never prove a hang.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{FUTURE_SLACK, Judging};
use crate::diagnose::assess::{Observation, Thresholds};
use crate::fmt::{duration, local_time as ts};
use crate::logs::WorkerLog;
use crate::model::{
    Activity, Condition, Exchange, Finding, GpuUsage, InFlight, ProbeReport, ProbeState,
    ProcessInfo, TcpConnection, TokenProgress, Verdict,
};

/// One source of work in flight.
#[derive(Debug, Clone, Copy)]
enum Work<'a> {
    /// A request the log shows in flight.
    Logged(&'a InFlight),
    /// An accepted connection whose request got nothing back, waiting this long.
    Connection(&'a TcpConnection, Duration),
    /// The `--probe` request, sent and not answered.
    Probe(&'a ProbeReport),
}

impl Work<'_> {
    /// How long it has been in flight at `now`; `Err(ahead)` for a logged start from the future.
    fn age(&self, now: DateTime<Utc>) -> Result<Duration, Duration> {
        match self {
            Work::Logged(r) => ago(now, r.started),
            Work::Connection(_, d) => Ok(*d),
            Work::Probe(p) => Ok(Duration::from_secs_f64(p.age_secs.max(0.0))),
        }
    }

    /// When it started, on this machine's clock.
    fn started(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Work::Logged(r) => r.started,
            Work::Probe(p) => p.sent_at,
            Work::Connection(_, d) => now - chrono::Duration::from_std(*d).unwrap_or_default(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Work::Logged(r) => r.describe(),
            Work::Connection(c, _) => c.describe(),
            Work::Probe(p) => format!("the probe {} (max_tokens 1)", p.url),
        }
    }
}

/// The work in flight of a worker, oldest first: the log's requests that prove work in flight,
/// the accepted connections waiting for a response (not the probe's own, nor one the server is
/// still reading), and the probe while it is unanswered.
fn work_in_flight<'a>(o: &Observation<'a>, now: DateTime<Utc>) -> Vec<Work<'a>> {
    let logged = o
        .log
        .filter(|l| l.proves_in_flight)
        .map_or(&[][..], |l| &l.in_flight[..]);
    let probe_local = o.probe.and_then(|p| p.local.as_deref());
    let mut work: Vec<Work<'a>> = logged.iter().map(Work::Logged).collect();
    work.extend(
        o.connections
            .into_iter()
            .flat_map(|c| &c.accepted)
            .filter(|c| Some(c.peer.as_str()) != probe_local && c.server_reading != Some(true))
            .filter_map(|c| Some(Work::Connection(c, Duration::from_millis(c.waiting_ms()?)))),
    );
    work.extend(o.probe.filter(|p| p.waiting()).map(Work::Probe));
    // Oldest first; a start from the future sorts as new, and the log's order breaks ties.
    work.sort_by_key(|w| std::cmp::Reverse(w.age(now).unwrap_or_default()));
    work
}

/// The activity over the window, and the CPU% it was judged on; a hang finding when proven.
pub fn judge(
    o: &Observation,
    th: &Thresholds,
    last: &ProcessInfo,
    who: &str,
    j: &mut Judging,
) -> (Activity, Option<f64>) {
    // Only requests that started while this process was alive, and that nothing later
    // superseded, are evidence of work in flight (see `logs::analysis`); so are connections
    // waiting for a response, and the probe while unanswered.
    let in_flight = work_in_flight(o, o.now);
    let since = in_flight
        .iter()
        .map(|w| w.started(o.now))
        .min()
        .filter(|_| !in_flight.is_empty());
    let p = Progress::read(o, th, since, j);
    generation_thread_died(o, &p, j);
    // A distributed peer that cannot take part stalls the worker, whatever its CPU does.
    if let Some(f) = (o.distributed).and_then(|d| super::distributed::peer_stalled(d, &p.cpu_fact))
    {
        j.findings.push(f);
        let activity = if p.cpu_busy || p.gpu_busy {
            Activity::Spinning
        } else {
            Activity::Stalled
        };
        return (activity, p.cpu_percent);
    }
    // A probe that got an error: the server answers but does not generate. No hang, and no
    // health either: unknown, with what came back.
    if let Some(pr) = o.probe.filter(|p| p.state == ProbeState::Failed) {
        unknown(
            j,
            format!(
                "{}; so the server does not generate (whether it is hung cannot be judged)",
                probe_note(pr)
            ),
        );
    }
    if let Some(activity) = o.tokens.and_then(|t| tokens(t, &p, th, o.now, j)) {
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
    if let Some(spin) = &p.gpu_spin {
        j.notes.push(spin.clone());
    } else if let Some(g) = p.gpu {
        j.notes.push(if p.gpu_busy && !p.cpu_busy {
            format!(
                "{} with the CPU idle: GPU-bound work (without a token record a GPU spin looks the same)",
                g.describe()
            )
        } else {
            g.describe()
        });
    }
    if let Some(b) = &p.beat {
        j.notes.push(b.clone());
    }
    let waiting = waiting_on_client(o);
    if let Some(w) = &waiting {
        j.notes
            .push(format!("waiting on its client, never hung: {w}"));
    }
    let nothing = nothing_in_flight(o).filter(|_| in_flight.is_empty());
    let activity = if p.made {
        // CPU alone with nothing in flight, by evidence that would show a request: busy.
        let cpu_only = !p.gpu_busy && p.log_progress.is_none() && p.heartbeat_fresh != Some(true);
        if cpu_only && nothing == Some(Proof::Everything) {
            Activity::Busy
        } else {
            Activity::Working
        }
    } else if waiting.is_some() {
        Activity::WaitingOnClient
    } else if nothing.is_some() {
        Activity::Idle
    } else if in_flight.is_empty() {
        Activity::Unknown
    } else if p.gpu_spin.is_some() {
        Activity::Spinning
    } else {
        Activity::Stalled
    };
    if activity == Activity::Busy {
        j.notes.push(
            "the CPU is busy with nothing in flight (the socket table shows no connection at all): it works on something of its own, not a request (start-up, a cache, an idle loop pinning a core: mlx-lm #1500)".to_string(),
        );
    }
    j.notes.extend(connection_notes(o, th));
    match stopped(last.state) {
        // Someone is debugging it: never called hung (nor restarted), whatever waits on it.
        Some(why) if last.state == 't' => unknown(
            j,
            format!(
                "process state t: {why}; it serves nothing meanwhile, and a worker under a debugger is never called hung"
            ),
        ),
        // Nothing proves work waits on it, so no hang; but it serves nothing while stopped.
        Some(why) if in_flight.is_empty() => unknown(
            j,
            format!(
                "process state {}: {why}; it serves nothing meanwhile, and no work in flight is known, so it is not called hung",
                last.state
            ),
        ),
        _ => {}
    }
    if let Some(oldest) = in_flight.first().filter(|_| !j.hung()) {
        oldest_in_flight(o, th, &p, &in_flight, oldest, j);
        if !j.hung() {
            j.notes.insert(0, p.cpu_fact.clone());
        }
        return (activity, p.cpu_percent);
    }
    if let Some(pr) = o.probe {
        j.notes.push(probe_note(pr));
    }
    if let Some(c) =
        (o.connections).filter(|c| c.error.is_none() && !c.listening.is_empty() && o.log.is_none())
    {
        j.notes.push(format!(
            "no request waiting for a response in the socket table ({} accepted connection(s), listening on {})",
            c.accepted.len(),
            c.listening.join(", ")
        ));
    } else if let Some(l) = o.log.filter(|l| l.proves_in_flight) {
        j.notes.push(match l.last_completion {
            Some(t) if t < last.start_time => format!(
                "no request in flight; last completion {}, by the previous incarnation (this process started {})",
                ts(t),
                ts(last.start_time)
            ),
            Some(t) => format!("no request in flight; last completion {}", ts(t)),
            None => "no request in flight and no completion in the log".to_string(),
        });
    } else if !p.made && o.probe.is_none() {
        j.notes.push(
            "no --log given: work in flight is unknown, so a hang cannot be proven (the socket table shows no TCP port it serves; --probe URL sends a request of one token)".to_string(),
        );
    }
    if !j.hung() {
        j.notes.insert(0, p.cpu_fact.clone());
    }
    (activity, p.cpu_percent)
}

/// How long ago `t` was at `now`, or how far ahead of `now` it lies when it is later than
/// [`FUTURE_SLACK`] allows: a time from the future is clock skew (another machine, a log written
/// in another zone) or garbage, never progress.
pub fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> Result<Duration, Duration> {
    match (now - t).to_std() {
        Ok(d) => Ok(d),
        Err(_) => {
            let ahead = (t - now).to_std().unwrap_or_default();
            if ahead <= FUTURE_SLACK {
                Ok(Duration::ZERO)
            } else {
                Err(ahead)
            }
        }
    }
}

/// The finding for a time from the future: the verdict is unknown, since every age taken from
/// that source is wrong by the skew, so a hang can be neither proven nor ruled out by it.
fn skew(j: &mut Judging, what: &str, t: DateTime<Utc>, ahead: Duration) {
    let line = format!(
        "clock skew: {what} is stamped {} ({} ahead of this machine's clock, over the {} allowed): skew between clocks, a log written in another time zone, or garbage; it is not counted as progress, and ages taken from it cannot be trusted",
        ts(t),
        duration(ahead),
        duration(FUTURE_SLACK)
    );
    unknown(j, line);
}

/// Adds `line` to the worker's unknown finding (made when it has none).
fn unknown(j: &mut Judging, line: String) {
    if let Some(f) = j
        .findings
        .iter_mut()
        .find(|f| f.verdict == Verdict::Unknown)
    {
        f.evidence.push(line);
    } else {
        j.findings.push(Finding {
            verdict: Verdict::Unknown,
            evidence: vec![line],
        });
    }
}

/// What the window shows of the worker's progress.
struct Progress<'a> {
    cpu_percent: Option<f64>,
    /// Whether the worker's heartbeat was touched within --hung-after (None: it has none, or
    /// its time is from the future).
    heartbeat_fresh: Option<bool>,
    /// The heartbeat in words, for the notes.
    beat: Option<String>,
    /// A thread ran, CPU advanced past the threshold, the GPU worked, the heartbeat is fresh,
    /// or the log shows progress of this process within --hung-after.
    made: bool,
    /// Whether CPU time advanced past the threshold, or a thread ran.
    cpu_busy: bool,
    /// The worker's GPU use over the window, where the OS's GPU source knows it.
    gpu: Option<&'a GpuUsage>,
    /// Whether that GPU use is the worker's work (see [`GpuUsage::busy`]): not when the board's
    /// power says it spins.
    gpu_busy: bool,
    /// Why the board's power says the GPU spins ([`GpuUsage::spins_by_power`]).
    gpu_spin: Option<String>,
    /// The log's recent progress for this process, in words, when it counts.
    log_progress: Option<String>,
    /// How far CPU time advanced, in words.
    cpu_fact: String,
    /// Threads seen running, and the process state, in words.
    threads_fact: String,
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

    /// Reads every progress signal; a signal stamped in the future adds a skew finding to `j`.
    fn read(
        o: &Observation<'a>,
        th: &Thresholds,
        since: Option<DateTime<Utc>>,
        j: &mut Judging,
    ) -> Progress<'a> {
        let last = o.series.last();
        let cpu_percent = o.series.cpu_percent();
        let state = last.map_or('?', |p| p.state);
        let running = o.series.max_running() > 0 || state == 'R';
        let span = o.series.span_secs();
        // A heartbeat touched per decode step is the worker's own word on progress; one that
        // is stale only means no beat came (an idle worker has nothing to beat for).
        let (heartbeat_fresh, beat) = match &o.heartbeat {
            None => (None, None),
            Some((path, touched)) => match ago(o.now, *touched) {
                Ok(age) if age < th.hung_after => (
                    Some(true),
                    Some(format!(
                        "heartbeat {path} touched {} ago: the worker reports progress",
                        duration(age)
                    )),
                ),
                Ok(age) => (
                    Some(false),
                    Some(format!(
                        "heartbeat {path} not touched for {} (over --hung-after {}): no beat, which alone proves nothing",
                        duration(age),
                        duration(th.hung_after)
                    )),
                ),
                Err(ahead) => {
                    skew(j, &format!("heartbeat {path}"), *touched, ahead);
                    (None, None)
                }
            },
        };
        let cpu_busy = running || cpu_percent.is_some_and(|c| c > th.progress_cpu_percent);
        // A progress line (a prefill chunk, a generated segment), an end or a failure the log
        // shows for this very process, since its oldest work in flight started and within
        // --hung-after, is progress whatever the CPU does; one from the future is not.
        let log_progress = match (o.log.and_then(|l| l.last_progress), since) {
            (Some(t), Some(since)) if t >= since && last.is_some_and(|p| t >= p.start_time) => {
                match ago(o.now, t) {
                    Ok(age) if age < th.hung_after => Some(format!(
                        "the log shows progress {} ago ({}): working",
                        duration(age),
                        ts(t)
                    )),
                    Ok(_) => None,
                    Err(ahead) => {
                        skew(j, "the log's last progress line", t, ahead);
                        None
                    }
                }
            }
            _ => None,
        };
        // GPU-bound work idles the CPU: the GPU busy for this process is progress too (without
        // a token record a GPU spin cannot be told from it; the note says so).
        let gpu = o.gpu;
        let gpu_spin = gpu.and_then(GpuUsage::spins_by_power);
        let gpu_busy = gpu.is_some_and(GpuUsage::busy) && gpu_spin.is_none();
        let made = cpu_busy || gpu_busy || heartbeat_fresh == Some(true) || log_progress.is_some();
        let cpu_fact = match (o.series.cpu_delta_ns(), cpu_percent) {
            (Some(d), Some(pct)) => format!(
                "CPU time advanced {} ms over {span:.1} s ({pct:.1}%)",
                d / 1_000_000
            ),
            _ => "CPU progress unknown: only one reading (--window 0)".to_string(),
        };
        let threads_fact = match last {
            Some(p) if running => format!(
                "a thread running: {} threads, process state {}",
                p.threads, p.state
            ),
            Some(p) => format!(
                "no thread running: {} threads, process state {}{}",
                p.threads,
                p.state,
                stopped(p.state)
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default()
            ),
            None => "no reading".to_string(),
        };
        Progress {
            cpu_percent,
            heartbeat_fresh,
            beat,
            made,
            cpu_busy,
            gpu,
            gpu_busy,
            gpu_spin,
            log_progress,
            cpu_fact,
            threads_fact,
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
    now: DateTime<Utc>,
    j: &mut Judging,
) -> Option<Activity> {
    // A record whose times lie in the future says nothing about how long it has been quiet.
    if let Some(at) = t.record.last_progress.max(t.record.generating_since)
        && let Err(ahead) = ago(now, at)
    {
        skew(j, &format!("the token record {}", t.source), at, ahead);
        return None;
    }
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
    let quiet = Duration::from_secs_f64(t.secs_since_progress.unwrap_or(0.0));
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
    if t.record.waiting_since.is_some() {
        // Blocked outside MLX, in the code that consumes the tokens: the generation waits on
        // its consumer, which the hung rule's condition "not waiting on its client" says.
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
    if let Some(spin) = &p.gpu_spin {
        ev.push(format!(
            "{spin}, while no token comes (the shape of mlx#3830 / mlx#3142)"
        ));
    } else if let Some(g) = p.gpu.filter(|_| p.gpu_busy) {
        ev.push(format!(
            "{} while no token comes: the GPU spins, or runs one operation that does not end (the shape of mlx#3830 / mlx#3142, a fence_wait that is never signalled)",
            g.describe()
        ));
    }
    // Spinning needs the CPU time to show it (over the threshold), or the GPU: a thread seen
    // in the running state at one reading while the CPU stays near 0% (an interpreter frozen
    // with its lock held by a native wait) is stalled, not spinning.
    let cpu_spins = p.cpu_percent.is_some_and(|c| c > th.progress_cpu_percent);
    let activity = if cpu_spins {
        ev.push(format!(
            "{}: the CPU is busy while no token comes (spinning)",
            p.cpu_fact
        ));
        Activity::Spinning
    } else {
        ev.push(format!("{}; {}", p.cpu_fact, p.threads_fact));
        // The GPU busy while no token comes spins as well, with the host asleep in its wait.
        if p.gpu_busy || p.gpu_spin.is_some() {
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
fn not_judged(t: &TokenProgress, p: &Progress, what: &str, quiet: Duration) -> Option<String> {
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

/// The hung rule on the oldest work in flight, as conditions that must all hold: a hang
/// when every one did, else a note naming those that did not.
fn oldest_in_flight(
    o: &Observation,
    th: &Thresholds,
    p: &Progress,
    in_flight: &[Work],
    oldest: &Work,
    j: &mut Judging,
) {
    let rule = conditions(o, th, p, in_flight, oldest, j);
    let held = rule.iter().all(|c| c.held);
    let age_text = match oldest.age(o.now) {
        Ok(age) => duration(age),
        Err(_) => "an unknown time (its start is in the future)".to_string(),
    };
    if held {
        let mut ev = vec![match oldest {
            Work::Logged(r) => format!(
                "{} in flight for {age_text} (since {}), no completion logged",
                r.describe(),
                ts(r.started)
            ),
            Work::Connection(c, _) => format!(
                "{}: its request arrived {age_text} ago and nothing was sent back since (the socket table; {} received, {} sent)",
                c.describe(),
                bytes(c.bytes_received),
                bytes(c.bytes_sent)
            ),
            Work::Probe(pr) => format!(
                "{} sent {age_text} ago (at {}): no answer within --hung-after {} ({})",
                oldest.describe(),
                ts(pr.sent_at),
                duration(th.hung_after),
                pr.timings()
            ),
        }];
        ev.push(format!(
            "{}, within the {:.1}% progress threshold",
            p.cpu_fact, th.progress_cpu_percent
        ));
        ev.push(p.threads_fact.clone());
        if let Some(g) = p.gpu {
            ev.push(g.describe());
        }
        if let Some(b) = &p.beat {
            ev.push(b.clone());
        }
        if let Work::Logged(r) = oldest
            && !r.timeouts.is_empty()
        {
            let times: Vec<String> = r.timeouts.iter().map(|t| ts(*t)).collect();
            ev.push(format!(
                "orchestrator timed out waiting at {}",
                times.join(", ")
            ));
        }
        ev.extend(behind(o, in_flight, oldest));
        ev.push(format!(
            "hung rule: all {} conditions held (JSON: hung_rule)",
            rule.len()
        ));
        j.findings.push(Finding {
            verdict: Verdict::Hung,
            evidence: ev,
        });
    } else if let Some(pr) = o.probe.filter(|pr| !pr.waiting()) {
        j.notes.push(format!(
            "{} in flight for {age_text}, but {}: not hung (did not hold: {})",
            oldest.describe(),
            probe_note(pr),
            names(&rule, false)
        ));
    } else if rule
        .iter()
        .any(|c| c.condition == "not waiting on its client" && !c.held)
    {
        j.notes.push(format!(
            "{} in flight for {age_text}, but the worker waits on its client: not hung (did not hold: {})",
            oldest.describe(),
            names(&rule, false)
        ));
    } else if p.made {
        j.notes.push(format!(
            "{} in flight for {age_text} with {} advancing: working, not hung (did not hold: {})",
            oldest.describe(),
            p.what_advanced(),
            names(&rule, false)
        ));
    } else {
        j.notes.push(format!(
            "{} in flight for {age_text} without progress; not hung, since {} did not hold (hung if still so after {})",
            oldest.describe(),
            names(&rule, false),
            duration(th.hung_after)
        ));
    }
    j.conditions = rule;
}

/// `N B`, or `?` where the OS does not say.
fn bytes(n: Option<u64>) -> String {
    n.map_or_else(|| "? B".to_string(), |n| format!("{n} B"))
}

/// The evidence lines for the work in flight besides the oldest: how many of each source, the
/// next of each, and the probe's timings.
fn behind(o: &Observation, in_flight: &[Work], oldest: &Work) -> Vec<String> {
    let others = || in_flight.iter().skip(1);
    let mut ev = Vec::new();
    let logged = others().filter(|w| matches!(w, Work::Logged(_))).count();
    if logged > 0 {
        ev.push(format!("{logged} more request(s) queued behind it"));
    }
    let conns: Vec<String> = others()
        .filter_map(|w| match w {
            Work::Connection(c, d) => Some(format!("{} waiting {}", c.peer, duration(*d))),
            _ => None,
        })
        .collect();
    if !conns.is_empty() {
        let shown = conns.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        let more = conns.len().saturating_sub(3);
        ev.push(format!(
            "{} more connection(s) awaiting a response: {shown}{}",
            conns.len(),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    if let Some(pr) = o.probe.filter(|_| !matches!(oldest, Work::Probe(_))) {
        ev.push(probe_note(pr));
    }
    ev
}

/// The probe's outcome in words.
fn probe_note(pr: &ProbeReport) -> String {
    match pr.state {
        ProbeState::Answered => format!(
            "the probe {} was answered ({}): the generation path works",
            pr.url,
            pr.timings()
        ),
        ProbeState::Failed => format!(
            "the probe {} failed: {} ({}): the server answered with an error or refused the connection, which is no hang",
            pr.url,
            pr.error.as_deref().unwrap_or("?"),
            pr.timings()
        ),
        ProbeState::InFlight => format!(
            "the probe {} has had no answer yet ({}; its deadline is {:.0}s)",
            pr.url,
            pr.timings(),
            pr.deadline_secs
        ),
        ProbeState::NoAnswer => format!(
            "the probe {} got no answer within its deadline of {:.0}s ({})",
            pr.url,
            pr.deadline_secs,
            pr.timings()
        ),
    }
}

/// What the socket table shows that is no proof of work in flight: requests the server is
/// still reading, requests of unknown age, and responses gone quiet. Each kind is one note.
fn connection_notes(o: &Observation, th: &Thresholds) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(c) = o.connections else {
        return notes;
    };
    if let Some(e) = &c.error {
        notes.push(format!("socket table unknown: {e}"));
        return notes;
    }
    let probe_local = o.probe.and_then(|p| p.local.as_deref());
    let accepted = || {
        c.accepted
            .iter()
            .filter(move |c| Some(c.peer.as_str()) != probe_local)
    };
    let reading: Vec<&TcpConnection> = accepted()
        .filter(|c| c.server_reading == Some(true) && c.exchange() == Exchange::AwaitingResponse)
        .collect();
    if let Some(r) = reading.first() {
        notes.push(format!(
            "{}: a thread of the server is blocked reading this socket, so the request is not all there yet (a partially sent request: a slow upload, or a client that sends byte by byte, as slowloris does): not work in flight{}",
            r.describe(),
            more(reading.len())
        ));
    }
    let ageless: Vec<&TcpConnection> = accepted()
        .filter(|c| c.exchange() == Exchange::AwaitingResponse && c.waiting_ms().is_none())
        .collect();
    if let Some(r) = ageless.first() {
        notes.push(format!(
            "{}: a request arrived and nothing was sent back, but the OS gives no time of its last byte: context only (--probe URL can prove a hang){}",
            r.describe(),
            more(ageless.len())
        ));
    }
    let quiet: Vec<(&TcpConnection, u64)> = accepted()
        .filter(|c| c.exchange() == Exchange::Responded)
        .filter_map(|c| Some((c, c.last_sent_ms?)))
        .filter(|(_, ms)| Duration::from_millis(*ms) >= th.hung_after)
        .collect();
    if let Some((q, ms)) = quiet.iter().max_by_key(|(_, ms)| *ms) {
        notes.push(format!(
            "{}: data last sent {} ago, after its request: a keep-alive connection at rest, a stream between tokens and a streamed response that stopped look alike in the socket table, so this is context only (--probe URL tells){}",
            q.describe(),
            duration(Duration::from_millis(*ms)),
            more(quiet.len())
        ));
    }
    notes
}

/// ` (and N more)` for a note about the first of `n`.
fn more(n: usize) -> String {
    if n > 1 {
        format!(" (and {} more)", n - 1)
    } else {
        String::new()
    }
}

/// The names of the conditions that held (or did not).
fn names(rule: &[Condition], held: bool) -> String {
    let n: Vec<&str> = rule
        .iter()
        .filter(|c| c.held == held)
        .map(|c| c.condition.as_str())
        .collect();
    n.join(", ")
}

/// The hung rule's conditions for the oldest work in flight, each with the fact it was judged
/// on. The one home of what "hung" needs without a token record: work in flight (a logged
/// request, a connection awaiting its response, the unanswered probe), for longer than
/// --hung-after, while no progress signal advanced (CPU, a running thread, the GPU, the log's
/// progress lines, the heartbeat, an answer to the probe). A heartbeat is one progress signal
/// among these: a fresh one is progress, a stale one never proves a hang by itself. The probe's
/// condition is there only when a probe was sent.
fn conditions(
    o: &Observation,
    th: &Thresholds,
    p: &Progress,
    in_flight: &[Work],
    oldest: &Work,
    j: &mut Judging,
) -> Vec<Condition> {
    let hung_after = duration(th.hung_after);
    let older = match (oldest, oldest.age(o.now)) {
        (Work::Logged(r), Ok(age)) => Condition::new(
            "older than --hung-after",
            age >= th.hung_after,
            format!(
                "in flight for {} since {} (--hung-after {hung_after}; wall clock, as the log's times are)",
                duration(age),
                ts(r.started)
            ),
        ),
        (Work::Connection(..), Ok(age)) => Condition::new(
            "older than --hung-after",
            age >= th.hung_after,
            format!(
                "waiting for {} since its last byte came in (--hung-after {hung_after}; the kernel's clock)",
                duration(age)
            ),
        ),
        (Work::Probe(pr), Ok(age)) => Condition::new(
            "older than --hung-after",
            age >= th.hung_after,
            format!(
                "sent {} ago at {} (--hung-after {hung_after})",
                duration(age),
                ts(pr.sent_at)
            ),
        ),
        (w, Err(ahead)) => {
            let started = w.started(o.now);
            skew(j, &format!("{}'s start", w.describe()), started, ahead);
            Condition::new(
                "older than --hung-after",
                false,
                format!(
                    "its start {} is {} in the future: clock skew",
                    ts(started),
                    duration(ahead)
                ),
            )
        }
    };
    let also = match in_flight.len() {
        0 | 1 => String::new(),
        n => format!("; {} more in flight", n - 1),
    };
    let work = match oldest {
        Work::Logged(r) => format!(
            "{} started while this process ran, not superseded{also}",
            r.describe()
        ),
        Work::Connection(c, _) => format!(
            "{}: a request arrived and nothing was sent back since (socket table){also}",
            c.describe()
        ),
        Work::Probe(_) => format!("{} was sent and not answered{also}", oldest.describe()),
    };
    let mut rule = vec![
        Condition::new("work in flight", true, work),
        older,
        Condition::new(
            "CPU still",
            !p.cpu_busy && p.cpu_percent.is_some(),
            format!("{}; {}", p.cpu_fact, p.threads_fact),
        ),
        Condition::new(
            "GPU still",
            !p.gpu_busy,
            p.gpu_spin.clone().unwrap_or_else(|| {
                p.gpu.map_or_else(
                    || "no GPU use seen for this process".to_string(),
                    GpuUsage::describe,
                )
            }),
        ),
        Condition::new(
            "no progress in the log",
            p.log_progress.is_none(),
            p.log_progress.clone().unwrap_or_else(|| {
                format!("no progress line of this process within --hung-after {hung_after}")
            }),
        ),
        Condition::new(
            "no fresh heartbeat",
            p.heartbeat_fresh != Some(true),
            match &p.beat {
                Some(b) => b.clone(),
                None => "no heartbeat file".to_string(),
            },
        ),
    ];
    if let Some(why) = o
        .series
        .last()
        .filter(|p| p.state == 't')
        .and_then(|p| stopped(p.state))
    {
        // A worker someone is debugging is never called hung, so never restarted.
        rule.push(Condition::new(
            "not held by a debugger",
            false,
            why.to_string(),
        ));
    }
    let waiting = waiting_on_client(o);
    rule.push(Condition::new(
        "not waiting on its client",
        waiting.is_none(),
        waiting.unwrap_or_else(|| {
            "no thread seen blocked writing to a client that does not read, and no generation waiting on its consumer".to_string()
        }),
    ));
    if let Some(pr) = o.probe {
        rule.push(Condition::new(
            "no answer to the probe",
            pr.waiting(),
            probe_note(pr),
        ));
    }
    rule
}

/// A server whose generation thread died, as its log says (mlx-lm #1472/#1505): it accepts
/// requests and may answer `/health`, but generates nothing, so every request waits forever.
/// Hung with no request needed: the log's line is the proof, unless the token record shows a
/// generation's progress after it.
fn generation_thread_died(o: &Observation, p: &Progress, j: &mut Judging) {
    let Some(d) = o.log.and_then(|l| l.generation_died.as_ref()) else {
        return;
    };
    if o.tokens
        .is_some_and(|t| t.record.last_progress.is_some_and(|at| at > d.at))
    {
        return;
    }
    j.findings.push(Finding {
        verdict: Verdict::Hung,
        evidence: vec![
            format!(
                "the server's generation thread died at {} (the log's line {}: {}): it generates nothing more while its HTTP side answers, so every request waits forever (mlx-lm #1472/#1505; /health still says 200 before mlx-lm 0.32, 503 from 0.32)",
                ts(d.at),
                d.line,
                d.message
            ),
            format!("no generation progress logged since; {}", p.cpu_fact),
        ],
    });
}

/// What a stopped process's state letter means, for `T` (stopped by a signal) and `t` (held
/// by a debugger); `None` for the others.
pub fn stopped(state: char) -> Option<&'static str> {
    match state {
        'T' => Some(
            "stopped by a signal (SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU): it runs no code until SIGCONT (`kill -CONT PID`)",
        ),
        't' => Some(
            "held by a debugger or tracer (tracing stop): it runs when the debugger lets it go",
        ),
        _ => None,
    }
}

/// How strongly the evidence says nothing is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proof {
    /// A source that would show a waiting request shows none (a log that proves work in
    /// flight, the socket table, a token record not generating); a stream between tokens may
    /// still hide in a connection at rest.
    NoneWaiting,
    /// Not even a connection: the socket table, read, shows no accepted connection at all.
    Everything,
}

/// Whether a source that would show work in flight was read and shows none.
fn nothing_in_flight(o: &Observation) -> Option<Proof> {
    let probe_local = o.probe.and_then(|p| p.local.as_deref());
    let table = o
        .connections
        .filter(|c| c.error.is_none() && !c.listening.is_empty());
    // (The probe's own generation is a request: never "nothing at all" while one was sent.)
    if let Some(c) = table.filter(|_| o.probe.is_none())
        && !c
            .accepted
            .iter()
            .any(|c| Some(c.peer.as_str()) != probe_local)
    {
        return Some(Proof::Everything);
    }
    let log = o.log.is_some_and(|l| l.proves_in_flight);
    let record = o
        .tokens
        .is_some_and(|t| t.record.generating_since.is_none());
    // An answered probe: the generation path took a request and finished it.
    let answered = o.probe.is_some_and(|p| p.state == ProbeState::Answered);
    (table.is_some() || log || record || answered).then_some(Proof::NoneWaiting)
}

/// Why the worker waits on its client or consumer rather than on itself, where something
/// shows it: a thread blocked writing to an accepted connection whose client does not take the
/// bytes queued (socket table and system calls), or a generation whose last token was handed
/// to its consumer, which has not asked for the next (token record). A worker waiting on its
/// client is never hung: the client, not the worker, must move.
fn waiting_on_client(o: &Observation) -> Option<String> {
    if let Some(c) = o
        .connections
        .into_iter()
        .flat_map(|c| &c.accepted)
        .find(|c| c.server_writing == Some(true))
    {
        return Some(format!(
            "{}: a server thread is blocked writing to it with {} not taken by the client (the socket table and the thread's system call): the client does not read",
            c.describe(),
            bytes(c.tx_queue)
        ));
    }
    let t = o.tokens?;
    let w = t
        .record
        .waiting_since
        .filter(|_| t.record.generating_since.is_some())?;
    Some(format!(
        "the token record {}: the last token was handed to the consumer at {} and the consumer has not asked for the next one since",
        t.source,
        ts(w)
    ))
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
        notes.push(match r.pid.filter(|&p| p != last.pid) {
            Some(p) => format!(
                "{} was in flight when the previous {who} ended (PID {p}, gone; the log names its pid): not evidence about this process (PID {}){}",
                r.describe(),
                last.pid,
                more(l.earlier.len())
            ),
            None => format!(
            "{} was in flight when the previous {who} ended: it started {}, before this process (PID {}, started {}){}; not evidence about this process",
            r.describe(),
            ts(r.started),
            last.pid,
            ts(last.start_time),
            more(l.earlier.len())
            ),
        });
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
