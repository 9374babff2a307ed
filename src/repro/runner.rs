//! The parent's side of `repro --model`: start an `mlsdiag-runner serve` child, hand it run
//! requests, and time the gaps between its token events. A gap longer than the stall limit is
//! a hang; the child is then snapshotted and killed (or kept) by the campaign, never waited on
//! without a deadline.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::endpoint::Outcome;
use super::protocol::{Event, RunRequest};

/// The runner binary's file name.
pub const RUNNER: &str = "mlsdiag-runner";

/// Lines of the runner's stderr kept to explain its death.
const STDERR_LINES: usize = 20;

/// Where the runner binary is: `$MLSDIAG_RUNNER`, else next to the running `mlsdiag`.
pub fn locate() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("MLSDIAG_RUNNER") {
        let p = PathBuf::from(p);
        anyhow::ensure!(p.is_file(), "MLSDIAG_RUNNER={}: no such file", p.display());
        return Ok(p);
    }
    let me = std::env::current_exe()?;
    let p = me.with_file_name(format!("{RUNNER}{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        p.is_file(),
        "repro --model needs {} next to {}: this mlsdiag was built without the cargo feature \
         `mlx` (build with `cargo build --release --features mlx`, after scripts/setup-mlx on \
         Linux), or set MLSDIAG_RUNNER to the runner's path",
        p.display(),
        me.display()
    );
    Ok(p)
}

/// A running `mlsdiag-runner serve`, ready for requests. Dropping it kills the child.
pub struct Runner {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    events: Receiver<Result<Event, String>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: std::thread::JoinHandle<()>,
    pub pid: u32,
    pub load_secs: f64,
}

impl Runner {
    /// Starts the runner on `model` and waits up to `load_timeout` for it to be ready.
    pub fn start(exe: &Path, model: &Path, load_timeout: Duration) -> anyhow::Result<Runner> {
        let mut command = Command::new(exe);
        // Runners run side by side (--parallel) on few cores: one BLAS thread each (OpenBLAS
        // on Linux reads this when libmlx loads), unless the operator chose otherwise.
        if std::env::var_os("OPENBLAS_NUM_THREADS").is_none() {
            command.env("OPENBLAS_NUM_THREADS", "1");
        }
        let mut child = command
            .arg("serve")
            .arg("--model")
            .arg(model)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("{}: {e}", exe.display()))?;
        let pid = child.id();
        let (tx, events) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(Event::parse(&line)).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr);
        let pipe = child.stderr.take().expect("piped stderr");
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                if t.len() == STDERR_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        let mut runner = Runner {
            stdin: child.stdin.take(),
            child: Some(child),
            events,
            stderr,
            stderr_reader,
            pid,
            load_secs: 0.0,
        };
        match runner.events.recv_timeout(load_timeout) {
            Ok(Ok(Event::Ready { load_secs, .. })) => {
                runner.load_secs = load_secs;
                Ok(runner)
            }
            Ok(Ok(other)) => anyhow::bail!("runner {pid}: expected ready, got {other:?}"),
            Ok(Err(e)) => anyhow::bail!("runner {pid}: {e}"),
            Err(RecvTimeoutError::Timeout) => anyhow::bail!(
                "runner {pid} did not load {} within {:?}; raise --load-timeout",
                model.display(),
                load_timeout
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let why = runner.death();
                anyhow::bail!("runner {pid} could not load {}: {why}", model.display())
            }
        }
    }

    /// Sends one request and follows it: tokens reset the `stall` clock; silence past it
    /// returns a stalled outcome with the runner left as it is (alive, mid-generation).
    pub fn run(&mut self, request: &RunRequest, stall: Duration) -> Outcome {
        let started = Instant::now();
        let mut outcome = Outcome::default();
        let sent = self.stdin.as_mut().map(|stdin| {
            let mut line = serde_json::to_vec(request).expect("a request serializes");
            line.push(b'\n');
            stdin.write_all(&line).and_then(|()| stdin.flush())
        });
        if !matches!(sent, Some(Ok(()))) {
            let (pid, why) = (self.pid, self.death());
            outcome.error = Some(format!("runner {pid} is gone: {why}"));
            return outcome;
        }
        loop {
            let event = self.events.recv_timeout(stall);
            outcome.seconds = started.elapsed().as_secs_f64();
            match event {
                Ok(Ok(Event::Token { .. })) => {
                    outcome.tokens += 1;
                    outcome.first_token_secs.get_or_insert(outcome.seconds);
                }
                Ok(Ok(Event::Done { .. })) => return outcome,
                Ok(Ok(Event::Error { message, .. })) => {
                    outcome.error = Some(message);
                    return outcome;
                }
                Ok(Ok(other)) => {
                    outcome.error = Some(format!("runner {}: unexpected {other:?}", self.pid));
                    return outcome;
                }
                Ok(Err(e)) => {
                    outcome.error = Some(format!("runner {}: {e}", self.pid));
                    return outcome;
                }
                Err(RecvTimeoutError::Timeout) => {
                    outcome.stalled = true;
                    return outcome;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let (pid, why) = (self.pid, self.death());
                    outcome.error = Some(format!("runner {pid} died during the run: {why}"));
                    return outcome;
                }
            }
        }
    }

    /// False once the child has exited (it is then reaped).
    pub fn is_alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Leaves the child running (`--keep-hung`) and returns its PID.
    pub fn keep(mut self) -> u32 {
        self.stdin = None;
        // Not waited on: it lives on after mlsdiag exits, for a person to inspect.
        drop(self.child.take());
        self.pid
    }

    /// How the child ended (it has closed its stdout): exit status and last stderr lines.
    fn death(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = self.child.as_mut().and_then(|c| {
            loop {
                match c.try_wait() {
                    Ok(Some(s)) => return Some(s.to_string()),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => return None,
                }
            }
        });
        // Its last words: the stderr reader ends at the pipe's EOF, just after the exit.
        while !self.stderr_reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
        format!(
            "{}{}",
            status.unwrap_or_else(|| "still running".into()),
            if tail.is_empty() {
                String::new()
            } else {
                format!("; stderr: {}", tail.join(" | "))
            }
        )
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
