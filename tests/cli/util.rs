//! Test helpers: run the binary, start and stop a simulated MLS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A path inside the repository (fixtures, docs).
pub fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mlsdiag"))
}

/// Run mlsdiag with `args`; never inherits a colour setting from the caller.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("MLSDIAG_PATTERN")
        .env_remove("MLSDIAG_REGISTRY")
        .output()
        .expect("run mlsdiag")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// Poll `cond` until it holds or `limit` passes; a deadline, never a bare sleep.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether any process is left in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    unsafe { libc::kill(-pgid, 0) == 0 }
}

/// A simulated MLS (orchestrator + one worker of each kind), stopped on drop.
pub struct Sim {
    pub dir: tempfile::TempDir,
    pub state: Value,
    child: Child,
}

impl Sim {
    pub fn start() -> Sim {
        let dir = tempfile::Builder::new()
            .prefix("mlsdiag-test-")
            .tempdir()
            .unwrap();
        let tag: String = dir
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches("mlsdiag-test-")
            .to_ascii_lowercase()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let mut cmd = Command::new(bin());
        cmd.arg("__demo-orchestrator")
            .arg("--dir")
            .arg(dir.path())
            .args([
                "--tag",
                &format!("t{tag}"),
                "--name",
                &format!("mlx-server-v3-demo-t{tag}-orchestrator"),
                "--detached",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().unwrap();
        let mut sim = Sim {
            dir,
            state: Value::Null,
            child,
        };
        let state_path = sim.dir.path().join("state.json");
        wait_until(
            Duration::from_secs(60),
            "the simulation to be ready",
            || state_path.exists(),
        );
        sim.state = serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
        sim
    }

    pub fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn pid(&self, role: &str) -> u32 {
        self.state["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w[0] == role)
            .unwrap_or_else(|| panic!("no {role} worker"))[1]
            .as_u64()
            .unwrap() as u32
    }

    pub fn pattern(&self) -> &str {
        self.state["pattern"].as_str().unwrap()
    }
    pub fn registry(&self) -> &str {
        self.state["registry"].as_str().unwrap()
    }
    pub fn log(&self) -> &str {
        self.state["log"].as_str().unwrap()
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `mlsdiag check` on this simulation, plus `extra` arguments.
    pub fn check(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "check",
            "--pattern",
            self.pattern(),
            "--registry",
            self.registry(),
            "--log",
            self.log(),
        ];
        // The simulated workers are seconds old: the demo's --hung-after, unless a test sets one.
        if !extra.contains(&"--hung-after") {
            args.extend_from_slice(&["--hung-after", "1s"]);
        }
        // Its leak is minutes of one in seconds: the demo's leak rule (DEMO_LEAK), scaled down.
        if !extra.contains(&"--leak-min-span") {
            args.extend_from_slice(&["--leak-min-span", "500ms", "--leak-min-growth", "8"]);
        }
        args.extend_from_slice(extra);
        run(&args)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // SAFETY: the whole process group belongs to this simulation.
        unsafe { libc::kill(-self.pgid(), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A launchd plist in the repository: its `<key>` names and its `ProgramArguments`.
pub fn plist(path: &str) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(root(path)).unwrap();
    let doc = roxmltree::Document::parse_with_options(
        &text,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{path} is not XML: {e}"));
    let keys = doc
        .descendants()
        .filter(|n| n.has_tag_name("key"))
        .filter_map(|n| n.text().map(str::to_string))
        .collect();
    let args = doc
        .descendants()
        .find(|n| n.has_tag_name("array"))
        .unwrap_or_else(|| panic!("{path}: no ProgramArguments array"))
        .children()
        .filter(|n| n.has_tag_name("string"))
        .filter_map(|n| n.text().map(str::to_string))
        .collect();
    (keys, args)
}

/// Runs `cmd` with `input` on its stdin; its output.
pub fn feed(mut cmd: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The venv's python with mlx-lm, prepared (idempotently) by scripts/setup-mlx-lm.
#[cfg(feature = "mlx")]
pub fn mlx_lm_python() -> String {
    venv_python("scripts/setup-mlx-lm", &[])
}

/// The venv's python with mlx-lm 0.31.3, prepared (idempotently) by scripts/setup-mlx-lm-0.31.
#[cfg(feature = "mlx")]
pub fn mlx_lm_031_python() -> String {
    venv_python("scripts/setup-mlx-lm-series", &["0.31"])
}

/// The venv's python with mlx-lm 0.29.1, prepared (idempotently) by
/// scripts/setup-mlx-lm-series 0.29.
#[cfg(feature = "mlx")]
pub fn mlx_lm_029_python() -> String {
    venv_python("scripts/setup-mlx-lm-series", &["0.29"])
}

/// The venv's python with MLX 0.32.0 (no mlx-lm), prepared (idempotently) by
/// scripts/setup-mlx-lm-series 0.32.0.
#[cfg(feature = "mlx")]
pub fn mlx_0320_python() -> String {
    venv_python("scripts/setup-mlx-lm-series", &["0.32.0"])
}

/// The python a setup script prints. scripts/test runs the scripts before the tests, so the
/// tests that call them at once find their venvs made and never build one twice.
#[cfg(feature = "mlx")]
fn venv_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(root(script))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    assert!(out.status.success(), "{script} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs promtool with `args` in `dir`: whether it succeeded, and what it printed.
pub fn promtool_in(dir: &Path, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let o = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool");
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

/// `promtool check metrics` (Debian package prometheus; scripts/test installs it) on `text`:
/// its verdict and what it printed.
pub fn promtool(text: &str) -> (bool, String) {
    let mut cmd = Command::new("promtool");
    cmd.args(["check", "metrics"]);
    let o = feed(cmd, text.as_bytes());
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A long-running child (`watch`, `sshd`) whose stdout and stderr lines arrive on channels;
/// its process group is killed on drop, also when the test fails.
pub struct Background {
    pub child: Child,
    pub stdout: std::sync::mpsc::Receiver<String>,
    pub stderr: std::sync::mpsc::Receiver<String>,
}

impl Background {
    pub fn spawn(mut cmd: Command) -> Background {
        use std::io::{BufRead, BufReader};
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("spawn");
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        Background {
            child,
            stdout,
            stderr,
        }
    }

    /// The next stdout line that satisfies `want`, within `limit`; the lines skipped are
    /// returned too, for the failure message.
    pub fn line(&self, limit: Duration, want: impl Fn(&str) -> bool) -> (String, Vec<String>) {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(l) if want(&l) => return (l, seen),
                Ok(l) => seen.push(l),
                Err(_) => panic!("no matching line within {limit:?}; saw {seen:#?}"),
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // SAFETY: the child was started in its own process group.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// Run mlsdiag and fail the test (killing it) if it does not finish within `limit`.
pub fn run_within(limit: Duration, args: &[&str]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("MLSDIAG_PATTERN")
        .env_remove("MLSDIAG_REGISTRY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mlsdiag {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

pub fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Whether a process with this PID exists.
pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// The source named `name` in a `stacks --json` report.
pub fn source(report: &Value, name: &str) -> Value {
    report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no source {name:?} in {report:#}"))
        .clone()
}
