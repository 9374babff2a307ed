//! Taking snapshots: the seed's step 8, complete and safe to run from cron or launchd.
//!
//! For each worker: the `check` verdict and evidence, a fresh process reading, every thread and
//! descriptor, the registry entry, system memory, the stacks the safe sources give and, with a
//! log, the worker's requests and the log tail; saved through [`crate::store`] as JSON (for
//! `history`, `postmortem`) and text (for people). `snapshot`, `watch` and `repro` call it.

use std::path::PathBuf;
use std::time::Duration;

use crate::diagnose::check::{CheckOptions, check_with_log};
use crate::model::{
    CheckReport, SCHEMA_VERSION, SNAPSHOT_KIND, SavedSnapshot, Snapshot, SnapshotLog,
    SnapshotReport, Status, Verdict, WorkerReport,
};
use crate::platform::Platform;
use crate::{registry, render, store};

/// Which workers to snapshot, where, and what retention to apply.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    pub check: CheckOptions,
    /// Workers to snapshot (empty: every worker found).
    pub pids: Vec<u32>,
    /// Directory for the snapshots (`None`: [`store::default_dir`]).
    pub dir: Option<PathBuf>,
    /// Only snapshot workers that are not healthy.
    pub on_finding: bool,
    /// Keep only the newest N snapshots per worker PID.
    pub keep: Option<usize>,
    /// Delete mlsdiag's snapshots older than this.
    pub max_age: Option<Duration>,
    /// Log lines kept in each snapshot.
    pub tail: usize,
}

fn build(
    w: &WorkerReport,
    opts: &SnapshotOptions,
    platform: &dyn Platform,
    outcome: Option<&crate::logs::Outcome>,
    registry: Option<&registry::Registry>,
) -> Snapshot {
    let mut errors = Vec::new();
    let process = platform.process(w.pid).ok();
    let alive = process.as_ref().is_some_and(|p| !p.is_zombie());
    let threads = if alive {
        platform
            .threads(w.pid)
            .map_err(|e| errors.push(format!("threads: {e}")))
            .ok()
    } else {
        None
    };
    let fds = if alive {
        let parent = process.as_ref().map(|p| p.ppid).unwrap_or(0);
        platform
            .fds(w.pid, Some(&[parent]))
            .map_err(|e| errors.push(format!("fds: {e}")))
            .ok()
    } else {
        None
    };
    // The requests in flight are the check's, attributed to this process there (one home for
    // which log lines are about which process: `diagnose::check`).
    let log = opts
        .check
        .log
        .as_ref()
        .zip(outcome)
        .map(|(path, o)| SnapshotLog {
            path: path.display().to_string(),
            format: o.format.clone(),
            stats: o.analysis.workers.get(&w.name).cloned(),
            in_flight: w.in_flight.clone(),
            last_successes: o
                .analysis
                .last_successes
                .get(&w.name)
                .cloned()
                .unwrap_or_default(),
            tail: store::tail(path, opts.tail),
        });
    let stacks = alive.then(|| {
        let how = crate::stacks::collect::Collect {
            faulthandler: crate::progress::faulthandler_file(registry, w.pid, platform),
            ..Default::default()
        };
        crate::stacks::collect::collect(platform, w.pid, &how)
    });
    Snapshot {
        schema_version: SCHEMA_VERSION,
        kind: SNAPSHOT_KIND.into(),
        taken_at: platform.now(),
        host: store::hostname(),
        os: std::env::consts::OS.into(),
        mlsdiag_version: env!("CARGO_PKG_VERSION").into(),
        pid: w.pid,
        name: w.name.clone(),
        registry_path: if opts.check.no_registry {
            "none (--no-registry)".to_string()
        } else {
            opts.check.registry.display().to_string()
        },
        registry: registry.and_then(|r| r.get(w.pid)).cloned(),
        worker: w.clone(),
        process,
        threads,
        fds,
        errors,
        system_memory: platform.system_memory().ok(),
        log,
        stacks,
        clock: platform.monotonic(),
    }
}

/// Saves the snapshot of one worker already assessed (a `watch` round's) into `dir`, as
/// [`store::prepare_dir`] opened it, after removing what a killed write left there.
pub fn save_one(
    w: &WorkerReport,
    opts: &SnapshotOptions,
    platform: &dyn Platform,
    outcome: Option<&crate::logs::Outcome>,
    registry: Option<&registry::Registry>,
    dir: &crate::output::Dir,
) -> anyhow::Result<SavedSnapshot> {
    store::remove_stale_temps(dir, std::time::SystemTime::now());
    save(w, opts, platform, outcome, registry, dir)
}

fn save(
    w: &WorkerReport,
    opts: &SnapshotOptions,
    platform: &dyn Platform,
    outcome: Option<&crate::logs::Outcome>,
    registry: Option<&registry::Registry>,
    dir: &crate::output::Dir,
) -> anyhow::Result<SavedSnapshot> {
    let snap = build(w, opts, platform, outcome, registry);
    let json = store::save(dir, &snap, &render::snapshot::text(&snap))?;
    Ok(SavedSnapshot {
        pid: w.pid,
        name: w.name.clone(),
        verdict: w.verdict,
        txt: json.with_extension("txt").display().to_string(),
        json: json.display().to_string(),
    })
}

/// Take the snapshots (and apply retention); `run` prints, `repro` calls this on a stall.
/// Whenever it opens the directory, it first removes what a killed write left there.
pub fn take(
    opts: &SnapshotOptions,
    platform: &dyn Platform,
) -> anyhow::Result<(SnapshotReport, CheckReport)> {
    let (report, outcome) = check_with_log(&opts.check, platform)?;
    for pid in &opts.pids {
        anyhow::ensure!(
            report.workers.iter().any(|w| w.pid == *pid),
            "PID {pid} is not among the workers found ({} and the registry); widen --pattern",
            opts.check
                .pattern
                .as_ref()
                .map_or("automatic discovery".to_string(), |p| format!(
                    "--pattern {p:?}"
                ))
        );
    }
    let registry = opts.check.registry();
    let chosen: Vec<&WorkerReport> = report
        .workers
        .iter()
        .filter(|w| opts.pids.is_empty() || opts.pids.contains(&w.pid))
        .filter(|w| !opts.on_finding || w.verdict != Verdict::Healthy)
        .collect();
    let status = chosen.iter().fold(
        if opts.pids.is_empty() {
            report.status
        } else {
            Status::Ok
        },
        |s, w| s.worst(w.verdict.status()),
    );
    let dir = opts.dir.clone().unwrap_or_else(store::default_dir);
    let mut saved = Vec::new();
    let pruning = opts.keep.is_some() || opts.max_age.is_some();
    // Opened once: every file below is written and removed relative to this handle.
    let handle = if !chosen.is_empty() || (pruning && dir.is_dir()) {
        Some(store::prepare_dir(&dir)?)
    } else {
        None
    };
    let cleaned = match &handle {
        Some(h) => store::remove_stale_temps(h, std::time::SystemTime::now()),
        None => vec![],
    };
    for w in &chosen {
        if let Some(h) = &handle {
            saved.push(save(
                w,
                opts,
                platform,
                outcome.as_ref(),
                registry.as_ref(),
                h,
            )?);
        }
    }
    let deleted = match (&handle, pruning) {
        (Some(h), true) => store::prune(h, opts.keep, opts.max_age, std::time::SystemTime::now())?,
        _ => vec![],
    };
    let result = SnapshotReport {
        schema_version: SCHEMA_VERSION,
        command: "snapshot",
        status,
        dir: dir.display().to_string(),
        saved,
        deleted: deleted.iter().map(|p| p.display().to_string()).collect(),
        cleaned: cleaned.iter().map(|p| p.display().to_string()).collect(),
    };
    Ok((result, report))
}
