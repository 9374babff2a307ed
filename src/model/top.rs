//! What one frame of `mlsdiag top` shows: the header, the process tree with a row per worker,
//! the pane and the help line, as plain data. The live view ([`crate::top`]) builds it from a
//! `watch` round and the operator's keys; the renderer draws it; tests build it from recorded
//! fixtures. Nothing here knows about terminals.

use chrono::{DateTime, Utc};

use super::process::SystemMemory;
use super::verdict::{Activity, Status, Verdict};

#[derive(Debug, Clone, PartialEq)]
pub struct TopFrame {
    pub host: String,
    /// When the round shown was taken; `None` before the first round ends.
    pub at: Option<DateTime<Utc>>,
    pub round: u64,
    pub interval_secs: f64,
    /// The round's own time (its check, with the sampling window).
    pub took_secs: f64,
    pub memory: Option<SystemMemory>,
    /// What `check` would exit with now, and the verdict counts behind it.
    pub status: Status,
    pub exit_code: u8,
    pub counts: Vec<(Verdict, usize)>,
    pub rows: Vec<TopRow>,
    /// Index into `rows` of the selected worker.
    pub selected: Option<usize>,
    pub pane: PaneView,
    /// The filter applied to the rows (names, PIDs, verdicts), and whether it is being typed.
    pub filter: String,
    pub editing_filter: bool,
    /// One line above the help: a question (confirm a signal), what a key did, or why a round
    /// failed.
    pub message: Option<String>,
    /// Whether the memory column is the physical footprint (macOS) rather than RSS.
    pub footprint: bool,
    pub gpu: bool,
    pub tokens: bool,
}

/// A line of the tree: a parent (orchestrator, init for orphans, another process), a worker
/// under it, or a worker that is gone.
#[derive(Debug, Clone, PartialEq)]
pub enum TopRow {
    Parent(ParentRow),
    Worker(WorkerRow),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParentRow {
    pub pid: Option<u32>,
    pub label: String,
    /// init adopted these workers: their orchestrator is gone.
    pub orphans: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    pub pid: u32,
    pub name: String,
    /// Set when the process was not found by the latest round: exited, or left the registry.
    pub gone: bool,
    pub verdict: Verdict,
    pub activity: Activity,
    pub state: Option<char>,
    pub cpu_percent: Option<f64>,
    /// Footprint where the OS gives it, else RSS.
    pub memory_bytes: Option<u64>,
    /// The same reading over the latest rounds, oldest first (the sparkline).
    pub memory_history: Vec<u64>,
    pub gpu_percent: Option<f64>,
    pub threads: Option<u32>,
    pub in_flight: usize,
    /// Whether the log can prove work in flight; without, `in_flight` is context.
    pub in_flight_known: bool,
    pub oldest_in_flight_secs: Option<f64>,
    pub since_progress_secs: Option<f64>,
    /// No progress was seen since the view started watching it: the quiet time is at least
    /// `since_progress_secs`.
    pub quiet_at_least: bool,
    pub tokens_per_sec: Option<f64>,
}

/// The lower pane: a title and its lines, scrolled by `scroll` lines.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PaneView {
    pub title: String,
    pub lines: Vec<String>,
    pub scroll: usize,
}
