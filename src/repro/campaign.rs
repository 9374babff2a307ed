//! The replay campaign behind `repro`: run captured requests many times against a live
//! endpoint or the reference MLX loop, catch each stall in the act with a snapshot, and report
//! the hang rate with how much it can be trusted. `repro` converts its arguments into
//! [`ReproOptions`] and prints the [`ReproReport`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use super::checkpoint::Checkpoint;
use super::endpoint::{self, Endpoint};
use super::protocol::RunRequest;
use super::runlog::RunLog;
use super::runner::{self, Runner};
use super::stats::{self, Interval};
use crate::diagnose::check::CheckOptions;
use crate::model::SCHEMA_VERSION;
use crate::platform::Platform;
use crate::snapshot::SnapshotOptions;

/// A campaign's settings (`repro`'s flags).
#[derive(Debug, Clone)]
pub struct ReproOptions {
    pub endpoint: Option<String>,
    pub model: Option<PathBuf>,
    /// Where the requests came from (named in errors).
    pub prompt: Option<PathBuf>,
    pub requests: Option<PathBuf>,
    pub runs: u64,
    pub parallel: usize,
    /// No token for this long is a stall.
    pub stall: Duration,
    pub max_tokens: u64,
    pub target_rate: f64,
    pub out: Option<PathBuf>,
    pub model_name: Option<String>,
    /// The server's log, for the snapshots of its workers.
    pub log: Option<PathBuf>,
    /// How the server's workers are found for their snapshots (`None`: automatic discovery).
    pub pattern: Option<String>,
    pub registry: PathBuf,
    pub keep_hung: bool,
    pub load_timeout: Duration,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    /// (run, token): the runner hangs after that many tokens of that run (tests).
    pub inject_hang: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hang {
    pub run: u64,
    pub request: usize,
    pub after_tokens: u64,
    pub after_secs: f64,
    /// With --model: the runner that stalled.
    pub runner_pid: Option<u32>,
    /// With --keep-hung: the runner was left alive, mid-hang.
    pub kept_alive: bool,
    /// Snapshots taken when the stall was seen (the server's workers, or the runner).
    pub snapshots: Vec<String>,
    pub snapshot_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ReproReport {
    pub schema_version: u32,
    pub command: &'static str,
    /// The server replayed against (`--endpoint`), or null.
    pub endpoint: Option<String>,
    /// The checkpoint run through the reference loop (`--model`), or null.
    pub model: Option<String>,
    pub requests: usize,
    pub runs: u64,
    pub completed: u64,
    /// Runs that completed or hung: the hang rate's denominator (errors are neither).
    pub judged: u64,
    pub hangs: u64,
    pub errors: u64,
    pub tokens: u64,
    pub tokens_per_sec: Option<f64>,
    pub hang_rate: f64,
    /// 95 % Clopper–Pearson interval of the hang rate.
    pub hang_rate_95: Option<Interval>,
    /// More runs needed to see one hang with 95 % probability, at the observed rate (or the
    /// target rate when none was seen).
    pub runs_still_needed_to_see_a_hang: Option<u64>,
    /// Clean runs needed to claim, at 95 %, a rate below the observed (or target) rate.
    pub clean_runs_to_claim_a_fix: Option<u64>,
    pub target_rate: f64,
    pub hang_details: Vec<Hang>,
    pub error_details: Vec<String>,
    pub out_dir: String,
}

fn body(base: &serde_json::Value, args: &ReproOptions) -> serde_json::Value {
    let mut b = base.clone();
    b["stream"] = true.into();
    if let Some(m) = &args.model_name {
        b["model"] = m.clone().into();
    }
    if b.get("max_tokens").is_none() {
        b["max_tokens"] = args.max_tokens.into();
    }
    b
}

/// A captured request as the runner takes it; the flags fill what the request leaves unset.
fn run_request(base: &serde_json::Value, args: &ReproOptions) -> Result<RunRequest, String> {
    let number = |key: &str| -> Result<Option<f64>, String> {
        match base.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("\"{key}\" must be a number, not {v}")),
        }
    };
    let prompt = match base.get("prompt") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(p)) => Some(p.clone()),
        Some(v) => return Err(format!("\"prompt\" must be a string, not {v}")),
    };
    let max_tokens = match number("max_tokens")? {
        Some(n) => Some(n),
        None => number("max_completion_tokens")?,
    };
    Ok(RunRequest {
        run: 0,
        messages: base.get("messages").cloned(),
        prompt,
        max_tokens: max_tokens.map_or(args.max_tokens as usize, |n| n as usize),
        temperature: number("temperature")?.map_or(args.temperature, |t| t as f32),
        top_p: number("top_p")?.map_or(args.top_p, |t| t as f32),
        seed: number("seed")?.map_or(args.seed, |s| s as u64),
        hang_after: None,
    })
}

/// The prompt's size in characters, for the run log.
fn prompt_chars(r: &RunRequest) -> usize {
    let from_messages = r.messages.as_ref().and_then(|m| m.as_array()).map(|list| {
        list.iter()
            .filter_map(|m| m["content"].as_str())
            .map(|c| c.chars().count())
            .sum()
    });
    from_messages.unwrap_or_else(|| r.prompt.as_deref().map_or(0, |p| p.chars().count()))
}

/// What one campaign lane replays against.
enum Target {
    Endpoint(Endpoint),
    Model {
        exe: PathBuf,
        dir: PathBuf,
        requests: Vec<RunRequest>,
    },
}

impl Target {
    /// The target the flags name: the server's URL, or the checkpoint (opened to check it) with
    /// the requests as the runner takes them.
    fn new(args: &ReproOptions, requests: &[serde_json::Value]) -> anyhow::Result<Target> {
        let target = match (&args.endpoint, &args.model) {
            (Some(url), _) => Target::Endpoint(Endpoint::parse(url).map_err(anyhow::Error::msg)?),
            (None, Some(dir)) => {
                Checkpoint::open(dir)?;
                let source = args
                    .requests
                    .as_ref()
                    .or(args.prompt.as_ref())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let requests = requests
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        run_request(b, args)
                            .map_err(|e| anyhow::anyhow!("{source}: request {}: {e}", i + 1))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Target::Model {
                    exe: runner::locate()?,
                    dir: dir.clone(),
                    requests,
                }
            }
            (None, None) => anyhow::bail!("give --endpoint URL or --model DIR"),
        };
        Ok(target)
    }
}

/// Snapshots `pids` (or every worker found, when empty) into `dir`, finding the workers by
/// `pattern` and `registry`; the saved files, or why there are none.
fn snapshot(
    platform: &dyn Platform,
    dir: &Path,
    (pattern, registry): (Option<String>, PathBuf),
    log: Option<PathBuf>,
    hung_after: Duration,
    pids: Vec<u32>,
) -> (Vec<String>, Option<String>) {
    let opts = SnapshotOptions {
        pids,
        check: CheckOptions {
            pattern,
            registry,
            log,
            window: Duration::from_secs(1),
            hung_after,
            ..CheckOptions::default()
        },
        dir: Some(dir.to_path_buf()),
        tail: 20,
        ..SnapshotOptions::default()
    };
    match crate::snapshot::take(&opts, platform) {
        Ok((r, _)) if r.saved.is_empty() => (
            vec![],
            Some("no server worker found by --pattern/--registry".to_string()),
        ),
        Ok((r, _)) => (r.saved.into_iter().map(|s| s.json).collect(), None),
        Err(e) => (vec![], Some(format!("{e:#}"))),
    }
}

/// How the runner's process is found again for its snapshot: by its own command line
/// (pattern, registry).
fn runner_discovery(exe: &Path, out_dir: &Path) -> (Option<String>, PathBuf) {
    let name = exe.file_name().unwrap_or(exe.as_os_str()).to_string_lossy();
    (
        Some(format!("{} serve --model", regex::escape(&name))),
        // Runners are in no orchestrator's registry.
        out_dir.join("no-registry.json"),
    )
}

/// Starts one runner per lane, all at once; the first that does not load is the error.
fn start_runners(
    exe: &Path,
    dir: &Path,
    lanes: usize,
    load_timeout: Duration,
) -> anyhow::Result<Vec<Runner>> {
    let started: Vec<anyhow::Result<Runner>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..lanes)
            .map(|_| s.spawn(|| Runner::start(exe, dir, load_timeout)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("runner start panicked")))
            })
            .collect()
    });
    let mut runners = Vec::new();
    for r in started {
        runners.push(r?);
    }
    Ok(runners)
}

/// The campaign's progress bar on stderr, or a hidden one when `progress` is off.
fn progress_bar(progress: bool, runs: u64) -> indicatif::ProgressBar {
    if !progress {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(runs);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} runs  {msg}  [{elapsed_precise}, eta {eta}]",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    }
}

/// One campaign's settings and target, and what its lanes share while they run: the next run
/// to take, the tallies, the hangs and errors seen, and the progress bar.
struct Campaign<'a> {
    args: &'a ReproOptions,
    requests: &'a [serde_json::Value],
    platform: &'a dyn Platform,
    target: Target,
    out_dir: PathBuf,
    lanes: usize,
    runlog: Option<RunLog>,
    /// Runners started before the campaign; each lane takes one.
    runners: Mutex<Vec<Runner>>,
    next: AtomicU64,
    completed: AtomicU64,
    tokens: AtomicU64,
    errors: AtomicU64,
    stream_secs: Mutex<f64>,
    hangs: Mutex<Vec<Hang>>,
    error_details: Mutex<Vec<String>>,
    snapshot_lock: Mutex<()>,
    bar: indicatif::ProgressBar,
}

impl<'a> Campaign<'a> {
    /// Everything before the first run: the target, the output folder, the run log and the
    /// runners (with --model), and the progress bar.
    fn start(
        args: &'a ReproOptions,
        requests: &'a [serde_json::Value],
        platform: &'a dyn Platform,
        progress: bool,
    ) -> anyhow::Result<Campaign<'a>> {
        let target = Target::new(args, requests)?;
        let out_dir = args.out.clone().unwrap_or_else(|| {
            PathBuf::from(format!(
                "mlsdiag-repro-{}",
                chrono::Local::now().format("%Y%m%d_%H%M%S")
            ))
        });
        let lanes = args.parallel.max(1);
        let runlog = match &target {
            Target::Model { .. } => Some(RunLog::open(&out_dir)?),
            Target::Endpoint(_) => None,
        };
        // Runners load before the campaign: a checkpoint that does not load is an error, not N.
        let runners = match &target {
            Target::Model { exe, dir, .. } => start_runners(exe, dir, lanes, args.load_timeout)?,
            Target::Endpoint(_) => Vec::new(),
        };
        let bar = progress_bar(progress, args.runs);
        Ok(Campaign {
            args,
            requests,
            platform,
            target,
            out_dir,
            lanes,
            runlog,
            runners: Mutex::new(runners),
            next: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            stream_secs: Mutex::new(0f64),
            hangs: Mutex::new(Vec::new()),
            error_details: Mutex::new(Vec::new()),
            snapshot_lock: Mutex::new(()),
            bar,
        })
    }

    /// Runs every lane, each on its own thread, until all runs are taken; then clears the bar.
    fn run_lanes(&self) {
        std::thread::scope(|s| {
            for _ in 0..self.lanes {
                s.spawn(|| self.lane());
            }
        });
        self.bar.finish_and_clear();
    }

    /// One lane: takes the next run until none is left, replays it and tallies its outcome.
    fn lane(&self) {
        let mut runner: Option<Runner> =
            self.runners.lock().unwrap_or_else(|p| p.into_inner()).pop();
        loop {
            let run = self.next.fetch_add(1, Ordering::Relaxed);
            if run >= self.args.runs {
                return;
            }
            let index = run as usize % self.requests.len();
            let (o, hang) = match &self.target {
                Target::Endpoint(ep) => self.endpoint_run(ep, run, index),
                Target::Model { exe, dir, requests } => {
                    match self.model_run(exe, dir, &requests[index], run, index, &mut runner) {
                        Some(done) => done,
                        None => continue,
                    }
                }
            };
            self.tally(run, &o, hang);
        }
    }

    /// One run against the live server; at a stall, the hang with a snapshot of its workers.
    fn endpoint_run(
        &self,
        ep: &Endpoint,
        run: u64,
        index: usize,
    ) -> (endpoint::Outcome, Option<Hang>) {
        let args = self.args;
        let o = endpoint::stream(ep, &body(&self.requests[index], args), args.stall);
        let hang = o.stalled.then(|| {
            // One snapshot at a time: the evidence of this stall, then on.
            let _one = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
            let (snapshots, snapshot_error) = snapshot(
                self.platform,
                &self.out_dir,
                (args.pattern.clone(), args.registry.clone()),
                args.log.clone(),
                Duration::from_secs(300),
                vec![],
            );
            Hang {
                run,
                request: index,
                after_tokens: o.tokens,
                after_secs: o.seconds,
                runner_pid: None,
                kept_alive: false,
                snapshots,
                snapshot_error,
            }
        });
        (o, hang)
    }

    /// One run through the reference loop on the lane's runner (a new one when the last hung or
    /// died), logged; `None` when no runner could be started (the error is already counted).
    fn model_run(
        &self,
        exe: &Path,
        dir: &Path,
        request: &RunRequest,
        run: u64,
        index: usize,
        runner: &mut Option<Runner>,
    ) -> Option<(endpoint::Outcome, Option<Hang>)> {
        let args = self.args;
        let mut r = match runner.take() {
            Some(r) => r,
            None => match Runner::start(exe, dir, args.load_timeout) {
                Ok(r) => r,
                Err(e) => {
                    record_error(&self.errors, &self.error_details, run, &format!("{e:#}"));
                    self.bar.inc(1);
                    return None;
                }
            },
        };
        let mut request = request.clone();
        request.run = run;
        request.hang_after = args
            .inject_hang
            .iter()
            .find(|(at, _)| *at == run)
            .map(|(_, k)| *k);
        let log = self.runlog.as_ref().expect("a run log with --model");
        log.started(
            r.pid,
            run,
            prompt_chars(&request),
            request.max_tokens,
            request.temperature,
        );
        let o = r.run(&request, args.stall);
        match (&o.error, o.stalled) {
            (_, true) => log.stalled(r.pid, run, args.stall.as_secs_f64()),
            (Some(e), _) => log.failed(r.pid, run, e),
            (None, false) => log.completed(r.pid, run, o.tokens, o.seconds),
        }
        let hang = if o.stalled {
            Some(self.runner_hang(r, exe, run, index, &o))
        } else {
            if r.is_alive() {
                *runner = Some(r);
            }
            None
        };
        Some((o, hang))
    }

    /// The hang of a stalled runner: a snapshot of it, then the runner ended, or left alive
    /// with --keep-hung.
    fn runner_hang(
        &self,
        r: Runner,
        exe: &Path,
        run: u64,
        index: usize,
        o: &endpoint::Outcome,
    ) -> Hang {
        let pid = r.pid;
        let (snapshots, snapshot_error) = {
            let _one = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
            snapshot(
                self.platform,
                &self.out_dir,
                runner_discovery(exe, &self.out_dir),
                self.runlog.as_ref().map(|l| l.path.clone()),
                self.args.stall,
                vec![pid],
            )
        };
        // The evidence is on disk; now end the hung runner, or keep it.
        let kept_alive = self.args.keep_hung;
        if kept_alive {
            r.keep();
        } else {
            drop(r);
        }
        Hang {
            run,
            request: index,
            after_tokens: o.tokens,
            after_secs: o.seconds,
            runner_pid: Some(pid),
            kept_alive,
            snapshots,
            snapshot_error,
        }
    }

    /// Adds one run's outcome to the tallies and moves the progress bar on.
    fn tally(&self, run: u64, o: &endpoint::Outcome, hang: Option<Hang>) {
        self.tokens.fetch_add(o.tokens, Ordering::Relaxed);
        *self.stream_secs.lock().unwrap_or_else(|p| p.into_inner()) += o.seconds;
        if let Some(h) = hang {
            self.hangs.lock().unwrap_or_else(|p| p.into_inner()).push(h);
        } else if let Some(e) = &o.error {
            record_error(&self.errors, &self.error_details, run, e);
        } else {
            self.completed.fetch_add(1, Ordering::Relaxed);
        }
        let secs = *self.stream_secs.lock().unwrap_or_else(|p| p.into_inner());
        let hung = self.hangs.lock().map(|h| h.len()).unwrap_or(0);
        self.bar.set_message(format!(
            "{:.1} tok/s, {hung} hang(s)",
            self.tokens.load(Ordering::Relaxed) as f64 / secs.max(1e-9)
        ));
        self.bar.inc(1);
    }

    /// The report: the tallies, the hangs in run order, and the hang rate with its confidence.
    fn finish(self) -> ReproReport {
        let args = self.args;
        let mut hang_details = self.hangs.into_inner().unwrap_or_else(|p| p.into_inner());
        hang_details.sort_by_key(|h| h.run);
        let (runs, hung) = (args.runs, hang_details.len() as u64);
        let completed = self.completed.into_inner();
        // A run that ended in an error (a refused connection, an HTTP error) neither completed
        // nor hung: it says nothing about the hang rate, so it is not counted as a clean run.
        let judged = completed + hung;
        let rate = if judged > 0 {
            hung as f64 / judged as f64
        } else {
            0.0
        };
        let basis = if hung > 0 { rate } else { args.target_rate };
        let secs = self
            .stream_secs
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let tokens = self.tokens.into_inner();
        ReproReport {
            schema_version: SCHEMA_VERSION,
            command: "repro",
            endpoint: args.endpoint.clone(),
            model: args.model.as_ref().map(|m| m.display().to_string()),
            requests: self.requests.len(),
            runs,
            completed,
            judged,
            hangs: hung,
            errors: self.errors.into_inner(),
            tokens,
            tokens_per_sec: (secs > 0.0).then(|| tokens as f64 / secs),
            hang_rate: rate,
            hang_rate_95: stats::clopper_pearson(hung, judged, 0.95),
            runs_still_needed_to_see_a_hang: if hung > 0 {
                Some(0)
            } else {
                stats::runs_to_see(basis, 0.95).map(|n| n.saturating_sub(judged))
            },
            clean_runs_to_claim_a_fix: stats::runs_to_claim_fix(basis, 0.95),
            target_rate: args.target_rate,
            hang_details,
            error_details: self
                .error_details
                .into_inner()
                .unwrap_or_else(|p| p.into_inner()),
            out_dir: self.out_dir.display().to_string(),
        }
    }
}

/// The campaign: every run of every request, a snapshot at each stall, and the hang rate with
/// its confidence. `progress`: show a progress bar on stderr.
pub fn run(
    args: &ReproOptions,
    requests: &[serde_json::Value],
    platform: &dyn Platform,
    progress: bool,
) -> anyhow::Result<ReproReport> {
    let campaign = Campaign::start(args, requests, platform, progress)?;
    campaign.run_lanes();
    Ok(campaign.finish())
}

fn record_error(errors: &AtomicU64, details: &Mutex<Vec<String>>, run: u64, e: &str) {
    errors.fetch_add(1, Ordering::Relaxed);
    let mut d = details.lock().unwrap_or_else(|p| p.into_inner());
    if d.len() < 20 {
        d.push(format!("run {run}: {e}"));
    }
}
