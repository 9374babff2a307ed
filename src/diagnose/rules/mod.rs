//! One module per verdict rule, so each rule has one home: [`crashed`], [`orphan`], [`hung`]
//! (which also decides the activity) and [`leaking`]. Each reads the observation and adds its
//! findings and notes; [`crate::diagnose::assess::assess`] runs them in order.

pub mod crashed;
pub mod hung;
pub mod leaking;
pub mod orphan;

use crate::model::Finding;

/// What the rules found so far about one worker.
#[derive(Debug, Default)]
pub struct Judging {
    pub findings: Vec<Finding>,
    /// Facts that support the verdicts or explain what could not be decided.
    pub notes: Vec<String>,
}

impl Judging {
    /// Whether a rule has already found the worker hung.
    pub fn hung(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.verdict == crate::model::Verdict::Hung)
    }
}
