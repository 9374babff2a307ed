//! `mlsdiag watch`: the check as a foreground loop (launchd, systemd), so a hang is caught
//! while it is young instead of 8 hours later. Between rounds it keeps what one check cannot
//! see: each worker's CPU time, memory series and last progress. On a verdict change it prints
//! one line; at a first detection it snapshots the worker, runs the `--on-finding` hook (once
//! per worker and verdict) and, with `--restart-hung`, ends a hung worker whose identity it
//! has re-checked. Metrics go to a textfile and/or `/metrics` for Prometheus.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Ctx;
use crate::actions::{Restart, hook, restart};
use crate::cli::WatchArgs;
use crate::diagnose::check::{CheckOptions, check_from};
use crate::diagnose::rounds::{Key, Tracked, fold_rounds};
use crate::model::SCHEMA_VERSION;
use crate::model::WatchEvent;
use crate::model::{CheckReport, WorkerReport};
use crate::model::{Status, Verdict};
use crate::render::prometheus;
use crate::snapshot::SnapshotOptions;
use crate::{metrics, registry, store};

pub fn run(args: &WatchArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let stop = stop_signal()?;
    let latest = Arc::new(Mutex::new(prometheus::render(None, Duration::ZERO, None)));
    if let Some(addr) = &args.listen {
        let bound = metrics::serve(addr, Arc::clone(&latest))?;
        eprintln!("mlsdiag watch: metrics on http://{bound}/metrics");
    }
    let dir = args.dir.clone().unwrap_or_else(store::default_dir);
    let mut tracked: BTreeMap<Key, Tracked> = BTreeMap::new();
    // Requests a restart was done for, by worker name and request: a worker respawned under the
    // same name is never restarted again for the request its predecessor hung on.
    let mut restarted: std::collections::BTreeSet<(String, String)> = Default::default();
    // The log is followed: each round folds only what the server appended since the last.
    let mut follower = args
        .check
        .log
        .as_ref()
        .map(|p| crate::logs::follow::Follower::new(p, args.check.hung_after));
    let options = CheckOptions::from(&args.check);
    let mut status;
    let mut round = 0u64;
    loop {
        let started = Instant::now();
        round += 1;
        let round_result = match follower.as_mut().map(|f| f.update()).transpose() {
            Ok(log) => check_from(&options, ctx.platform.as_ref(), log),
            Err(e) => Err(e.into()),
        };
        // The check's own time; snapshots, hooks and restarts below are not part of it.
        let took = started.elapsed();
        match round_result {
            Ok((mut report, outcome)) => {
                let since = fold_rounds(&options, args.leak_span, &mut report, &mut tracked);
                for event in act(
                    args,
                    ctx,
                    &report,
                    outcome.as_ref(),
                    &dir,
                    &mut tracked,
                    &mut restarted,
                ) {
                    print(out, ctx, &event)?;
                }
                status = report.status;
                publish(
                    args,
                    &latest,
                    &prometheus::render(Some(&report), took, Some(&since)),
                );
            }
            Err(e) => {
                eprintln!(
                    "{} mlsdiag watch: round {round} failed: {e:#}",
                    chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
                );
                status = Status::Unknown;
                publish(args, &latest, &prometheus::render(None, took, None));
            }
        }
        out.flush()?;
        if args.rounds.is_some_and(|n| round >= n) {
            return Ok(status);
        }
        let next = started + args.interval;
        let wait = next.saturating_duration_since(Instant::now());
        if stop.recv_timeout(wait).is_ok() {
            return Ok(status);
        }
    }
}

/// Ctrl-C / SIGTERM end the loop between rounds (a round in progress finishes first).
fn stop_signal() -> anyhow::Result<std::sync::mpsc::Receiver<()>> {
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| anyhow::anyhow!("cannot handle SIGINT/SIGTERM: {e}"))?;
    Ok(rx)
}

fn publish(args: &WatchArgs, latest: &Mutex<String>, text: &str) {
    *latest.lock().unwrap_or_else(|p| p.into_inner()) = text.to_string();
    if let Some(dir) = &args.textfile
        && let Err(e) = metrics::write_textfile(dir, text)
    {
        eprintln!("mlsdiag watch: {e}");
    }
}

/// Prints changes and acts on first detections; forgets workers that are gone.
fn act(
    args: &WatchArgs,
    ctx: &Ctx,
    report: &CheckReport,
    outcome: Option<&crate::logs::Outcome>,
    dir: &std::path::Path,
    tracked: &mut BTreeMap<Key, Tracked>,
    restarted: &mut std::collections::BTreeSet<(String, String)>,
) -> Vec<WatchEvent> {
    let now = report.generated_at;
    let mut events = Vec::new();
    // Read again only when a snapshot needs it (the round's check has read it already).
    let mut registry: Option<Option<registry::Registry>> = None;
    let seen: Vec<Key> = report
        .workers
        .iter()
        .map(|w| (w.pid, w.started_at))
        .collect();
    for w in &report.workers {
        let Some(t) = tracked.get_mut(&(w.pid, w.started_at)) else {
            continue;
        };
        let new = t.rounds == 1;
        let changed = new || t.verdict != w.verdict;
        let first_detection = w.verdict != Verdict::Healthy && t.alerted != Some(w.verdict);
        if w.verdict == Verdict::Healthy {
            t.alerted = None;
        }
        if !changed && !first_detection {
            continue;
        }
        let mut event = WatchEvent {
            schema_version: SCHEMA_VERSION,
            command: "watch",
            at: now,
            pid: w.pid,
            worker: w.name.clone(),
            from: (!new).then_some(t.verdict),
            to: Some(w.verdict),
            evidence: w
                .findings
                .iter()
                .filter(|f| f.verdict == w.verdict)
                .flat_map(|f| f.evidence.iter().cloned())
                .collect(),
            snapshot: None,
            hook: None,
            restart: None,
        };
        t.verdict = w.verdict;
        if first_detection {
            t.alerted = Some(w.verdict);
            if !args.no_snapshot {
                let registry = registry
                    .get_or_insert_with(|| registry::load(&args.check.discovery.registry).ok());
                event.snapshot = Some(snapshot(args, ctx, w, outcome, registry.as_ref(), dir));
            }
            if let Some(cmd) = &args.on_finding {
                event.hook = Some(hook(cmd, args.hook_timeout, w, &event, &report.untrusted));
            }
            if args.restart_hung && w.verdict == Verdict::Hung {
                // The request the hang is about: its id, or its start time without one.
                let request = w.in_flight.first().map(|r| {
                    r.id.as_ref()
                        .map_or_else(|| r.started.to_rfc3339(), |id| id.to_string())
                });
                let key = request.map(|r| (w.name.clone(), r));
                event.restart = Some(match &key {
                    Some(k) if restarted.contains(k) => format!(
                        "not done: {} was already restarted for request {}",
                        w.name, k.1
                    ),
                    _ if !report.untrusted.is_empty() => format!(
                        "not done: the evidence is untrusted ({})",
                        report.untrusted.join("; ")
                    ),
                    _ => match restart(ctx.platform.as_ref(), w, &event, args.grace) {
                        Restart::Signalled(text) => {
                            restarted.extend(key);
                            text
                        }
                        Restart::NotDone(why) => format!("not done: {why}"),
                    },
                });
            }
        }
        events.push(event);
    }
    let gone: Vec<Key> = tracked
        .keys()
        .filter(|k| !seen.contains(k))
        .copied()
        .collect();
    for key in gone {
        if let Some(t) = tracked.remove(&key) {
            events.push(WatchEvent {
                schema_version: SCHEMA_VERSION,
                command: "watch",
                at: now,
                pid: key.0,
                worker: t.name,
                from: Some(t.verdict),
                to: None,
                evidence: vec!["no longer found (exited, or removed from the registry)".into()],
                snapshot: None,
                hook: None,
                restart: None,
            });
        }
    }
    events
}

/// The snapshot's path, or why there is none (written as `failed: …`).
fn snapshot(
    args: &WatchArgs,
    ctx: &Ctx,
    w: &WorkerReport,
    outcome: Option<&crate::logs::Outcome>,
    registry: Option<&registry::Registry>,
    dir: &std::path::Path,
) -> String {
    let opts = SnapshotOptions {
        pids: vec![w.pid],
        check: CheckOptions::from(&args.check),
        dir: Some(dir.to_path_buf()),
        on_finding: true,
        tail: args.tail,
        ..SnapshotOptions::default()
    };
    let saved = store::prepare_dir(dir)
        .map_err(anyhow::Error::from)
        .and_then(|h| {
            crate::snapshot::save_one(w, &opts, ctx.platform.as_ref(), outcome, registry, &h)
        });
    match saved {
        Ok(s) => s.json,
        Err(e) => format!("failed: {e:#}"),
    }
}

fn print(out: &mut dyn Write, ctx: &Ctx, e: &WatchEvent) -> std::io::Result<()> {
    if ctx.json {
        serde_json::to_writer(&mut *out, e)?;
        return writeln!(out);
    }
    writeln!(out, "{}", crate::render::watch::line(e))
}
