//! The demo's lifecycle: start the simulated MLS in a private directory, wait until it is in
//! place, and clean up after it: on exit, on Ctrl-C, and (through the orchestrator noticing its
//! starter is gone) even when killed. Also the verdict each simulated role is built to earn.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Role, STATE_FILE, State};
use crate::diagnose::leak;
use serde::Serialize;

use crate::model::{Activity, CheckReport, Verdict};

/// What a simulated worker was built to earn, and what the check found.
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

/// `demo --json`.
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

/// Wait, before a check that samples for `window`, until the hung worker's request (logged
/// just before the state file was written) will be older than [`DEMO_HUNG_AFTER`] when the
/// check judges it: with a short `--window` the check would otherwise end before the hang is
/// provable, and find the hung worker not hung yet.
pub fn until_provable(window: Duration) {
    let needed = DEMO_HUNG_AFTER + Duration::from_millis(200);
    if let Some(rest) = needed.checked_sub(window) {
        std::thread::sleep(rest);
    }
}

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

/// A running simulation: its directory (removed on [`Simulation::finish`] unless kept) and the
/// orchestrator at the head of its process group.
pub struct Simulation {
    pub dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    child: std::process::Child,
    pgid: i32,
}

impl Simulation {
    /// Start the orchestrator (`keep`: it outlives this process, for `demo --keep`); Ctrl-C
    /// tears it down.
    pub fn start(keep: bool) -> anyhow::Result<Simulation> {
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
                &super::process_name(&tag, "orchestrator"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if keep {
            cmd.arg("--detached");
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn()?;
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
        Ok(Simulation {
            dir,
            tmp: Some(tmp),
            child,
            pgid,
        })
    }

    /// Wait until the orchestrator has written its state (at most 60 s).
    pub fn wait_for_state(&mut self) -> anyhow::Result<State> {
        wait_for_state(&self.dir, &mut self.child)
    }

    /// End the simulation, or leave it running and its directory in place (`keep`).
    pub fn finish(mut self, keep: bool) {
        // Interrupted: the simulation vanishing under the diagnosis is not an error to report;
        // the handler is finishing the cleanup and exits with 130.
        while INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::park_timeout(std::time::Duration::from_millis(100));
        }
        if keep {
            if let Some(tmp) = self.tmp.take() {
                let _ = tmp.keep();
            }
        } else {
            kill_group(self.pgid, libc::SIGKILL);
            let _ = self.child.wait();
            drop(self.tmp.take());
        }
    }
}
