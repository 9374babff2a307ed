//! One module per verdict rule, so each rule has one home: [`crashed`], [`orphan`], [`hung`]
//! (which also decides the activity; [`distributed`] is the hang of a rank whose peer
//! stalled) and [`leaking`]. Each reads the observation and adds its
//! findings and notes; [`crate::diagnose::assess::assess`] runs them in order.

pub mod crashed;
pub mod distributed;
pub mod hung;
pub mod leaking;
pub mod orphan;

use std::time::Duration;

use crate::model::{Condition, Finding};

/// How far ahead of this machine's clock a time read from a log, a heartbeat or a token record
/// may be before it counts as clock skew (a finding, never progress): the log's own slack for
/// a request's start (a second-stamped line, the time between logging and handing on) with
/// room for ordinary NTP drift between hosts that share a file system.
pub const FUTURE_SLACK: Duration = Duration::from_secs(5);

/// What the rules found so far about one worker.
#[derive(Debug, Default)]
pub struct Judging {
    pub findings: Vec<Finding>,
    /// Facts that support the verdicts or explain what could not be decided.
    pub notes: Vec<String>,
    /// The hung rule's conditions, judged on the oldest request in flight (empty when none is).
    pub conditions: Vec<Condition>,
}

impl Judging {
    /// Whether a rule has already found the worker hung.
    pub fn hung(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.verdict == crate::model::Verdict::Hung)
    }
}
