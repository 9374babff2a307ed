//! `repro`: replay requests until a rare hang shows, and say how sure the result is.
//!
//! Two targets: a live OpenAI-compatible server (`endpoint`), or the reference MLX loop run in
//! child processes (`runner`, speaking `protocol` to the `mlsdiag-runner` binary).

pub mod campaign;
pub mod checkpoint;
pub mod endpoint;
pub mod protocol;
pub mod requests;
pub mod runlog;
pub mod runner;
pub mod stats;
