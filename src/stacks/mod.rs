//! Stacks of a hung worker: where each thread is stuck, from every source the OS allows without
//! sudo, merged by thread, and matched against the MLX hangs already known.
//!
//! Sources: the kernel's wait channel and syscall (Linux, `/proc`), Python frames read from
//! memory by py-spy's library without stopping the process (Linux), native frames from macOS's
//! `sample` (run with a timeout), and Python frames from a faulthandler dump the worker writes
//! itself. Each source reports whether it worked and, if not, why and what would make it work.

pub mod collect;
pub mod faulthandler;
#[cfg(all(target_os = "linux", feature = "python-stacks"))]
pub mod pyspy;
pub mod sample;
pub mod signatures;

use crate::model::ThreadStack;

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
