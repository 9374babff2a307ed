//! Stacks of a hung worker: where each thread is stuck, from every source the OS allows without
//! sudo, merged by thread, and matched against the MLX hangs already known.
//!
//! Sources: the kernel's wait channel and syscall (Linux, `/proc`), Python frames read from
//! memory by py-spy's library without stopping the process (Linux), native frames from macOS's
//! `sample` (run with a timeout), and Python frames from a faulthandler dump the worker writes
//! itself. Each source reports whether it worked and, if not, why and what would make it work.

pub mod faulthandler;
#[cfg(all(target_os = "linux", feature = "python-stacks"))]
pub mod pyspy;
pub mod sample;
pub mod signatures;

use serde::{Deserialize, Serialize};

/// One frame, innermost last in [`ThreadStack`] lists (read top-down like a call chain).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Frame {
    pub function: String,
    /// Source file (Python) or binary image (native).
    pub location: Option<String>,
    pub line: Option<u32>,
}

/// What is known about one thread, from all sources.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ThreadStack {
    /// OS thread id (Linux TID, macOS thread id); Python-only entries use their ident.
    pub tid: u64,
    pub name: Option<String>,
    pub state: Option<char>,
    /// Kernel wait channel / syscall (Linux).
    pub wait: Option<String>,
    /// Python frames, outermost first.
    pub python: Vec<Frame>,
    /// Native frames, outermost first (macOS `sample`: the path every sample took).
    pub native: Vec<Frame>,
    /// `sample`: samples in the innermost common frame out of the thread's total.
    pub samples: Option<[u32; 2]>,
    /// Python: whether the thread held the GIL.
    pub owns_gil: Option<bool>,
}

/// Whether a source worked, and if not, why and what would make it work.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Source {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Merge `extra` into `threads` by thread id (entries for unknown ids are appended).
pub fn merge(threads: &mut Vec<ThreadStack>, extra: Vec<ThreadStack>) {
    for e in extra {
        match threads.iter_mut().find(|t| t.tid == e.tid) {
            Some(t) => {
                // A Python thread name ("generate") says more than the process's comm.
                if t.name.is_none() || (!e.python.is_empty() && e.name.is_some()) {
                    t.name = e.name;
                }
                if t.state.is_none() {
                    t.state = e.state;
                }
                if t.wait.is_none() {
                    t.wait = e.wait;
                }
                if t.python.is_empty() {
                    t.python = e.python;
                }
                if t.native.is_empty() {
                    t.native = e.native;
                    t.samples = e.samples;
                }
                if t.owns_gil.is_none() {
                    t.owns_gil = e.owns_gil;
                }
            }
            None => threads.push(e),
        }
    }
}
