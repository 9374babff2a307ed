//! Gathering a postmortem's facts from the snapshots and the server log: the incident's
//! worker, the request it stopped on, its timeouts, the verdicts the rules already gave, and
//! its memory series judged by the one leak rule.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::assess::Thresholds;
use super::leak;
use crate::fmt::{duration, thousands};
use crate::logs;
use crate::model::{Incident, MemorySample, Snapshot, Verdict};

/// The facts of `snaps` (sorted oldest first, not empty) and the log read for them.
pub fn incident(
    snaps: &[(PathBuf, Snapshot)],
    log_path: Option<&Path>,
    log: Option<&logs::Outcome>,
) -> Incident {
    let (worst, series) = worker_series(snaps);
    let (_, last) = series[series.len() - 1];
    let w = &last.worker;
    let registered_model = last.registry.as_ref().and_then(|r| r.model.clone());
    let model = registered_model.or(w.model.clone());
    let trigger = log.and_then(|o| {
        let triggers = &o.analysis.hang_triggers;
        triggers.iter().find(|h| h.worker == worst).cloned()
    });
    let stats = log
        .and_then(|o| o.analysis.workers.get(&worst).cloned())
        .or_else(|| last.log.as_ref().and_then(|l| l.stats.clone()));
    let oldest = trigger
        .as_ref()
        .map(|t| t.request.clone())
        .or_else(|| w.in_flight.first().cloned());
    let hang_start = oldest.as_ref().map(|r| r.started);
    let hang_for = hang_start.map(|s| duration((last.taken_at - s).to_std().unwrap_or_default()));
    let timeouts = log.map(|o| timeouts(o, &worst)).unwrap_or_default();
    let ever = |v: Verdict| series.iter().any(|(_, s)| s.worker.verdict == v);
    let (hung, crashed) = (ever(Verdict::Hung), ever(Verdict::Crashed));
    let cpu_idle = w
        .cpu_percent
        .is_some_and(|c| c < Thresholds::default().progress_cpu_percent);
    let mem = memory(&series, last);
    let leaking = mem.growing
        || series.iter().any(|(_, s)| {
            s.worker
                .findings
                .iter()
                .any(|f| f.verdict == Verdict::Leaking)
        });
    let prompt = oldest
        .as_ref()
        .and_then(|r| r.prompt_chars)
        .map(|c| format!("{} chars, {:.1} KB", thousands(c), c as f64 / 1000.0));
    let before = stats.as_ref().map(|s| thousands(s.completed));
    let runtime = (w.elapsed_secs).map(|e| duration(std::time::Duration::from_secs(e)));
    let last_done = trigger
        .as_ref()
        .and_then(|t| t.last_completion)
        .or_else(|| log.and_then(|o| last_success(o, &worst)));
    let served = stats.as_ref().and_then(|s| {
        let until = last_done.or(s.last)?;
        Some((s.first?, until, s.tokens, s.mean_tokens_per_sec))
    });

    Incident {
        worker: worst,
        series: series.into_iter().cloned().collect(),
        snapshots_read: snaps.len(),
        log_path: log_path.map(Path::to_path_buf),
        log_anomalies: log.map(|o| o.analysis.anomalies.clone()),
        model,
        trigger,
        stats,
        oldest,
        hang_start,
        hang_for,
        timeouts,
        hung,
        crashed,
        cpu_idle,
        metric: mem.metric,
        mem_first: mem.first,
        mem_last: mem.last,
        leaking,
        trend_text: mem.trend_text,
        prompt,
        before,
        runtime,
        last_done,
        served,
    }
}

/// The incident's worker (the most severe verdict in the newest snapshots, newest first) and
/// its snapshots.
fn worker_series(snaps: &[(PathBuf, Snapshot)]) -> (String, Vec<&(PathBuf, Snapshot)>) {
    let worst = snaps
        .iter()
        .rev()
        .max_by_key(|(_, s)| s.worker.verdict)
        .map(|(_, s)| s.name.clone())
        .unwrap_or_default();
    let series: Vec<&(PathBuf, Snapshot)> = snaps.iter().filter(|(_, s)| s.name == worst).collect();
    (worst, series)
}

/// When the log saw the worker's requests time out.
fn timeouts(o: &logs::Outcome, worker: &str) -> Vec<DateTime<Utc>> {
    o.analysis
        .anomalies
        .iter()
        .filter(|a| a.kind == "timeout" && a.worker == worker)
        .map(|a| a.time)
        .collect()
}

/// The worker's last successful request in the log.
fn last_success(o: &logs::Outcome, worker: &str) -> Option<DateTime<Utc>> {
    o.analysis
        .last_successes
        .get(worker)?
        .last()
        .map(|s| s.time)
}

/// The incident worker's memory across its snapshots, judged by the one leak rule.
struct Memory {
    metric: &'static str,
    first: Option<u64>,
    last: Option<u64>,
    /// The trend is a leak by the rule.
    growing: bool,
    trend_text: String,
}

/// The memory series of the incident's worker across its snapshots, judged by the one leak
/// rule (`leak::judge`); the snapshots were taken with the default rule unless their findings
/// say otherwise.
fn memory(series: &[&(PathBuf, Snapshot)], last: &Snapshot) -> Memory {
    let first = &series[0].1;
    let metric = if last
        .process
        .as_ref()
        .is_some_and(|p| p.footprint_bytes.is_some())
    {
        "footprint"
    } else {
        "RSS"
    };
    let samples: Vec<MemorySample> = series
        .iter()
        .filter_map(|(_, s)| {
            Some(MemorySample {
                secs: (s.taken_at - first.taken_at).as_seconds_f64(),
                bytes: s.process.as_ref()?.leak_metric_bytes(),
                busy: s
                    .worker
                    .in_flight_known
                    .then_some(!s.worker.in_flight.is_empty()),
            })
        })
        .collect();
    let rule = leak::Rule::DEFAULT;
    let judged = leak::judge(&samples, &rule);
    let readings = samples.len();
    let trend_text = match &judged {
        Some(j) => format!(
            "{} across {} snapshots: {}",
            if j.is_leak() { "Growing" } else { "Not a leak" },
            readings,
            j.describe(metric, &rule)
        ),
        None => format!("Unknown: {readings} snapshot(s) at one time"),
    };
    Memory {
        metric,
        first: samples.first().map(|p| p.bytes),
        last: samples.last().map(|p| p.bytes),
        growing: judged.as_ref().is_some_and(|j| j.is_leak()),
        trend_text,
    }
}
