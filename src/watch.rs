//! The rounds of `watch` as a library: each round is the same check `check` runs, folded with
//! what earlier rounds saw (CPU time, memory series, last progress per process), and turned
//! into the changes an operator is told about. At a first detection it snapshots the worker,
//! runs the `--on-finding` hook (once per worker and verdict) and, when asked, restarts a hung
//! worker whose identity it has re-checked. The `watch` command loops over [`Watcher::round`]
//! and prints; anything else that shows rounds (a live view) uses the same calls, so its
//! verdicts are `watch`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::actions::{Restart, hook, restart};
use crate::diagnose::check::{CheckOptions, check_probed};
use crate::diagnose::rounds::{Key, Timing, Tracked, fold_rounds};
use crate::logs::Outcome;
use crate::logs::follow::Follower;
use crate::model::{CheckReport, SCHEMA_VERSION, SinceProgress, Verdict, WatchEvent, WorkerReport};
use crate::platform::Platform;
use crate::snapshot::SnapshotOptions;
use crate::{registry, store};

/// What a watch does each round and about a first detection.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchOptions {
    pub check: CheckOptions,
    /// How far back the memory series kept across rounds reaches (leak trend).
    pub leak_span: Duration,
    /// Where first detections are snapshotted; `None` takes no snapshots.
    pub snapshot_dir: Option<PathBuf>,
    /// Log lines kept in each snapshot.
    pub tail: usize,
    /// Run with `sh -c` on each new finding.
    pub on_finding: Option<String>,
    pub hook_timeout: Duration,
    /// End a hung worker (SIGTERM, then SIGKILL after `grace`).
    pub restart_hung: bool,
    pub grace: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            check: CheckOptions::default(),
            leak_span: Duration::from_secs(15 * 60),
            snapshot_dir: Some(store::default_dir()),
            tail: 20,
            on_finding: None,
            hook_timeout: Duration::from_secs(10),
            restart_hung: false,
            grace: Duration::from_secs(10),
        }
    }
}

/// One round: the check's report with history folded in, what changed, and what it cost.
pub struct Round {
    pub report: CheckReport,
    /// Seconds since each worker's last progress.
    pub since: SinceProgress,
    /// Verdict changes and first detections, with what was done about them.
    pub events: Vec<WatchEvent>,
    /// The check's own time; snapshots, hooks and restarts are not part of it.
    pub took: Duration,
}

/// What a watch keeps between rounds.
pub struct Watcher {
    opts: WatchOptions,
    tracked: BTreeMap<Key, Tracked>,
    /// Requests a restart was done for, by worker name and request: a worker respawned under
    /// the same name is never restarted again for the request its predecessor hung on.
    restarted: BTreeSet<(String, String)>,
    /// The log is followed: each round folds only what the server appended since the last.
    follower: Option<Follower>,
    /// The first live round's wall time and monotonic instant: later rounds are timed from
    /// them by the monotonic clock (see [`fold_rounds`]).
    clock: Option<(chrono::DateTime<chrono::Utc>, Instant)>,
    /// `--probe`: at most one in flight per server, across rounds; a round sends the next one
    /// only after an earlier round reported the last one's outcome.
    probes: crate::probe::Probes,
}

impl Watcher {
    pub fn new(opts: WatchOptions) -> Watcher {
        let follower = opts
            .check
            .log
            .as_ref()
            .map(|p| Follower::new(p, opts.check.hung_after));
        Watcher {
            opts,
            tracked: BTreeMap::new(),
            restarted: BTreeSet::new(),
            follower,
            clock: None,
            probes: crate::probe::Probes::new(),
        }
    }

    pub fn options(&self) -> &WatchOptions {
        &self.opts
    }

    /// Runs one check, folds it into the rounds before, and acts on first detections. An error
    /// is the round's (the log unreadable, no process table); the next round starts afresh.
    pub fn round(&mut self, platform: &dyn Platform) -> anyhow::Result<Round> {
        let started = Instant::now();
        let log = self.follower.as_mut().map(|f| f.update()).transpose()?;
        let (mut report, outcome) =
            check_probed(&self.opts.check, platform, log, &self.probes, false)?;
        let took = started.elapsed();
        let (at, timing) = if platform.live() {
            let (wall, mono) = *self.clock.get_or_insert((report.generated_at, started));
            let elapsed = chrono::Duration::from_std(started - mono).unwrap_or_default();
            (wall + elapsed, Timing::Monotonic)
        } else {
            (report.generated_at, Timing::Wall)
        };
        let since = fold_rounds(
            &self.opts.check,
            self.opts.leak_span,
            &mut report,
            &mut self.tracked,
            at,
            timing,
        );
        let mut events = self.changes(platform, &report, outcome.as_ref());
        events.extend(self.forget_gone(&report));
        Ok(Round {
            report,
            since,
            events,
            took,
        })
    }

    /// Verdict changes and first detections, each acted on as the options say.
    fn changes(
        &mut self,
        platform: &dyn Platform,
        report: &CheckReport,
        outcome: Option<&Outcome>,
    ) -> Vec<WatchEvent> {
        let mut events = Vec::new();
        // Read again only when a snapshot needs it (the round's check has read it already).
        let mut registry: Option<Option<registry::Registry>> = None;
        for w in &report.workers {
            let Some(t) = self.tracked.get_mut(&(w.pid, w.started_at)) else {
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
            let mut event = event(report, w.pid, w.name.clone(), (!new).then_some(t.verdict));
            event.to = Some(w.verdict);
            event.evidence = w
                .findings
                .iter()
                .filter(|f| f.verdict == w.verdict)
                .flat_map(|f| f.evidence.iter().cloned())
                .collect();
            t.verdict = w.verdict;
            if first_detection {
                t.alerted = Some(w.verdict);
                if let Some(dir) = &self.opts.snapshot_dir {
                    let registry = registry.get_or_insert_with(|| self.opts.check.registry());
                    event.snapshot = Some(snapshot(
                        &self.opts,
                        platform,
                        w,
                        outcome,
                        registry.as_ref(),
                        dir,
                    ));
                }
                if let Some(cmd) = &self.opts.on_finding {
                    event.hook = Some(hook(
                        cmd,
                        self.opts.hook_timeout,
                        w,
                        &event,
                        &report.untrusted,
                    ));
                }
                if self.opts.restart_hung && w.verdict == Verdict::Hung {
                    event.restart = Some(self.restart(platform, report, w, &event));
                }
            }
            events.push(event);
        }
        events
    }

    /// Restarts a hung worker, unless it was already restarted for the same request under its
    /// name or the evidence is untrusted; says what was done.
    fn restart(
        &mut self,
        platform: &dyn Platform,
        report: &CheckReport,
        w: &WorkerReport,
        event: &WatchEvent,
    ) -> String {
        // The request the hang is about: its id, or its start time without one.
        let request = w.in_flight.first().map(|r| {
            r.id.as_ref()
                .map_or_else(|| r.started.to_rfc3339(), |id| id.to_string())
        });
        let key = request.map(|r| (w.name.clone(), r));
        match &key {
            Some(k) if self.restarted.contains(k) => format!(
                "not done: {} was already restarted for request {}",
                w.name, k.1
            ),
            _ if !report.untrusted.is_empty() => format!(
                "not done: the evidence is untrusted ({})",
                report.untrusted.join("; ")
            ),
            _ => match restart(platform, w, event, self.opts.grace) {
                Restart::Signalled(text) => {
                    self.restarted.extend(key);
                    text
                }
                Restart::NotDone(why) => format!("not done: {why}"),
            },
        }
    }

    /// Forgets the processes this round no longer found, one event each.
    fn forget_gone(&mut self, report: &CheckReport) -> Vec<WatchEvent> {
        let seen: Vec<Key> = report
            .workers
            .iter()
            .map(|w| (w.pid, w.started_at))
            .collect();
        let gone: Vec<Key> = self
            .tracked
            .keys()
            .filter(|k| !seen.contains(k))
            .copied()
            .collect();
        let mut events = Vec::new();
        for key in gone {
            if let Some(t) = self.tracked.remove(&key) {
                let mut e = event(report, key.0, t.name, Some(t.verdict));
                e.evidence = vec!["no longer found (exited, or removed from the registry)".into()];
                events.push(e);
            }
        }
        events
    }
}

/// An event of this round about one process, with nothing done yet.
fn event(report: &CheckReport, pid: u32, worker: String, from: Option<Verdict>) -> WatchEvent {
    WatchEvent {
        schema_version: SCHEMA_VERSION,
        command: "watch",
        at: report.generated_at,
        pid,
        worker,
        from,
        to: None,
        evidence: Vec::new(),
        snapshot: None,
        hook: None,
        restart: None,
    }
}

/// The snapshot's path, or why there is none (written as `failed: …`).
fn snapshot(
    opts: &WatchOptions,
    platform: &dyn Platform,
    w: &WorkerReport,
    outcome: Option<&Outcome>,
    registry: Option<&registry::Registry>,
    dir: &std::path::Path,
) -> String {
    let snap = SnapshotOptions {
        pids: vec![w.pid],
        check: opts.check.clone(),
        dir: Some(dir.to_path_buf()),
        on_finding: true,
        tail: opts.tail,
        ..SnapshotOptions::default()
    };
    let saved = store::prepare_dir(dir)
        .map_err(anyhow::Error::from)
        .and_then(|h| crate::snapshot::save_one(w, &snap, platform, outcome, registry, &h));
    match saved {
        Ok(s) => s.json,
        Err(e) => format!("failed: {e:#}"),
    }
}
