//! `mlsdiag snapshot`: the seed's step 8, complete and safe to run from cron or launchd.
//!
//! For each worker: the `check` verdict and evidence, a fresh process reading, every thread and
//! descriptor, the registry entry, system memory and, with `--log`, the worker's requests and
//! the log tail; saved as `worker_<pid>_<stamp>.json` (for `history`, `postmortem`) and `.txt`
//! (for people). Retention deletes only mlsdiag's own files.

use std::fmt::Write as _;
use std::io::Write;

use serde::Serialize;

use super::Ctx;
use super::check;
use crate::cli::SnapshotArgs;
use crate::evidence;
use crate::fmt::{bytes, duration, sanitize};
use crate::model;
use crate::model::SCHEMA_VERSION;
use crate::model::WorkerReport;
use crate::model::{FdInfo, ThreadInfo};
use crate::model::{SNAPSHOT_KIND, Snapshot, SnapshotLog};
use crate::model::{Status, Verdict};
use crate::registry;
use crate::render;

#[derive(Debug, Serialize)]
pub struct Saved {
    pub pid: u32,
    pub name: String,
    pub verdict: Verdict,
    pub json: String,
    pub txt: String,
}

#[derive(Debug, Serialize)]
pub struct SnapshotReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub status: Status,
    pub dir: String,
    pub saved: Vec<Saved>,
    pub deleted: Vec<String>,
}

/// The readable form of a snapshot, in the spirit of the seed's step-8 file.
pub fn text(s: &Snapshot) -> String {
    let w = &s.worker;
    let mut t = String::new();
    let local = |d: chrono::DateTime<chrono::Utc>| {
        d.with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    };
    let _ = writeln!(t, "=== Worker Diagnostic Snapshot ===");
    let _ = writeln!(t, "Date: {}", local(s.taken_at));
    let _ = writeln!(
        t,
        "Host: {} ({}), mlsdiag {}",
        s.host, s.os, s.mlsdiag_version
    );
    let _ = writeln!(
        t,
        "PID: {}  Name: {}  Model: {}",
        s.pid,
        sanitize(&s.name),
        sanitize(w.model.as_deref().unwrap_or("-"))
    );
    let _ = writeln!(
        t,
        "\n=== Verdict: {} ({}) ===",
        w.verdict.label().to_uppercase(),
        w.activity.label()
    );
    for f in &w.findings {
        for e in &f.evidence {
            let _ = writeln!(t, "  ✗ [{}] {}", f.verdict.label(), sanitize(e));
        }
    }
    for n in &w.notes {
        let _ = writeln!(t, "  · {}", sanitize(n));
    }
    let _ = writeln!(t, "\n=== Process State ===");
    match &s.process {
        Some(p) => {
            let _ = writeln!(
                t,
                "PID {} PPID {} UID {} STATE {} THREADS {} RSS {} VSZ {}{} CPU user {:.2}s system {:.2}s started {}",
                p.pid,
                p.ppid,
                p.uid,
                p.state,
                p.threads,
                bytes(p.rss_bytes),
                bytes(p.vsz_bytes),
                p.footprint_bytes
                    .map(|f| format!(" FOOTPRINT {}", bytes(f)))
                    .unwrap_or_default(),
                p.cpu_user_ns as f64 / 1e9,
                p.cpu_system_ns as f64 / 1e9,
                local(p.start_time)
            );
            let _ = writeln!(t, "Command: {}", sanitize(&p.command()));
        }
        None => {
            let _ = writeln!(
                t,
                "(no process: {})",
                w.findings
                    .first()
                    .and_then(|f| f.evidence.first())
                    .map_or("gone", |e| e)
            );
        }
    }
    if let Some(threads) = &s.threads {
        let _ = writeln!(t, "\n=== Threads ({}) ===", threads.len());
        for th in threads {
            let _ = writeln!(t, "{}", thread_line(th));
        }
    }
    if let Some(fds) = &s.fds {
        let _ = writeln!(t, "\n=== File Descriptors ({}) ===", fds.len());
        for f in fds {
            let _ = writeln!(t, "{}", fd_line(f));
        }
        if let Some(ipc) = &w.ipc {
            let _ = writeln!(t, "{}", ipc.line());
        }
    }
    for e in &s.errors {
        let _ = writeln!(t, "note: {}", sanitize(e));
    }
    let _ = writeln!(t, "\n=== Worker Registry ({}) ===", s.registry_path);
    match &s.registry {
        Some(r) => {
            let _ = writeln!(t, "{}", serde_json::to_string(r).unwrap_or_default());
        }
        None => {
            let _ = writeln!(t, "not listed");
        }
    }
    if let Some(m) = &s.system_memory {
        let _ = writeln!(t, "\n=== System Memory ===");
        let _ = writeln!(
            t,
            "total {}, free {}, available {}, cached {}, swap {} of {} free; pressure {} ({})",
            bytes(m.total_bytes),
            bytes(m.free_bytes),
            bytes(m.available_bytes),
            bytes(m.cached_bytes),
            bytes(m.swap_free_bytes),
            bytes(m.swap_total_bytes),
            m.pressure.label(),
            m.pressure_evidence
        );
    }
    if let Some(st) = &s.stacks {
        let _ = writeln!(t, "\n=== Stacks ===");
        for src in &st.sources {
            let _ = writeln!(
                t,
                "  {} {}: {}",
                if src.ok { "✓" } else { "✗" },
                src.name,
                sanitize(&src.detail)
            );
        }
        for th in st
            .threads
            .iter()
            .chain(&st.python_threads)
            .filter(|t| !t.python.is_empty() || !t.native.is_empty())
        {
            let _ = writeln!(
                t,
                "  thread {} {}",
                th.tid,
                sanitize(th.name.as_deref().unwrap_or(""))
            );
            for f in th.python.iter().rev().take(8) {
                let _ = writeln!(
                    t,
                    "    py {} ({}:{})",
                    sanitize(&f.function),
                    sanitize(f.location.as_deref().unwrap_or("?")),
                    f.line.unwrap_or(0)
                );
            }
            for f in th.native.iter().rev().take(8) {
                let _ = writeln!(t, "    c  {}", sanitize(&f.function));
            }
        }
        for m in &st.signatures {
            let _ = writeln!(t, "  matches {}: {} ({})", m.id, m.title, m.url);
        }
    }
    if let Some(l) = &s.log {
        let _ = writeln!(t, "\n=== Log ({}, format {}) ===", l.path, l.format);
        if let Some(st) = &l.stats {
            let _ = writeln!(
                t,
                "requests: {} started, {} completed, {} failed, {} timed out; {} tokens",
                st.started, st.completed, st.failed, st.timed_out, st.tokens
            );
        }
        for r in &l.in_flight {
            let _ = writeln!(
                t,
                "in flight: {} since {} ({} chars, max_tokens {}), {} timeout(s)",
                r.id.as_ref().map_or("request".into(), |i| i.to_string()),
                local(r.started),
                r.prompt_chars.map_or("?".into(), |c| c.to_string()),
                r.max_tokens.map_or("?".into(), |c| c.to_string()),
                r.timeouts.len()
            );
        }
        let _ = writeln!(t, "--- last {} lines ---", l.tail.len());
        for line in &l.tail {
            let _ = writeln!(t, "{}", sanitize(line));
        }
    }
    t
}

fn thread_line(th: &ThreadInfo) -> String {
    format!(
        "  {:>8} {:<16} {} user {:.2}s sys {:.2}s {}{}",
        th.tid,
        sanitize(&th.name),
        th.state,
        th.cpu_user_ns as f64 / 1e9,
        th.cpu_system_ns as f64 / 1e9,
        th.wait_channel.clone().unwrap_or_default(),
        th.sleep_secs
            .map(|s| format!(" asleep {}", duration(std::time::Duration::from_secs(s))))
            .unwrap_or_default()
    )
}

fn fd_line(f: &FdInfo) -> String {
    let peers: Vec<String> = f
        .peers
        .iter()
        .map(|p| format!("{} {} fd {}", p.pid, sanitize(&p.name), p.fd))
        .collect();
    format!(
        "  {:>4} {:<7} {}{}{}",
        f.fd,
        f.kind.label(),
        sanitize(&f.target),
        f.state
            .as_ref()
            .map(|s| format!(" ({s})"))
            .unwrap_or_default(),
        if peers.is_empty() {
            String::new()
        } else {
            format!(" <-> {}", peers.join(", "))
        }
    )
}

fn build(
    w: &WorkerReport,
    args: &SnapshotArgs,
    ctx: &Ctx,
    outcome: Option<&crate::logs::Outcome>,
    registry: Option<&registry::Registry>,
) -> Snapshot {
    let platform = ctx.platform.as_ref();
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
    let log = args.check.log.as_ref().zip(outcome).map(|(path, o)| {
        let part = o
            .analysis
            .for_worker(Some(&w.name), w.pid, false, w.started_at);
        SnapshotLog {
            path: path.display().to_string(),
            format: o.format.clone(),
            stats: o.analysis.workers.get(&w.name).cloned(),
            in_flight: part.in_flight,
            last_successes: o
                .analysis
                .last_successes
                .get(&w.name)
                .cloned()
                .unwrap_or_default(),
            tail: evidence::tail(path, args.tail),
        }
    });
    let stacks = alive.then(|| {
        let owner = platform.process(w.pid).ok().map(|p| p.uid);
        let how = crate::stacks::collect::Collect {
            faulthandler: registry
                .and_then(|r| Some((r, r.get(w.pid)?)))
                .and_then(|(r, e)| r.worker_file(e, "faulthandler", owner).ok())
                .flatten(),
            ..Default::default()
        };
        crate::stacks::collect::collect(platform, w.pid, &how)
    });
    Snapshot {
        schema_version: SCHEMA_VERSION,
        kind: SNAPSHOT_KIND.into(),
        taken_at: platform.now(),
        host: evidence::hostname(),
        os: std::env::consts::OS.into(),
        mlsdiag_version: env!("CARGO_PKG_VERSION").into(),
        pid: w.pid,
        name: w.name.clone(),
        registry_path: args.check.discovery.registry.display().to_string(),
        registry: registry.and_then(|r| r.get(w.pid)).cloned(),
        worker: w.clone(),
        process,
        threads,
        fds,
        errors,
        system_memory: platform.system_memory().ok(),
        log,
        stacks,
    }
}

/// Take the snapshots (and apply retention); `run` prints, `repro` calls this on a stall.
/// Saves the snapshot of one worker already assessed (by this check, or a `watch` round) into
/// `dir`, as [`evidence::prepare_dir`] opened it.
pub fn save_one(
    w: &WorkerReport,
    args: &SnapshotArgs,
    ctx: &Ctx,
    outcome: Option<&crate::logs::Outcome>,
    registry: Option<&registry::Registry>,
    dir: &crate::output::Dir,
) -> anyhow::Result<Saved> {
    let snap = build(w, args, ctx, outcome, registry);
    let json = evidence::save(dir, &snap, &text(&snap))?;
    Ok(Saved {
        pid: w.pid,
        name: w.name.clone(),
        verdict: w.verdict,
        txt: json.with_extension("txt").display().to_string(),
        json: json.display().to_string(),
    })
}

pub fn take(
    args: &SnapshotArgs,
    ctx: &Ctx,
) -> anyhow::Result<(SnapshotReport, model::CheckReport)> {
    let (report, outcome) = check::collect_with_log(&args.check, ctx)?;
    for pid in &args.pids {
        anyhow::ensure!(
            report.workers.iter().any(|w| w.pid == *pid),
            "PID {pid} is not among the workers found (by --pattern {:?} and the registry); widen --pattern",
            args.check.discovery.pattern
        );
    }
    let registry = registry::load(&args.check.discovery.registry).ok();
    let chosen: Vec<&WorkerReport> = report
        .workers
        .iter()
        .filter(|w| args.pids.is_empty() || args.pids.contains(&w.pid))
        .filter(|w| !args.on_finding || w.verdict != Verdict::Healthy)
        .collect();
    let status = chosen.iter().fold(
        if args.pids.is_empty() {
            report.status
        } else {
            Status::Ok
        },
        |s, w| s.worst(w.verdict.status()),
    );
    let dir = args.dir.clone().unwrap_or_else(evidence::default_dir);
    let mut saved = Vec::new();
    let pruning = args.keep.is_some() || args.max_age.is_some();
    // Opened once: every file below is written and removed relative to this handle.
    let handle = if !chosen.is_empty() || (pruning && dir.is_dir()) {
        Some(evidence::prepare_dir(&dir)?)
    } else {
        None
    };
    for w in &chosen {
        if let Some(h) = &handle {
            saved.push(save_one(
                w,
                args,
                ctx,
                outcome.as_ref(),
                registry.as_ref(),
                h,
            )?);
        }
    }
    let deleted = match (&handle, pruning) {
        (Some(h), true) => {
            evidence::prune(h, args.keep, args.max_age, std::time::SystemTime::now())?
        }
        _ => vec![],
    };
    let result = SnapshotReport {
        schema_version: SCHEMA_VERSION,
        command: "snapshot",
        status,
        dir: dir.display().to_string(),
        saved,
        deleted: deleted.iter().map(|p| p.display().to_string()).collect(),
    };
    Ok((result, report))
}

pub fn run(args: &SnapshotArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let (result, report) = take(args, ctx)?;
    let status = result.status;
    if ctx.json {
        render::json(out, &result)?;
        return Ok(status);
    }
    let all_healthy =
        report.workers.iter().all(|w| w.verdict == Verdict::Healthy) && report.status == Status::Ok;
    if args.quiet && all_healthy {
        return Ok(status);
    }
    for s in &result.saved {
        writeln!(
            out,
            "PID {} {}: {} → {}",
            s.pid,
            sanitize(&s.name),
            s.verdict.label(),
            s.json
        )?;
    }
    if result.saved.is_empty() {
        writeln!(
            out,
            "nothing to snapshot ({} worker(s) found)",
            report.workers.len()
        )?;
    }
    for d in &result.deleted {
        writeln!(out, "deleted {d}")?;
    }
    for n in &report.notes {
        writeln!(out, "note: {}", sanitize(n))?;
    }
    Ok(status)
}
