//! Stacks of a worker: frames per thread from every source, what each source could do, the
//! known hangs they match, and threads grouped by what they wait on.

use std::collections::BTreeMap;

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
/// A signature that the stacks match, and the threads that show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Match {
    pub id: String,
    pub url: String,
    pub title: String,
    pub meaning: String,
    pub threads: Vec<u64>,
}
/// Threads that wait on the same thing.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct WaitGroup {
    /// Wait channel or syscall name, e.g. `futex_wait_queue`.
    pub wait: String,
    pub tids: Vec<u64>,
    /// For lock waits: lock address → waiting threads.
    pub locks: BTreeMap<String, Vec<u64>>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StacksReport {
    pub schema_version: u32,
    pub command: String,
    pub pid: u32,
    /// OS threads, with every source merged in by thread id.
    pub threads: Vec<ThreadStack>,
    /// Python threads from a faulthandler dump (identified by Python's thread ident).
    pub python_threads: Vec<ThreadStack>,
    /// Threads grouped by what they wait on (Linux: wait channel and lock address).
    pub groups: Vec<WaitGroup>,
    pub sources: Vec<Source>,
    pub signatures: Vec<Match>,
}
