//! Command-line interface: every flag, its default and its environment variable, in one place.
//!
//! The same definitions generate `--help`, the shell completions in `completions/` and the man
//! page in `docs/`, so none of them can drift from the parser.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::diagnose::leak;
use crate::fmt::parse_duration;

#[derive(Debug, Parser)]
#[command(
    name = "mlsdiag",
    version,
    about = "Diagnose the worker processes of an MLX inference server: healthy, hung, crashed, orphaned or leaking, with the evidence",
    after_help = "Exit codes (monitoring-plugin convention): 0 OK, 1 WARNING (orphan, leaking), \
                  2 CRITICAL (hung, crashed), 3 UNKNOWN (could not inspect, bad input, usage error).\n\
                  Start with `mlsdiag demo` to see every verdict on a simulated server."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print one JSON document (with schema_version) instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// When to colour tables; NO_COLOR in the environment turns colour off in auto mode
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Read processes from a recording (`mlsdiag record`) instead of the live OS
    #[arg(long, global = true, hide = true, value_name = "FILE")]
    pub fixture: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify every worker: healthy, hung, crashed, orphan or leaking, with the evidence
    Check(CheckCmdArgs),
    /// Check every --interval, print verdict changes, snapshot and alert on findings, export metrics
    Watch(WatchArgs),
    /// The live view: the workers as a tree with their verdicts as they form, the evidence, stacks, threads and fds
    Top(TopArgs),
    /// Run `mlsdiag check` on many hosts over ssh and merge the results
    Fleet(FleetArgs),
    /// Every thread of a process: state, CPU, what it waits on, grouped by lock
    Threads(ThreadsArgs),
    /// Every descriptor of a process: pipes, sockets with their peers, shared memory, files
    Fds(FdsArgs),
    /// Where each thread is stuck (Python and native frames, lock waits) and known MLX hangs it matches
    Stacks(StacksArgs),
    /// The worker registry joined with the live processes
    Registry(RegistryArgs),
    /// Request timeline, throughput, anomalies and the hang trigger from server logs
    Logs(LogsArgs),
    /// System memory and pressure, per-worker memory and its trend
    Mem(MemArgs),
    /// Start a simulated MLS with misbehaving workers and diagnose it
    Demo(DemoArgs),
    /// Save each worker's full diagnosis as text and JSON (for cron, history and postmortems)
    Snapshot(SnapshotArgs),
    /// Trends across saved snapshots: leaks, frozen CPU time, restarts
    History(HistoryArgs),
    /// Write the incident postmortem (Markdown) from snapshots and the server log
    Postmortem(PostmortemArgs),
    /// Replay requests many times against a live server or the reference MLX loop; catch and snapshot stalls
    Repro(ReproArgs),
    /// Save readings, threads, descriptors and memory of workers to a JSON recording
    Record(RecordArgs),
    /// Start a stock server (mlx_lm.server …) with the token record wired into mlx-lm, found with no registry
    Run(RunArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print the man page (roff): mlsdiag(1), or a subcommand's, mlsdiag-SUBCOMMAND(1)
    Man(ManArgs),
    /// (internal) the demo's orchestrator process
    #[command(name = "__demo-orchestrator", hide = true)]
    DemoOrchestrator(DemoOrchestratorArgs),
    /// (internal) one demo worker process
    #[command(name = "__demo-worker", hide = true)]
    DemoWorker(DemoWorkerArgs),
}

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Check(_) => "check",
            Command::Watch(_) => "watch",
            Command::Top(_) => "top",
            Command::Fleet(_) => "fleet",
            Command::Threads(_) => "threads",
            Command::Fds(_) => "fds",
            Command::Stacks(_) => "stacks",
            Command::Registry(_) => "registry",
            Command::Logs(_) => "logs",
            Command::Mem(_) => "mem",
            Command::Demo(_) => "demo",
            Command::Snapshot(_) => "snapshot",
            Command::History(_) => "history",
            Command::Postmortem(_) => "postmortem",
            Command::Repro(_) => "repro",
            Command::Record(_) => "record",
            Command::Run(_) => "run",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
            Command::DemoOrchestrator(_) => "__demo-orchestrator",
            Command::DemoWorker(_) => "__demo-worker",
        }
    }
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// How workers are found.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Discovery")]
pub struct DiscoveryArgs {
    /// Regex matched against each process's full command line [default: MLS's workers
    /// (mlx-server-v3), known MLX servers (mlx_lm.server, …) and every process with MLX loaded]
    #[arg(long, env = "MLSDIAG_PATTERN")]
    pub pattern: Option<String>,
    /// The orchestrator's worker registry (JSON); none at the default path = no orchestrator
    #[arg(long, env = "MLSDIAG_REGISTRY", default_value = crate::registry::DEFAULT_PATH)]
    pub registry: PathBuf,
}

impl DiscoveryArgs {
    /// What discovery searches for: `--pattern`, or automatic.
    pub fn search(&self) -> anyhow::Result<crate::discover::Search> {
        crate::discover::Search::new(self.pattern.as_deref())
    }
}

/// The leak rule's thresholds (see `leak`): a rising memory baseline, not memory in use.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Thresholds")]
pub struct LeakArgs {
    /// Baseline growth (MiB/min, Theil–Sen) above which memory counts as leaking
    #[arg(long, default_value_t = leak::Rule::DEFAULT.threshold_mib_per_min, value_name = "MIB_PER_MIN")]
    pub leak_threshold: f64,
    /// Least baseline growth in all (MiB) before a leak is called
    #[arg(long, default_value_t = leak::Rule::DEFAULT.min_growth_mib, value_name = "MIB")]
    pub leak_min_growth: f64,
    /// Least time the readings must span before a leak is called
    #[arg(long, default_value = "1m", value_parser = duration_arg)]
    pub leak_min_span: Duration,
}

impl LeakArgs {
    pub fn rule(&self) -> leak::Rule {
        leak::Rule {
            threshold_mib_per_min: self.leak_threshold,
            min_growth_mib: self.leak_min_growth,
            min_span: self.leak_min_span,
        }
    }
}

impl From<leak::Rule> for LeakArgs {
    fn from(r: leak::Rule) -> Self {
        LeakArgs {
            leak_threshold: r.threshold_mib_per_min,
            leak_min_growth: r.min_growth_mib,
            leak_min_span: r.min_span,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    /// There is no orchestrator: read no registry, judge every worker found on its own
    #[arg(long, help_heading = "Discovery")]
    pub no_registry: bool,
    /// MLS server log; in-flight requests in it are what proves a hang
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Sampling window for CPU%, thread states and memory growth
    #[arg(long, default_value = "2s", value_parser = duration_arg, help_heading = "Thresholds")]
    pub window: Duration,
    /// Window for the memory trend, when longer than --window
    #[arg(long, value_parser = duration_arg, help_heading = "Thresholds")]
    pub leak_window: Option<Duration>,
    /// A request in flight this long without progress is a hang
    #[arg(long, default_value = "5m", value_parser = duration_arg, help_heading = "Thresholds")]
    pub hung_after: Duration,
    #[command(flatten)]
    pub leak: LeakArgs,
    /// CPU% over the window at or below which a worker makes no progress
    #[arg(
        long,
        default_value_t = 1.0,
        value_name = "PERCENT",
        help_heading = "Thresholds"
    )]
    pub progress_cpu: f64,
    /// Also judge workers by the snapshots in this directory (memory trend, frozen CPU time)
    #[arg(long, value_name = "DIR")]
    pub history: Option<PathBuf>,
    /// Send the server at URL (http://HOST:PORT[/PATH]) one OpenAI-compatible completion of
    /// one token, deadline --hung-after: no answer while its CPU and GPU stay idle is a hang, an
    /// answer shows generation works. It costs the server one generation (watch: each round);
    /// never sent by default
    #[arg(long, value_name = "URL")]
    pub probe: Option<String>,
    /// The `model` the probe names. Left out by default: mlx_lm.server then uses the model it
    /// was started with (naming another makes it load that one); for servers that require a
    /// model name
    #[arg(long, value_name = "NAME", requires = "probe")]
    pub probe_model: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// `Some(colour)` when forced, `None` to decide by the terminal.
    pub fn forced(self) -> Option<bool> {
        match self {
            ColorChoice::Always => Some(true),
            ColorChoice::Never => Some(false),
            ColorChoice::Auto => None,
        }
    }
}

impl From<&CheckArgs> for crate::diagnose::check::CheckOptions {
    fn from(a: &CheckArgs) -> Self {
        crate::diagnose::check::CheckOptions {
            pattern: a.discovery.pattern.clone(),
            registry: a.discovery.registry.clone(),
            no_registry: a.no_registry,
            log: a.log.clone(),
            window: a.window,
            leak_window: a.leak_window,
            hung_after: a.hung_after,
            leak: a.leak.rule(),
            progress_cpu: a.progress_cpu,
            history: a.history.clone(),
            probe: a.probe.clone(),
            probe_model: a.probe_model.clone(),
        }
    }
}

/// The hidden `demo-orchestrator` command: the simulated MLS orchestrator.
#[derive(Debug, Clone, Args)]
pub struct DemoOrchestratorArgs {
    /// Private directory for the socket, registry, log and state file
    #[arg(long)]
    pub dir: PathBuf,
    /// Unique tag in every process name of this simulation
    #[arg(long)]
    pub tag: String,
    /// The orchestrator's own name, so that it matches the discovery pattern like MLS's does
    #[arg(long)]
    pub name: String,
    /// Keep running when the process that started it exits (demo --keep)
    #[arg(long)]
    pub detached: bool,
}

impl From<DemoOrchestratorArgs> for crate::sim::OrchestratorArgs {
    fn from(a: DemoOrchestratorArgs) -> Self {
        crate::sim::OrchestratorArgs {
            dir: a.dir,
            tag: a.tag,
            name: a.name,
            detached: a.detached,
        }
    }
}

/// The hidden `demo-worker` command: one simulated worker.
#[derive(Debug, Clone, Args)]
pub struct DemoWorkerArgs {
    #[arg(long, value_parser = role_arg)]
    pub role: crate::sim::Role,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub socket: PathBuf,
    #[arg(long)]
    pub shm: String,
    /// For the orphan launcher: the orphan's own name
    #[arg(long)]
    pub orphan_name: Option<String>,
}

fn role_arg(s: &str) -> Result<crate::sim::Role, String> {
    crate::sim::Role::from_label(s).ok_or_else(|| format!("unknown role {s:?}"))
}

impl From<DemoWorkerArgs> for crate::sim::WorkerArgs {
    fn from(a: DemoWorkerArgs) -> Self {
        crate::sim::WorkerArgs {
            role: a.role,
            name: a.name,
            socket: a.socket,
            shm: a.shm,
            orphan_name: a.orphan_name,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CheckCmdArgs {
    #[command(flatten)]
    pub check: CheckArgs,
    /// Also write DIR/mlsdiag.prom (Prometheus text format) for node_exporter's textfile collector
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub textfile: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub check: CheckArgs,
    /// Time from the start of one round to the start of the next
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    pub interval: Duration,
    /// Stop after N rounds (default: until interrupted)
    #[arg(long, value_name = "N")]
    pub rounds: Option<u64>,
    /// How far back the memory series kept across rounds reaches (leak trend)
    #[arg(long, default_value = "15m", value_parser = duration_arg, help_heading = "Thresholds")]
    pub leak_span: Duration,
    /// Snapshot directory for first detections (default as for `snapshot`)
    #[arg(long, value_name = "DIR", help_heading = "Evidence")]
    pub dir: Option<PathBuf>,
    /// Take no snapshots
    #[arg(long, conflicts_with = "restart_hung", help_heading = "Evidence")]
    pub no_snapshot: bool,
    /// Log lines kept in each snapshot (with --log)
    #[arg(long, default_value_t = 20, help_heading = "Evidence")]
    pub tail: usize,
    /// Run this (with sh -c) on each new finding: the finding as JSON on stdin, and
    /// MLSDIAG_PID, MLSDIAG_VERDICT, MLSDIAG_WORKER, MLSDIAG_SNAPSHOT in the environment
    #[arg(long, value_name = "CMD", help_heading = "Alerts")]
    pub on_finding: Option<String>,
    /// A hook still running after this is killed
    #[arg(long, default_value = "10s", value_parser = duration_arg, help_heading = "Alerts")]
    pub hook_timeout: Duration,
    /// End a hung worker (SIGTERM, then SIGKILL after --grace) once its snapshot is on disk
    #[arg(long, help_heading = "Remediation")]
    pub restart_hung: bool,
    /// Time between SIGTERM and SIGKILL for --restart-hung
    #[arg(long, default_value = "10s", value_parser = duration_arg, help_heading = "Remediation")]
    pub grace: Duration,
    /// Rewrite DIR/mlsdiag.prom each round (node_exporter textfile collector)
    #[arg(long, value_name = "DIR", help_heading = "Metrics")]
    pub textfile: Option<PathBuf>,
    /// Serve Prometheus metrics on http://ADDR/metrics (PORT or HOST:PORT; host defaults to 127.0.0.1)
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::listen_addr, help_heading = "Metrics")]
    pub listen: Option<String>,
}

impl From<&WatchArgs> for crate::watch::WatchOptions {
    fn from(a: &WatchArgs) -> Self {
        crate::watch::WatchOptions {
            check: (&a.check).into(),
            leak_span: a.leak_span,
            snapshot_dir: (!a.no_snapshot)
                .then(|| a.dir.clone().unwrap_or_else(crate::store::default_dir)),
            tail: a.tail,
            on_finding: a.on_finding.clone(),
            hook_timeout: a.hook_timeout,
            restart_hung: a.restart_hung,
            grace: a.grace,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub check: CheckArgs,
    /// Time from the start of one round to the start of the next
    #[arg(long, default_value = "2s", value_parser = duration_arg)]
    pub interval: Duration,
    /// How far back the memory series kept across rounds reaches (leak trend)
    #[arg(long, default_value = "15m", value_parser = duration_arg, help_heading = "Thresholds")]
    pub leak_span: Duration,
    /// Where `S` saves a snapshot (default as for `snapshot`)
    #[arg(long, value_name = "DIR", help_heading = "Evidence")]
    pub dir: Option<PathBuf>,
    /// Log lines kept in a snapshot taken with `S` (with --log)
    #[arg(long, default_value_t = 20, help_heading = "Evidence")]
    pub tail: usize,
    /// How long `t` samples each thread's CPU
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    pub threads_window: Duration,
    /// Print one frame to stdout (COLUMNS wide, 120 off a terminal) and exit with check's exit code
    #[arg(long)]
    pub once: bool,
}

impl From<&TopArgs> for crate::top::TopOptions {
    fn from(a: &TopArgs) -> Self {
        crate::top::TopOptions {
            // watch's rounds with nothing done about a finding: top signals only on `K`.
            watch: crate::watch::WatchOptions {
                check: (&a.check).into(),
                leak_span: a.leak_span,
                snapshot_dir: None,
                tail: a.tail,
                on_finding: None,
                restart_hung: false,
                ..crate::watch::WatchOptions::default()
            },
            interval: a.interval,
            snapshot_dir: a.dir.clone().unwrap_or_else(crate::store::default_dir),
            threads_window: a.threads_window,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Hosts as ssh takes them (user@host, a Host alias of the ssh config)
    pub hosts: Vec<String>,
    /// Read hosts from FILE, one per line (# comments)
    #[arg(long = "hosts", value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,
    /// ssh client configuration file (ssh -F)
    #[arg(long, value_name = "FILE", help_heading = "Connection")]
    pub ssh_config: Option<PathBuf>,
    /// Extra ssh option (ssh -o), repeatable
    #[arg(
        long = "ssh-option",
        value_name = "OPTION",
        help_heading = "Connection"
    )]
    pub ssh_options: Vec<String>,
    /// How long ssh may take to connect (its ConnectTimeout, whole seconds)
    #[arg(long, default_value = "10s", value_parser = duration_arg, help_heading = "Connection")]
    pub connect_timeout: Duration,
    /// A host that has not answered after this is UNKNOWN (its ssh is killed)
    #[arg(long, default_value = "60s", value_parser = duration_arg, help_heading = "Connection")]
    pub timeout: Duration,
    /// Hosts checked at once
    #[arg(long, default_value_t = 8, help_heading = "Connection")]
    pub jobs: usize,
    /// The mlsdiag command on the remote hosts
    #[arg(
        long,
        default_value = "mlsdiag",
        value_name = "PATH",
        help_heading = "Connection"
    )]
    pub remote_command: String,
    /// Arguments passed to the remote `mlsdiag check` (after --), e.g. -- --log /tmp/mlx-server/mls.log
    #[arg(last = true, value_name = "CHECK ARGS")]
    pub check_args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ThreadsArgs {
    pub pid: u32,
    /// Window over which per-thread CPU% is measured
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    pub window: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct StacksArgs {
    pub pid: u32,
    /// Send SIGUSR1 to ask a faulthandler-armed worker for a Python dump (never by default)
    #[arg(long)]
    pub signal: bool,
    /// The worker's faulthandler dump file (default: the registry's field `faulthandler` for
    /// this PID, else the module's file in the per-user directory)
    #[arg(long, value_name = "FILE")]
    pub faulthandler: Option<PathBuf>,
    /// The orchestrator's worker registry, read for the dump file's path
    #[arg(long, env = "MLSDIAG_REGISTRY", default_value = crate::registry::DEFAULT_PATH)]
    pub registry: PathBuf,
    /// Do not run macOS `sample` (it suspends the worker briefly at each sample)
    #[arg(long)]
    pub no_native: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (its page is mlsdiag-SUBCOMMAND(1))
    pub subcommand: Option<String>,
    /// List the subcommands that have a page, one a line
    #[arg(long, conflicts_with = "subcommand")]
    pub list: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FdsArgs {
    pub pid: u32,
    /// Do not search other processes for the peers of pipes and unix sockets
    #[arg(long)]
    pub no_peers: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatChoice {
    /// Detect from the first lines
    Auto,
    /// MLS orchestrator lines (Chat completion request:/Chat completion:/Worker timeout after)
    Mls,
    /// mlx_lm.server (Prompt processing progress, HTTP access lines)
    MlxLm,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Log files (plain or .gz; a rotated set is read in time order); none or `-` = stdin
    pub files: Vec<PathBuf>,
    /// Built-in log format
    #[arg(long, value_enum, default_value_t = LogFormatChoice::Auto)]
    pub format: LogFormatChoice,
    /// Your own format: a TOML file of named-capture regexes (see docs/log-formats.md)
    #[arg(long, value_name = "FILE", conflicts_with = "format")]
    pub format_file: Option<PathBuf>,
    /// Only events at or after this time (RFC 3339 or "YYYY-MM-DD HH:MM:SS" local)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only events at or before this time
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this worker (name, or pid)
    #[arg(long)]
    pub worker: Option<String>,
    /// Prompt-size band edges in characters (K = 1000)
    #[arg(long, default_value = "8K,10K,100K")]
    pub bands: String,
    /// An unfinished request older than this at the end of the log is a hang trigger
    #[arg(long, default_value = "5m", value_parser = duration_arg)]
    pub hung_after: Duration,
    /// Report every line that is not understood, with its line number (exit 3 if any)
    #[arg(long)]
    pub strict: bool,
    /// One JSON event per line, as they are read, instead of the summary
    #[arg(long, conflicts_with = "json")]
    pub jsonl: bool,
}

#[derive(Debug, Clone, Args)]
pub struct MemArgs {
    /// Processes to report (default: every worker found)
    pub pids: Vec<u32>,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    /// Number of readings; with more than one a series and trend are printed
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Time between readings
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    pub interval: Duration,
    #[command(flatten)]
    pub leak: LeakArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Leave the simulated server running and print how to inspect and stop it
    #[arg(long, conflicts_with = "stop")]
    pub keep: bool,
    /// Stop a demo left running with --keep (its directory, as printed)
    #[arg(long, value_name = "DIR")]
    pub stop: Option<PathBuf>,
    /// Sampling window of the diagnosis
    #[arg(long, default_value = "2s", value_parser = duration_arg)]
    pub window: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    /// Workers to snapshot (default: every worker found)
    pub pids: Vec<u32>,
    #[command(flatten)]
    pub check: CheckArgs,
    /// Directory for the snapshots (default: $MLSDIAG_DIR, else ~/Library/Logs/mlsdiag on macOS,
    /// the XDG state directory on Linux)
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub dir: Option<PathBuf>,
    /// Print nothing when every worker is healthy (for cron)
    #[arg(long, help_heading = "Output")]
    pub quiet: bool,
    /// Only snapshot workers that are not healthy (`watch --on-finding CMD` is a hook: another
    /// flag)
    #[arg(long, help_heading = "Output")]
    pub only_findings: bool,
    /// Keep only the newest N snapshots per worker PID (only mlsdiag's own files are deleted)
    #[arg(long, value_name = "N", help_heading = "Retention")]
    pub keep_newest: Option<usize>,
    /// Delete mlsdiag's snapshots older than this (e.g. 14d)
    #[arg(long, value_parser = duration_arg, value_name = "AGE", help_heading = "Retention")]
    pub max_age: Option<Duration>,
    /// Log lines kept in each snapshot (with --log)
    #[arg(long, default_value_t = 20, help_heading = "Output")]
    pub tail: usize,
}

impl From<&SnapshotArgs> for crate::snapshot::SnapshotOptions {
    fn from(a: &SnapshotArgs) -> Self {
        crate::snapshot::SnapshotOptions {
            check: (&a.check).into(),
            pids: a.pids.clone(),
            dir: a.dir.clone(),
            on_finding: a.only_findings,
            keep: a.keep_newest,
            max_age: a.max_age,
            tail: a.tail,
        }
    }
}

impl From<&FleetArgs> for crate::fleet::FleetOptions {
    fn from(a: &FleetArgs) -> Self {
        crate::fleet::FleetOptions {
            ssh_config: a.ssh_config.clone(),
            ssh_options: a.ssh_options.clone(),
            connect_timeout: a.connect_timeout.as_secs().clamp(1, u64::from(u32::MAX)) as u32,
            timeout: a.timeout,
            jobs: a.jobs,
            remote_command: a.remote_command.clone(),
            check_args: a.check_args.clone(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Snapshot directory (default as for `snapshot`)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Only this worker PID
    #[arg(long)]
    pub pid: Option<u32>,
    /// CPU time frozen this long with a request in flight is a hang
    #[arg(long, default_value = "5m", value_parser = duration_arg, help_heading = "Thresholds")]
    pub hung_after: Duration,
    #[command(flatten)]
    pub leak: LeakArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PostmortemArgs {
    /// Snapshot files (.json) or directories of snapshots
    #[arg(required = true)]
    pub snapshots: Vec<PathBuf>,
    /// The server log, for the timeline, the trigger and the request counts
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Write the report to this file instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace an existing --output file
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["endpoint", "model"])))]
pub struct ReproArgs {
    /// OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1/chat/completions
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// MLX checkpoint directory to run through the reference loop (needs mlsdiag-runner)
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// A prompt to send as one user message
    #[arg(long, value_name = "FILE", conflicts_with = "requests")]
    pub prompt: Option<PathBuf>,
    /// Captured requests: one OpenAI chat-completion body (JSON) per line
    #[arg(long, value_name = "FILE.jsonl")]
    pub requests: Option<PathBuf>,
    /// Number of runs (requests sent, cycling through the file)
    #[arg(short = 'n', long = "runs", default_value_t = 100)]
    pub runs: u64,
    /// Requests in flight at once (with --model: runner processes)
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// No new token for this long is a hang
    #[arg(long, default_value = "60s", value_parser = duration_arg)]
    pub stall: Duration,
    /// `max_tokens` for requests that do not set it
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u64,
    /// The rate to plan for when no hang is seen (the incident's 1 in 318)
    #[arg(long, default_value_t = 1.0 / 318.0)]
    pub target_rate: f64,
    /// Where stall snapshots (and, with --model, runs.log) go (default: ./mlsdiag-repro-<time>)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// `model` field to send to the endpoint
    #[arg(long, value_name = "NAME", help_heading = "Endpoint")]
    pub model_name: Option<String>,
    /// The server log, saved with each stall snapshot
    #[arg(long, value_name = "FILE", help_heading = "Endpoint")]
    pub log: Option<PathBuf>,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    /// Leave a hung runner alive and print its PID, instead of killing it
    #[arg(long, requires = "model", help_heading = "Model")]
    pub keep_hung: bool,
    /// How long a runner may take to load the checkpoint
    #[arg(long, default_value = "10m", value_parser = duration_arg, help_heading = "Model")]
    pub load_timeout: Duration,
    /// Sampling temperature for requests that do not set one (0 = greedy)
    #[arg(long, default_value_t = 0.0, help_heading = "Model")]
    pub temperature: f32,
    /// Nucleus sampling for requests that do not set `top_p`
    #[arg(long, default_value_t = 1.0, help_heading = "Model")]
    pub top_p: f32,
    /// Sampling seed for requests that do not set `seed` (the same for every run)
    #[arg(long, default_value_t = 0, help_heading = "Model")]
    pub seed: u64,
    /// (testing) make the runner block forever in run RUN after K tokens
    #[arg(long, value_name = "RUN:K", value_parser = inject_arg, requires = "model", hide = true)]
    pub inject_hang: Vec<(u64, u64)>,
}

fn inject_arg(s: &str) -> Result<(u64, u64), String> {
    let (run, k) = s.split_once(':').ok_or("expected RUN:K")?;
    Ok((
        run.parse().map_err(|_| format!("bad run {run:?}"))?,
        k.parse().map_err(|_| format!("bad token count {k:?}"))?,
    ))
}

impl From<&ReproArgs> for crate::repro::campaign::ReproOptions {
    fn from(a: &ReproArgs) -> Self {
        crate::repro::campaign::ReproOptions {
            endpoint: a.endpoint.clone(),
            model: a.model.clone(),
            prompt: a.prompt.clone(),
            requests: a.requests.clone(),
            runs: a.runs,
            parallel: a.parallel,
            stall: a.stall,
            max_tokens: a.max_tokens,
            target_rate: a.target_rate,
            out: a.out.clone(),
            model_name: a.model_name.clone(),
            log: a.log.clone(),
            pattern: a.discovery.pattern.clone(),
            registry: a.discovery.registry.clone(),
            keep_hung: a.keep_hung,
            load_timeout: a.load_timeout,
            temperature: a.temperature,
            top_p: a.top_p,
            seed: a.seed,
            inject_hang: a.inject_hang.clone(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RecordArgs {
    /// Processes to record (default: every worker found, and their parents)
    pub pids: Vec<u32>,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    /// The recording to create (never overwritten)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Number of readings of each process
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Time between readings
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    pub interval: Duration,
    /// Free text saved with the recording (machine, incident, how it was made)
    #[arg(long)]
    pub note: Option<String>,
}

/// `mlsdiag run -- COMMAND ARGS…` (see `commands::run`).
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "The command runs in mlsdiag's place (same PID, its own signals and exit status), with \
                  MLSDIAG_AUTO=1 and mlsdiag's start-up hook first on PYTHONPATH: each Python process that \
                  imports mlx-lm keeps its token record in /tmp/mlsdiag-UID/progress-PID, where `check` \
                  finds it with no registry. See docs/worker-snippet.md."
)]
pub struct RunArgs {
    /// No progress for this long during a generation: dump every thread's stack into the
    /// worker's faulthandler file (once per stall)
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub watchdog: Option<Duration>,
    /// After the watchdog's dump, exit (status 1) unless every generation in flight only waits on its client
    #[arg(long, requires = "watchdog")]
    pub watchdog_exit: bool,
    /// Keep the record here instead of /tmp/mlsdiag-UID (`check` then needs the registry to find it)
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The command and its arguments (after --)
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_flags_default_to_the_library_defaults() {
        // One source of defaults: what `check` does with no flags is what CheckOptions::default()
        // does for watch, snapshot, repro and demo.
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            check: CheckArgs,
        }
        let t = T::try_parse_from(["t"]).unwrap();
        // Environment variables may name another pattern or registry; the rest is fixed.
        let expected = crate::diagnose::check::CheckOptions {
            pattern: t.check.discovery.pattern.clone(),
            registry: t.check.discovery.registry.clone(),
            ..Default::default()
        };
        assert_eq!(
            crate::diagnose::check::CheckOptions::from(&t.check),
            expected
        );
    }

    #[test]
    fn watch_flags_default_to_the_library_defaults() {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            watch: WatchArgs,
        }
        let t = T::try_parse_from(["t"]).unwrap();
        let got = crate::watch::WatchOptions::from(&t.watch);
        let expected = crate::watch::WatchOptions {
            check: got.check.clone(),
            ..Default::default()
        };
        assert_eq!(got, expected);
        let t = T::try_parse_from(["t", "--no-snapshot"]).unwrap();
        assert_eq!(
            crate::watch::WatchOptions::from(&t.watch).snapshot_dir,
            None
        );
    }

    #[test]
    fn leak_flags_default_to_the_rule() {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            leak: LeakArgs,
        }
        let t = T::try_parse_from(["t"]).unwrap();
        assert_eq!(t.leak.rule(), leak::Rule::DEFAULT);
        let t =
            T::try_parse_from(["t", "--leak-min-span", "15s", "--leak-min-growth", "8"]).unwrap();
        assert_eq!(t.leak.rule().min_span, Duration::from_secs(15));
        assert_eq!(t.leak.rule().min_growth_mib, 8.0);
    }
}
