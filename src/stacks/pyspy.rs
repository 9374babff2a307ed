//! Python frames on Linux through py-spy's library, in non-blocking mode: the worker's memory
//! is read with `process_vm_readv`; the process is never stopped.

use crate::model::{Frame, ThreadStack};

pub fn python_stacks(pid: u32) -> Result<Vec<ThreadStack>, String> {
    let config = py_spy::Config {
        blocking: py_spy::config::LockingStrategy::NonBlocking,
        include_idle: true,
        native: false,
        ..py_spy::Config::default()
    };
    let mut spy =
        py_spy::PythonSpy::new(pid as py_spy::Pid, &config).map_err(|e| format!("{e:#}"))?;
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
