//! Verdicts: what mlsdiag can say about a worker, the monitoring status each maps to, and the
//! finding that carries a verdict's evidence.

use serde::Serialize;

/// Ordered from least to most severe.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, Hash,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Healthy,
    Orphan,
    Leaking,
    Unknown,
    Hung,
    Crashed,
}

impl Verdict {
    /// Every verdict, least severe first.
    pub const ALL: [Verdict; 6] = [
        Verdict::Healthy,
        Verdict::Orphan,
        Verdict::Leaking,
        Verdict::Unknown,
        Verdict::Hung,
        Verdict::Crashed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Orphan => "orphan",
            Verdict::Leaking => "leaking",
            Verdict::Unknown => "unknown",
            Verdict::Hung => "hung",
            Verdict::Crashed => "crashed",
        }
    }
    /// Monitoring-plugin status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn status(self) -> Status {
        match self {
            Verdict::Healthy => Status::Ok,
            Verdict::Orphan | Verdict::Leaking => Status::Warning,
            Verdict::Unknown => Status::Unknown,
            Verdict::Hung | Verdict::Crashed => Status::Critical,
        }
    }
}

/// Exit status in the Nagios/Icinga plugin convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
    /// Combine two statuses: CRITICAL beats UNKNOWN beats WARNING beats OK, so a configuration
    /// problem never hides a hang.
    pub fn worst(self, other: Status) -> Status {
        let rank = |s: Status| match s {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Unknown => 2,
            Status::Critical => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// CPU time advancing or a thread running.
    Working,
    /// No progress, and nothing in flight by the evidence (a log that proves work in flight,
    /// the socket table, a token record).
    Idle,
    /// No progress, and nothing says whether work is in flight (no log that proves it, no
    /// TCP port served, no token record): "idle" would be a guess.
    Unknown,
    /// The CPU busy while the evidence shows nothing in flight (no request in the log that
    /// proves them, no connection at all in the socket table, the record not generating): work
    /// of its own, not a request's (start-up, a cache, an idle loop pinning a core: mlx-lm
    /// #1500).
    Busy,
    /// No progress while a request is in flight (not yet past `--hung-after`).
    Stalled,
    /// CPU or GPU busy while the worker's tokens are frozen with a generation in flight.
    Spinning,
    /// No progress because the worker waits on its client or consumer: a thread blocked
    /// writing to a client that does not read, or a generation whose consumer stopped asking
    /// for tokens. Never hung.
    WaitingOnClient,
    /// The process is not there to be active.
    Gone,
}

impl Activity {
    pub fn label(self) -> &'static str {
        match self {
            Activity::Working => "working",
            Activity::Idle => "idle",
            Activity::Unknown => "unknown",
            Activity::Busy => "busy",
            Activity::Stalled => "stalled",
            Activity::Spinning => "spinning",
            Activity::WaitingOnClient => "waiting on client",
            Activity::Gone => "gone",
        }
    }
}

/// One condition of the hung rule, whether it held, and the fact it was judged on. A worker is
/// hung only when every condition of the rule held; the report lists them all, so a reader
/// sees which one kept a worker from being called hung (or why it was).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Condition {
    pub condition: String,
    pub held: bool,
    pub fact: String,
}

impl Condition {
    pub fn new(condition: &str, held: bool, fact: impl Into<String>) -> Condition {
        Condition {
            condition: condition.to_string(),
            held,
            fact: fact.into(),
        }
    }

    /// `condition: held (fact)` / `condition: did not hold (fact)`.
    pub fn line(&self) -> String {
        format!(
            "{}: {} ({})",
            self.condition,
            if self.held { "held" } else { "did not hold" },
            self.fact
        )
    }
}

/// One verdict-worthy fact and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Finding {
    pub verdict: Verdict,
    pub evidence: Vec<String>,
}

impl Verdict {
    /// The verdict a set of findings adds up to: the most severe, or healthy when there are none.
    pub fn worst_of(findings: &[Finding]) -> Verdict {
        findings
            .iter()
            .map(|f| f.verdict)
            .max()
            .unwrap_or(Verdict::Healthy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_order() {
        assert_eq!(Status::Warning.worst(Status::Unknown), Status::Unknown);
        assert_eq!(Status::Unknown.worst(Status::Critical), Status::Critical);
        assert_eq!(Status::Ok.worst(Status::Warning).code(), 1);
    }

    #[test]
    fn worst_of_findings() {
        let f = |verdict| Finding {
            verdict,
            evidence: vec![],
        };
        assert_eq!(Verdict::worst_of(&[]), Verdict::Healthy);
        assert_eq!(
            Verdict::worst_of(&[f(Verdict::Leaking), f(Verdict::Hung), f(Verdict::Orphan)]),
            Verdict::Hung
        );
    }
}
