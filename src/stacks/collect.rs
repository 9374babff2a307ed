//! Collecting a worker's stacks from every source the OS allows without sudo, merged by
//! thread, grouped by what the threads wait on, and matched against the known MLX hangs.
//! Each source reports whether it worked; the disturbing ones (`sample`, SIGUSR1) run only
//! when asked for.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::model::waits::group;
use crate::model::{SCHEMA_VERSION, Source, StacksReport, Syscall, ThreadStack};
use crate::platform::Platform;
use crate::stacks as st;
use crate::stacks::signatures;

/// What to collect beyond the always-safe sources.
#[derive(Debug, Clone, Default)]
pub struct Collect {
    /// Run macOS `sample` (it suspends the worker for a moment at each sample, for one second).
    pub native: bool,
    /// Send SIGUSR1 to ask a faulthandler-armed worker for a Python dump.
    pub signal: bool,
    /// Where the worker writes its faulthandler dump.
    pub faulthandler: Option<PathBuf>,
    /// Take py-spy's recent refusal of this process as its answer (`check`'s signature lookup,
    /// run every round by `watch` and `top`); an explicit request always asks again.
    pub reuse_refusal: bool,
}

/// Run a command with a deadline; it is killed when the deadline passes.
pub fn run_with_timeout(
    cmd: &mut std::process::Command,
    limit: Duration,
) -> Result<std::process::Output, String> {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().map_err(|e| e.to_string()),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "timed out after {}s and was killed",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn wait_text(t: &crate::model::ThreadInfo) -> Option<String> {
    let sys = match &t.syscall {
        Some(Syscall::Blocked {
            name: Some(n),
            arg0,
            ..
        }) => Some(format!("{n} {arg0:#x}")),
        Some(Syscall::Blocked { number, arg0, .. }) => Some(format!("syscall {number} {arg0:#x}")),
        _ => None,
    };
    match (&t.wait_channel, sys) {
        (Some(w), Some(s)) => Some(format!("{w} ({s})")),
        (Some(w), None) => Some(w.clone()),
        (None, s) => s.or_else(|| t.sleep_secs.map(|s| format!("asleep {s}s"))),
    }
}

/// Whether SIGUSR1 may be sent: only to a process with a handler for it (faulthandler's), as
/// its default action would end the worker. `Err` says why not, with the remedy.
fn may_send_sigusr1(platform: &dyn Platform, pid: u32) -> Result<(), String> {
    let bit = 1u64 << (libc::SIGUSR1 - 1);
    match platform.caught_signals(pid) {
        Ok(Some(mask)) if mask & bit != 0 => Ok(()),
        Ok(Some(_)) => Err(format!(
            "not sent: PID {pid} has no SIGUSR1 handler, and SIGUSR1's default action would end it; arm faulthandler.register(signal.SIGUSR1, file=…, all_threads=True) in the worker first (docs/worker-snippet.md)"
        )),
        Ok(None) => Err(format!(
            "not sent: cannot tell whether PID {pid} handles SIGUSR1 here, and without a handler it would end"
        )),
        Err(e) => Err(format!(
            "not sent: cannot tell whether PID {pid} handles SIGUSR1: {e}"
        )),
    }
}

/// The faulthandler source: the worker's last Python dump, asking for a fresh one with
/// SIGUSR1 first when `signal` is set.
fn faulthandler_source(
    platform: &dyn Platform,
    path: Option<&Path>,
    pid: u32,
    signal: bool,
) -> (Source, Vec<ThreadStack>) {
    let name = "faulthandler".to_string();
    let Some(path) = path else {
        return (
            Source {
                name,
                ok: false,
                detail: "no dump file: the worker must call faulthandler.register(SIGUSR1, file=…, all_threads=True) (docs/worker-snippet.md) and its path be given with --faulthandler or the registry field \"faulthandler\"".into(),
            },
            vec![],
        );
    };
    let before = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if signal {
        if let Err(detail) = request_dump(platform, pid) {
            return (
                Source {
                    name,
                    ok: false,
                    detail,
                },
                vec![],
            );
        }
        wait_for_dump(path, before);
    }
    read_dump(name, path, signal)
}

/// Send SIGUSR1 to `pid` when it is seen to handle it; `Err` is the source's detail saying
/// why it was not sent or why sending failed.
fn request_dump(platform: &dyn Platform, pid: u32) -> Result<(), String> {
    if let Err(why) = may_send_sigusr1(platform, pid) {
        return Err(format!("SIGUSR1 {why}"));
    }
    // SAFETY: kill(2) sends SIGUSR1 to a worker just seen to handle it (faulthandler).
    if unsafe { libc::kill(pid as i32, libc::SIGUSR1) } != 0 {
        return Err(format!(
            "SIGUSR1 to PID {pid} failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Wait, 3 s at most in all, for the dump file to change from `before` and then for its size
/// to settle.
fn wait_for_dump(path: &Path, before: Option<std::time::SystemTime>) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline
        && std::fs::metadata(path).and_then(|m| m.modified()).ok() == before
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The dump is written thread by thread: read it once its size has settled.
    let size = || std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut last = size();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = size();
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
}

/// Read the dump file and parse its Python threads, with the source's outcome.
fn read_dump(name: String, path: &Path, signal: bool) -> (Source, Vec<ThreadStack>) {
    match crate::input::read_to_string(path, crate::input::SMALL_FILE_LIMIT) {
        Ok(text) => {
            let threads = st::faulthandler::parse(&text);
            let detail = if threads.is_empty() {
                format!(
                    "{}: no thread dump in the file{}",
                    path.display(),
                    if signal { "" } else { " (try --signal)" }
                )
            } else {
                format!(
                    "{}: {} Python thread(s){}",
                    path.display(),
                    threads.len(),
                    if signal {
                        ", dumped on SIGUSR1"
                    } else {
                        ", from the last dump"
                    }
                )
            };
            (
                Source {
                    name,
                    ok: !threads.is_empty(),
                    detail,
                },
                threads,
            )
        }
        Err(e) => (
            Source {
                name,
                ok: false,
                detail: format!("{}: {e}", path.display()),
            },
            vec![],
        ),
    }
}

#[cfg(all(target_os = "linux", feature = "python-stacks"))]
fn python_source(pid: u32, started: Option<DateTime<Utc>>) -> (Source, Vec<ThreadStack>) {
    match st::pyspy::python_stacks(pid, started) {
        Ok(t) => (
            Source {
                name: "py-spy".into(),
                ok: true,
                detail: format!(
                    "{} Python thread(s), read without stopping the process",
                    t.len()
                ),
            },
            t,
        ),
        Err(e) => (
            Source {
                name: "py-spy".into(),
                ok: false,
                detail: format!(
                    "{e}; it needs a CPython process and ptrace rights over it (same user with kernel.yama.ptrace_scope=0, or CAP_SYS_PTRACE, or sudo)"
                ),
            },
            vec![],
        ),
    }
}

#[cfg(not(all(target_os = "linux", feature = "python-stacks")))]
fn python_source(_pid: u32, _started: Option<DateTime<Utc>>) -> (Source, Vec<ThreadStack>) {
    let detail = if cfg!(target_os = "macos") {
        "not used on macOS: reading another process's memory needs task_for_pid, i.e. root; arm faulthandler in the worker instead (docs/worker-snippet.md)"
    } else {
        "this build has no py-spy (cargo feature python-stacks)"
    };
    (
        Source {
            name: "py-spy".into(),
            ok: false,
            detail: detail.into(),
        },
        vec![],
    )
}

fn native_source(pid: u32, native: bool) -> (Source, Vec<ThreadStack>) {
    let name = "sample".to_string();
    if !cfg!(target_os = "macos") {
        return (
            Source { name: "native".into(), ok: false, detail: "not collected: native unwinding on Linux needs ptrace, which stops the worker; run `gdb -p PID -batch -ex 'thread apply all bt'` yourself if that is acceptable".into() },
            vec![],
        );
    }
    if !native {
        return (Source { name, ok: false, detail: "not run: `sample` suspends the worker briefly at each sample; ask with `stacks` (it runs by default there) or --native".into() }, vec![]);
    }
    let file =
        std::env::temp_dir().join(format!("mlsdiag-sample-{pid}-{}.txt", std::process::id()));
    let result = run_with_timeout(
        std::process::Command::new("/usr/bin/sample")
            .arg(pid.to_string())
            .args(["1", "-mayDie", "-file"])
            .arg(&file),
        Duration::from_secs(30),
    );
    let report = std::fs::read_to_string(&file);
    let _ = std::fs::remove_file(&file);
    match (result, report) {
        (Ok(_), Ok(text)) => {
            let threads = st::sample::parse(&text);
            (
                Source {
                    name,
                    ok: !threads.is_empty(),
                    detail: format!("{} thread(s) from /usr/bin/sample (1 s)", threads.len()),
                },
                threads,
            )
        }
        (Ok(out), Err(_)) => (
            Source {
                name,
                ok: false,
                detail: format!(
                    "sample wrote no report: {} (another user's or a SIP-protected process needs sudo)",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            },
            vec![],
        ),
        (Err(e), _) => (
            Source {
                name,
                ok: false,
                detail: format!("/usr/bin/sample {e}"),
            },
            vec![],
        ),
    }
}

/// Collect stacks of `pid` from every available source.
pub fn collect(platform: &dyn Platform, pid: u32, how: &Collect) -> StacksReport {
    let mut sources = Vec::new();
    let mut threads: Vec<ThreadStack> = Vec::new();
    let mut groups = Vec::new();
    match platform.threads(pid) {
        Ok(infos) => {
            groups = group(&infos);
            threads = infos
                .iter()
                .map(|t| ThreadStack {
                    tid: t.tid,
                    name: Some(t.name.clone()),
                    state: Some(t.state),
                    wait: wait_text(t),
                    ..ThreadStack::default()
                })
                .collect();
            let detail = if cfg!(target_os = "linux") {
                "states, wait channels and syscalls from /proc"
            } else {
                "states and sleep times (a wait channel needs root on macOS)"
            };
            sources.push(Source {
                name: "kernel".into(),
                ok: true,
                detail: format!("{} thread(s): {detail}", infos.len()),
            });
        }
        Err(e) => sources.push(Source {
            name: "kernel".into(),
            ok: false,
            detail: e.to_string(),
        }),
    }
    let mut python_threads = Vec::new();
    if platform.live() {
        let started = how
            .reuse_refusal
            .then(|| platform.process(pid).ok().map(|p| p.start_time))
            .flatten();
        let (s, py) = python_source(pid, started);
        sources.push(s);
        st::merge(&mut threads, py);
        let (s, native) = native_source(pid, how.native);
        sources.push(s);
        st::merge(&mut threads, native);
        let (s, fh) = faulthandler_source(platform, how.faulthandler.as_deref(), pid, how.signal);
        sources.push(s);
        python_threads = fh;
    } else {
        sources.push(Source {
            name: "py-spy, sample, faulthandler".into(),
            ok: false,
            detail: "not run: replaying a recording, not a live process".into(),
        });
    }
    let all: Vec<ThreadStack> = threads.iter().chain(&python_threads).cloned().collect();
    StacksReport {
        schema_version: SCHEMA_VERSION,
        command: "stacks".into(),
        pid,
        signatures: signatures::matches(&all),
        threads,
        python_threads,
        groups,
        sources,
    }
}
