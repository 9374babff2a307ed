//! What `watch` does about a finding, besides saving a snapshot: run the operator's hook with
//! the finding on stdin (bounded in time, its input fed without blocking), and restart a hung
//! worker (SIGTERM, then SIGKILL after a grace period, each only after re-checking that the PID
//! is still the same process).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{SCHEMA_VERSION, Verdict, WatchEvent, WorkerReport};
use crate::platform::Platform;

/// What the `--on-finding` hook reads on stdin.
#[derive(Serialize)]
struct HookInput<'a> {
    schema_version: u32,
    command: &'static str,
    at: DateTime<Utc>,
    from: Option<Verdict>,
    snapshot: Option<&'a str>,
    worker: &'a WorkerReport,
    /// Why the evidence may not make anyone act (empty when it may): see README "Security".
    untrusted: &'a [String],
}

/// Runs the hook with the finding on stdin; its output goes to stderr so that stdout stays one
/// line per change. Returns what happened.
pub fn hook(
    cmd: &str,
    timeout: Duration,
    w: &WorkerReport,
    event: &WatchEvent,
    untrusted: &[String],
) -> String {
    use std::os::fd::AsFd;
    use std::os::unix::process::CommandExt;
    let input = HookInput {
        schema_version: SCHEMA_VERSION,
        command: "watch",
        at: event.at,
        from: event.from,
        snapshot: event
            .snapshot
            .as_deref()
            .filter(|s| !s.starts_with("failed")),
        worker: w,
        untrusted,
    };
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("MLSDIAG_PID", w.pid.to_string())
        .env("MLSDIAG_VERDICT", w.verdict.label())
        .env("MLSDIAG_WORKER", &w.name)
        .env("MLSDIAG_SNAPSHOT", input.snapshot.unwrap_or(""))
        // 1 when the evidence is untrusted: a hook that acts (restarts, kills) must not.
        .env(
            "MLSDIAG_UNTRUSTED",
            if untrusted.is_empty() { "0" } else { "1" },
        )
        .stdin(Stdio::piped())
        .stdout(stderr)
        // Its own process group, so a timeout ends everything it started.
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return format!("failed to start: {e}"),
    };
    // The deadline counts from the start: feeding stdin happens on its own thread, so a hook
    // that never reads a finding larger than the pipe buffer cannot hold the loop past it.
    let deadline = Instant::now() + timeout;
    if let Some(stdin) = child.stdin.take() {
        let json = serde_json::to_vec(&input).unwrap_or_default();
        // A hook that does not read its stdin is not an error. The pipe is non-blocking and
        // written until the deadline at most, so a reader that never reads (a child the hook
        // left behind holding it) cannot keep the thread, or the pipe, forever.
        let fed = std::thread::Builder::new().spawn(move || feed(stdin, &json, deadline));
        if let Err(e) = fed {
            eprintln!("mlsdiag watch: hook input not written: {e}");
        }
    }
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return "ok".into(),
            Ok(Some(s)) => return format!("failed: {s}"),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                // SAFETY: kill(2) on the hook's own process group, which it was started in.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return format!("killed after {timeout:?} (--hook-timeout)");
            }
            Err(e) => return format!("failed: {e}"),
        }
    }
}

/// Write `bytes` to a hook's stdin until done or `deadline`, whichever comes first.
fn feed(mut stdin: std::process::ChildStdin, bytes: &[u8], deadline: Instant) {
    use std::io::ErrorKind;
    use std::os::fd::AsRawFd;
    let fd = stdin.as_raw_fd();
    // SAFETY: fcntl on the pipe descriptor `stdin` owns; F_GETFL/F_SETFL take no pointers.
    unsafe {
        libc::fcntl(
            fd,
            libc::F_SETFL,
            libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
        )
    };
    let mut left = bytes;
    while !left.is_empty() && Instant::now() < deadline {
        match stdin.write(left) {
            Ok(n) => left = &left[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// What `--restart-hung` did: a signal was delivered (the text says what followed), or nothing
/// was done and why. Only a delivered signal is remembered against the request.
pub enum Restart {
    Signalled(String),
    NotDone(String),
}

/// Whether PID `w.pid` is still the process `w` describes: not a zombie, same start time and
/// command line. A PID reused by another process is not.
fn still_same(platform: &dyn Platform, w: &WorkerReport) -> Result<bool, String> {
    match platform.process(w.pid) {
        Ok(p) if p.is_zombie() => Ok(false),
        Ok(p) => Ok(
            crate::model::same_process((w.pid, Some(p.start_time)), (w.pid, w.started_at))
                && w.command.as_deref() == Some(p.command().as_str()),
        ),
        Err(e) => Err(e.to_string()),
    }
}

/// SIGTERM to `w`, only on live processes and after [`still_same`] says the PID is still `w`.
fn sigterm(platform: &dyn Platform, w: &WorkerReport) -> Result<(), String> {
    let pid = w.pid;
    if !platform.live() {
        return Err("reading a recording, not live processes".into());
    }
    match still_same(platform, w) {
        Ok(true) => {}
        Ok(false) => return Err(format!("PID {pid} is no longer the same process")),
        Err(e) => return Err(e),
    }
    // SAFETY: kill(2) on a PID whose start time and command line were just re-checked.
    if unsafe { libc::kill(pid as i32, libc::SIGTERM) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("SIGTERM to PID {pid} failed: {e}"));
    }
    Ok(())
}

/// `top`'s `K`: SIGTERM alone, with the identity re-check of [`restart`]; what the worker does
/// with it is for the next rounds to show.
pub fn terminate(platform: &dyn Platform, w: &WorkerReport) -> Restart {
    match sigterm(platform, w) {
        Ok(()) => Restart::Signalled(format!("sent SIGTERM to PID {} ({})", w.pid, w.name)),
        Err(why) => Restart::NotDone(why),
    }
}

/// Send SIGTERM to `w`, then SIGKILL after `grace`, each only after re-checking that the PID is
/// still the same process (start time and command line).
pub fn restart(
    platform: &dyn Platform,
    w: &WorkerReport,
    event: &WatchEvent,
    grace: Duration,
) -> Restart {
    let pid = w.pid;
    if !platform.live() {
        return Restart::NotDone("reading a recording, not live processes".into());
    }
    match &event.snapshot {
        Some(s) if !s.starts_with("failed") => {}
        _ => return Restart::NotDone("no snapshot on disk".into()),
    }
    if let Err(why) = sigterm(platform, w) {
        return Restart::NotDone(why);
    }
    let same = || still_same(platform, w);
    let started = Instant::now();
    while started.elapsed() < grace {
        if !matches!(same(), Ok(true)) {
            return Restart::Signalled(format!(
                "sent SIGTERM to PID {pid}; it exited after {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if matches!(same(), Ok(true)) {
        // SAFETY: as above, identity re-checked an instant ago.
        let killed = unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0;
        return Restart::Signalled(if killed {
            format!("sent SIGTERM to PID {pid}; still running after {grace:?}, sent SIGKILL")
        } else {
            format!(
                "sent SIGTERM to PID {pid}; still running after {grace:?}, and SIGKILL failed: {}",
                std::io::Error::last_os_error()
            )
        });
    }
    Restart::Signalled(format!("sent SIGTERM to PID {pid}; it exited"))
}
