//! The leak rule's vocabulary: its thresholds ([`Rule`]) and its judgement of a memory series
//! ([`Judgement`], with the evidence text). The judging itself is `diagnose::leak`.

use std::time::Duration;

use serde::Serialize;

use crate::fmt::{bytes, duration};

pub const MIB: f64 = 1024.0 * 1024.0;
/// Baseline points needed before a slope means anything.
pub const MIN_POINTS: usize = 4;

/// The thresholds of the rule (`--leak-threshold`, `--leak-min-growth`, `--leak-min-span`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub threshold_mib_per_min: f64,
    pub min_growth_mib: f64,
    pub min_span: Duration,
}

impl Rule {
    pub const DEFAULT: Rule = Rule {
        threshold_mib_per_min: 10.0,
        min_growth_mib: 32.0,
        min_span: Duration::from_secs(60),
    };
}

impl Default for Rule {
    fn default() -> Self {
        Rule::DEFAULT
    }
}

/// Which readings the baseline was made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Readings taken with no request in flight.
    IdleReadings,
    /// The lowest reading of each equal interval of the span.
    IntervalMinima,
}

/// What decided the judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every condition of a leak holds.
    Leak,
    /// The baseline does not rise faster than the threshold.
    Steady,
    /// The readings span less than `min_span`.
    TooShort,
    /// Fewer than four baseline points.
    TooFewPoints,
    /// A request was in flight at the readings that could have been a baseline (too few
    /// readings without one to see it).
    BusyThroughout,
    /// Rising faster than the threshold, but by less than `min_growth_mib` in all.
    LittleGrowth,
    /// Most of the rise happened between two consecutive baseline points.
    OneStep,
}

impl Outcome {
    /// A word or two for tables.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Leak => "leak",
            Outcome::Steady => "steady",
            Outcome::TooShort => "too short",
            Outcome::TooFewPoints => "too few points",
            Outcome::BusyThroughout => "always busy",
            Outcome::LittleGrowth => "little growth",
            Outcome::OneStep => "one step",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    pub outcome: Outcome,
    pub basis: Basis,
    pub readings: usize,
    /// Baseline points the slope was taken over.
    pub points: usize,
    /// Time from the first reading to the last.
    pub span_secs: f64,
    pub first_bytes: u64,
    pub last_bytes: u64,
    pub baseline_first_bytes: u64,
    pub baseline_last_bytes: u64,
    /// Theil–Sen slope of the baseline.
    pub slope_mib_per_min: f64,
    /// Slope × the baseline's span.
    pub growth_mib: f64,
    /// The largest rise between two consecutive baseline points.
    pub largest_step_mib: f64,
    /// Readings with no request in flight, where known.
    pub idle_readings: Option<usize>,
    /// Readings taken with a request in flight (never part of the baseline).
    pub busy_readings: usize,
}

impl Judgement {
    pub fn is_leak(&self) -> bool {
        self.outcome == Outcome::Leak
    }

    /// The evidence line: what was compared and which condition decided. `metric` names the
    /// memory measure (`footprint`, `RSS`).
    pub fn describe(&self, metric: &str, rule: &Rule) -> String {
        // Whole seconds hide a short window ("over 0s"); tenths say how short it was.
        let span = if self.span_secs < 10.0 {
            format!("{:.1} s", self.span_secs)
        } else {
            duration(Duration::from_secs_f64(self.span_secs))
        };
        let raw = format!(
            "{metric} {} → {} over {span} ({} readings)",
            bytes(self.first_bytes),
            bytes(self.last_bytes),
            self.readings
        );
        let basis = match self.basis {
            Basis::IdleReadings => format!("{} idle readings", self.points),
            Basis::IntervalMinima => format!("lowest reading of each of {} intervals", self.points),
        };
        let baseline = format!(
            "baseline ({basis}) {} → {}, {:+.1} MiB/min (Theil–Sen)",
            bytes(self.baseline_first_bytes),
            bytes(self.baseline_last_bytes),
            self.slope_mib_per_min
        );
        let needs = format!(
            "a leak needs over {} MiB/min and {} MiB over at least {}",
            rule.threshold_mib_per_min,
            rule.min_growth_mib,
            duration(rule.min_span)
        );
        match self.outcome {
            Outcome::Leak => format!(
                "{raw}; {baseline}, {:+.0} MiB in all, no single step over two thirds of it ({needs})",
                self.growth_mib
            ),
            Outcome::Steady => format!("{raw}; {baseline}: no leak"),
            Outcome::TooShort => format!(
                "{raw}: too short to judge a leak (needs {}; --leak-window, watch or --history see longer)",
                duration(rule.min_span)
            ),
            Outcome::TooFewPoints => {
                format!("{raw}: {basis}, too few for a baseline (needs {MIN_POINTS})")
            }
            Outcome::BusyThroughout => format!(
                "{raw}: a request was in flight at {} of them, too few were left to see the baseline (memory a request holds is work)",
                self.busy_readings
            ),
            Outcome::LittleGrowth => format!(
                "{raw}; {baseline}, but {:+.1} MiB in all: not a leak ({needs})",
                self.growth_mib
            ),
            Outcome::OneStep => format!(
                "{raw}; {baseline}, {:.0} MiB of the {:+.0} MiB in one step: a one-time allocation, not steady growth",
                self.largest_step_mib,
                (self.baseline_last_bytes as f64 - self.baseline_first_bytes as f64) / MIB
            ),
        }
    }
}
