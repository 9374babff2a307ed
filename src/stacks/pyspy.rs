//! Python frames on Linux through py-spy's library, in non-blocking mode: the worker's memory
//! is read with `process_vm_readv`; the process is never stopped.
//!
//! Finding the interpreter parses the binary's symbol tables, which costs tens of ms on a large
//! binary. A process py-spy could not read (not CPython, or no ptrace rights) is not asked
//! again for [`REFUSED_FOR`]: `watch` and `top` check a hung worker every round.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::model::{Frame, ThreadStack};

/// How long py-spy's refusal of one process (PID and start time) is remembered.
const REFUSED_FOR: Duration = Duration::from_secs(60);

type Refusal = ((u32, DateTime<Utc>), Instant, String);
static REFUSED: Mutex<Vec<Refusal>> = Mutex::new(Vec::new());

/// The Python threads of `pid`. With `started` (the process's identity: a reused PID is asked
/// afresh), a refusal to attach from the last [`REFUSED_FOR`] is the answer, and a new one is
/// remembered; without, py-spy is always asked.
pub fn python_stacks(pid: u32, started: Option<DateTime<Utc>>) -> Result<Vec<ThreadStack>, String> {
    let key = started.map(|s| (pid, s));
    let mut refused = REFUSED.lock().unwrap_or_else(|p| p.into_inner());
    refused.retain(|(_, at, _)| at.elapsed() < REFUSED_FOR);
    if let Some((_, at, why)) = refused.iter().find(|(k, _, _)| Some(*k) == key) {
        return Err(format!(
            "{why} (py-spy's answer from {}s ago)",
            at.elapsed().as_secs()
        ));
    }
    drop(refused);
    let spy = attach(pid);
    if let (Err(why), Some(key)) = (&spy, key) {
        let mut refused = REFUSED.lock().unwrap_or_else(|p| p.into_inner());
        refused.push((key, Instant::now(), why.clone()));
    }
    read(spy?)
}

/// Finding the interpreter: what fails for a process that is not CPython, or not ours to read.
fn attach(pid: u32) -> Result<py_spy::PythonSpy, String> {
    let config = py_spy::Config {
        blocking: py_spy::config::LockingStrategy::NonBlocking,
        include_idle: true,
        native: false,
        ..py_spy::Config::default()
    };
    py_spy::PythonSpy::new(pid as py_spy::Pid, &config).map_err(|e| format!("{e:#}"))
}

/// One reading of the threads (a failure here is not remembered: the next may succeed).
fn read(mut spy: py_spy::PythonSpy) -> Result<Vec<ThreadStack>, String> {
    let traces = spy.get_stack_traces().map_err(|e| format!("{e:#}"))?;
    Ok(traces
        .into_iter()
        .map(|t| ThreadStack {
            tid: t.os_thread_id.unwrap_or(t.thread_id),
            name: t.thread_name,
            owns_gil: Some(t.owns_gil),
            // py-spy lists the innermost frame first.
            python: t
                .frames
                .into_iter()
                .rev()
                .map(|f| Frame {
                    function: f.name,
                    location: Some(f.filename),
                    line: u32::try_from(f.line).ok(),
                })
                .collect(),
            ..ThreadStack::default()
        })
        .collect())
}
