//! Folding events, in log order, into the incident tables: per-worker counts, throughput,
//! latency percentiles, prompt-size bands, anomalies, in-flight requests and the hang trigger.
//!
//! Memory stays constant however long the log: counters, fixed-size histograms (percentiles
//! within 0.4 %), the last five successes per worker, and the requests still open (see
//! [`OpenSet`]: each event costs the same however many requests were abandoned).
//!
//! The attribution rules live here, once, for `logs` and `check` alike:
//! - a request that starts after another and then ends, fails or reports progress **supersedes**
//!   it: the older one is *abandoned* (a sequential worker moved on) or, when the worker is seen
//!   serving requests concurrently, *stuck while the worker progresses*; neither proves a hang;
//! - concurrency is seen when a request ends after a younger one has ended (out-of-order ends);
//! - a new incarnation of a worker (a `Worker spawned` or `Worker exited` line, or a new `pid=`
//!   under the same name) ends the old one: what it left open belongs to the previous process;
//! - where the format logs no request ends (and none were seen), superseded requests ended
//!   unlogged, and the open ones are context: none proves work in flight.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::event::{Event, EventKind};
use super::formats::Format;
use crate::model::{Anomaly, Band, HangTrigger, Histogram, InFlight, SmallStr, Stats, Success};

impl InFlight {
    fn from(ev: &Event, seq: u64) -> InFlight {
        InFlight {
            seq,
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
            end_logged: true,
        }
    }
}

/// The open requests of one worker key. Requests that end in order stay in a short queue;
/// those the orchestrator timed out on, or that a later request superseded, are parked in an
/// ordered map with a hash index by id. So an event costs the same whatever the number of
/// abandoned requests, and the common case touches a queue of one or two.
#[derive(Debug, Clone, Default)]
struct OpenSet {
    /// Neither timed out nor superseded, by start (sequence numbers only grow).
    fresh: VecDeque<InFlight>,
    /// Timed out or superseded, by start sequence number.
    parked: BTreeMap<u64, InFlight>,
    parked_ids: HashMap<SmallStr, u64>,
}

/// Timeouts kept per request (an orchestrator retrying forever must not grow memory).
const MAX_TIMEOUTS: usize = 64;

impl OpenSet {
    fn len(&self) -> usize {
        self.fresh.len() + self.parked.len()
    }
    fn push(&mut self, r: InFlight) {
        self.fresh.push_back(r);
    }
    fn fresh_pos(&self, seq: u64) -> Option<usize> {
        self.fresh.iter().position(|r| r.seq == seq)
    }
    fn get_mut(&mut self, seq: u64) -> Option<&mut InFlight> {
        match self.fresh.iter_mut().find(|r| r.seq == seq) {
            Some(r) => Some(r),
            None => self.parked.get_mut(&seq),
        }
    }
    fn by_id(&self, id: &SmallStr) -> Option<u64> {
        self.fresh
            .iter()
            .find(|r| r.id.as_ref() == Some(id))
            .map(|r| r.seq)
            .or_else(|| self.parked_ids.get(id).copied())
    }
    fn has_id(&self, id: &SmallStr) -> bool {
        self.by_id(id).is_some()
    }
    fn oldest(&self) -> Option<u64> {
        match (self.fresh.front(), self.parked.keys().next()) {
            (Some(a), Some(b)) => Some(a.seq.min(*b)),
            (a, b) => a.map(|r| r.seq).or(b.copied()),
        }
    }
    fn newest(&self) -> Option<u64> {
        match (self.fresh.back(), self.parked.keys().next_back()) {
            (Some(a), Some(b)) => Some(a.seq.max(*b)),
            (a, b) => a.map(|r| r.seq).or(b.copied()),
        }
    }
    /// What a timeout belongs to: the request with its id, else the oldest.
    fn for_timeout(&self, id: &Option<SmallStr>) -> Option<u64> {
        match id {
            Some(id) => self.by_id(id),
            None => self.oldest(),
        }
    }
    /// What an end or failure closes, taken out of the set: the request with its id; without
    /// an id, the oldest the orchestrator has not timed out on (it gave up on those), else the
    /// oldest. The queue is searched once (the common case), parked requests by their index.
    fn take_for_end(&mut self, id: &Option<SmallStr>) -> Option<InFlight> {
        let fresh = match id {
            Some(id) => self.fresh.iter().position(|r| r.id.as_ref() == Some(id)),
            None => (!self.fresh.is_empty()).then_some(0),
        };
        match fresh {
            // The common case, requests ending in order: the queue's front.
            Some(0) => self.fresh.pop_front(),
            Some(i) => self.fresh.remove(i),
            // Not in the queue: the parked request with the id, or (the queue being empty)
            // the oldest parked one.
            None => {
                let seq = match id {
                    Some(id) => *self.parked_ids.get(id)?,
                    None => *self.parked.keys().next()?,
                };
                self.take_parked(seq)
            }
        }
    }
    fn remove(&mut self, seq: u64) -> Option<InFlight> {
        match self.fresh_pos(seq) {
            Some(i) => self.fresh.remove(i),
            None => self.take_parked(seq),
        }
    }
    fn take_parked(&mut self, seq: u64) -> Option<InFlight> {
        let r = self.parked.remove(&seq)?;
        if let Some(id) = &r.id
            && self.parked_ids.get(id) == Some(&seq)
        {
            self.parked_ids.remove(id);
        }
        Some(r)
    }
    fn park(&mut self, r: InFlight) {
        if let Some(id) = &r.id {
            self.parked_ids.insert(id.clone(), r.seq);
        }
        self.parked.insert(r.seq, r);
    }
    /// A request started at `seq` ended or progressed: the fresh ones before it are superseded.
    fn park_before(&mut self, seq: u64) {
        while self.fresh.front().is_some_and(|r| r.seq < seq) {
            if let Some(r) = self.fresh.pop_front() {
                self.park(r);
            }
        }
    }
    /// Attach a timeout; true when it is the request's first.
    fn time_out(&mut self, seq: u64, at: DateTime<Utc>) -> bool {
        if let Some(i) = self.fresh_pos(seq)
            && let Some(mut r) = self.fresh.remove(i)
        {
            r.timeouts.push(at);
            self.park(r);
            return true;
        }
        match self.parked.get_mut(&seq) {
            Some(r) => {
                let first = r.timeouts.is_empty();
                if r.timeouts.len() < MAX_TIMEOUTS {
                    r.timeouts.push(at);
                }
                first
            }
            None => false,
        }
    }
    fn started_of(&self, seq: u64) -> Option<DateTime<Utc>> {
        self.fresh
            .iter()
            .find(|r| r.seq == seq)
            .or_else(|| self.parked.get(&seq))
            .map(|r| r.started)
    }
    /// Every open request, oldest first (at an incarnation change).
    fn drain_ordered(&mut self) -> Vec<InFlight> {
        self.parked_ids.clear();
        let mut all: Vec<InFlight> = std::mem::take(&mut self.parked).into_values().collect();
        all.extend(std::mem::take(&mut self.fresh));
        all.sort_by_key(|r| r.seq);
        all
    }
    fn ordered(&self) -> Vec<InFlight> {
        let mut all: Vec<InFlight> = self.parked.values().cloned().collect();
        all.extend(self.fresh.iter().cloned());
        all.sort_by_key(|r| r.seq);
        all
    }
}

#[derive(Debug, Clone, Default)]
struct Acc {
    stats: Stats,
    tps: Histogram,
    latency: Histogram,
    open: OpenSet,
    last_successes: VecDeque<Success>,
    last_completion: Option<DateTime<Utc>>,
    /// Start sequence number of the youngest request that ended, failed or reported progress:
    /// every open request started before it is superseded.
    progressed: Option<u64>,
    /// Start sequence number of the youngest request that ended or failed.
    youngest_ended: Option<u64>,
    /// A request ended after a younger one had: the worker serves requests concurrently.
    concurrent: bool,
    /// Time of the last end, failure or progress line.
    last_progress: Option<DateTime<Utc>>,
    /// The pid the worker's lines carry now (a new one is a new incarnation).
    pid: Option<u32>,
    /// Requests the previous incarnations left open, oldest first (bounded).
    earlier: VecDeque<InFlight>,
}

impl Acc {
    /// The worker's process ended or was replaced: what it left open is the previous
    /// incarnation's, and the new process starts with no supersession state.
    fn new_incarnation(&mut self) {
        for r in self.open.drain_ordered() {
            self.stats.earlier_incarnation += 1;
            self.earlier.push_back(r);
            if self.earlier.len() > MAX_OPEN {
                self.earlier.pop_front();
            }
        }
        self.progressed = None;
        self.youngest_ended = None;
        self.concurrent = false;
    }
    /// A request (by start sequence) ended or failed.
    fn ended(&mut self, seq: u64, at: DateTime<Utc>) {
        if self.youngest_ended.is_some_and(|y| y > seq) {
            self.concurrent = true;
        }
        self.youngest_ended = self.youngest_ended.max(Some(seq));
        self.progressed(seq, at);
    }
    fn progressed(&mut self, seq: u64, at: DateTime<Utc>) {
        self.open.park_before(seq);
        self.progressed = self.progressed.max(Some(seq));
        self.last_progress = self.last_progress.max(Some(at));
    }
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

/// Open a request on a worker, dropping its oldest open one past [`MAX_OPEN`].
fn push_open(acc: &mut Acc, r: InFlight, dropped: &mut u64) {
    acc.stats.started += 1;
    acc.open.push(r);
    if acc.open.len() > MAX_OPEN
        && let Some(oldest) = acc.open.oldest()
    {
        acc.open.remove(oldest);
        *dropped += 1;
    }
}

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
    /// The format logs every request's end, or an end line was seen: open requests prove
    /// work in flight.
    ends_logged: bool,
}

impl Analyzer {
    /// A fold for `format` (what it can see decides what an open request proves).
    pub fn for_format(band_edges: &[u64], hung_after: Duration, format: &Format) -> Analyzer {
        let mut a = Analyzer::new(band_edges, hung_after, matches!(format, Format::MlxLm));
        a.ends_logged = format.logs_ends();
        a
    }

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
            ends_logged: true,
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
                    (Some(id), EventKind::End | EventKind::Failed | EventKind::Timeout) => {
                        self.workers.iter().position(|(_, a)| a.open.has_id(id))
                    }
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
        let seq = self.events;
        let slot = self.slot(ev);
        let acc = &mut self.workers[slot].1;
        // A new pid under a known name is a new process: the old one's requests are history.
        if let Some(pid) = ev.pid {
            if acc.pid.is_some_and(|p| p != pid) {
                acc.new_incarnation();
            }
            acc.pid = Some(pid);
        }
        let s = &mut acc.stats;
        s.first = Some(s.first.map_or(ev.time, |f| f.min(ev.time)));
        s.last = Some(s.last.map_or(ev.time, |l| l.max(ev.time)));
        match ev.kind {
            EventKind::Spawned | EventKind::Exited => acc.new_incarnation(),
            EventKind::Unended => {
                if let Some(r) = acc.open.newest().and_then(|n| acc.open.get_mut(n)) {
                    r.end_logged = false;
                }
            }
            EventKind::Start => push_open(acc, InFlight::from(ev, seq), &mut self.dropped_open),
            EventKind::Progress if ev.prompt_tokens.is_none() => {
                // A generated segment (no counts): progress of the newest open request.
                if let Some(n) = acc.open.newest() {
                    acc.progressed(n, ev.time);
                }
            }
            EventKind::Progress => self.on_prefill(slot, ev, seq),
            EventKind::End => self.on_end(slot, ev, seq),
            EventKind::Failed => self.on_failed(slot, ev, seq),
            EventKind::Timeout => self.on_timeout(slot, ev),
        }
    }

    /// Prefill progress `done/total`: the newest request's prefill goes on, or a new one begins.
    fn on_prefill(&mut self, slot: usize, ev: &Event, seq: u64) {
        let acc = &mut self.workers[slot].1;
        let done = u64::from(ev.tokens.unwrap_or(0));
        let total = u64::from(ev.prompt_tokens.unwrap_or(0));
        let newest = acc.open.newest();
        // The newest request's prefill goes on, or begins (its start line has no count).
        let continues = newest
            .and_then(|n| acc.open.get_mut(n))
            .filter(|r| r.progress.is_none_or(|[d, t]| t == total && done >= d));
        match continues {
            Some(r) => {
                r.progress = Some([done, total]);
                let seq = r.seq;
                acc.progressed(seq, ev.time);
            }
            None => {
                let mut r = InFlight::from(ev, seq);
                r.progress = Some([done, total]);
                push_open(acc, r, &mut self.dropped_open);
                acc.progressed(seq, ev.time);
            }
        }
    }

    /// A request ended: it leaves the open set, and its figures go into the counters, the
    /// histograms, the last successes and its prompt-size band.
    fn on_end(&mut self, slot: usize, ev: &Event, seq: u64) {
        let synthesize = self.synthesize_starts;
        let acc = &mut self.workers[slot].1;
        self.ends_logged = true;
        let req = acc.open.take_for_end(&ev.id);
        match &req {
            Some(r) => acc.ended(r.seq, ev.time),
            None if synthesize => {
                // A format without start lines: the end is the request's only trace.
                acc.stats.started += 1;
                acc.ended(seq, ev.time);
            }
            None => self.unmatched_ends += 1,
        }
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

    /// A request failed: it leaves the open set and becomes an anomaly.
    fn on_failed(&mut self, slot: usize, ev: &Event, seq: u64) {
        let synthesize = self.synthesize_starts;
        let acc = &mut self.workers[slot].1;
        let req = acc.open.take_for_end(&ev.id);
        acc.stats.failed += 1;
        match &req {
            Some(r) => acc.ended(r.seq, ev.time),
            None if synthesize => {
                acc.stats.started += 1;
                acc.ended(seq, ev.time);
            }
            None => {}
        }
        self.anomaly(Anomaly {
            time: ev.time,
            kind: "failure",
            worker: self.workers[slot].0.to_string(),
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

    /// The orchestrator gave up waiting: the request stays open, timed out, and is an anomaly.
    fn on_timeout(&mut self, slot: usize, ev: &Event) {
        let acc = &mut self.workers[slot].1;
        acc.stats.timeout_lines += 1;
        let mut started = None;
        if let Some(i) = acc.open.for_timeout(&ev.id) {
            started = acc.open.started_of(i);
            if acc.open.time_out(i, ev.time) {
                acc.stats.timed_out += 1;
            }
        }
        self.anomaly(Anomaly {
            time: ev.time,
            kind: "timeout",
            worker: self.workers[slot].0.to_string(),
            line: ev.line,
            source: ev.source,
            id: ev.id.clone(),
            timeout_secs: ev.timeout_secs,
            message: None,
            request_started: started,
        });
    }

    /// The analysis of everything added: per worker, totals, bands and open requests.
    pub fn finish(mut self) -> Analysis {
        let end_of_log = self.workers.iter().filter_map(|(_, a)| a.stats.last).max();
        let mut g = Gathered::default();
        let mut all = std::mem::take(&mut self.workers);
        all.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, acc) in all {
            self.finish_worker(&mut g, name.to_string(), &acc, end_of_log);
        }
        finish_stats(&mut g.totals, &g.all_tps, &g.all_latency);
        self.finish_bands();
        self.anomalies.sort_by_key(|a| (a.time, a.line));
        g.sort_lists();
        Analysis {
            events: self.events,
            totals: g.totals,
            workers: g.workers,
            bands: self.bands,
            anomalies: self.anomalies,
            anomalies_dropped: self.anomalies_dropped,
            unmatched_ends: self.unmatched_ends,
            dropped_open: self.dropped_open,
            hang_triggers: g.hang_triggers,
            in_flight: g.in_flight,
            abandoned: g.abandoned,
            stuck: g.stuck,
            earlier_incarnation: g.earlier,
            unended: g.unended,
            proves_in_flight: self.ends_logged,
            last_successes: g.last_successes,
            keys: g.keys,
        }
    }

    /// Fold one worker's accumulator into the report: its stats, the totals, its hang trigger,
    /// its open requests, its last successes and its key state.
    fn finish_worker(
        &self,
        g: &mut Gathered,
        name: String,
        acc: &Acc,
        end_of_log: Option<DateTime<Utc>>,
    ) {
        let mut s = acc.stats.clone();
        let state = KeyState {
            open: acc.open.ordered(),
            earlier: acc.earlier.iter().cloned().collect(),
            last_completion: acc.last_completion,
            last_progress: acc.last_progress,
            progressed: acc.progressed,
            concurrent: acc.concurrent,
            stats: Stats::default(),
        };
        let split = state.split(None, self.ends_logged);
        s.abandoned = if acc.concurrent {
            0
        } else {
            split.superseded.len() as u64
        };
        finish_stats(&mut s, &acc.tps, &acc.latency);
        add_totals(&mut g.totals, &s);
        g.all_tps.merge(&acc.tps);
        g.all_latency.merge(&acc.latency);
        if let Some(trigger) = self.hang_trigger(&name, &split, acc, end_of_log) {
            g.hang_triggers.push(trigger);
        }
        g.in_flight.extend(split.current.iter().cloned());
        g.unended.extend(split.unended.iter().cloned());
        if acc.concurrent {
            g.stuck.extend(split.superseded.iter().cloned());
        } else {
            g.abandoned.extend(split.superseded.iter().cloned());
        }
        g.earlier.extend(state.earlier.iter().cloned());
        g.last_successes.insert(
            name.clone(),
            acc.last_successes.iter().cloned().collect::<Vec<_>>(),
        );
        g.keys.insert(
            name.clone(),
            KeyState {
                stats: s.clone(),
                ..state
            },
        );
        g.workers.insert(name, s);
    }

    /// The worker's hang trigger, if it has one.
    fn hang_trigger(
        &self,
        name: &str,
        split: &Split,
        acc: &Acc,
        end_of_log: Option<DateTime<Utc>>,
    ) -> Option<HangTrigger> {
        // The trigger: the oldest request nothing later superseded, with timeouts logged
        // for it or unfinished for --hung-after before the log ended.
        let oldest = split.current.first().filter(|_| self.ends_logged)?;
        let waited = end_of_log
            .map(|e| e - oldest.started)
            .and_then(|d| d.to_std().ok())
            .unwrap_or_default();
        let reason = if !oldest.timeouts.is_empty() {
            format!("{} timeout(s) logged for it", oldest.timeouts.len())
        } else if waited >= self.hung_after {
            format!(
                "unfinished for {} before the end of the log",
                crate::fmt::duration(waited)
            )
        } else {
            return None;
        };
        Some(HangTrigger {
            worker: name.to_string(),
            request: oldest.clone(),
            queued: split.current.iter().skip(1).cloned().collect(),
            last_completion: acc.last_completion,
            reason,
        })
    }

    /// Each band's mean and median throughput.
    fn finish_bands(&mut self) {
        for b in &mut self.bands {
            b.mean_tokens_per_sec =
                (b.generation_secs > 0.0).then(|| b.tokens as f64 / b.generation_secs);
            b.median_tokens_per_sec = b.tps.quantile(0.5);
        }
    }
}

/// What [`Analyzer::finish`] gathers from the workers, one at a time.
#[derive(Default)]
struct Gathered {
    totals: Stats,
    all_tps: Histogram,
    all_latency: Histogram,
    workers: BTreeMap<String, Stats>,
    hang_triggers: Vec<HangTrigger>,
    last_successes: BTreeMap<String, Vec<Success>>,
    keys: BTreeMap<String, KeyState>,
    in_flight: Vec<InFlight>,
    abandoned: Vec<InFlight>,
    stuck: Vec<InFlight>,
    earlier: Vec<InFlight>,
    unended: Vec<InFlight>,
}

impl Gathered {
    /// Sort every list of open requests by start time (then start sequence).
    fn sort_lists(&mut self) {
        for list in [
            &mut self.in_flight,
            &mut self.abandoned,
            &mut self.stuck,
            &mut self.earlier,
            &mut self.unended,
        ] {
            list.sort_by_key(|r| (r.started, r.seq));
        }
    }
}

/// Add one worker's counts and time span to the totals.
fn add_totals(totals: &mut Stats, s: &Stats) {
    totals.started += s.started;
    totals.completed += s.completed;
    totals.failed += s.failed;
    totals.timed_out += s.timed_out;
    totals.timeout_lines += s.timeout_lines;
    totals.abandoned += s.abandoned;
    totals.earlier_incarnation += s.earlier_incarnation;
    totals.tokens += s.tokens;
    totals.generation_secs += s.generation_secs;
    totals.first = min_opt(totals.first, s.first);
    totals.last = max_opt(totals.last, s.last);
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

/// One worker key at the end of the log.
#[derive(Debug, Clone, Default)]
struct KeyState {
    /// Every request still open, oldest first.
    open: Vec<InFlight>,
    /// Requests earlier incarnations left open.
    earlier: Vec<InFlight>,
    last_completion: Option<DateTime<Utc>>,
    last_progress: Option<DateTime<Utc>>,
    progressed: Option<u64>,
    concurrent: bool,
    stats: Stats,
}

/// Open requests split by the supersession rule.
struct Split {
    /// Not superseded: the work in flight.
    current: Vec<InFlight>,
    /// Not superseded, but the log records no end for them (streams): context only.
    unended: Vec<InFlight>,
    /// A later-started request ended, failed or progressed after these started.
    superseded: Vec<InFlight>,
}

impl KeyState {
    /// Split the open requests; `progressed` overrides the key's own (several keys, one worker).
    /// Where the log shows no ends, superseded requests simply ended unlogged and are dropped;
    /// the rest are context only (see [`Analysis::proves_in_flight`]).
    fn split(&self, progressed: Option<u64>, ends_logged: bool) -> Split {
        let p = progressed.max(self.progressed);
        let (mut superseded, current): (Vec<InFlight>, Vec<InFlight>) = self
            .open
            .iter()
            .cloned()
            .partition(|r| p.is_some_and(|p| p > r.seq));
        if !ends_logged {
            superseded.clear();
        }
        // A request whose end is never logged and that later work superseded simply ended.
        superseded.retain(|r| r.end_logged);
        let (current, unended) = current.into_iter().partition(|r| r.end_logged);
        Split {
            current,
            unended,
            superseded,
        }
    }
}

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
    /// Open at the end of the log and not superseded: work in flight.
    pub in_flight: Vec<InFlight>,
    /// Open, but superseded on a worker that serves one request at a time.
    pub abandoned: Vec<InFlight>,
    /// Open, but superseded on a worker seen serving requests concurrently.
    pub stuck: Vec<InFlight>,
    /// Left open by an earlier incarnation of their worker.
    pub earlier_incarnation: Vec<InFlight>,
    /// Open at the end, not superseded, but of a kind whose end the log never records
    /// (mlx_lm.server streams): context, never proof of work in flight.
    pub unended: Vec<InFlight>,
    /// Whether an open request proves work in flight: the format logs every end, or end
    /// lines were seen. Otherwise open requests are context (mlx_lm.server at INFO).
    pub proves_in_flight: bool,
    pub last_successes: BTreeMap<String, Vec<Success>>,
    /// Per worker key, the state `check` attributes to processes.
    keys: BTreeMap<String, KeyState>,
}

/// One worker's share of the log, for `check`: only requests that can be evidence about the
/// process (started while it was alive, not superseded) are `in_flight`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerLog {
    pub completed: u64,
    pub failed: u64,
    pub timeouts: u64,
    pub last_completion: Option<DateTime<Utc>>,
    /// Time of the worker's last end, failure or progress line.
    pub last_progress: Option<DateTime<Utc>>,
    pub in_flight: Vec<InFlight>,
    /// Superseded by a later request on a worker that serves one at a time.
    pub abandoned: Vec<InFlight>,
    /// Superseded on a worker seen serving requests concurrently: stuck while it progresses.
    pub stuck: Vec<InFlight>,
    /// Started before this process did (beyond the clock slack), or left open by an earlier
    /// incarnation the log itself marks: the previous process's, never this one's.
    pub earlier: Vec<InFlight>,
    /// Open, but the log records no end for them (streams): context only.
    pub unended: Vec<InFlight>,
    /// Out-of-order ends were seen: the worker serves requests concurrently.
    pub concurrent: bool,
    /// See [`Analysis::proves_in_flight`].
    pub proves_in_flight: bool,
}

impl WorkerLog {
    /// Every open request of this worker's share, whatever list it is in.
    pub fn requests(&self) -> impl Iterator<Item = &InFlight> {
        self.in_flight
            .iter()
            .chain(&self.abandoned)
            .chain(&self.stuck)
            .chain(&self.earlier)
            .chain(&self.unended)
    }
}

/// How far a log's clock and the process start time may disagree before a request counts as
/// older than the process: the start time's error (10 ms clock ticks on Linux, microseconds on
/// macOS), the time between the orchestrator logging a request and handing it on, and clock
/// jitter. A request stamped in whole seconds may have happened up to a second after its stamp,
/// so it gets [`STAMP_SECOND`] more (see [`slack_for`]).
pub const CLOCK_SLACK: Duration = Duration::from_millis(250);

/// The extra slack of a request stamped in whole seconds.
pub const STAMP_SECOND: Duration = Duration::from_secs(1);

/// The slack for a request started at `started`: a stamp without a fraction of a second (the
/// MLS format without milliseconds, mlx_lm.server's access lines) may be up to a second early.
/// (A millisecond stamp that happens to fall on `.000` gets the second too: more slack only
/// counts more requests as this process's, never fewer.)
pub fn slack_for(started: DateTime<Utc>) -> Duration {
    if started.timestamp_subsec_nanos() == 0 {
        CLOCK_SLACK + STAMP_SECOND
    } else {
        CLOCK_SLACK
    }
}

impl Analysis {
    /// The lines that belong to a worker: those naming it, those naming its pid, and, when
    /// `only_worker` is true, those naming nobody. With `alive_since` (the process start time
    /// from the OS), requests that started before it, less [`slack_for`] them, are `earlier`.
    pub fn for_worker(
        &self,
        name: Option<&str>,
        pid: u32,
        only_worker: bool,
        alive_since: Option<DateTime<Utc>>,
    ) -> WorkerLog {
        let mut keys = vec![format!("pid:{pid}")];
        if let Some(n) = name {
            keys.push(n.to_string());
        }
        if only_worker {
            keys.push(String::new());
        }
        let states: Vec<&KeyState> = keys.iter().filter_map(|k| self.keys.get(k)).collect();
        // Progress on any of the worker's keys supersedes its older requests.
        let progressed = states.iter().filter_map(|s| s.progressed).max();
        let mut out = WorkerLog {
            proves_in_flight: self.proves_in_flight,
            ..WorkerLog::default()
        };
        let before = |r: &InFlight| {
            alive_since.is_some_and(|t| {
                r.started < t - chrono::Duration::from_std(slack_for(r.started)).unwrap_or_default()
            })
        };
        // A line naming both worker and pid is keyed by name; pid-only lines must match pid.
        let ours = |r: &InFlight| r.pid.is_none_or(|p| p == pid);
        for st in states {
            out.completed += st.stats.completed;
            out.failed += st.stats.failed;
            out.timeouts += st.stats.timeout_lines;
            out.last_completion = out.last_completion.max(st.last_completion);
            out.last_progress = out.last_progress.max(st.last_progress);
            out.concurrent |= st.concurrent;
            let split = st.split(progressed, self.proves_in_flight);
            for r in split.current.into_iter().filter(|r| ours(r)) {
                if before(&r) {
                    out.earlier.push(r);
                } else {
                    out.in_flight.push(r);
                }
            }
            out.unended
                .extend(split.unended.into_iter().filter(|r| ours(r) && !before(r)));
            for r in split.superseded.into_iter().filter(|r| ours(r)) {
                if before(&r) {
                    out.earlier.push(r);
                } else if st.concurrent {
                    out.stuck.push(r);
                } else {
                    out.abandoned.push(r);
                }
            }
            // An earlier incarnation's requests carry its pid, not this one's: all of them.
            out.earlier.extend(st.earlier.iter().cloned());
        }
        for list in [
            &mut out.in_flight,
            &mut out.abandoned,
            &mut out.stuck,
            &mut out.earlier,
            &mut out.unended,
        ] {
            list.sort_by_key(|r| (r.started, r.seq));
        }
        out
    }

    /// Requests open at the end of the log, superseded or not (for "belongs to no worker found").
    pub fn open(&self) -> impl Iterator<Item = &InFlight> {
        self.in_flight
            .iter()
            .chain(&self.abandoned)
            .chain(&self.stuck)
            .chain(&self.unended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::event::ParseCtx;
    use crate::logs::formats::{Format, Parsed};
    use chrono::TimeZone;

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
        // b started after a and completed: a is superseded (abandoned), not in flight.
        let w1 = a.for_worker(Some("w1"), 1, false, None);
        assert!(w1.in_flight.is_empty());
        assert_eq!(w1.abandoned[0].id.as_deref(), Some("a"));
        let w2 = a.for_worker(Some("w2"), 2, false, None);
        assert_eq!(
            w2.in_flight.len(),
            1,
            "a timeout does not finish the worker's request"
        );
        assert_eq!(w2.in_flight[0].timeouts.len(), 1);
        assert_eq!(a.workers["w2"].timed_out, 1);
        assert!(
            a.for_worker(Some("w3"), 3, false, None)
                .in_flight
                .is_empty()
        );
        assert_eq!(a.totals.completed, 2);
        assert_eq!(a.totals.started, 4);
        // Bands: b (120000 chars) in ≥100K, w3's 9000 chars in 8K–10K.
        assert_eq!(a.bands[3].completed, 1);
        assert_eq!(a.bands[1].completed, 1);
        assert_eq!(a.bands[1].label, "8K–10K");
        // w2 stopped completing with a timeout: the hang trigger; w1's "a" was superseded.
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
        assert_eq!(a.for_worker(Some("x"), 10, false, None).in_flight.len(), 1);
        assert_eq!(a.for_worker(Some("x"), 10, true, None).in_flight.len(), 2);
        assert_eq!(a.for_worker(None, 11, false, None).in_flight.len(), 0);
    }

    fn fold_mlx(lines: &[&str]) -> Analysis {
        let mut a = Analyzer::for_format(&[], Duration::from_secs(300), &Format::MlxLm);
        let mut ctx = ParseCtx::default();
        for l in lines {
            if let Parsed::Event(e) = Format::MlxLm.parse(l.as_bytes(), &mut ctx) {
                a.add(&e);
            }
        }
        a.finish()
    }

    #[test]
    fn mlx_lm_at_info_starts_requests_but_cannot_prove_them_in_flight() {
        // The order mlx_lm.server 0.32 writes: the access line at send_response, before
        // prefill; progress per chunk; nothing at the end.
        let a = fold_mlx(&[
            "127.0.0.1 - - [05/Jan/2026 23:12:00] \"POST /v1/chat/completions HTTP/1.1\" 200 -",
            "2026-01-05 23:12:00,100 - INFO - Prompt processing progress: 2048/4096",
            "2026-01-05 23:12:02,000 - INFO - Prompt processing progress: 4096/4096",
            "127.0.0.1 - - [05/Jan/2026 23:13:00] \"POST /v1/chat/completions HTTP/1.1\" 200 -",
            "2026-01-05 23:13:00,100 - INFO - Prompt processing progress: 19/20",
        ]);
        assert_eq!(a.totals.started, 2, "one request per access line");
        assert!(!a.proves_in_flight);
        assert_eq!(a.in_flight.len(), 1);
        assert_eq!(a.in_flight[0].progress, Some([19, 20]));
        assert!(
            a.abandoned.is_empty(),
            "superseded requests just ended unlogged"
        );
        assert!(a.hang_triggers.is_empty(), "no trigger without ends");
        let w = a.for_worker(None, 7, true, None);
        assert!(!w.proves_in_flight);
    }

    #[test]
    fn mlx_lm_at_debug_ends_non_streaming_requests() {
        let a = fold_mlx(&[
            "127.0.0.1 - - [05/Jan/2026 23:12:00] \"POST /v1/chat/completions HTTP/1.1\" 200 -",
            "2026-01-05 23:12:00,001 - DEBUG - Starting completion:",
            "2026-01-05 23:12:00,100 - INFO - Prompt processing progress: 20/20",
            "2026-01-05 23:12:00,200 - DEBUG - Hello",
            "2026-01-05 23:12:05,000 - DEBUG - Outgoing Response: {",
        ]);
        assert!(a.proves_in_flight);
        assert_eq!((a.totals.started, a.totals.completed), (1, 1));
        assert!(a.in_flight.is_empty());
        assert_eq!(a.totals.latency_p50_secs.map(|l| l.round()), Some(5.0));
    }

    #[test]
    fn mlx_lm_streams_log_no_end_so_they_are_context() {
        let access =
            "127.0.0.1 - - [05/Jan/2026 23:12:00] \"POST /v1/chat/completions HTTP/1.1\" 200 -";
        let done = [
            access,
            "2026-01-05 23:12:00,001 - DEBUG - Starting completion:",
            "2026-01-05 23:12:00,200 - DEBUG - Hello",
            "2026-01-05 23:12:01,000 - DEBUG - Outgoing Response: {",
        ];
        let stream = [
            access,
            "2026-01-05 23:12:02,001 - DEBUG - Starting stream:",
            "2026-01-05 23:12:02,200 - DEBUG - Hello",
        ];
        // A stream last: open, but no end will come, so it is not work in flight.
        let a = fold_mlx(&[&done[..], &stream[..]].concat());
        assert!(a.proves_in_flight);
        assert!(a.in_flight.is_empty(), "{:?}", a.in_flight);
        assert_eq!(a.unended.len(), 1);
        assert!(!a.unended[0].end_logged);
        assert!(a.hang_triggers.is_empty());
        let w = a.for_worker(None, 7, true, None);
        assert!(w.in_flight.is_empty());
        assert_eq!(w.unended.len(), 1);
        // A stream followed by a completed request simply ended: nothing open, nothing abandoned.
        let a = fold_mlx(&[&stream[..], &done[..]].concat());
        assert!(a.in_flight.is_empty() && a.unended.is_empty() && a.abandoned.is_empty());
        // A non-streaming request still in flight is: its end will be logged.
        let a = fold_mlx(&[&done[..], &done[..2]].concat());
        assert_eq!(a.in_flight.len(), 1);
    }

    #[test]
    fn a_later_completion_abandons_a_timed_out_request() {
        let a = fold(&[
            "2026-01-05 23:13:25 Chat completion request: worker=w1 id=req-319",
            "2026-01-05 23:23:25 Worker timeout after 600s worker=w1 id=req-319",
            "2026-01-05 23:24:00 Chat completion request: worker=w1 id=req-320",
            "2026-01-05 23:24:10 Chat completion: 10 tokens in 10s (1.0 tok/s) worker=w1 id=req-320",
        ]);
        assert!(a.in_flight.is_empty(), "{:?}", a.in_flight);
        assert_eq!(a.abandoned.len(), 1);
        assert_eq!(a.abandoned[0].id.as_deref(), Some("req-319"));
        assert!(a.hang_triggers.is_empty());
        assert_eq!(a.workers["w1"].abandoned, 1);
        let w = a.for_worker(Some("w1"), 1, false, None);
        assert!(w.in_flight.is_empty());
        assert_eq!(w.abandoned.len(), 1);
        assert!(!w.concurrent);
    }

    #[test]
    fn without_ids_an_end_closes_the_oldest_request_not_timed_out() {
        let a = fold(&[
            "2026-01-05 23:13:25 Chat completion request: worker=w1",
            "2026-01-05 23:23:25 Worker timeout after 600s worker=w1",
            "2026-01-05 23:24:00 Chat completion request: worker=w1",
            "2026-01-05 23:24:10 Chat completion: 10 tokens in 10s (1.0 tok/s) worker=w1",
            "2026-01-05 23:25:00 Chat completion request: worker=w1",
            "2026-01-05 23:25:10 Chat completion: 10 tokens in 10s (1.0 tok/s) worker=w1",
        ]);
        assert!(a.in_flight.is_empty(), "{:?}", a.in_flight);
        assert_eq!(a.abandoned.len(), 1);
        assert_eq!(a.abandoned[0].timeouts.len(), 1);
    }

    #[test]
    fn out_of_order_ends_mean_concurrency_and_a_stuck_request() {
        let a = fold(&[
            "2026-01-05 23:00:00 Chat completion request: worker=w1 id=stuck",
            "2026-01-05 23:00:01 Chat completion request: worker=w1 id=a",
            "2026-01-05 23:00:02 Chat completion request: worker=w1 id=b",
            "2026-01-05 23:00:05 Chat completion: 5 tokens in 3s (1.7 tok/s) worker=w1 id=b",
            "2026-01-05 23:00:06 Chat completion: 5 tokens in 5s (1.0 tok/s) worker=w1 id=a",
        ]);
        let w = a.for_worker(Some("w1"), 1, false, None);
        assert!(w.concurrent, "a ended after the younger b");
        assert!(w.in_flight.is_empty());
        assert_eq!(w.stuck.len(), 1);
        assert_eq!(w.stuck[0].id.as_deref(), Some("stuck"));
        assert!(a.abandoned.is_empty());
        assert_eq!(a.stuck.len(), 1);
    }

    #[test]
    fn a_request_that_predates_the_process_is_the_previous_incarnations() {
        let a = fold(&[
            "2026-01-05 23:13:25 Chat completion request: worker=w1 id=req-319",
            "2026-01-05 23:23:25 Worker timeout after 600s worker=w1 id=req-319",
        ]);
        let t = |h, m, s| Utc.with_ymd_and_hms(2026, 1, 5, h, m, s).unwrap();
        // Alive since before the request (within or beyond the slack): its evidence. A stamp in
        // whole seconds may be a second early, so a start 1 s after it is within the slack...
        let w = a.for_worker(Some("w1"), 1, false, Some(t(23, 13, 26)));
        assert_eq!(w.in_flight.len(), 1, "within the clock slack");
        // ...and 1.5 s after it is not.
        let later = t(23, 13, 26) + chrono::Duration::milliseconds(500);
        let w = a.for_worker(Some("w1"), 1, false, Some(later));
        assert_eq!(w.earlier.len(), 1, "beyond a second stamp's slack");
        // A millisecond stamp is precise: 0.4 s before the process started is the previous one's.
        let a2 = fold(&["2026-01-05 23:13:25,100 Chat completion request: worker=w1 id=req-9"]);
        let start = t(23, 13, 25) + chrono::Duration::milliseconds(500);
        assert_eq!(
            a2.for_worker(Some("w1"), 1, false, Some(start))
                .earlier
                .len(),
            1
        );
        let start = t(23, 13, 25) + chrono::Duration::milliseconds(300);
        assert_eq!(
            a2.for_worker(Some("w1"), 1, false, Some(start))
                .in_flight
                .len(),
            1
        );
        // Respawned later under the same name: not this process's request.
        let w = a.for_worker(Some("w1"), 2, false, Some(t(23, 40, 0)));
        assert!(w.in_flight.is_empty());
        assert_eq!(w.earlier.len(), 1);
        // The same for unattributed lines on a one-worker machine.
        let a = fold(&["2026-01-05 23:13:25 Chat completion request: id=req-319"]);
        let w = a.for_worker(Some("w1"), 2, true, Some(t(23, 40, 0)));
        assert_eq!((w.in_flight.len(), w.earlier.len()), (0, 1));
    }

    #[test]
    fn a_new_pid_or_a_spawn_line_starts_a_new_incarnation() {
        let a = fold(&[
            "2026-01-05 23:13:25 Chat completion request: worker=w1 pid=10 id=req-319",
            "2026-01-05 23:50:00 Chat completion request: worker=w1 pid=11 id=req-1",
        ]);
        assert_eq!(a.earlier_incarnation.len(), 1);
        assert_eq!(a.earlier_incarnation[0].id.as_deref(), Some("req-319"));
        assert_eq!(a.in_flight.len(), 1);
        assert_eq!(a.workers["w1"].earlier_incarnation, 1);
        let a = fold(&[
            "2026-01-05 23:13:25 Chat completion request: worker=w1 id=req-319",
            "2026-01-05 23:40:00 Worker exited worker=w1 status=-9",
            "2026-01-05 23:40:01 Worker spawned worker=w1",
        ]);
        assert!(a.in_flight.is_empty());
        assert_eq!(a.earlier_incarnation.len(), 1);
        assert!(a.hang_triggers.is_empty());
    }

    #[test]
    fn bookkeeping_stays_flat_with_many_abandoned_requests() {
        // 5000 abandoned requests, then 20000 normal ones: every lookup is by hash or order.
        let mut a = Analyzer::new(&[], Duration::from_secs(300), false);
        let mut ctx = ParseCtx::default();
        let mut add = |l: String| {
            if let Parsed::Event(e) = Format::Mls.parse(l.as_bytes(), &mut ctx) {
                a.add(&e);
            }
        };
        for i in 0..5000 {
            add(format!(
                "2026-01-05 10:00:00 Chat completion request: worker=w id=lost-{i}"
            ));
        }
        for i in 0..20000 {
            add(format!(
                "2026-01-05 11:00:00 Chat completion request: worker=w id=r{i}"
            ));
            add(format!(
                "2026-01-05 11:00:01 Chat completion: 1 tokens in 1s (1.0 tok/s) worker=w id=r{i}"
            ));
        }
        let a = a.finish();
        assert_eq!(a.abandoned.len(), 5000);
        assert!(a.in_flight.is_empty());
        assert_eq!(a.totals.completed, 20000);
    }
}
