//! `mlsdiag history`: what only time shows. Leaks are slopes across snapshots; a hang is CPU
//! time that stops moving while a request waits; a restart is a new PID under the same name.
//! `check --history DIR` folds the same findings into a live check.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Ctx;
use super::check::CheckReport;
use crate::classify::{Finding, Status, Verdict};
use crate::cli::HistoryArgs;
use crate::evidence::{self, Snapshot};
use crate::render::{self, SCHEMA_VERSION, bytes, duration, local_time, sanitize};
use crate::trend::{self, Trend};

#[derive(Debug, Serialize, Clone)]
pub struct Restart {
    pub at: DateTime<Utc>,
    pub old_pid: u32,
    pub new_pid: u32,
}

#[derive(Debug, Serialize, Clone)]
pub struct WorkerHistory {
    pub name: String,
    /// The PID of the newest snapshot.
    pub pid: u32,
    pub snapshots: usize,
    /// Snapshots of the current PID.
    pub snapshots_of_pid: usize,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// `footprint` on macOS, else `rss`.
    pub memory_metric: &'static str,
    pub memory_first_bytes: Option<u64>,
    pub memory_last_bytes: Option<u64>,
    pub memory_trend: Option<Trend>,
    /// CPU time unchanged and a request in flight in every snapshot since this time.
    pub frozen_since: Option<DateTime<Utc>>,
    pub frozen_snapshots: usize,
    pub restarts: Vec<Restart>,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
}

fn memory(s: &Snapshot) -> Option<u64> {
    s.process.as_ref().map(|p| p.leak_metric_bytes())
}

fn in_flight(s: &Snapshot) -> bool {
    !s.worker.in_flight.is_empty() || s.log.as_ref().is_some_and(|l| !l.in_flight.is_empty())
}

/// Judge each worker's snapshot series (sorted oldest first).
pub fn analyze(snaps: &[Snapshot], leak_mib_per_min: f64) -> Vec<WorkerHistory> {
    let mut names: Vec<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let series: Vec<&Snapshot> = snaps.iter().filter(|s| s.name == name).collect();
        let Some(last) = series.last() else { continue };
        let restarts: Vec<Restart> = series
            .windows(2)
            .filter(|w| w[0].pid != w[1].pid)
            .map(|w| Restart {
                at: w[1].taken_at,
                old_pid: w[0].pid,
                new_pid: w[1].pid,
            })
            .collect();
        let current: Vec<&Snapshot> = series
            .iter()
            .copied()
            .filter(|s| s.pid == last.pid && s.process.is_some())
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
        let t0 = current.first().map(|s| s.taken_at);
        let points: Vec<(f64, u64)> = current
            .iter()
            .filter_map(|s| Some(((s.taken_at - t0?).as_seconds_f64(), memory(s)?)))
            .collect();
        let memory_trend = trend::fit(&points);
        // Walk back from the newest snapshot while CPU time stands still with work in flight.
        let mut frozen = 0;
        for w in current.windows(2).rev() {
            let (a, b) = (w[0].process.as_ref(), w[1].process.as_ref());
            let same_cpu = a.zip(b).is_some_and(|(a, b)| a.cpu_ns() == b.cpu_ns());
            if same_cpu && in_flight(w[0]) && in_flight(w[1]) {
                frozen = if frozen == 0 { 2 } else { frozen + 1 };
            } else {
                break;
            }
        }
        let frozen_since = (frozen >= 2).then(|| current[current.len() - frozen].taken_at);
        let mut findings = Vec::new();
        if let Some(since) = frozen_since {
            findings.push(Finding {
                verdict: Verdict::Hung,
                evidence: vec![format!(
                    "history: CPU time unchanged across {frozen} snapshots since {} ({}) with a request in flight",
                    local_time(since),
                    duration((last.taken_at - since).to_std().unwrap_or_default())
                )],
            });
        }
        if let Some(t) = memory_trend.filter(|t| t.is_leak(leak_mib_per_min)) {
            findings.push(Finding {
                verdict: Verdict::Leaking,
                evidence: vec![format!(
                    "history: {metric} {} → {} over {} snapshots: {:+.1} MiB/min, R² {:.2}",
                    bytes(points.first().map_or(0, |p| p.1)),
                    bytes(points.last().map_or(0, |p| p.1)),
                    t.samples,
                    t.slope_mib_per_min,
                    t.r_squared
                )],
            });
        }
        let verdict = findings
            .iter()
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Healthy);
        out.push(WorkerHistory {
            name: name.to_string(),
            pid: last.pid,
            snapshots: series.len(),
            snapshots_of_pid: current.len(),
            first: series[0].taken_at,
            last: last.taken_at,
            memory_metric: metric,
            memory_first_bytes: points.first().map(|p| p.1),
            memory_last_bytes: points.last().map(|p| p.1),
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
pub fn fold_into(report: &mut CheckReport, dir: &Path) -> anyhow::Result<()> {
    let (snaps, problems) = evidence::load_all(dir)?;
    let snaps: Vec<Snapshot> = snaps.into_iter().map(|(_, s)| s).collect();
    for p in problems {
        report.notes.push(format!("history: {p}"));
    }
    let history = analyze(&snaps, 10.0);
    for w in report.workers.iter_mut() {
        let Some(h) = history.iter().find(|h| h.pid == w.pid && h.name == w.name) else {
            continue;
        };
        for f in &h.findings {
            if !w.findings.iter().any(|x| x.verdict == f.verdict) {
                w.findings.push(f.clone());
            }
        }
        if !h.restarts.is_empty() {
            w.notes.push(format!(
                "history: {} restart(s) under this name",
                h.restarts.len()
            ));
        }
        w.verdict = w
            .findings
            .iter()
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Healthy);
        report.status = report.status.worst(w.verdict.status());
    }
    report.exit_code = report.status.code();
    report.summary.clear();
    for w in &report.workers {
        *report.summary.entry(w.verdict).or_insert(0) += 1;
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub dir: String,
    pub status: Status,
    pub workers: Vec<WorkerHistory>,
    pub unreadable: Vec<String>,
}

pub fn run(args: &HistoryArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let dir = args.dir.clone().unwrap_or_else(evidence::default_dir);
    let (snaps, unreadable) = evidence::load_all(&dir)?;
    let snaps: Vec<Snapshot> = snaps
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| args.pid.is_none_or(|p| p == s.pid))
        .collect();
    let workers = analyze(&snaps, args.leak_threshold);
    let status = workers
        .iter()
        .fold(Status::Ok, |s, w| s.worst(w.verdict.status()));
    let report = HistoryReport {
        schema_version: SCHEMA_VERSION,
        command: "history",
        dir: dir.display().to_string(),
        status,
        workers,
        unreadable,
    };
    if ctx.json {
        render::json(out, &report)?;
        return Ok(status);
    }
    if report.workers.is_empty() {
        writeln!(out, "no snapshots in {}", report.dir)?;
    }
    let mut t = ctx.style.table(&[
        "NAME",
        "PID",
        "SNAPSHOTS",
        "SPAN",
        "MEMORY",
        "TREND",
        "VERDICT",
    ]);
    for w in &report.workers {
        t.add_row(vec![
            comfy_table::Cell::new(sanitize(&w.name)),
            comfy_table::Cell::new(w.pid),
            comfy_table::Cell::new(format!("{} ({} this PID)", w.snapshots, w.snapshots_of_pid)),
            comfy_table::Cell::new(duration((w.last - w.first).to_std().unwrap_or_default())),
            comfy_table::Cell::new(format!(
                "{} {} → {}",
                w.memory_metric,
                w.memory_first_bytes.map_or("-".into(), bytes),
                w.memory_last_bytes.map_or("-".into(), bytes)
            )),
            comfy_table::Cell::new(w.memory_trend.map_or("-".into(), |t| {
                format!("{:+.1} MiB/min R² {:.2}", t.slope_mib_per_min, t.r_squared)
            })),
            ctx.style.verdict_cell(w.verdict),
        ]);
    }
    if !report.workers.is_empty() {
        writeln!(out, "{t}")?;
    }
    for w in &report.workers {
        for f in &w.findings {
            for e in &f.evidence {
                writeln!(out, "{} ✗ [{}] {}", sanitize(&w.name), f.verdict.label(), e)?;
            }
        }
        for r in &w.restarts {
            writeln!(
                out,
                "{} restarted at {}: PID {} → {}",
                sanitize(&w.name),
                local_time(r.at),
                r.old_pid,
                r.new_pid
            )?;
        }
    }
    for u in &report.unreadable {
        writeln!(out, "note: {u}")?;
    }
    Ok(status)
}
