//! `mlsdiag demo`: start a simulated MLS with one worker of each kind and diagnose it.
//!
//! The first command a new user runs. It proves the diagnosis on real misbehaving processes
//! (see [`crate::sim`]), prints what `check` concludes, says whether every worker got the verdict
//! it was built to earn, and cleans up after itself: on exit, on Ctrl-C, and (through the
//! orchestrator noticing its starter is gone) even when killed. `--keep` leaves it running.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Ctx;
use crate::cli::DemoArgs;
use crate::diagnose::check::{CheckOptions, check};
use crate::diagnose::leak;
use crate::fmt;
use crate::model::CheckReport;
use crate::model::SCHEMA_VERSION;
use crate::model::{Activity, Status, Verdict};
use crate::render;
use crate::sim::{self, Role, STATE_FILE, State};

#[derive(Debug, Serialize)]
pub struct Expectation {
    pub role: Role,
    pub pid: u32,
    pub expected: Verdict,
    pub expected_activity: Option<Activity>,
    pub found: Option<Verdict>,
    pub found_activity: Option<Activity>,
    pub as_designed: bool,
}

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub dir: PathBuf,
    pub kept: bool,
    pub as_designed: bool,
    pub expectations: Vec<Expectation>,
    pub check: CheckReport,
}

/// The verdict (and activity) each simulated role is built to earn.
pub fn expected(role: Role) -> (Verdict, Option<Activity>) {
    match role {
        Role::Working => (Verdict::Healthy, Some(Activity::Working)),
        Role::Idle => (Verdict::Healthy, Some(Activity::Idle)),
        Role::Hung => (Verdict::Hung, None),
        Role::Crashed => (Verdict::Crashed, None),
        Role::Leaking => (Verdict::Leaking, None),
        Role::Orphan | Role::OrphanLauncher => (Verdict::Orphan, None),
    }
}

/// `--hung-after` of the demo's check: its hung worker's request is as old as the worker.
pub const DEMO_HUNG_AFTER: Duration = Duration::from_secs(1);

/// The leak rule of the demo's check: the simulated leak is minutes of a real one (2 MiB kept
/// every 100 ms) compressed into a window of seconds, so the rule's least span and growth are
/// scaled down with it. The rule itself is the one every check applies.
pub const DEMO_LEAK: leak::Rule = leak::Rule {
    threshold_mib_per_min: leak::Rule::DEFAULT.threshold_mib_per_min,
    min_growth_mib: 8.0,
    min_span: Duration::from_millis(500),
};

/// What to clean up if the user presses Ctrl-C: the process group and the directory.
static CLEANUP: OnceLock<(i32, PathBuf)> = OnceLock::new();
/// Set by the Ctrl-C handler before it tears the simulation down.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) on a process group this demo created; it holds only demo processes.
        unsafe { libc::kill(-pgid, signal) };
    }
}

/// Stop a simulation: its whole process group, then its directory.
pub fn stop(dir: &Path) -> anyhow::Result<()> {
    let meta =
        std::fs::symlink_metadata(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    anyhow::ensure!(
        meta.is_dir() && !meta.file_type().is_symlink(),
        "{}: not a demo directory",
        dir.display()
    );
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", state_path.display()))?;
    let state: State = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", state_path.display()))?;
    kill_group(state.pgid as i32, libc::SIGKILL);
    std::fs::remove_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(())
}

fn wait_for_state(dir: &Path, child: &mut std::process::Child) -> anyhow::Result<State> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let path = dir.join(STATE_FILE);
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Ok(serde_json::from_str(&text)?);
        }
        if let Some(status) = child.try_wait()? {
            let errors =
                std::fs::read_to_string(dir.join("orchestrator.stderr")).unwrap_or_default();
            anyhow::bail!(
                "the simulated orchestrator exited ({status}) before it was ready: {}",
                errors.trim()
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the simulated server did not start within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn run(args: &DemoArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    if let Some(dir) = &args.stop {
        stop(dir)?;
        writeln!(out, "stopped the demo in {}", dir.display())?;
        return Ok(Status::Ok);
    }
    let tmp = tempfile::Builder::new().prefix("mlsdiag-demo-").tempdir()?;
    let dir = tmp.path().to_path_buf();
    let tag: String = dir
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.trim_start_matches("mlsdiag-demo-").to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let stderr = std::fs::File::create(dir.join("orchestrator.stderr"))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("__demo-orchestrator")
        .arg("--dir")
        .arg(&dir)
        .args([
            "--tag",
            &tag,
            "--name",
            &sim::process_name(&tag, "orchestrator"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    if args.keep {
        cmd.arg("--detached");
    }
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn()?;
    let pgid = child.id() as i32;
    let _ = CLEANUP.set((pgid, dir.clone()));
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some((pgid, dir)) = CLEANUP.get() {
            kill_group(*pgid, libc::SIGKILL);
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    });
    let result = diagnose(args, ctx, out, &dir, &mut child);
    // Interrupted: the simulation vanishing under the diagnosis is not an error to report;
    // the handler is finishing the cleanup and exits with 130.
    while INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::park_timeout(std::time::Duration::from_millis(100));
    }
    if args.keep && result.is_ok() {
        let _ = tmp.keep();
    } else {
        kill_group(pgid, libc::SIGKILL);
        let _ = child.wait();
        drop(tmp);
    }
    result
}

fn diagnose(
    args: &DemoArgs,
    ctx: &Ctx,
    out: &mut dyn Write,
    dir: &Path,
    child: &mut std::process::Child,
) -> anyhow::Result<Status> {
    let state = wait_for_state(dir, child)?;
    let options = CheckOptions {
        pattern: state.pattern.clone(),
        registry: state.registry.clone(),
        log: Some(state.log.clone()),
        window: args.window,
        // The simulated workers are seconds old, and a request is evidence only about a
        // process alive when it started: the stall that counts is the one since then.
        hung_after: DEMO_HUNG_AFTER,
        leak: DEMO_LEAK,
        ..CheckOptions::default()
    };
    if !ctx.json {
        writeln!(
            out,
            "Simulated MLS in {}: orchestrator PID {} and {} workers ({}).\nDiagnosing with a {:.1} s window...\n",
            dir.display(),
            state.orchestrator_pid,
            state.workers.len(),
            state
                .workers
                .iter()
                .map(|(r, p, _)| format!("{} {p}", r.label()))
                .collect::<Vec<_>>()
                .join(", "),
            args.window.as_secs_f64()
        )?;
    }
    let report = check(&options, ctx.platform.as_ref())?;
    let expectations: Vec<Expectation> = state
        .workers
        .iter()
        .map(|&(role, pid, _)| {
            let (verdict, activity) = expected(role);
            let found = report.workers.iter().find(|w| w.pid == pid);
            let as_designed = found
                .is_some_and(|w| w.verdict == verdict && activity.is_none_or(|a| a == w.activity));
            Expectation {
                role,
                pid,
                expected: verdict,
                expected_activity: activity,
                found: found.map(|w| w.verdict),
                found_activity: found.map(|w| w.activity),
                as_designed,
            }
        })
        .collect();
    let as_designed = expectations.iter().all(|e| e.as_designed);
    if ctx.json {
        let report = DemoReport {
            schema_version: SCHEMA_VERSION,
            command: "demo",
            dir: dir.to_path_buf(),
            kept: args.keep,
            as_designed,
            expectations,
            check: report,
        };
        render::json(out, &report)?;
    } else {
        crate::render::check::check(&report, &ctx.style, out)?;
        writeln!(out)?;
        if as_designed {
            writeln!(
                out,
                "demo: all {} workers diagnosed as designed.",
                expectations.len()
            )?;
        } else {
            for e in expectations.iter().filter(|e| !e.as_designed) {
                writeln!(
                    out,
                    "demo: the {} worker (PID {}) was built to be {} but was diagnosed {}",
                    e.role.label(),
                    e.pid,
                    e.expected.label(),
                    e.found.map_or("missing", |v| v.label())
                )?;
            }
        }
        if args.keep {
            let exe = std::env::current_exe()?;
            let exe = exe.display();
            let reg = state.registry.display();
            let log = state.log.display();
            writeln!(out, "\nThe simulation keeps running. Try:")?;
            writeln!(
                out,
                "  {exe} check --pattern {} --registry {reg} --log {log} --hung-after {}",
                state.pattern,
                fmt::duration(DEMO_HUNG_AFTER)
            )?;
            let pid_of = |r: Role| state.workers.iter().find(|w| w.0 == r).map_or(0, |w| w.1);
            writeln!(out, "  {exe} threads {}", pid_of(Role::Hung))?;
            writeln!(out, "  {exe} fds {}", pid_of(Role::Idle))?;
            writeln!(
                out,
                "  {exe} registry --pattern {} --registry {reg}",
                state.pattern
            )?;
            writeln!(
                out,
                "  {exe} mem --pattern {} --registry {reg} --samples 5",
                state.pattern
            )?;
            writeln!(out, "Stop it with:\n  {exe} demo --stop {}", dir.display())?;
        }
    }
    // The demo succeeds when the diagnosis matches the design, whatever the verdicts are.
    Ok(if as_designed {
        Status::Ok
    } else {
        Status::Warning
    })
}
