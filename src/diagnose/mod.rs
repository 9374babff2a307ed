//! The diagnosis: readings, the registry and the server log in, a verdict per worker out.
//!
//! [`assess`] judges one worker from its readings, one rule per verdict; [`leak`] is the
//! memory-baseline rule; [`ipc`] reads a worker's channels;
//! [`history`] judges a worker across snapshots. [`check`](check::check) runs them all for
//! every worker found, the library call behind `check`, `watch`, `snapshot`, `repro` and `demo`.

pub mod assess;
pub mod check;
pub mod history;
pub mod incident;
pub mod ipc;
pub mod leak;
pub mod memory;
pub mod registry;
pub mod rounds;
pub mod rules;
