//! Folding events, in log order, into the incident tables: per-worker counts, throughput,
//! latency percentiles, prompt-size bands, anomalies, in-flight requests and the hang trigger.
//!
//! Memory stays constant however long the log: counters, fixed-size histograms (percentiles
//! within 1 %), the last five successes per worker, and the requests still open.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::event::{Event, EventKind, SmallStr};

/// Log-spaced histogram: 1 % wide buckets from 0.001 to 10^7.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u32>,
    n: u64,
}

const H_MIN: f64 = 1e-3;
const H_STEP: f64 = 1.01;
const H_BUCKETS: usize = 2320;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; H_BUCKETS],
            n: 0,
        }
    }
}

impl Histogram {
    fn bucket(v: f64) -> usize {
        if v.is_nan() || v <= H_MIN {
            return 0;
        }
        (((v / H_MIN).ln() / H_STEP.ln()) as usize + 1).min(H_BUCKETS - 1)
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
                return Some(if i == 0 {
                    0.0
                } else {
                    H_MIN * H_STEP.powf(i as f64 - 0.5)
                });
            }
        }
        None
    }
}

/// A request that started and has not finished (yet).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct InFlight {
    pub started: DateTime<Utc>,
    pub line: u64,
    pub source: usize,
    pub worker: Option<std::borrow::Cow<'static, str>>,
    pub pid: Option<u32>,
    pub id: Option<SmallStr>,
    pub prompt_chars: Option<u64>,
    pub prompt_tokens: Option<u64>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    /// Prefill progress `[done, total]` (mlx_lm.server).
    pub progress: Option<[u64; 2]>,
    /// Times the orchestrator gave up waiting for this request.
    pub timeouts: Vec<DateTime<Utc>>,
}

impl InFlight {
    fn from(ev: &Event) -> InFlight {
        InFlight {
            started: ev.time,
            line: ev.line,
            source: ev.source,
            worker: ev.worker.map(std::borrow::Cow::Borrowed),
            pid: ev.pid,
            id: ev.id.clone(),
            prompt_chars: ev.prompt_chars.map(u64::from),
            prompt_tokens: ev.prompt_tokens.map(u64::from),
            max_tokens: ev.max_tokens.map(u64::from),
            temperature: ev.temperature,
            progress: None,
            timeouts: vec![],
        }
    }
}

/// A completed request, as the seed's `grep "Chat completion:" | tail -5` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Success {
    pub time: DateTime<Utc>,
    pub line: u64,
    pub id: Option<SmallStr>,
    pub tokens: Option<u64>,
    pub seconds: Option<f64>,
    pub tokens_per_sec: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Anomaly {
    pub time: DateTime<Utc>,
    /// `timeout` or `failure`.
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

/// Counters of one worker (or of all).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Stats {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    /// Requests with at least one timeout logged.
    pub timed_out: u64,
    /// `Worker timeout after` lines.
    pub timeout_lines: u64,
    pub tokens: u64,
    pub generation_secs: f64,
    /// Total tokens ÷ total generation time.
    pub mean_tokens_per_sec: Option<f64>,
    pub median_tokens_per_sec: Option<f64>,
    pub latency_p50_secs: Option<f64>,
    pub latency_p95_secs: Option<f64>,
    pub latency_p99_secs: Option<f64>,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
struct Acc {
    stats: Stats,
    tps: Histogram,
    latency: Histogram,
    open: VecDeque<InFlight>,
    last_successes: VecDeque<Success>,
    last_completion: Option<DateTime<Utc>>,
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
    tps: Histogram,
}

/// Band edges in characters, e.g. `[8000, 10000, 100000]`.
pub fn make_bands(edges: &[u64]) -> Vec<Band> {
    let k = |n: u64| {
        if n.is_multiple_of(1000) {
            format!("{}K", n / 1000)
        } else {
            n.to_string()
        }
    };
    let mut bands = Vec::new();
    let mut lo = 0;
    for &hi in edges.iter().chain(std::iter::once(&u64::MAX)) {
        let label = match (lo, hi) {
            (0, u64::MAX) => "all".to_string(),
            (0, h) => format!("< {}", k(h)),
            (l, u64::MAX) => format!("≥ {}", k(l)),
            (l, h) => format!("{}–{}", k(l), k(h)),
        };
        bands.push(Band {
            label,
            min_chars: lo,
            max_chars: (hi != u64::MAX).then_some(hi),
            completed: 0,
            tokens: 0,
            generation_secs: 0.0,
            mean_tokens_per_sec: None,
            median_tokens_per_sec: None,
            tps: Histogram::default(),
        });
        lo = hi;
    }
    bands
}

const MAX_ANOMALIES: usize = 10_000;
const MAX_OPEN: usize = 10_000;

/// The fold. Feed events in log order with [`Analyzer::add`], then [`Analyzer::finish`].
#[derive(Debug, Clone)]
pub struct Analyzer {
    /// Per worker key, in first-seen order, with a name index and a last-used shortcut.
    workers: Vec<(Arc<str>, Acc)>,
    index: std::collections::HashMap<Arc<str>, usize>,
    /// Interned name address → worker index.
    by_ptr: Vec<(usize, usize)>,
    bands: Vec<Band>,
    anomalies: Vec<Anomaly>,
    anomalies_dropped: u64,
    unmatched_ends: u64,
    dropped_open: u64,
    events: u64,
    hung_after: Duration,
    /// Formats without start lines (mlx_lm.server) start a request at its first progress line.
    synthesize_starts: bool,
}

fn position(open: &VecDeque<InFlight>, id: &Option<SmallStr>) -> Option<usize> {
    match id {
        Some(id) => open.iter().position(|r| r.id.as_ref() == Some(id)),
        None => (!open.is_empty()).then_some(0),
    }
}

impl Analyzer {
    pub fn new(band_edges: &[u64], hung_after: Duration, synthesize_starts: bool) -> Analyzer {
        Analyzer {
            workers: Vec::new(),
            index: std::collections::HashMap::new(),
            by_ptr: Vec::new(),
            bands: make_bands(band_edges),
            anomalies: Vec::new(),
            anomalies_dropped: 0,
            unmatched_ends: 0,
            dropped_open: 0,
            events: 0,
            hung_after,
            synthesize_starts,
        }
    }

    fn anomaly(&mut self, a: Anomaly) {
        if self.anomalies.len() < MAX_ANOMALIES {
            self.anomalies.push(a);
        } else {
            self.anomalies_dropped += 1;
        }
    }

    /// The index of the worker an event belongs to (creating it on first sight).
    fn slot(&mut self, ev: &Event) -> usize {
        // Interned names: the same pointer is the same worker (a few per parsing thread).
        if let Some(w) = ev.worker
            && let Some(&(_, i)) = self.by_ptr.iter().find(|(p, _)| *p == w.as_ptr() as usize)
        {
            return i;
        }
        let pid_key;
        let name: &str = match (ev.worker, ev.pid) {
            (Some(w), _) => w,
            (None, Some(p)) => {
                pid_key = format!("pid:{p}");
                &pid_key
            }
            (None, None) => {
                // An end, failure or timeout that names only the request id belongs to
                // whichever worker has that request open.
                let owner = match (&ev.id, ev.kind) {
                    (Some(id), EventKind::End | EventKind::Failed | EventKind::Timeout) => self
                        .workers
                        .iter()
                        .position(|(_, a)| a.open.iter().any(|r| r.id.as_ref() == Some(id))),
                    _ => None,
                };
                match owner {
                    Some(i) => return i,
                    None => "",
                }
            }
        };
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                let key: Arc<str> = Arc::from(name);
                self.workers.push((key.clone(), Acc::default()));
                self.index.insert(key, self.workers.len() - 1);
                self.workers.len() - 1
            }
        };
        if let Some(w) = ev.worker
            && self.by_ptr.len() < 64
        {
            self.by_ptr.push((w.as_ptr() as usize, i));
        }
        i
    }

    pub fn add(&mut self, ev: &Event) {
        self.events += 1;
        let slot = self.slot(ev);
        let k = self.workers[slot].0.clone();
        let synthesize = self.synthesize_starts;
        let acc = &mut self.workers[slot].1;
        let s = &mut acc.stats;
        s.first = Some(s.first.map_or(ev.time, |f| f.min(ev.time)));
        s.last = Some(s.last.map_or(ev.time, |l| l.max(ev.time)));
        let push_open = |acc: &mut Acc, r: InFlight, dropped: &mut u64| {
            acc.stats.started += 1;
            acc.open.push_back(r);
            if acc.open.len() > MAX_OPEN {
                acc.open.pop_front();
                *dropped += 1;
            }
        };
        match ev.kind {
            EventKind::Start => push_open(acc, InFlight::from(ev), &mut self.dropped_open),
            EventKind::Progress => {
                let done = u64::from(ev.tokens.unwrap_or(0));
                let total = u64::from(ev.prompt_tokens.unwrap_or(0));
                let continues = acc
                    .open
                    .back()
                    .and_then(|r| r.progress)
                    .is_some_and(|[d, t]| t == total && done >= d);
                if continues {
                    if let Some(r) = acc.open.back_mut() {
                        r.progress = Some([done, total]);
                    }
                } else {
                    let mut r = InFlight::from(ev);
                    r.progress = Some([done, total]);
                    push_open(acc, r, &mut self.dropped_open);
                }
            }
            EventKind::End => {
                let req = match position(&acc.open, &ev.id) {
                    Some(i) => acc.open.remove(i),
                    None => {
                        if synthesize {
                            acc.stats.started += 1;
                        } else {
                            self.unmatched_ends += 1;
                        }
                        None
                    }
                };
                let latency = ev
                    .seconds
                    .or_else(|| req.as_ref().map(|r| (ev.time - r.started).as_seconds_f64()));
                let secs = ev.seconds.or(latency);
                let s = &mut acc.stats;
                s.completed += 1;
                s.tokens += u64::from(ev.tokens.unwrap_or(0));
                s.generation_secs += secs.unwrap_or(0.0);
                let tps = ev
                    .tokens_per_sec
                    .or_else(|| Some(ev.tokens? as f64 / secs.filter(|&x| x > 0.0)?));
                if let Some(t) = tps {
                    acc.tps.add(t);
                }
                if let Some(l) = latency {
                    acc.latency.add(l);
                }
                acc.last_completion = Some(acc.last_completion.map_or(ev.time, |t| t.max(ev.time)));
                acc.last_successes.push_back(Success {
                    time: ev.time,
                    line: ev.line,
                    id: ev.id.clone(),
                    tokens: ev.tokens.map(u64::from),
                    seconds: ev.seconds,
                    tokens_per_sec: tps,
                });
                if acc.last_successes.len() > 5 {
                    acc.last_successes.pop_front();
                }
                if let Some(chars) = req.as_ref().and_then(|r| r.prompt_chars)
                    && let Some(b) = self
                        .bands
                        .iter_mut()
                        .find(|b| chars >= b.min_chars && b.max_chars.is_none_or(|m| chars < m))
                {
                    b.completed += 1;
                    b.tokens += u64::from(ev.tokens.unwrap_or(0));
                    b.generation_secs += secs.unwrap_or(0.0);
                    if let Some(t) = tps {
                        b.tps.add(t);
                    }
                }
            }
            EventKind::Failed => {
                let req = position(&acc.open, &ev.id).and_then(|i| acc.open.remove(i));
                acc.stats.failed += 1;
                if req.is_none() && synthesize {
                    acc.stats.started += 1;
                }
                self.anomaly(Anomaly {
                    time: ev.time,
                    kind: "failure",
                    worker: k.to_string(),
                    line: ev.line,
                    source: ev.source,
                    id: ev.id.clone(),
                    timeout_secs: None,
                    message: ev
                        .message
                        .as_deref()
                        .map(str::to_string)
                        .or_else(|| ev.status.map(|s| format!("HTTP {s}"))),
                    request_started: req.map(|r| r.started),
                });
            }
            EventKind::Timeout => {
                acc.stats.timeout_lines += 1;
                let mut started = None;
                if let Some(i) = position(&acc.open, &ev.id) {
                    let r = &mut acc.open[i];
                    if r.timeouts.is_empty() {
                        acc.stats.timed_out += 1;
                    }
                    r.timeouts.push(ev.time);
                    started = Some(r.started);
                }
                self.anomaly(Anomaly {
                    time: ev.time,
                    kind: "timeout",
                    worker: k.to_string(),
                    line: ev.line,
                    source: ev.source,
                    id: ev.id.clone(),
                    timeout_secs: ev.timeout_secs,
                    message: None,
                    request_started: started,
                });
            }
        }
    }

    pub fn finish(mut self) -> Analysis {
        let mut totals = Stats::default();
        let mut all_tps = Histogram::default();
        let mut all_latency = Histogram::default();
        let end_of_log = self.workers.iter().filter_map(|(_, a)| a.stats.last).max();
        let mut workers = BTreeMap::new();
        let mut hang_triggers = Vec::new();
        let mut last_successes = BTreeMap::new();
        let mut open = BTreeMap::new();
        let mut all = std::mem::take(&mut self.workers);
        all.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, acc) in all {
            let name = name.to_string();
            let mut s = acc.stats.clone();
            finish_stats(&mut s, &acc.tps, &acc.latency);
            totals.started += s.started;
            totals.completed += s.completed;
            totals.failed += s.failed;
            totals.timed_out += s.timed_out;
            totals.timeout_lines += s.timeout_lines;
            totals.tokens += s.tokens;
            totals.generation_secs += s.generation_secs;
            totals.first = min_opt(totals.first, s.first);
            totals.last = max_opt(totals.last, s.last);
            all_tps.merge(&acc.tps);
            all_latency.merge(&acc.latency);
            if let Some(oldest) = acc.open.front() {
                let stopped = acc.last_completion.is_none_or(|lc| lc < oldest.started);
                let waited = end_of_log
                    .map(|e| e - oldest.started)
                    .and_then(|d| d.to_std().ok())
                    .unwrap_or_default();
                let reason = if !oldest.timeouts.is_empty() {
                    Some(format!(
                        "{} timeout(s) logged for it",
                        oldest.timeouts.len()
                    ))
                } else if waited >= self.hung_after {
                    Some(format!(
                        "unfinished for {} before the end of the log",
                        crate::render::duration(waited)
                    ))
                } else {
                    None
                };
                if let (true, Some(reason)) = (stopped, reason) {
                    hang_triggers.push(HangTrigger {
                        worker: name.clone(),
                        request: oldest.clone(),
                        queued: acc.open.iter().skip(1).cloned().collect(),
                        last_completion: acc.last_completion,
                        reason,
                    });
                }
            }
            last_successes.insert(
                name.clone(),
                acc.last_successes.iter().cloned().collect::<Vec<_>>(),
            );
            open.insert(
                name.clone(),
                (
                    acc.open.iter().cloned().collect::<Vec<_>>(),
                    acc.last_completion,
                    s.clone(),
                ),
            );
            workers.insert(name, s);
        }
        finish_stats(&mut totals, &all_tps, &all_latency);
        for b in &mut self.bands {
            b.mean_tokens_per_sec =
                (b.generation_secs > 0.0).then(|| b.tokens as f64 / b.generation_secs);
            b.median_tokens_per_sec = b.tps.quantile(0.5);
        }
        self.anomalies.sort_by_key(|a| (a.time, a.line));
        let mut in_flight: Vec<InFlight> = open
            .values()
            .flat_map(|(o, _, _)| o.iter().cloned())
            .collect();
        in_flight.sort_by_key(|r| r.started);
        Analysis {
            events: self.events,
            totals,
            workers,
            bands: self.bands,
            anomalies: self.anomalies,
            anomalies_dropped: self.anomalies_dropped,
            unmatched_ends: self.unmatched_ends,
            dropped_open: self.dropped_open,
            hang_triggers,
            in_flight,
            last_successes,
            open,
        }
    }
}

fn min_opt(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
fn max_opt(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn finish_stats(s: &mut Stats, tps: &Histogram, latency: &Histogram) {
    s.mean_tokens_per_sec = (s.generation_secs > 0.0).then(|| s.tokens as f64 / s.generation_secs);
    s.median_tokens_per_sec = tps.quantile(0.5);
    s.latency_p50_secs = latency.quantile(0.5);
    s.latency_p95_secs = latency.quantile(0.95);
    s.latency_p99_secs = latency.quantile(0.99);
}

/// Per worker at the end of the log: open requests, last completion, counters.
type OpenState = (Vec<InFlight>, Option<DateTime<Utc>>, Stats);

/// What a log says, folded.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub events: u64,
    pub totals: Stats,
    pub workers: BTreeMap<String, Stats>,
    pub bands: Vec<Band>,
    pub anomalies: Vec<Anomaly>,
    pub anomalies_dropped: u64,
    pub unmatched_ends: u64,
    pub dropped_open: u64,
    pub hang_triggers: Vec<HangTrigger>,
    pub in_flight: Vec<InFlight>,
    pub last_successes: BTreeMap<String, Vec<Success>>,
    /// Per worker key: open requests, last completion, counters.
    open: BTreeMap<String, OpenState>,
}

/// One worker's share of the log, for `check`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerLog {
    pub completed: u64,
    pub failed: u64,
    pub timeouts: u64,
    pub last_completion: Option<DateTime<Utc>>,
    pub in_flight: Vec<InFlight>,
}

impl Analysis {
    /// The lines that belong to a worker: those naming it, those naming its pid, and, when
    /// `only_worker` is true, those naming nobody.
    pub fn for_worker(&self, name: Option<&str>, pid: u32, only_worker: bool) -> WorkerLog {
        let mut keys = vec![format!("pid:{pid}")];
        if let Some(n) = name {
            keys.push(n.to_string());
        }
        if only_worker {
            keys.push(String::new());
        }
        let mut out = WorkerLog::default();
        for k in keys {
            let Some((open, last, stats)) = self.open.get(&k) else {
                continue;
            };
            out.completed += stats.completed;
            out.failed += stats.failed;
            out.timeouts += stats.timeout_lines;
            out.last_completion = out.last_completion.max(*last);
            // A line naming both worker and pid is keyed by name; pid-only lines must match pid.
            out.in_flight.extend(
                open.iter()
                    .filter(|r| r.pid.is_none_or(|p| p == pid))
                    .cloned(),
            );
        }
        out.in_flight.sort_by_key(|r| r.started);
        out
    }

    /// Open requests per worker key (for "belongs to no worker found" notes).
    pub fn open_count(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::event::ParseCtx;
    use crate::logs::formats::{Format, Parsed};

    fn fold(lines: &[&str]) -> Analysis {
        let mut a = Analyzer::new(&[8000, 10000, 100_000], Duration::from_secs(300), false);
        let mut ctx = ParseCtx::default();
        for (i, l) in lines.iter().enumerate() {
            if let Parsed::Event(mut e) = Format::Mls.parse(l.as_bytes(), &mut ctx) {
                e.line = i as u64 + 1;
                a.add(&e);
            }
        }
        a.finish()
    }

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
    }

    #[test]
    fn in_flight_by_id_fifo_and_timeouts_keep_requests_open() {
        let a = fold(&[
            "2026-01-05 23:12:00 Chat completion request: worker=w1 id=a prompt_chars=9000",
            "2026-01-05 23:12:01 Chat completion request: worker=w1 id=b prompt_chars=120000",
            "2026-01-05 23:12:10 Chat completion: 10 tokens in 1.0s (10.0 tok/s) worker=w1 id=b",
            "2026-01-05 23:13:25 Chat completion request: worker=w2",
            "2026-01-05 23:23:25 Worker timeout after 600s worker=w2",
            "2026-01-05 23:14:00 Chat completion request: worker=w3 prompt_chars=9000",
            "2026-01-05 23:14:09 Chat completion: 5 tokens in 9s (0.6 tok/s) worker=w3",
        ]);
        let w1 = a.for_worker(Some("w1"), 1, false);
        assert_eq!(w1.in_flight.len(), 1);
        assert_eq!(w1.in_flight[0].id.as_deref(), Some("a"));
        let w2 = a.for_worker(Some("w2"), 2, false);
        assert_eq!(
            w2.in_flight.len(),
            1,
            "a timeout does not finish the worker's request"
        );
        assert_eq!(w2.in_flight[0].timeouts.len(), 1);
        assert_eq!(a.workers["w2"].timed_out, 1);
        assert!(a.for_worker(Some("w3"), 3, false).in_flight.is_empty());
        assert_eq!(a.totals.completed, 2);
        assert_eq!(a.totals.started, 4);
        // Bands: b (120000 chars) in ≥100K, w3's 9000 chars in 8K–10K.
        assert_eq!(a.bands[3].completed, 1);
        assert_eq!(a.bands[1].completed, 1);
        assert_eq!(a.bands[1].label, "8K–10K");
        // w2 stopped completing with a timeout: the hang trigger; w1's "a" has no timeout and
        // the log ends 11 minutes after it started: also a trigger (w1 never completed after it? it did: b).
        assert_eq!(a.hang_triggers.len(), 1, "{:#?}", a.hang_triggers);
        assert_eq!(a.hang_triggers[0].worker, "w2");
        assert_eq!(a.anomalies.len(), 1);
    }

    #[test]
    fn attribution_by_pid_and_unnamed_lines() {
        let a = fold(&[
            "2026-01-05 23:12:00 Chat completion request: pid=10",
            "2026-01-05 23:12:00 Chat completion request: prompt_chars=5",
        ]);
        assert_eq!(a.for_worker(Some("x"), 10, false).in_flight.len(), 1);
        assert_eq!(a.for_worker(Some("x"), 10, true).in_flight.len(), 2);
        assert_eq!(a.for_worker(None, 11, false).in_flight.len(), 0);
    }

    #[test]
    fn mlx_lm_progress_starts_requests() {
        let mut a = Analyzer::new(&[], Duration::from_secs(300), true);
        let mut ctx = ParseCtx::default();
        for l in [
            "2026-01-05 23:12:00,000 - INFO - Prompt processing progress: 0/4096",
            "2026-01-05 23:12:02,000 - INFO - Prompt processing progress: 2048/4096",
            "127.0.0.1 - - [05/Jan/2026 23:12:05] \"POST /v1/chat/completions HTTP/1.1\" 200 -",
            "2026-01-05 23:13:00,000 - INFO - Prompt processing progress: 0/9000",
        ] {
            if let Parsed::Event(e) = Format::MlxLm.parse(l.as_bytes(), &mut ctx) {
                a.add(&e);
            }
        }
        let a = a.finish();
        assert_eq!((a.totals.started, a.totals.completed), (2, 1));
        assert_eq!(a.in_flight[0].progress, Some([0, 9000]));
        assert_eq!(a.totals.latency_p50_secs.map(|l| l.round()), Some(5.0));
    }
}
