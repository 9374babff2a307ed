//! What a server log says, as `logs` reports it: the per-worker counters and percentiles, the
//! prompt-size bands, anomalies, hang triggers and the requests left open. `logs::analysis`
//! folds events into these.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::request::{InFlight, SmallStr, Stats, Success};

/// Log-spaced histogram: buckets under 0.8 % wide from 2^-10 (≈ 0.001) to 2^24 (≈ 1.7 × 10^7).
///
/// A bucket is a value's binary exponent and the top `H_BITS` bits of its mantissa, read
/// straight from the `f64`'s bits: the ordered fold adds a value with a shift, no logarithm.
/// A quantile is its bucket's geometric middle, so within 0.4 % of the true value.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u32>,
    n: u64,
}

/// Mantissa bits per bucket: 128 buckets per power of two.
const H_BITS: u32 = 7;

const H_SHIFT: u32 = 52 - H_BITS;

/// The key (exponent and top mantissa bits) of 2^-10, the smallest value with its own bucket.
const H_LOW: u64 = (1023 - 10) << H_BITS;

const H_BUCKETS: usize = 34 << H_BITS;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; H_BUCKETS],
            n: 0,
        }
    }
}

impl Histogram {
    /// Bucket 0 holds zero, negatives and everything below 2^-10; the last bucket everything
    /// from 2^24 up.
    fn bucket(v: f64) -> usize {
        let key = (v.to_bits() >> H_SHIFT) as i64 - H_LOW as i64;
        if v.is_sign_negative() || key < 0 {
            return 0;
        }
        (key as usize + 1).min(H_BUCKETS - 1)
    }
    pub fn add(&mut self, v: f64) {
        if v.is_finite() {
            self.counts[Self::bucket(v)] += 1;
            self.n += 1;
        }
    }
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
    }
    /// The q-quantile (0..=1), as the geometric middle of its bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                if i == 0 {
                    return Some(0.0);
                }
                let key = H_LOW + i as u64 - 1;
                let (lo, hi) = (
                    f64::from_bits(key << H_SHIFT),
                    f64::from_bits((key + 1) << H_SHIFT),
                );
                return Some((lo * hi).sqrt());
            }
        }
        None
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Anomaly {
    pub time: DateTime<Utc>,
    /// `timeout`, `failure`, or `died` (the server's generation thread).
    pub kind: &'static str,
    pub worker: String,
    pub line: u64,
    pub source: usize,
    pub id: Option<SmallStr>,
    pub timeout_secs: Option<f64>,
    pub message: Option<String>,
    /// Start of the request it concerns, when known.
    pub request_started: Option<DateTime<Utc>>,
}

/// The request in flight when a worker stopped completing, and what queued behind it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HangTrigger {
    pub worker: String,
    pub request: InFlight,
    pub queued: Vec<InFlight>,
    pub last_completion: Option<DateTime<Utc>>,
    /// Why it counts: timeouts logged, or the log went on for `--hung-after` without it finishing.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Band {
    pub label: String,
    pub min_chars: u64,
    pub max_chars: Option<u64>,
    pub completed: u64,
    pub tokens: u64,
    pub generation_secs: f64,
    pub mean_tokens_per_sec: Option<f64>,
    pub median_tokens_per_sec: Option<f64>,
    #[serde(skip)]
    pub tps: Histogram,
}

/// One input as it was read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceInfo {
    pub path: String,
    pub bytes: u64,
    pub lines: u64,
}

#[derive(Debug, Serialize)]
pub struct Unparseable {
    pub source: String,
    pub line: u64,
    pub reason: &'static str,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct Filters {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub worker: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LogsReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub format: String,
    pub format_detected: bool,
    pub sources: Vec<SourceInfo>,
    pub filters: Filters,
    pub events: u64,
    pub totals: Stats,
    pub workers: std::collections::BTreeMap<String, Stats>,
    pub bands: Vec<Band>,
    pub anomalies: Vec<Anomaly>,
    pub anomalies_dropped: u64,
    /// Worker names forgotten to keep the fold bounded (more than 512 in the log): the least
    /// recently seen; their counts stay in `totals`.
    #[serde(skip_serializing_if = "is_zero")]
    pub workers_evicted: u64,
    pub hang_triggers: Vec<HangTrigger>,
    /// Open at the end and not superseded by a later request of the same worker.
    pub in_flight: Vec<InFlight>,
    /// Whether open requests prove work in flight (the format logs ends, or ends were seen).
    pub proves_in_flight: bool,
    /// Open at the end, but a later request of the same worker ended or progressed since.
    pub abandoned: Vec<InFlight>,
    /// The same, on a worker seen serving requests concurrently.
    pub stuck: Vec<InFlight>,
    /// Left open by an earlier incarnation of their worker (before a new pid or a spawn line).
    pub earlier_incarnation: Vec<InFlight>,
    /// Open at the end, but of a kind whose end the log never records (mlx_lm.server streams).
    pub unended: Vec<InFlight>,
    pub last_successes: std::collections::BTreeMap<String, Vec<Success>>,
    pub unmatched_ends: u64,
    pub unparseable: Vec<Unparseable>,
    pub unparseable_count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_within_one_percent() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.add(v as f64);
        }
        for (q, want) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = h.quantile(q).unwrap();
            assert!((got - want).abs() / want < 0.01, "q{q}: {got} vs {want}");
        }
        assert_eq!(Histogram::default().quantile(0.5), None);
        h.add(f64::NAN);
        h.add(0.0);
        assert_eq!(h.n, 1001);
        // Every bucket is under 0.8 % wide: the middle is within 0.4 % of any value in it,
        // across the whole range, and the edges land in the first and last buckets.
        for v in [
            0.00098, 0.0012, 0.037, 1.0, 1.999, 26.8, 3000.0, 123_456.7, 1.6e7,
        ] {
            let mut one = Histogram::default();
            one.add(v);
            let got = one.quantile(0.5).unwrap();
            assert!((got - v).abs() / v < 0.004, "{v}: {got}");
        }
        let mut edges = Histogram::default();
        for v in [-1.0, 0.0, 1e-9, 1e12, f64::INFINITY] {
            edges.add(v);
        }
        assert_eq!(edges.n, 4);
        assert_eq!(edges.quantile(0.75), Some(0.0));
        assert!(edges.quantile(1.0).unwrap() > 1.6e7);
    }
}
