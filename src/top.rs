//! The live view's state, without a terminal: what `mlsdiag top` knows between frames (the
//! latest `watch` round, memory series for the sparklines, workers that went away, the
//! selection, the filter, the pane) and what each key does. Rounds are [`crate::watch`]'s, so a
//! verdict here is the one `check` and `watch` give; the subcommands' views in the pane are the
//! subcommands' own renderers. `commands::top` owns the terminal and the threads, and draws
//! [`App::frame`] with `render::top`.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::actions::Restart;
use crate::diagnose::rounds::Key;
use crate::model::{
    CheckReport, PaneView, ParentRow, SinceProgress, SystemMemory, TopFrame, TopRow, Verdict,
    WorkerReport, WorkerRow,
};
use crate::platform::Platform;
use crate::render::Style;
use crate::snapshot::SnapshotOptions;
use crate::stacks::collect::{Collect, collect};
use crate::store;
use crate::watch::{Round, WatchOptions, Watcher};

/// Points kept per worker for the memory sparkline.
const HISTORY: usize = 60;
/// How long a worker that went away stays in the tree, marked gone.
const GONE_FOR: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

#[derive(Debug, Clone)]
pub struct TopOptions {
    /// The rounds: the same options `watch` takes (its snapshots, hooks and restarts off).
    pub watch: WatchOptions,
    pub interval: Duration,
    /// Where `S` saves a snapshot.
    pub snapshot_dir: PathBuf,
    /// How long `t` samples per-thread CPU.
    pub threads_window: Duration,
}

/// A round as the view keeps it.
pub struct RoundView {
    pub report: CheckReport,
    pub since: SinceProgress,
    pub took: Duration,
    pub memory: Option<SystemMemory>,
}

impl RoundView {
    pub fn new(round: Round, memory: Option<SystemMemory>) -> RoundView {
        RoundView {
            report: round.report,
            since: round.since,
            took: round.took,
            memory,
        }
    }
}

/// What arrives from the threads that do the work.
pub enum Update {
    Round(Box<RoundView>),
    RoundFailed(String),
    Done(Job, JobOutput),
}

/// Keys, as the view understands them (the terminal's key events map onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Up,
    Down,
    PageUp,
    PageDown,
    Enter,
    Esc,
    Backspace,
    Char(char),
    /// Ctrl-C.
    Interrupt,
}

/// Work a key asks for, done off the drawing thread.
#[derive(Debug, Clone)]
pub enum Job {
    Stacks(u32),
    Threads(u32),
    Fds(u32),
    Log {
        pid: u32,
        name: String,
    },
    Snapshot(u32),
    /// SIGTERM, after the identity re-check `watch --restart-hung` does.
    Terminate(Box<WorkerReport>),
}

/// Jobs are equal when they do the same thing to the same process.
impl PartialEq for Job {
    fn eq(&self, other: &Job) -> bool {
        let who = |j: &Job| match j {
            Job::Terminate(w) => (w.pid, w.started_at),
            j => (j.pid(), None),
        };
        self.title() == other.title() && who(self) == who(other)
    }
}

impl Job {
    fn pid(&self) -> u32 {
        match self {
            Job::Stacks(p) | Job::Threads(p) | Job::Fds(p) | Job::Snapshot(p) => *p,
            Job::Log { pid, .. } => *pid,
            Job::Terminate(w) => w.pid,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Job::Stacks(_) => "stacks",
            Job::Threads(_) => "threads",
            Job::Fds(_) => "fds",
            Job::Log { .. } => "log",
            Job::Snapshot(_) => "snapshot",
            Job::Terminate(_) => "SIGTERM",
        }
    }
}

/// A job's result: lines for the pane, or one line for the message.
pub enum JobOutput {
    Pane(Vec<String>),
    Message(String),
}

#[derive(Debug, PartialEq)]
pub enum Action {
    None,
    Quit,
    Run(Job),
}

enum Pane {
    Evidence,
    /// A subcommand's view of one process; `None` while it is being collected.
    View {
        job: Job,
        lines: Option<Vec<String>>,
    },
}

struct Gone {
    row: WorkerRow,
    report: WorkerReport,
    at: DateTime<Utc>,
}

/// The view between frames.
pub struct App {
    host: String,
    interval: Duration,
    round: u64,
    last: Option<RoundView>,
    history: BTreeMap<Key, VecDeque<u64>>,
    /// When each worker was first seen: before that, the rounds know nothing of its progress.
    first_seen: BTreeMap<Key, DateTime<Utc>>,
    gone: BTreeMap<Key, Gone>,
    selected: Option<Key>,
    filter: String,
    editing: bool,
    pane: Pane,
    scroll: usize,
    /// A worker `K` asked about, waiting for `y`, and the question (shown until answered,
    /// whatever else is said meanwhile).
    confirm: Option<(Key, String)>,
    message: Option<String>,
}

impl App {
    pub fn new(host: String, interval: Duration) -> App {
        App {
            host,
            interval,
            round: 0,
            last: None,
            history: BTreeMap::new(),
            first_seen: BTreeMap::new(),
            gone: BTreeMap::new(),
            selected: None,
            filter: String::new(),
            editing: false,
            pane: Pane::Evidence,
            scroll: 0,
            confirm: None,
            message: None,
        }
    }

    /// The latest round's report, once there is one.
    pub fn report(&self) -> Option<&CheckReport> {
        self.last.as_ref().map(|r| &r.report)
    }

    pub fn update(&mut self, u: Update) {
        match u {
            Update::Round(r) => self.round_done(*r),
            Update::RoundFailed(e) => self.message = Some(format!("round failed: {e}")),
            Update::Done(job, out) => self.job_done(job, out),
        }
    }

    fn round_done(&mut self, r: RoundView) {
        self.round += 1;
        let now = r.report.generated_at;
        if let Some(prev) = self.last.take() {
            for w in prev.report.workers {
                let key = (w.pid, w.started_at);
                // A registered worker that died is still listed (crashed), without a start
                // time: it is not gone.
                if !r.report.workers.iter().any(|n| n.pid == w.pid) {
                    let mut row = self.row(&w, prev.report.generated_at, &prev.since);
                    row.gone = true;
                    self.gone.insert(
                        key,
                        Gone {
                            row,
                            report: w,
                            at: now,
                        },
                    );
                }
            }
        }
        self.gone.retain(|_, g| now - g.at < GONE_FOR);
        for w in &r.report.workers {
            let key = (w.pid, w.started_at);
            self.gone.remove(&key);
            self.first_seen.entry(key).or_insert(now);
            if let Some(m) = w.footprint_bytes.or(w.rss_bytes) {
                let h = self.history.entry(key).or_default();
                h.push_back(m);
                if h.len() > HISTORY {
                    h.pop_front();
                }
            }
        }
        let live: Vec<Key> = r
            .report
            .workers
            .iter()
            .map(|w| (w.pid, w.started_at))
            .collect();
        self.history
            .retain(|k, _| live.contains(k) || self.gone.contains_key(k));
        self.first_seen
            .retain(|k, _| live.contains(k) || self.gone.contains_key(k));
        if self
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("round failed"))
        {
            self.message = None;
        }
        self.last = Some(r);
        self.keep_selection();
    }

    fn job_done(&mut self, job: Job, out: JobOutput) {
        match out {
            JobOutput::Message(m) => self.message = Some(m),
            JobOutput::Pane(lines) => {
                if let Pane::View {
                    job: open,
                    lines: slot,
                } = &mut self.pane
                    && *open == job
                {
                    *slot = Some(lines);
                }
            }
        }
    }

    /// The workers shown, in tree order, with the key of each.
    fn visible(&self) -> Vec<(Key, &WorkerReport)> {
        let mut out = Vec::new();
        for group in self.groups() {
            out.extend(group.1);
        }
        out
    }

    /// The tree: each parent with its workers (filtered), then the gone ones.
    fn groups(&self) -> Vec<(ParentRow, Vec<(Key, &WorkerReport)>)> {
        let Some(r) = &self.last else {
            return Vec::new();
        };
        let shown = |w: &WorkerReport| matches(&self.filter, w);
        let mut by_parent: BTreeMap<(u8, u32), Vec<(Key, &WorkerReport)>> = BTreeMap::new();
        let orchestrators: Vec<u32> = r.report.orchestrators.iter().map(|o| o.pid).collect();
        for w in r.report.workers.iter().filter(|w| shown(w)) {
            // An orphan is adopted by init or, under a subreaper (systemd --user, tmux), by
            // that; either way it is shown apart. A standalone server under init (launchd,
            // systemd, a double fork) is no orphan: it is shown under its parent.
            let rank = match w.ppid {
                Some(p) if orchestrators.contains(&p) => (0, p),
                Some(p) if w.verdict == Verdict::Orphan => (1, p),
                Some(p) => (2, p),
                None => (3, 0),
            };
            by_parent
                .entry(rank)
                .or_default()
                .push(((w.pid, w.started_at), w));
        }
        let mut groups: Vec<(ParentRow, Vec<(Key, &WorkerReport)>)> = by_parent
            .into_iter()
            .map(|((rank, pid), ws)| (parent_row(rank, pid), ws))
            .collect();
        let gone: Vec<(Key, &WorkerReport)> = self
            .gone
            .iter()
            .filter(|(_, g)| shown(&g.report))
            .map(|(k, g)| (*k, &g.report))
            .collect();
        if !gone.is_empty() {
            let label = "gone".into();
            groups.push((
                ParentRow {
                    pid: None,
                    label,
                    orphans: false,
                },
                gone,
            ));
        }
        groups
    }

    fn keep_selection(&mut self) {
        let keys: Vec<Key> = self.visible().into_iter().map(|(k, _)| k).collect();
        if !keys.iter().any(|k| Some(*k) == self.selected) {
            self.selected = keys.first().copied();
            self.show_evidence();
        }
    }

    fn selected_worker(&self) -> Option<&WorkerReport> {
        let key = self.selected?;
        self.visible()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, w)| w)
    }

    fn show_evidence(&mut self) {
        self.pane = Pane::Evidence;
        self.scroll = 0;
    }

    fn step(&mut self, by: isize) {
        let keys: Vec<Key> = self.visible().into_iter().map(|(k, _)| k).collect();
        if keys.is_empty() {
            return;
        }
        let at = keys
            .iter()
            .position(|k| Some(*k) == self.selected)
            .unwrap_or(0);
        let next = (at as isize + by).clamp(0, keys.len() as isize - 1) as usize;
        if Some(keys[next]) != self.selected {
            self.selected = Some(keys[next]);
            self.show_evidence();
        }
    }

    /// What a key does; an [`Action::Run`] is for the caller to carry out and report back.
    pub fn key(&mut self, input: Input) -> Action {
        if input == Input::Interrupt {
            return Action::Quit;
        }
        if self.editing {
            self.edit_filter(input);
            return Action::None;
        }
        if let Some((key, _)) = self.confirm.take() {
            return self.confirmed(key, input);
        }
        match input {
            Input::Up | Input::Char('k') => self.step(-1),
            Input::Down | Input::Char('j') => self.step(1),
            Input::PageUp => self.scroll = self.scroll.saturating_sub(10),
            // At most as far as the pane's rows wrapped at 40 columns reach (the renderer stops
            // at the end for the width it has), so PgUp always moves back at once.
            Input::PageDown => {
                let rows: usize = self
                    .pane_view()
                    .lines
                    .iter()
                    .map(|l| l.chars().count() / 40 + 1)
                    .sum();
                self.scroll = (self.scroll + 10).min(rows.saturating_sub(1));
            }
            Input::Esc | Input::Enter | Input::Char('e') => self.show_evidence(),
            Input::Char('q') => return Action::Quit,
            // A new filter replaces the old one.
            Input::Char('/') => {
                self.editing = true;
                self.filter.clear();
                self.message = None;
            }
            Input::Char(c @ ('s' | 't' | 'f' | 'l' | 'S' | 'K')) => return self.on_worker(c),
            _ => {}
        }
        Action::None
    }

    /// The keys that act on the selected worker.
    fn on_worker(&mut self, c: char) -> Action {
        let Some(w) = self.selected_worker().cloned() else {
            self.message = Some("no worker selected".into());
            return Action::None;
        };
        let gone = self.gone.contains_key(&(w.pid, w.started_at));
        if gone && c != 'l' {
            self.message = Some(format!(
                "PID {} is gone; only its evidence and log remain",
                w.pid
            ));
            return Action::None;
        }
        let job = match c {
            's' => Job::Stacks(w.pid),
            't' => Job::Threads(w.pid),
            'f' => Job::Fds(w.pid),
            'l' => Job::Log {
                pid: w.pid,
                name: w.name.clone(),
            },
            'S' => {
                self.message = Some(format!("snapshot of PID {}: taking it…", w.pid));
                return Action::Run(Job::Snapshot(w.pid));
            }
            _ => {
                // watch --restart-hung refuses to act on untrusted evidence; so does K.
                if let Some(r) = self.report().filter(|r| !r.untrusted.is_empty()) {
                    self.message = Some(format!(
                        "SIGTERM not offered: the evidence is untrusted ({})",
                        r.untrusted.join("; ")
                    ));
                    return Action::None;
                }
                let command = w.command.as_deref().unwrap_or("?");
                let question = format!(
                    "SIGTERM to PID {} ({}: {})? y sends it, any other key cancels",
                    w.pid,
                    w.name,
                    fit_chars(command, 60)
                );
                self.confirm = Some(((w.pid, w.started_at), question));
                return Action::None;
            }
        };
        self.pane = Pane::View {
            job: job.clone(),
            lines: None,
        };
        self.scroll = 0;
        Action::Run(job)
    }

    fn confirmed(&mut self, key: Key, input: Input) -> Action {
        let w = self
            .visible()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, w)| w.clone());
        match (input, w) {
            (Input::Char('y'), Some(w)) if !self.gone.contains_key(&key) => {
                self.message = Some(format!(
                    "SIGTERM to PID {}: re-checking its identity…",
                    w.pid
                ));
                Action::Run(Job::Terminate(Box::new(w)))
            }
            (Input::Char('y'), _) => {
                self.message = Some(format!("not sent: PID {} is no longer listed", key.0));
                Action::None
            }
            _ => {
                self.message = Some("cancelled: nothing was sent".into());
                Action::None
            }
        }
    }

    fn edit_filter(&mut self, input: Input) {
        match input {
            Input::Char(c) if !c.is_control() => self.filter.push(c),
            Input::Backspace => {
                self.filter.pop();
            }
            Input::Enter => self.editing = false,
            Input::Esc => {
                self.filter.clear();
                self.editing = false;
            }
            _ => {}
        }
        self.keep_selection();
    }

    /// The frame to draw now.
    pub fn frame(&self) -> TopFrame {
        let mut rows = Vec::new();
        let mut selected = None;
        let empty = SinceProgress::new();
        let (now, since) = match &self.last {
            Some(r) => (r.report.generated_at, &r.since),
            None => (Utc::now(), &empty),
        };
        for (parent, workers) in self.groups() {
            rows.push(TopRow::Parent(parent));
            for (key, w) in workers {
                if Some(key) == self.selected {
                    selected = Some(rows.len());
                }
                let row = match self.gone.get(&key) {
                    Some(g) => g.row.clone(),
                    None => self.row(w, now, since),
                };
                rows.push(TopRow::Worker(row));
            }
        }
        let report = self.report();
        let workers = report.map(|r| r.workers.as_slice()).unwrap_or_default();
        TopFrame {
            host: self.host.clone(),
            at: report.map(|r| r.generated_at),
            round: self.round,
            interval_secs: self.interval.as_secs_f64(),
            took_secs: self.last.as_ref().map_or(0.0, |r| r.took.as_secs_f64()),
            memory: self.last.as_ref().and_then(|r| r.memory.clone()),
            status: report.map_or(crate::model::Status::Unknown, |r| r.status),
            exit_code: report.map_or(3, |r| r.exit_code),
            counts: report
                .map(|r| r.summary.iter().rev().map(|(v, n)| (*v, *n)).collect())
                .unwrap_or_default(),
            rows,
            selected,
            pane: self.pane_view(),
            filter: self.filter.clone(),
            editing_filter: self.editing,
            message: self
                .confirm
                .as_ref()
                .map(|(_, q)| q.clone())
                .or_else(|| self.message.clone()),
            footprint: workers.iter().any(|w| w.footprint_bytes.is_some()),
            gpu: workers.iter().any(|w| w.gpu.is_some()),
            tokens: workers.iter().any(|w| w.progress.is_some()),
        }
    }

    fn pane_view(&self) -> PaneView {
        let w = self.selected_worker();
        let (title, lines) = match (&self.pane, w) {
            (_, None) if self.last.is_none() => ("mlsdiag top".into(), vec!["first round…".into()]),
            (_, None) => ("evidence".into(), self.nothing_shown()),
            (Pane::Evidence, Some(w)) => (
                format!(
                    "evidence: PID {} {}: {}",
                    w.pid,
                    w.name,
                    w.verdict.label().to_uppercase()
                ),
                self.evidence(w),
            ),
            (Pane::View { job, lines }, Some(_)) => (
                format!("{}: PID {}", job.title(), job.pid()),
                lines
                    .clone()
                    .unwrap_or_else(|| vec![format!("collecting {}…", job.title())]),
            ),
        };
        PaneView {
            title,
            lines,
            scroll: self.scroll,
        }
    }

    /// Why no worker is shown: what discovery searched and what to pass when it found none
    /// (the check's own note), or the filter that hides them all.
    fn nothing_shown(&self) -> Vec<String> {
        let report = self.report();
        if report.is_some_and(|r| !r.workers.is_empty()) {
            return vec![format!("no worker matches the filter {:?}", self.filter)];
        }
        let found: Vec<String> = (report.into_iter())
            .flat_map(|r| &r.notes)
            .filter(|n| n.starts_with("no workers found"))
            .cloned()
            .collect();
        if found.is_empty() {
            vec!["no workers found".into()]
        } else {
            found
        }
    }

    /// The worker's findings and notes as `check` prints them, after how it was found.
    fn evidence(&self, w: &WorkerReport) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(g) = self.gone.get(&(w.pid, w.started_at)) {
            lines.push(format!(
                "  no longer found since {} UTC; its last verdict and evidence:",
                g.at.format("%H:%M:%S")
            ));
        }
        let text = crate::render::check::findings(&w.findings, &w.notes);
        lines.extend(text.lines().map(str::to_string));
        if lines.is_empty() {
            lines.push("  nothing found".into());
        }
        if !w.found_by.is_empty() {
            let at = usize::from(self.gone.contains_key(&(w.pid, w.started_at)));
            lines.insert(at, format!("  found by {}", w.found_by));
        }
        if let Some(r) = self.report().filter(|r| !r.untrusted.is_empty()) {
            lines.push(format!(
                "  · untrusted evidence: {}",
                r.untrusted.join("; ")
            ));
        }
        lines
    }
}

/// The parent line: its PID is in the PID column, so the label stays short enough for 80
/// columns.
fn parent_row(rank: u8, pid: u32) -> ParentRow {
    let (pid, label, orphans) = match rank {
        0 => (Some(pid), "orchestrator", false),
        1 if pid == 1 => (Some(1), "init: orphans", true),
        1 => (Some(pid), "subreaper: orphans", true),
        2 if pid == 1 => (Some(1), "init/launchd", false),
        2 => (Some(pid), "other parent", false),
        _ => (None, "no process", false),
    };
    ParentRow {
        pid,
        label: label.into(),
        orphans,
    }
}

/// A filter matches a worker's name, PID, verdict or activity (case-insensitive).
fn matches(filter: &str, w: &WorkerReport) -> bool {
    if filter.is_empty() {
        return true;
    }
    let f = filter.to_lowercase();
    w.name.to_lowercase().contains(&f)
        || w.pid.to_string().contains(&f)
        || w.verdict.label().contains(&f)
        || w.activity.label().contains(&f)
}

impl App {
    fn row(&self, w: &WorkerReport, now: DateTime<Utc>, since: &SinceProgress) -> WorkerRow {
        let key = (w.pid, w.started_at);
        let mut row = worker_row(w, now, since, self.history.get(&key));
        // Quiet for as long as it has been watched: the quiet time is a lower bound.
        let watched = self
            .first_seen
            .get(&key)
            .map(|t| (now - *t).as_seconds_f64());
        row.quiet_at_least = w.progress.is_none()
            && w.activity != crate::model::Activity::Working
            && row
                .since_progress_secs
                .zip(watched)
                .is_some_and(|(q, seen)| q + 0.5 >= seen);
        row
    }
}

fn worker_row(
    w: &WorkerReport,
    now: DateTime<Utc>,
    since: &SinceProgress,
    history: Option<&VecDeque<u64>>,
) -> WorkerRow {
    let oldest = w
        .in_flight
        .iter()
        .map(|r| (now - r.started).num_milliseconds() as f64 / 1000.0)
        .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
    WorkerRow {
        pid: w.pid,
        name: w.name.clone(),
        gone: false,
        verdict: w.verdict,
        activity: w.activity,
        state: w.state,
        cpu_percent: w.cpu_percent,
        memory_bytes: w.footprint_bytes.or(w.rss_bytes),
        memory_history: history
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default(),
        gpu_percent: w.gpu.as_ref().and_then(|g| g.busy_percent),
        threads: w.threads,
        in_flight: w.in_flight.len(),
        in_flight_known: w.in_flight_known,
        oldest_in_flight_secs: oldest,
        // The worker's own token record first, then what the rounds saw.
        since_progress_secs: w
            .progress
            .as_ref()
            .and_then(|p| p.secs_since_progress)
            .or_else(|| since.get(&w.pid).copied()),
        tokens_per_sec: w.progress.as_ref().and_then(|p| p.tokens_per_sec),
        quiet_at_least: false,
    }
}

/// Carries out a job on the OS: the subcommands' own library calls and renderers, plain text.
pub fn run_job(job: &Job, opts: &TopOptions, platform: &dyn Platform) -> JobOutput {
    let pane = |text: anyhow::Result<String>| match text {
        Ok(t) => JobOutput::Pane(t.lines().map(str::to_string).collect()),
        Err(e) => JobOutput::Pane(vec![format!("{e:#}")]),
    };
    let st = &Style::PLAIN;
    match job {
        Job::Stacks(pid) => pane(text(|out| {
            platform.process(*pid)?;
            let registry = opts.watch.check.registry();
            let how = Collect {
                native: true,
                signal: false,
                faulthandler: crate::progress::faulthandler_file(registry.as_ref(), *pid, platform),
                reuse_refusal: false,
            };
            let r = collect(platform, *pid, &how);
            Ok(crate::render::stacks::stacks(&r, st, out)?)
        })),
        Job::Threads(pid) => pane(text(|out| {
            let r = crate::sample::threads(platform, *pid, opts.threads_window)?;
            Ok(crate::render::threads::threads(&r, st, out)?)
        })),
        Job::Fds(pid) => pane(text(|out| {
            let (r, name) = crate::diagnose::ipc::fds_report(platform, *pid, true)?;
            Ok(crate::render::fds::fds(&r, &name, st, out)?)
        })),
        Job::Log { pid, name } => JobOutput::Pane(log_lines(opts, *pid, name)),
        Job::Snapshot(pid) => JobOutput::Message(snapshot_now(opts, platform, *pid)),
        Job::Terminate(w) => JobOutput::Message(match crate::actions::terminate(platform, w) {
            Restart::Signalled(t) => t,
            Restart::NotDone(why) => format!("SIGTERM not sent: {why}"),
        }),
    }
}

/// What a renderer writes, as a string.
fn text(f: impl FnOnce(&mut Vec<u8>) -> anyhow::Result<()>) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    f(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The log's last lines that name the worker (`worker=NAME`, `pid=PID`, or its name); the
/// last lines whatever they name when none does (a one-worker server's log names nobody).
fn log_lines(opts: &TopOptions, pid: u32, name: &str) -> Vec<String> {
    const SHOWN: usize = 200;
    let Some(path) = &opts.watch.check.log else {
        return vec!["no log: start top with --log FILE".into()];
    };
    let lines = store::tail(path, 2000);
    if lines.is_empty() {
        return vec![format!(
            "{}: nothing to show (empty or unreadable)",
            path.display()
        )];
    }
    let pid_field = format!("pid={pid}");
    let named: Vec<String> = lines
        .iter()
        .filter(|l| l.contains(&pid_field) || l.contains(name))
        .cloned()
        .collect();
    let (mut head, picked) = if named.is_empty() {
        (
            format!(
                "{}: no line names {name} or PID {pid}; the last lines",
                path.display()
            ),
            lines,
        )
    } else {
        (
            format!(
                "{}: the last lines naming {name} or PID {pid}",
                path.display()
            ),
            named,
        )
    };
    head.push(':');
    let skip = picked.len().saturating_sub(SHOWN);
    std::iter::once(head)
        .chain(
            picked
                .into_iter()
                .skip(skip)
                .map(|l| crate::fmt::sanitize(&l)),
        )
        .collect()
}

/// `S`: the snapshot `mlsdiag snapshot PID` takes, into the view's snapshot directory.
fn snapshot_now(opts: &TopOptions, platform: &dyn Platform, pid: u32) -> String {
    let snap = SnapshotOptions {
        check: opts.watch.check.clone(),
        pids: vec![pid],
        dir: Some(opts.snapshot_dir.clone()),
        tail: opts.watch.tail,
        ..SnapshotOptions::default()
    };
    match crate::snapshot::take(&snap, platform) {
        Ok((r, _)) => match r.saved.first() {
            Some(s) => format!("snapshot of PID {pid}: {}", s.json),
            None => format!("snapshot of PID {pid}: nothing saved"),
        },
        Err(e) => format!("snapshot of PID {pid} failed: {e:#}"),
    }
}

/// Rounds every `interval` until the view is gone (its receiver dropped).
pub fn rounds(
    mut watcher: Watcher,
    platform: std::sync::Arc<dyn Platform>,
    interval: Duration,
    tx: std::sync::mpsc::Sender<Update>,
) {
    loop {
        let started = std::time::Instant::now();
        let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            watcher.round(platform.as_ref())
        }));
        let update = match round {
            Ok(Ok(r)) => Update::Round(Box::new(RoundView::new(r, platform.system_memory().ok()))),
            Ok(Err(e)) => Update::RoundFailed(format!("{e:#}")),
            // A bug in a round is shown, and the next round starts afresh.
            Err(p) => Update::RoundFailed(format!("the round panicked: {}", panic_text(&p))),
        };
        if tx.send(update).is_err() {
            return;
        }
        std::thread::sleep(
            (started + interval).saturating_duration_since(std::time::Instant::now()),
        );
    }
}

/// `text` cut to `n` characters, with `…` when cut.
fn fit_chars(text: &str, n: usize) -> String {
    if text.chars().count() <= n {
        return text.to_string();
    }
    let mut s: String = text.chars().take(n.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// What a caught panic said.
pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}
