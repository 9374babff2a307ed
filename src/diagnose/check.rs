//! `check` as a library call: find the workers (pattern + registry), read each several times
//! over the window, fold in the server log's in-flight requests and the IPC state, and give
//! every worker a verdict with the evidence that produced it.
//!
//! Options are plain data with one [`Default`]; the command line converts into them
//! (`cli.rs`), and `watch`, `snapshot`, `repro` and `demo` build them directly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::assess::{Assessment, Observation, RegistryView, Thresholds, assess};
use super::ipc::summarize;
use super::leak;
use crate::discover::{self, discover, worker_name};
use crate::input;
use crate::logs;
use crate::model::{
    CheckReport, LogSource, Orchestrator, RegistryState, SCHEMA_VERSION, Status, Verdict,
    WorkerReport,
};
use crate::model::{GpuReading, GpuSource, GpuUsage, TokenProgress, TokenRecord};
use crate::platform::Platform;
use crate::progress;
use crate::registry::{self, Loaded};
use crate::sample::{readings_for, sample};

/// What a check looks at and the thresholds it judges by.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOptions {
    /// Regex matched against each process's full command line; `None`: automatic discovery
    /// (MLS's pattern, known MLX servers, every process with MLX loaded; see [`discover`]).
    pub pattern: Option<String>,
    /// The orchestrator's worker registry. None at the default path means no orchestrator; a
    /// path given otherwise that does not exist leaves orphans unknown.
    pub registry: PathBuf,
    /// There is no orchestrator: the registry is not read, workers are judged standalone.
    pub no_registry: bool,
    /// The server log whose in-flight requests prove a hang.
    pub log: Option<PathBuf>,
    /// Sampling window for CPU%, thread states and memory growth.
    pub window: Duration,
    /// Window for the memory trend, when longer than `window`.
    pub leak_window: Option<Duration>,
    /// A request in flight this long without progress is a hang.
    pub hung_after: Duration,
    pub leak: leak::Rule,
    /// CPU% over the window at or below which a worker makes no progress.
    pub progress_cpu: f64,
    /// Snapshots to judge the workers by as well (memory trend, frozen CPU time).
    pub history: Option<PathBuf>,
    /// `--probe URL`: a one-token completion sent to the server, deadline `hung_after`.
    pub probe: Option<String>,
    /// `--probe-model`: the `model` the probe names; `None`: the server's own.
    pub probe_model: Option<String>,
}

impl CheckOptions {
    /// The thresholds the rules judge by.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            hung_after: self.hung_after,
            leak: self.leak,
            progress_cpu_percent: self.progress_cpu,
            ..Thresholds::default()
        }
    }

    /// The registry the check judged by, read again for what is written after it (snapshots,
    /// the stacks pane's faulthandler file): `None` under `--no-registry` or when it cannot
    /// be read.
    pub fn registry(&self) -> Option<registry::Registry> {
        (!self.no_registry)
            .then(|| registry::load(&self.registry).ok())
            .flatten()
    }
}

impl Default for CheckOptions {
    fn default() -> Self {
        let th = Thresholds::default();
        CheckOptions {
            pattern: None,
            registry: registry::DEFAULT_PATH.into(),
            no_registry: false,
            log: None,
            window: Duration::from_secs(2),
            leak_window: None,
            hung_after: th.hung_after,
            leak: th.leak,
            progress_cpu: th.progress_cpu_percent,
            history: None,
            probe: None,
            probe_model: None,
        }
    }
}

/// The registry's `heartbeat` file of a worker and when it was last touched, when the registry
/// may name it (see [`crate::registry::Registry::worker_file`]); `Err` says why not. The rules
/// judge its age, and a time from the future (see [`crate::diagnose::rules::FUTURE_SLACK`]).
fn heartbeat_file(
    e: &crate::model::RegistryEntry,
    registry: &crate::registry::Registry,
    worker_uid: Option<u32>,
) -> Result<Option<(String, chrono::DateTime<chrono::Utc>)>, String> {
    let Some(path) = registry.worker_file(e, "heartbeat", worker_uid)? else {
        return Ok(None);
    };
    let Ok(touched) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
        return Ok(None);
    };
    Ok(Some((path.display().to_string(), touched.into())))
}

/// Every worker found, judged: the library call behind `check`.
pub fn check(opts: &CheckOptions, platform: &dyn Platform) -> anyhow::Result<CheckReport> {
    Ok(check_with_log(opts, platform)?.0)
}

/// `check`, also handing back the folded log (snapshots keep the worker's part of it).
pub fn check_with_log(
    opts: &CheckOptions,
    platform: &dyn Platform,
) -> anyhow::Result<(CheckReport, Option<logs::Outcome>)> {
    let log = match &opts.log {
        Some(p) => Some(logs::for_check(p, opts.hung_after)?),
        None => None,
    };
    check_from(opts, platform, log)
}

/// `check` with the `--log` fold already made: a `--probe` is sent and waited for, up to its
/// deadline, while the workers are read.
pub fn check_from(
    opts: &CheckOptions,
    platform: &dyn Platform,
    outcome: Option<logs::Outcome>,
) -> anyhow::Result<(CheckReport, Option<logs::Outcome>)> {
    check_probed(opts, platform, outcome, &crate::probe::Probes::new(), true)
}

/// `check` with the `--log` fold already made (`watch` follows the log across rounds) and the
/// probes of the run (`watch` keeps one probe per server across rounds). `wait`: the window
/// lasts until the probe ends, up to its deadline (`check`); else the probe is judged as it
/// stands at the window's end (`watch`, whose next round sees it further on).
pub fn check_probed(
    opts: &CheckOptions,
    platform: &dyn Platform,
    outcome: Option<logs::Outcome>,
    probes: &crate::probe::Probes,
    wait: bool,
) -> anyhow::Result<(CheckReport, Option<logs::Outcome>)> {
    let target = (opts.probe.as_deref())
        .map(|url| crate::probe::Target::parse(url, opts.probe_model.as_deref()))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--probe: {e}"))?;
    let search = discover::Search::new(opts.pattern.as_deref())?;
    let re = search.regex().clone();
    let reg_path = opts.registry.display().to_string();
    let loaded = (!opts.no_registry).then(|| registry::load(&opts.registry));
    let given = opts.registry.as_path() != std::path::Path::new(registry::DEFAULT_PATH);
    let mut notes = Vec::new();
    let (read, reg_state) = registry_state(loaded.as_ref(), &reg_path, given, &mut notes);
    let registry = read.as_ref().ok().copied();
    let log = outcome.as_ref().map(|o| &o.analysis);
    let found = discover(platform, &search, registry)?;
    let orchestrator_pids: Vec<u32> = found.orchestrators.iter().map(|o| o.0).collect();
    let searched = searched(&search, &found, registry, &reg_state);
    let pids: Vec<u32> = found.workers.iter().map(|c| c.pid).collect();
    let window = opts.window.max(opts.leak_window.unwrap_or_default());
    let before = progress_before(platform, registry, &found.workers);
    let gpu_before = platform.gpu(&pids, None);
    if let Some(t) = &target {
        probes.start(t, opts.hung_after);
    }
    let sampled = std::time::Instant::now();
    let mut series = sample(platform, &pids, window, readings_for(window));
    if let Some(t) = target.as_ref().filter(|_| wait) {
        let until = sampled + opts.hung_after + Duration::from_secs(10);
        follow_probe(platform, &mut series, sampled, probes, &t.url, until);
        // The server reads and parses the probe as it arrives: that CPU is the probe's, not
        // progress. An unanswered probe is judged on the CPU after it settled.
        if probes.report(&t.url).is_some_and(|r| r.waiting()) {
            let settle = (opts.hung_after / 4).min(Duration::from_secs(2));
            for s in &mut series {
                s.keep_from(settle.as_secs_f64());
            }
        }
    }
    let probe = target
        .as_ref()
        .and_then(|t| Some((t.endpoint.port, probes.report(&t.url)?)));
    let gpu = gpu_before.map(|b| {
        let after = platform.gpu(&pids, b.at);
        (b, after.unwrap_or_default())
    });
    let now = platform.now();
    let registry_view = match &read {
        Ok(r) => RegistryView::Loaded {
            path: &reg_path,
            entries: r.entries.len(),
            lists: search.registry_pattern(),
        },
        Err(Absence::Unknown(why)) => RegistryView::Unavailable { why },
        Err(Absence::Standalone(why)) => RegistryView::Absent { why },
    };
    let round = Round {
        platform,
        re: &re,
        registry,
        registry_view,
        orchestrators: &orchestrator_pids,
        log,
        only_worker: pids.len() == 1,
        log_owner: opts.log.as_deref().and_then(log_owner),
        now,
        thresholds: opts.thresholds(),
        gpu: gpu.as_ref(),
        probe: probe.as_ref(),
    };
    let workers = round.workers(&found.workers, &series, &before, &searched, &mut notes);
    if let Some((port, r)) = probe
        .as_ref()
        .filter(|_| !workers.iter().any(|w| w.probe.is_some()))
    {
        notes.push(format!(
            "--probe {}: no worker found listens on port {port}, so its outcome ({:?}, {}) judges no worker",
            r.url,
            r.state,
            r.timings()
        ));
    }
    // No registry is no orchestrator (standalone workers); one that was named and cannot be
    // read leaves orphans unknown: the check is at best unknown.
    let start = match read {
        Err(Absence::Unknown(_)) => Status::Unknown,
        _ => Status::Ok,
    };
    let status = (workers.iter()).fold(start, |st, w| st.worst(w.verdict.status()));
    let mut summary = BTreeMap::new();
    for w in &workers {
        *summary.entry(w.verdict).or_insert(0) += 1;
    }
    let untrusted = untrusted(opts, registry, outcome.is_some());
    for u in &untrusted {
        notes.push(format!(
            "WARNING untrusted evidence, {u}: its findings are shown, but `watch` will not act on them"
        ));
    }
    let mut report = CheckReport {
        schema_version: SCHEMA_VERSION,
        command: "check",
        generated_at: now,
        status,
        exit_code: status.code(),
        pattern: search.pattern_text().to_string(),
        registry: reg_state,
        log: (opts.log.as_ref().zip(outcome.as_ref())).map(|(p, o)| LogSource {
            path: p.display().to_string(),
            format: o.format.clone(),
            events: o.analysis.events,
        }),
        window_secs: window.as_secs_f64(),
        workers,
        orchestrators: found
            .orchestrators
            .iter()
            .map(|&(pid, workers)| Orchestrator { pid, workers })
            .collect(),
        summary,
        notes,
        untrusted,
        gpu: gpu.map(|(_, a)| GpuSource {
            source: a.source.to_string(),
            error: a.unavailable.clone(),
        }),
    };
    if let Some(dir) = &opts.history {
        crate::diagnose::history::fold_into(&mut report, dir, &opts.leak, opts.hung_after)?;
    }
    Ok((report, outcome))
}

/// Why a check has no registry to judge orphans by.
enum Absence {
    /// No orchestrator (no registry at the default path, or `--no-registry`): the workers
    /// found are standalone, judged on their own evidence.
    Standalone(String),
    /// A registry was named and cannot be read: whether a worker is an orphan is unknown.
    Unknown(String),
}

/// The registry as the check could read it (`None`: `--no-registry`), or why there is none;
/// and its state for the report. `given`: the path was named (flag or environment), so a
/// missing file is an error, not the absence of an orchestrator. Notes say what each costs.
fn registry_state<'a>(
    loaded: Option<&'a Loaded>,
    reg_path: &str,
    given: bool,
    notes: &mut Vec<String>,
) -> (Result<&'a registry::Registry, Absence>, RegistryState) {
    let state = |state, error: Option<String>, entries| RegistryState {
        path: reg_path.to_string(),
        state,
        error,
        entries,
    };
    match loaded {
        None => {
            notes.push(
                "--no-registry: no orchestrator; every worker found is judged standalone, on its own evidence".into(),
            );
            (
                Err(Absence::Standalone("--no-registry".into())),
                state("off", None, 0),
            )
        }
        Some(Loaded::Ok(r)) => (Ok(r), state("ok", None, r.entries.len())),
        Some(Loaded::Missing(_)) if !given => {
            let why = format!("{reg_path} does not exist");
            notes.push(format!(
                "no registry ({why}): no orchestrator; every worker found is judged standalone (--registry names an orchestrator's, --no-registry says there is none)"
            ));
            (
                Err(Absence::Standalone(why.clone())),
                state("missing", Some(why), 0),
            )
        }
        Some(Loaded::Missing(_)) => {
            let why = format!("{reg_path} does not exist");
            notes.push(format!(
                "registry {why}: orphans cannot be told apart (set --registry or MLSDIAG_REGISTRY, or --no-registry when there is no orchestrator)"
            ));
            (
                Err(Absence::Unknown(why.clone())),
                state("missing", Some(why), 0),
            )
        }
        Some(Loaded::Invalid(e)) => {
            notes.push(format!(
                "registry unreadable: {e}; workers found by discovery only"
            ));
            (
                Err(Absence::Unknown(e.to_string())),
                state("invalid", Some(e.to_string()), 0),
            )
        }
    }
}

/// What discovery searched and what to pass, for the note when no worker is found.
fn searched(
    search: &discover::Search,
    found: &discover::Discovery,
    registry: Option<&registry::Registry>,
    state: &RegistryState,
) -> String {
    let reg = match registry {
        Some(_) => format!("the registry {} lists none", state.path),
        None if state.state == "off" => "no registry read (--no-registry)".to_string(),
        None => format!(
            "no registry read ({})",
            state.error.as_deref().unwrap_or("")
        ),
    };
    let unreadable = match found.unreadable {
        0 => String::new(),
        n => format!(
            "; {n} other users' processes could not be searched for MLX (run as their user or as root)"
        ),
    };
    format!(
        "{}, and {reg}{unreadable}. {}",
        search.describe(),
        search.suggestion()
    )
}

/// A hung worker's stacks, from the sources that never disturb it, matched against the known
/// hangs: each match becomes evidence of the hang finding.
fn add_stack_signatures(
    platform: &dyn Platform,
    pid: u32,
    faulthandler: Option<PathBuf>,
    findings: &mut [crate::model::Finding],
) {
    let how = crate::stacks::collect::Collect {
        faulthandler,
        reuse_refusal: true,
        ..Default::default()
    };
    let stacks = crate::stacks::collect::collect(platform, pid, &how);
    if let Some(f) = findings.iter_mut().find(|f| f.verdict == Verdict::Hung) {
        for m in &stacks.signatures {
            f.evidence
                .push(format!("stacks match {}: {} ({})", m.id, m.title, m.url));
        }
        f.evidence.extend(gil_holder(&stacks.threads));
    }
}

/// The thread that holds Python's GIL, where the stacks say (py-spy): while it waits (a native
/// join, a stream synchronize), no other Python thread runs, so its innermost frame is where
/// the whole interpreter stands.
fn gil_holder(threads: &[crate::model::ThreadStack]) -> Option<String> {
    let t = threads.iter().find(|t| t.owns_gil == Some(true))?;
    let name = t
        .name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let at = t
        .python
        .last()
        .map(|f| format!(", in {}", f.function))
        .unwrap_or_default();
    Some(format!(
        "thread {}{name} holds the GIL{at}: no other Python thread of the worker runs until it lets go",
        t.tid
    ))
}

/// The IPC picture of a live worker (its line goes to the notes), or why it is unknown.
fn ipc(
    platform: &dyn Platform,
    p: &crate::model::ProcessInfo,
    verdict: Verdict,
    orchestrated: bool,
    notes: &mut Vec<String>,
) -> Option<crate::model::IpcSummary> {
    if p.is_zombie() || verdict == Verdict::Crashed {
        return None;
    }
    match platform.fds(p.pid, Some(&[p.ppid])) {
        Ok(fds) => {
            let ipc = summarize(&fds, Some(p.ppid), Some(orchestrated));
            notes.push(ipc.line());
            Some(ipc)
        }
        Err(e) => {
            notes.push(format!("IPC unknown: {e}"));
            None
        }
    }
}

/// Evidence that may make mlsdiag act (the registry, the log, the snapshot history) and is
/// not trustworthy, each with why (see [`input::trust`]).
fn untrusted(
    opts: &CheckOptions,
    registry: Option<&registry::Registry>,
    log_read: bool,
) -> Vec<String> {
    let mut untrusted = Vec::new();
    let euid = input::euid();
    if let Some(input::Trust::Untrusted(why)) = registry.map(|r| &r.trust) {
        untrusted.push(format!("registry: {why}"));
    }
    if log_read
        && let Some(p) = opts.log.as_ref().filter(|p| p.as_os_str() != "-")
        && let input::Trust::Untrusted(why) = input::trust(p, euid)
    {
        untrusted.push(format!("log: {why}"));
    }
    if let Some(dir) = &opts.history
        && let input::Trust::Untrusted(why) = input::trust(dir, euid)
    {
        untrusted.push(format!("history: {why}"));
    }
    untrusted
}

/// What every worker of one check is judged against.
struct Round<'a> {
    platform: &'a dyn Platform,
    re: &'a regex::Regex,
    registry: Option<&'a registry::Registry>,
    registry_view: RegistryView<'a>,
    /// The found orchestrators: a worker whose parent is one of them has an orchestrator.
    orchestrators: &'a [u32],
    log: Option<&'a logs::Analysis>,
    /// GPU readings at the window's start and end, where the platform has a GPU source.
    gpu: Option<&'a (GpuReading, GpuReading)>,
    only_worker: bool,
    /// The log file's owner: the user the server runs as, whose processes its lines are about.
    log_owner: Option<u32>,
    now: chrono::DateTime<chrono::Utc>,
    thresholds: super::assess::Thresholds,
    /// The `--probe` request, with the port it went to (the worker listening there gets it).
    probe: Option<&'a (u16, crate::model::ProbeReport)>,
}

impl Round<'_> {
    /// Every worker's report, with notes on what no worker accounts for.
    fn workers(
        &self,
        found: &[discover::Candidate],
        series: &[crate::sample::Series],
        before: &[Option<TokenRecord>],
        searched: &str,
        notes: &mut Vec<String>,
    ) -> Vec<WorkerReport> {
        // Open requests of the log that some worker's share accounts for, by (file, line).
        let mut attributed = std::collections::HashSet::new();
        let names: Vec<String> = (found.iter().zip(series))
            .map(|(c, s)| self.name(c, s.last()))
            .collect();
        let owners = owners(found, series, &names, self.log_owner);
        if self.log.is_some() {
            for (name, o) in &owners {
                if let Owner::Ambiguous(pids) = o {
                    notes.push(format!(
                        "attribution ambiguous: {} processes are named {name} (PIDs {}) and none is the registry's or the others' parent: the log's lines for {name} that carry no pid are attributed to none of them, and prove no hang (log pid= in each line, or list the workers in the registry)",
                        pids.len(),
                        pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        let workers: Vec<WorkerReport> = (found.iter().zip(series).zip(before).zip(names))
            .map(|(((cand, s), b), name)| {
                let owns = match owners.get(&name) {
                    Some(Owner::One(p)) if *p == cand.pid => Ok(()),
                    Some(Owner::One(p)) => Err(Some(*p)),
                    _ => Err(None),
                };
                self.worker(cand, s, b.as_ref(), name, owns, &mut attributed)
            })
            .collect();
        if workers.is_empty() {
            notes.push(format!("no workers found: {searched}"));
        }
        if let Some(l) = self.log.filter(|l| l.workers_evicted > 0) {
            notes.push(format!(
                "the log names more workers than mlsdiag keeps: {} of the least recently seen were forgotten, so a request of theirs is not seen",
                l.workers_evicted
            ));
        }
        if let Some(l) = self.log {
            let unclaimed = l
                .open()
                .filter(|r| !attributed.contains(&(r.source, r.line)))
                .count();
            if unclaimed > 0 {
                notes.push(format!(
                    "{unclaimed} open request(s) in the log belong to no worker found (by name or pid)"
                ));
            }
        }
        workers
    }

    /// One worker's report: its log share (its open requests go into `attributed`), the
    /// rules' verdict, the stacks of a hung worker, its IPC and its figures.
    fn worker(
        &self,
        cand: &discover::Candidate,
        s: &crate::sample::Series,
        before: Option<&TokenRecord>,
        name: String,
        owns: Result<(), Option<u32>>,
        attributed: &mut std::collections::HashSet<(usize, u64)>,
    ) -> WorkerReport {
        let entry = cand.registered.as_ref();
        let last = s.last();
        let mut worker_notes = Vec::new();
        // The log's lines that name the worker without a pid are this process's only when it
        // is the one process that name belongs to (see [`owners`]).
        if self.log.is_some()
            && let Err(Some(owner)) = owns
        {
            worker_notes.push(format!(
                "the log's lines for {name} without a pid are PID {owner}'s, the process the registry or the process tree makes that worker: not evidence about this one"
            ));
        }
        let worker_log = self.log.map(|l| {
            l.for_process(
                Some(name.as_str()),
                owns.is_ok(),
                cand.pid,
                self.only_worker,
                last.map(|p| p.start_time),
                // Another pid under the name: another worker while it runs, else the previous.
                &|p| self.platform.process(p).is_ok_and(|p| !p.is_zombie()),
            )
        });
        if let Some(l) = &worker_log {
            attributed.extend(l.requests().map(|r| (r.source, r.line)));
        }
        let parent_info = last.and_then(|p| self.platform.process(p.ppid).ok());
        let parent_started = parent_info.as_ref().map(|p| p.start_time);
        let parent = parent_info.map(|p| (p.pid, p.name));
        // Whose output nobody reads: read only for an unlisted worker its parent adopted,
        // where the orphan rule can use it.
        let unread_output = last
            .filter(|p| {
                entry.is_none()
                    && crate::diagnose::rules::orphan::adopted(
                        p.ppid,
                        p.start_time,
                        parent.as_ref().map(|(_, n)| n.as_str()),
                        parent_started,
                    )
            })
            .and_then(|p| self.platform.unread_output(p.pid).ok())
            .unwrap_or_default();
        let beat = self.heartbeat(entry, last, &mut worker_notes);
        let progress = self.tokens(entry, last, before, &mut worker_notes);
        let gpu = (self.gpu).and_then(|(b, a)| GpuUsage::between(b, a, cand.pid));
        let connections = last.and_then(|p| self.connections(p));
        let distributed = last.and_then(|p| self.distributed(p));
        let probe = (self.probe)
            .filter(|(port, _)| {
                self.only_worker || connections.as_ref().is_some_and(|c| c.listens_on(*port))
            })
            .map(|(_, r)| r);
        let assessment: Assessment = assess(
            &Observation {
                series: s,
                entry,
                registry: self.registry_view.clone(),
                pattern: self.re,
                log: worker_log.as_ref(),
                parent,
                parent_started,
                unread_output,
                now: self.now,
                heartbeat: beat,
                tokens: progress.as_ref(),
                gpu: gpu.as_ref(),
                connections: connections.as_ref(),
                probe,
                distributed: distributed.as_ref(),
            },
            &self.thresholds,
        );
        let mut notes = assessment.notes;
        notes.append(&mut worker_notes);
        let mut assessment_findings = assessment.findings;
        if assessment.verdict == Verdict::Hung {
            let faulthandler = self.faulthandler(entry, last, &mut notes);
            add_stack_signatures(
                self.platform,
                cand.pid,
                faulthandler,
                &mut assessment_findings,
            );
        }
        // An orchestrator's link is judged only where there is one: the registry lists the
        // worker, or its parent is a found orchestrator.
        let orchestrated =
            entry.is_some() || last.is_some_and(|p| self.orchestrators.contains(&p.ppid));
        let ipc = last.and_then(|p| {
            ipc(
                self.platform,
                p,
                assessment.verdict,
                orchestrated,
                &mut notes,
            )
        });
        WorkerReport {
            pid: cand.pid,
            name,
            registered: entry.is_some(),
            found_by: cand.found_by.label(),
            model: entry.and_then(|e| e.model.clone()),
            ppid: last.map(|p| p.ppid),
            state: last.map(|p| p.state),
            cpu_percent: assessment.cpu_percent,
            cpu_seconds: last.map(|p| p.cpu_ns() as f64 / 1e9),
            rss_bytes: last.map(|p| p.rss_bytes),
            vsz_bytes: last.map(|p| p.vsz_bytes),
            footprint_bytes: last.and_then(|p| p.footprint_bytes),
            elapsed_secs: last.map(|p| (self.now - p.start_time).num_seconds().max(0) as u64),
            started_at: last.map(|p| p.start_time),
            threads: last.map(|p| p.threads),
            command: last.map(|p| p.command()),
            verdict: assessment.verdict,
            activity: assessment.activity,
            findings: assessment_findings,
            notes,
            hung_rule: assessment.hung_rule,
            in_flight_known: worker_log.as_ref().is_some_and(|l| l.proves_in_flight),
            in_flight: worker_log.map(|l| l.in_flight).unwrap_or_default(),
            ipc,
            progress,
            gpu,
            connections: (connections)
                .filter(|c| c.error.is_some() || !c.listening.is_empty())
                .map(crate::model::Connections::for_report),
            probe: probe.cloned(),
            distributed,
        }
    }

    /// The worker's MLX distributed group, where it is a rank (`MLX_RANK` in its environment):
    /// its TCP connections to other ranks (a local process that is a rank too, or an address in
    /// its host file), and the state of each peer process on this machine.
    fn distributed(&self, p: &crate::model::ProcessInfo) -> Option<crate::model::Distributed> {
        if !self.platform.live() || p.is_zombie() {
            return None;
        }
        const VARS: &[&str] = &["MLX_RANK", "MLX_HOSTFILE"];
        let env = self.platform.environ(p.pid, VARS).ok()?;
        let var = |env: &[(String, String)], k: &str| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        let rank = var(&env, "MLX_RANK")?.trim().parse::<u32>().ok();
        let hostfile = var(&env, "MLX_HOSTFILE");
        let addresses = hostfile
            .as_deref()
            .map(|h| hostfile_addresses(std::path::Path::new(h)))
            .unwrap_or_default();
        let ends: Vec<crate::model::TcpConnection> = (self.platform.tcp_connections(p.pid).ok()?)
            .into_iter()
            .filter(|c| c.state != "listen")
            .collect();
        let pairs: Vec<(String, String)> = ends
            .iter()
            .map(|c| (c.local.clone(), c.peer.clone()))
            .collect();
        let holders = self.platform.tcp_peer_processes(&pairs);
        let mut peers = Vec::new();
        for (c, holder) in ends.into_iter().zip(holders) {
            let holder = holder.filter(|&h| h != p.pid);
            let peer_rank = holder
                .and_then(|h| self.platform.environ(h, VARS).ok())
                .and_then(|e| var(&e, "MLX_RANK"));
            // Another rank: a local process with a rank of its own, or an address of the group.
            if peer_rank.is_none() && !addresses.contains(&c.peer) {
                continue;
            }
            peers.push(crate::model::DistributedPeer {
                address: c.peer,
                state: c.state,
                pid: holder,
                rank: peer_rank.and_then(|r| r.trim().parse().ok()),
                process_state: holder
                    .and_then(|h| self.platform.process(h).ok())
                    .map(|q| q.state),
            });
        }
        Some(crate::model::Distributed {
            rank,
            hostfile,
            peers,
        })
    }

    /// The worker's TCP connections from the socket table (none for a recording); for a request
    /// waiting past --hung-after, whether a thread of the server is still reading its socket
    /// (a request not all there yet), where the OS names the threads' system calls.
    fn connections(&self, p: &crate::model::ProcessInfo) -> Option<crate::model::Connections> {
        if !self.platform.live() || p.is_zombie() {
            return None;
        }
        let mut c = match self.platform.tcp_connections(p.pid) {
            Ok(all) => crate::model::Connections::from_sockets(all),
            Err(crate::error::InspectError::Gone { .. }) => return None,
            Err(e) => return Some(crate::model::Connections::unknown(e.to_string())),
        };
        let old = |c: &crate::model::TcpConnection| {
            c.waiting_ms()
                .is_some_and(|ms| Duration::from_millis(ms) >= self.thresholds.hung_after)
        };
        let queued = |c: &crate::model::TcpConnection| c.tx_queue.is_some_and(|q| q > 0);
        // The threads' system calls are read only when they can tell something: a request
        // waiting past --hung-after (is the server still reading it?) or bytes queued to a
        // client (is the server blocked writing them?).
        if !c.accepted.iter().any(|c| old(c) || queued(c)) {
            return Some(c);
        }
        let Ok(threads) = self.platform.threads(p.pid) else {
            return Some(c);
        };
        let blocked_in = |fd: i32, calls: &[&str]| {
            threads.iter().any(|t| {
                matches!(&t.syscall, Some(crate::model::Syscall::Blocked { name: Some(n), arg0, .. })
                    if *arg0 == fd as u64 && calls.contains(&n.as_str()))
            })
        };
        const READS: &[&str] = &["read", "readv", "recvfrom", "recvmsg", "recvmmsg"];
        const WRITES: &[&str] = &["write", "writev", "sendto", "sendmsg", "sendmmsg"];
        let named = threads
            .iter()
            .any(|t| matches!(t.syscall, Some(crate::model::Syscall::Blocked { .. })));
        for conn in c.accepted.iter_mut() {
            let judge = |calls| match conn.fd {
                Some(fd) if blocked_in(fd, calls) => Some(true),
                Some(_) if named => Some(false),
                _ => None,
            };
            if old(conn) {
                conn.server_reading = judge(READS);
            }
            if queued(conn) {
                conn.server_writing = judge(WRITES);
            }
        }
        Some(c)
    }

    /// The worker's name: the registry's, or the one its command line gives.
    fn name(&self, cand: &discover::Candidate, last: Option<&crate::model::ProcessInfo>) -> String {
        let entry = cand.registered.as_ref();
        match last {
            Some(p) => worker_name(entry, &p.cmdline, &p.name, self.re),
            None => entry
                .and_then(|e| e.name.clone())
                .unwrap_or_else(|| format!("pid {}", cand.pid)),
        }
    }

    /// The worker's registry heartbeat, when the registry points at one it may read.
    fn heartbeat(
        &self,
        entry: Option<&crate::model::RegistryEntry>,
        last: Option<&crate::model::ProcessInfo>,
        notes: &mut Vec<String>,
    ) -> Option<(String, chrono::DateTime<chrono::Utc>)> {
        let (e, r) = entry.zip(self.registry)?;
        heartbeat_file(e, r, last.map(|p| p.uid)).unwrap_or_else(|why| {
            notes.push(why);
            None
        })
    }

    /// The worker's token progress over the window: its record read now, against the reading
    /// taken before the window (`before`) for the rate.
    fn tokens(
        &self,
        entry: Option<&crate::model::RegistryEntry>,
        last: Option<&crate::model::ProcessInfo>,
        before: Option<&TokenRecord>,
        notes: &mut Vec<String>,
    ) -> Option<TokenProgress> {
        let p = last?;
        let path = progress::worker_file(entry.zip(self.registry), "progress", p.pid, p.uid)
            .unwrap_or_else(|why| {
                notes.push(why);
                None
            })?;
        // A record in the user directory that is not this process's (a gone process's, on a
        // reused PID) is no evidence about it: left out without a note.
        let named = entry.is_some_and(|e| e.extra_path("progress").is_some());
        let record = progress::read(&path, p.pid, Some(p.start_time))
            .map_err(|why| {
                if named {
                    notes.push(format!("{why}; token progress unknown"))
                }
            })
            .ok()?;
        Some(token_progress(&path, record, before, self.now))
    }

    /// The worker's faulthandler dump file (where the module's watchdog dumps too): the one
    /// the registry names, else the one in its user's directory, when it may be read.
    fn faulthandler(
        &self,
        entry: Option<&crate::model::RegistryEntry>,
        last: Option<&crate::model::ProcessInfo>,
        notes: &mut Vec<String>,
    ) -> Option<PathBuf> {
        let p = last?;
        progress::worker_file(entry.zip(self.registry), "faulthandler", p.pid, p.uid)
            .unwrap_or_else(|why| {
                notes.push(why);
                None
            })
    }
}

/// Keeps reading the workers, one reading a second, until the probe of `url` ends (at its
/// deadline at the latest; `until` bounds a name lookup that hangs): "no answer while the CPU
/// and GPU stayed idle" is judged over the probe's wait.
fn follow_probe(
    platform: &dyn Platform,
    series: &mut [crate::sample::Series],
    sampled: std::time::Instant,
    probes: &crate::probe::Probes,
    url: &str,
    until: std::time::Instant,
) {
    while !probes.ended(url) && std::time::Instant::now() < until {
        probes.wait(url, std::time::Instant::now() + Duration::from_secs(1));
        for s in series.iter_mut().filter(|s| s.error.is_none()) {
            match platform.process(s.pid) {
                Ok(p) => s.readings.push((sampled.elapsed().as_secs_f64(), p)),
                Err(e) => s.error = Some(e),
            }
        }
    }
}

/// The `ip:port` addresses an MLX host file names (JSON, a list of each rank's addresses;
/// every string that looks like an address is taken, whatever the nesting). The file is the
/// worker's own, but read as untrusted: at most 1 MiB, and nothing when it does not parse.
fn hostfile_addresses(path: &std::path::Path) -> Vec<String> {
    use std::io::Read;
    let mut text = String::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(1 << 20).read_to_string(&mut text));
    if read.is_err() {
        return vec![];
    }
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if s.parse::<std::net::SocketAddr>().is_ok() => {
                out.push(s.clone())
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        walk(&v, &mut out);
    }
    out
}

/// Who a worker name's log lines (those that carry no pid) belong to.
#[derive(Debug, Clone, PartialEq)]
enum Owner {
    One(u32),
    /// Several processes could be that worker: the lines are attributed to none of them.
    Ambiguous(Vec<u32>),
}

/// The owner of the log file: the user the server (and so its workers) runs as. Not known for
/// standard input, nor for a root-owned log (systemd's `StandardOutput=append:` creates the
/// file as root whatever user the service runs as).
fn log_owner(path: &std::path::Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    (path.as_os_str() != "-")
        .then(|| std::fs::metadata(path).ok().map(|m| m.uid()))
        .flatten()
        .filter(|&uid| uid != 0)
}

/// For each worker name, the one process the name's log lines are about: the registry's PID
/// for a registered name; else the one process of that name that is not the child of another
/// (a worker's forked helper shares its command line) and is owned by the log's owner (another
/// user can start a process under any name). Several left: ambiguous, none of them.
fn owners(
    found: &[discover::Candidate],
    series: &[crate::sample::Series],
    names: &[String],
    log_owner: Option<u32>,
) -> BTreeMap<String, Owner> {
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        by_name.entry(n.as_str()).or_default().push(i);
    }
    let mut out = BTreeMap::new();
    for (name, idx) in by_name {
        let registered: Vec<u32> = idx
            .iter()
            .filter(|&&i| found[i].registered.is_some())
            .map(|&i| found[i].pid)
            .collect();
        let pick: Vec<u32> = if registered.is_empty() {
            let pids: Vec<u32> = idx.iter().map(|&i| found[i].pid).collect();
            idx.iter()
                .filter_map(|&i| {
                    let p = series[i].last();
                    let child = p.is_some_and(|p| pids.contains(&p.ppid));
                    let foreign = matches!((p, log_owner), (Some(p), Some(o)) if p.uid != o);
                    (!child && !foreign).then_some(found[i].pid)
                })
                .collect()
        } else {
            registered
        };
        let owner = match pick.as_slice() {
            [one] => Owner::One(*one),
            [] => continue,
            many => Owner::Ambiguous(many.to_vec()),
        };
        out.insert(name.to_string(), owner);
    }
    out
}

/// The progress record of each worker, read before the window (the rate is taken over the
/// window): the one its registry entry names, else the one in its user's directory
/// ([`progress::user_file`]); `None` for the others.
fn progress_before(
    platform: &dyn Platform,
    registry: Option<&registry::Registry>,
    found: &[discover::Candidate],
) -> Vec<Option<TokenRecord>> {
    found
        .iter()
        .map(|c| {
            let p = platform.process(c.pid).ok()?;
            let registered = c.registered.as_ref().zip(registry);
            let path = progress::worker_file(registered, "progress", c.pid, p.uid).ok()??;
            progress::read(&path, c.pid, Some(p.start_time)).ok()
        })
        .collect()
}

/// A record read at the end of the window, with the window's tokens and rate against the
/// reading before it (the same record: same process, same creation).
fn token_progress(
    path: &std::path::Path,
    record: TokenRecord,
    before: Option<&TokenRecord>,
    now: chrono::DateTime<chrono::Utc>,
) -> TokenProgress {
    let before = before.filter(|b| b.created == record.created && b.tokens <= record.tokens);
    let window_tokens = before.map(|b| record.tokens - b.tokens);
    let secs = before.map(|b| (record.read_at - b.read_at).as_seconds_f64());
    let tokens_per_sec = window_tokens
        .zip(secs)
        .filter(|(_, s)| *s > 0.0)
        .map(|(n, s)| n as f64 / s);
    let last = record.last_progress.max(record.generating_since);
    TokenProgress {
        source: path.display().to_string(),
        secs_since_progress: last.map(|t| (now - t).as_seconds_f64().max(0.0)),
        record,
        window_tokens,
        tokens_per_sec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gil_holder_is_named_with_where_it_stands() {
        let t = |tid, gil| crate::model::ThreadStack {
            tid,
            name: Some(format!("T{tid}")),
            owns_gil: gil,
            python: vec![crate::model::Frame {
                function: "Thread.join".into(),
                location: None,
                line: None,
            }],
            ..Default::default()
        };
        assert!(gil_holder(&[t(1, Some(false)), t(2, None)]).is_none());
        let line = gil_holder(&[t(1, Some(false)), t(2, Some(true))]).unwrap();
        assert!(
            line.starts_with("thread 2 (T2) holds the GIL, in Thread.join"),
            "{line}"
        );
    }
    use crate::model::{ProcessInfo, RegistryEntry};
    use crate::sample::Series;
    use chrono::TimeZone;

    fn proc(pid: u32, ppid: u32, uid: u32) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid,
            uid,
            name: "python3".into(),
            cmdline: vec!["python3".into(), "mlx-server-v3-1".into()],
            state: 'S',
            start_time: chrono::Utc.with_ymd_and_hms(2026, 1, 5, 18, 17, 0).unwrap(),
            cpu_user_ns: 0,
            cpu_system_ns: 0,
            rss_bytes: 0,
            vsz_bytes: 0,
            footprint_bytes: None,
            threads: 1,
            threads_running: 0,
        }
    }

    fn world(
        procs: &[(u32, u32, u32, bool)],
    ) -> (Vec<discover::Candidate>, Vec<Series>, Vec<String>) {
        let found = procs
            .iter()
            .map(|&(pid, _, _, reg)| discover::Candidate {
                pid,
                registered: reg.then(|| RegistryEntry {
                    pid,
                    name: Some("w1".into()),
                    model: None,
                    spawned_at: None,
                    port: None,
                    extra: Default::default(),
                }),
                matched: true,
                found_by: discover::FoundBy::Pattern,
            })
            .collect();
        let series = procs
            .iter()
            .map(|&(pid, ppid, uid, _)| Series {
                pid,
                readings: vec![(0.0, proc(pid, ppid, uid))],
                error: None,
            })
            .collect();
        (found, series, vec!["w1".to_string(); procs.len()])
    }

    #[test]
    fn a_name_belongs_to_one_process_or_to_none() {
        let own = |procs: &[(u32, u32, u32, bool)], log_owner| {
            let (f, s, n) = world(procs);
            owners(&f, &s, &n, log_owner).get("w1").cloned()
        };
        // The registry's PID, whatever else shares the name (an impostor, a forked child).
        assert_eq!(
            own(
                &[
                    (10, 1, 501, false),
                    (20, 1, 501, true),
                    (21, 20, 501, false)
                ],
                Some(501)
            ),
            Some(Owner::One(20))
        );
        // No registry: the worker, not its forked helper (same command line).
        assert_eq!(
            own(&[(20, 1, 501, false), (21, 20, 501, false)], Some(501)),
            Some(Owner::One(20))
        );
        // No registry: another user's process under the worker's name is never the worker.
        assert_eq!(
            own(&[(10, 1, 666, false), (20, 1, 501, false)], Some(501)),
            Some(Owner::One(20))
        );
        assert_eq!(own(&[(10, 1, 666, false)], Some(501)), None);
        // Two unrelated processes of the log's owner (a rolling restart's overlap without
        // pid= in the lines), or owners unknown: ambiguous, attributed to neither.
        assert_eq!(
            own(&[(10, 1, 501, false), (20, 1, 501, false)], Some(501)),
            Some(Owner::Ambiguous(vec![10, 20]))
        );
        assert_eq!(
            own(&[(10, 1, 666, false), (20, 1, 501, false)], None),
            Some(Owner::Ambiguous(vec![10, 20]))
        );
        // Two registered under one name: the registry does not say which; ambiguous.
        assert_eq!(
            own(&[(10, 1, 501, true), (20, 1, 501, true)], Some(501)),
            Some(Owner::Ambiguous(vec![10, 20]))
        );
    }
}
