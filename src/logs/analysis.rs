//! Folding events, in log order, into the incident tables: per-worker counts, throughput,
//! latency percentiles, prompt-size bands, anomalies, in-flight requests and the hang trigger.
//!
//! Memory stays bounded however long the log and whatever it holds: counters, fixed-size
//! histograms (percentiles within 0.4 %), the last five successes per worker, and the requests
//! still open (see [`OpenSet`]: each event costs the same however many requests were
//! abandoned), at most [`MAX_WORKERS`] worker keys (the least recently seen are forgotten and
//! counted), [`MAX_OPEN_ALL`] open requests, and ids, names and messages cut to a bounded
//! prefix and a hash of the whole (see [`crate::model::bounded_text`]).
//!
//! The attribution rules live here, once, for `logs` and `check` alike:
//! - a request that starts after another and then ends, fails or reports progress **supersedes**
//!   it: the older one is *abandoned* (a sequential worker moved on) or, when the worker is seen
//!   serving requests concurrently, *stuck while the worker progresses*; neither proves a hang;
//! - concurrency is seen when a request ends after a younger one has ended (out-of-order ends);
//! - each `pid=` under a worker name is its own process, with its own open requests and
//!   supersession: one process's end never supersedes another's request (two live processes
//!   under one name, as in a rolling restart, are two workers);
//! - a `Worker spawned` or `Worker exited` line ends an incarnation (that pid's, or every one
//!   when the line names no pid): what it left open belongs to the previous process. A new
//!   `pid=` ends the old one only when the old process is gone, which the OS says, not the
//!   log: [`Analysis::for_worker`] asks; `logs` alone takes a pid that stopped logging before
//!   another began as replaced;
//! - where the format logs no request ends (and none were seen), superseded requests ended
//!   unlogged, and the open ones are context: none proves work in flight.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::event::{Event, EventKind, Name};
use super::formats::Format;
use crate::model::{
    Anomaly, Band, HangTrigger, Histogram, ID_CAP, InFlight, MESSAGE_CAP, SmallStr, Stats, Success,
    bounded_text,
};

impl InFlight {
    fn from(ev: &Event, seq: u64) -> InFlight {
        InFlight {
            seq,
            started: ev.time,
            line: ev.line,
            source: ev.source,
            worker: ev.worker.as_ref().map(|w| match w {
                Name::Interned(s) => std::borrow::Cow::Borrowed(*s),
                Name::Owned(s) => std::borrow::Cow::Owned(s.to_string()),
            }),
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

/// One process's share of a worker key: the requests it opened and what it did since. A key
/// holds one per `pid=` its lines carry (and one for lines that carry none): two live processes
/// under one name are two workers, and one's end or progress never supersedes the other's
/// requests.
#[derive(Debug, Clone, Default)]
struct Inc {
    /// The pid its lines carry; `None` for lines that name no pid.
    pid: Option<u32>,
    open: OpenSet,
    /// Start sequence number of the youngest request that ended, failed or reported progress:
    /// every open request started before it is superseded.
    progressed: Option<u64>,
    /// Start sequence number of the youngest request that ended or failed.
    youngest_ended: Option<u64>,
    /// A request ended after a younger one had: the process serves requests concurrently.
    concurrent: bool,
    /// Time of the last end, failure or progress line.
    last_progress: Option<DateTime<Utc>>,
    last_completion: Option<DateTime<Utc>>,
    completed: u64,
    failed: u64,
    timeout_lines: u64,
    /// Sequence numbers of its first and last lines.
    first_seq: u64,
    last_seq: u64,
    /// Its generation thread's death, unless progress was logged after it.
    died: Option<Death>,
}

impl Inc {
    /// A request (by start sequence) ended or failed.
    fn ended(&mut self, seq: u64, at: DateTime<Utc>) {
        if self.youngest_ended.is_some_and(|y| y > seq) {
            self.concurrent = true;
        }
        self.youngest_ended = self.youngest_ended.max(Some(seq));
        self.progressed(seq, at);
    }
    fn progressed(&mut self, seq: u64, at: DateTime<Utc>) {
        // Progress after a death: a generation runs again (another thread, another server).
        if self.died.as_ref().is_some_and(|d| at > d.at) {
            self.died = None;
        }
        self.open.park_before(seq);
        self.progressed = self.progressed.max(Some(seq));
        self.last_progress = self.last_progress.max(Some(at));
    }
}

/// Incarnations (pids) kept per worker key; past it the least recently seen one is ended.
const MAX_INCS: usize = 16;

/// Requests of ended incarnations kept per worker key (their count is kept whole).
const MAX_EARLIER: usize = 256;

#[derive(Debug, Clone, Default)]
struct Acc {
    stats: Stats,
    tps: Histogram,
    latency: Histogram,
    last_successes: VecDeque<Success>,
    last_completion: Option<DateTime<Utc>>,
    /// Per pid (at most [`MAX_INCS`]), in first-seen order.
    incs: Vec<Inc>,
    /// The incarnation of the key's last event (the next one's, nearly always).
    cur: usize,
    /// Requests ended incarnations left open, oldest first (bounded), each with its pid.
    earlier: VecDeque<InFlight>,
    /// Sequence number of the key's last event: the least recently seen key is evicted first.
    last_seen: u64,
}

impl Acc {
    /// Incarnation `i`'s process ended or was replaced: what it left open is the previous
    /// incarnation's, and the next process starts with no supersession state. Returns how
    /// many requests it left open.
    fn end_incarnation(&mut self, i: usize) -> usize {
        let inc = &mut self.incs[i];
        let left = inc.open.drain_ordered();
        let n = left.len();
        inc.progressed = None;
        inc.youngest_ended = None;
        inc.concurrent = false;
        for r in left {
            self.stats.earlier_incarnation += 1;
            self.earlier.push_back(r);
            if self.earlier.len() > MAX_EARLIER {
                self.earlier.pop_front();
            }
        }
        n
    }

    fn pidless(&self) -> Option<usize> {
        self.incs.iter().position(|i| i.pid.is_none())
    }

    /// The incarnation an event belongs to, created on its first line. Lines with a pid go to
    /// that pid's; lines without one to the pid-less one, except ends, failures, timeouts and
    /// progress, which go to whichever holds their request (by id, else the pid-less one when
    /// it has requests open, else the one of the key's last line). `opened` gets the number of
    /// requests an incarnation ended to make room took with it.
    #[inline]
    fn inc_for(&mut self, ev: &Event, opened: &mut usize) -> usize {
        // One process per key, the usual case: its incarnation.
        if self.incs.len() == 1 && self.incs[0].pid == ev.pid {
            return 0;
        }
        let closing = matches!(
            ev.kind,
            EventKind::End | EventKind::Failed | EventKind::Timeout
        );
        let holds = |inc: &Inc| match (&ev.id, closing) {
            (Some(id), true) => inc.open.has_id(id),
            _ => false,
        };
        let found = match ev.pid {
            Some(p) => {
                let own = match self.incs.get(self.cur) {
                    Some(i) if i.pid == Some(p) => Some(self.cur),
                    _ => self.incs.iter().position(|i| i.pid == Some(p)),
                };
                // Started on a line without the pid, ended on one with it.
                match (own, self.pidless()) {
                    (Some(o), Some(l)) if !holds(&self.incs[o]) && holds(&self.incs[l]) => Some(l),
                    (own, _) => own,
                }
            }
            None if ev.kind == EventKind::Start => self.pidless(),
            None => {
                let by_id = (ev.id.is_some() && closing)
                    .then(|| {
                        std::iter::once(self.cur)
                            .chain(0..self.incs.len())
                            .find(|&i| self.incs.get(i).is_some_and(&holds))
                    })
                    .flatten();
                by_id
                    .or_else(|| self.pidless().filter(|&l| self.incs[l].open.len() > 0))
                    .or_else(|| (self.cur < self.incs.len()).then_some(self.cur))
            }
        };
        match found {
            Some(i) => i,
            None => {
                if self.incs.len() >= MAX_INCS
                    && let Some(old) = (0..self.incs.len()).min_by_key(|&i| self.incs[i].last_seq)
                {
                    *opened += self.end_incarnation(old);
                    self.incs.remove(old);
                }
                self.incs.push(Inc {
                    pid: ev.pid,
                    ..Inc::default()
                });
                self.incs.len() - 1
            }
        }
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
/// Requests kept open per incarnation: past it, its oldest is dropped.
const MAX_OPEN: usize = 10_000;
/// Requests kept open in all: past it, the oldest of the incarnation that opened one more is
/// dropped (a flood of requests never ended costs this much, whatever the number of names).
const MAX_OPEN_ALL: usize = 100_000;
/// Worker keys kept: past it, the least recently seen (those with nothing open first) are
/// forgotten, [`EVICT_BATCH`] at a time, their counts kept in the totals.
pub const MAX_WORKERS: usize = 512;
const EVICT_BATCH: usize = MAX_WORKERS / 8;

/// The fold. Feed events in log order with [`Analyzer::add`], then [`Analyzer::finish`].
#[derive(Debug, Clone)]
pub struct Analyzer {
    /// Per worker key, with a name index and a last-used shortcut.
    workers: Vec<(Arc<str>, Acc)>,
    index: std::collections::HashMap<Arc<str>, usize>,
    /// Interned name address → worker index.
    by_ptr: Vec<(usize, usize)>,
    bands: Vec<Band>,
    anomalies: Vec<Anomaly>,
    anomalies_dropped: u64,
    unmatched_ends: u64,
    dropped_open: u64,
    /// Requests open in all incarnations of all keys.
    open_total: usize,
    /// Worker keys forgotten to keep at most `max_workers`, and what they had counted.
    evicted: u64,
    evicted_stats: Stats,
    evicted_tps: Histogram,
    evicted_latency: Histogram,
    max_workers: usize,
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
            open_total: 0,
            evicted: 0,
            evicted_stats: Stats::default(),
            evicted_tps: Histogram::default(),
            evicted_latency: Histogram::default(),
            max_workers: MAX_WORKERS,
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
        let interned = ev.worker.as_ref().and_then(Name::interned);
        if let Some(w) = interned
            && let Some(&(_, i)) = self.by_ptr.iter().find(|(p, _)| *p == w.as_ptr() as usize)
        {
            return i;
        }
        let pid_key;
        let name: &str = match (&ev.worker, ev.pid) {
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
                        .position(|(_, a)| a.incs.iter().any(|i| i.open.has_id(id))),
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
                if self.workers.len() >= self.max_workers {
                    self.evict();
                }
                let key: Arc<str> = Arc::from(name);
                self.workers.push((key.clone(), Acc::default()));
                self.index.insert(key, self.workers.len() - 1);
                self.workers.len() - 1
            }
        };
        if let Some(w) = interned
            && self.by_ptr.len() < 64
        {
            self.by_ptr.push((w.as_ptr() as usize, i));
        }
        i
    }

    /// Forget the least recently seen worker keys (those with nothing open before those with
    /// requests open), [`EVICT_BATCH`] of them: their counts stay in the totals, their open
    /// requests are dropped (counted), and the keys seen last are always kept.
    #[cold]
    fn evict(&mut self) {
        let n = EVICT_BATCH.clamp(1, self.workers.len());
        let mut order: Vec<(bool, u64, usize)> = (self.workers.iter().enumerate())
            .map(|(i, (_, a))| (a.incs.iter().any(|i| i.open.len() > 0), a.last_seen, i))
            .collect();
        order.sort_unstable();
        let mut gone = vec![false; self.workers.len()];
        for &(_, _, i) in &order[..n] {
            gone[i] = true;
        }
        let mut kept = Vec::with_capacity(self.workers.len());
        for (i, (name, acc)) in std::mem::take(&mut self.workers).into_iter().enumerate() {
            if !gone[i] {
                kept.push((name, acc));
                continue;
            }
            let open: usize = acc.incs.iter().map(|i| i.open.len()).sum();
            self.open_total -= open;
            self.dropped_open += open as u64;
            self.evicted += 1;
            add_totals(&mut self.evicted_stats, &acc.stats);
            self.evicted_tps.merge(&acc.tps);
            self.evicted_latency.merge(&acc.latency);
        }
        self.workers = kept;
        self.index = (self.workers.iter().enumerate())
            .map(|(i, (name, _))| (name.clone(), i))
            .collect();
        self.by_ptr.clear();
    }

    pub fn add(&mut self, ev: &Event) {
        self.events += 1;
        let seq = self.events;
        let slot = self.slot(ev);
        let acc = &mut self.workers[slot].1;
        acc.last_seen = seq;
        let s = &mut acc.stats;
        s.first = Some(s.first.map_or(ev.time, |f| f.min(ev.time)));
        s.last = Some(s.last.map_or(ev.time, |l| l.max(ev.time)));
        if matches!(ev.kind, EventKind::Spawned | EventKind::Exited) && ev.pid.is_none() {
            // The worker's process ended or was replaced, and the line does not say which:
            // every incarnation's requests are history (never taken for work in flight).
            for i in 0..acc.incs.len() {
                self.open_total -= acc.end_incarnation(i);
            }
            return;
        }
        let mut closed = 0;
        let i = acc.inc_for(ev, &mut closed);
        self.open_total -= closed;
        acc.cur = i;
        let inc = &mut acc.incs[i];
        if inc.first_seq == 0 {
            inc.first_seq = seq;
        }
        inc.last_seq = seq;
        match ev.kind {
            EventKind::Spawned | EventKind::Exited => {
                // This pid's process starts or ended: what it (or a line without a pid) left
                // open is history. Another pid's incarnation is not ended by it: whether that
                // process is gone is for `check` to ask the OS.
                self.open_total -= acc.end_incarnation(i);
                if let Some(l) = acc.pidless() {
                    self.open_total -= acc.end_incarnation(l);
                }
            }
            EventKind::Unended => {
                if let Some(r) = inc.open.newest().and_then(|n| inc.open.get_mut(n)) {
                    r.end_logged = false;
                }
            }
            EventKind::Start => self.push_open(slot, i, InFlight::from(ev, seq)),
            EventKind::Progress if ev.prompt_tokens.is_none() => {
                // A generated segment (no counts): progress of the newest open request.
                if let Some(n) = inc.open.newest() {
                    inc.progressed(n, ev.time);
                }
            }
            EventKind::Progress => self.on_prefill(slot, i, ev, seq),
            EventKind::End => self.on_end(slot, i, ev, seq),
            EventKind::Failed => self.on_failed(slot, i, ev, seq),
            EventKind::Timeout => self.on_timeout(slot, i, ev),
            EventKind::Died => {
                let message = bounded_text(
                    ev.message.as_deref().unwrap_or_default().as_bytes(),
                    MESSAGE_CAP,
                )
                .into_owned();
                inc.died = Some(Death {
                    at: ev.time,
                    source: ev.source,
                    line: ev.line,
                    message: message.clone(),
                });
                let worker = self.workers[slot].0.to_string();
                self.anomaly(Anomaly {
                    time: ev.time,
                    kind: "died",
                    worker,
                    line: ev.line,
                    source: ev.source,
                    id: None,
                    timeout_secs: None,
                    message: Some(message),
                    request_started: None,
                });
            }
        }
    }

    /// Open a request on an incarnation, dropping its oldest open one past [`MAX_OPEN`], or
    /// past [`MAX_OPEN_ALL`] in all.
    fn push_open(&mut self, slot: usize, inc: usize, r: InFlight) {
        let acc = &mut self.workers[slot].1;
        acc.stats.started += 1;
        let open = &mut acc.incs[inc].open;
        open.push(r);
        self.open_total += 1;
        if (open.len() > MAX_OPEN || self.open_total > MAX_OPEN_ALL)
            && let Some(oldest) = open.oldest()
            && open.remove(oldest).is_some()
        {
            self.open_total -= 1;
            self.dropped_open += 1;
        }
    }

    /// Prefill progress `done/total`: the newest request's prefill goes on, or a new one begins.
    fn on_prefill(&mut self, slot: usize, i: usize, ev: &Event, seq: u64) {
        let inc = &mut self.workers[slot].1.incs[i];
        let done = u64::from(ev.tokens.unwrap_or(0));
        let total = u64::from(ev.prompt_tokens.unwrap_or(0));
        let newest = inc.open.newest();
        // The newest request's prefill goes on, or begins (its start line has no count).
        let continues = newest
            .and_then(|n| inc.open.get_mut(n))
            .filter(|r| r.progress.is_none_or(|[d, t]| t == total && done >= d));
        match continues {
            Some(r) => {
                r.progress = Some([done, total]);
                let seq = r.seq;
                inc.progressed(seq, ev.time);
            }
            None => {
                let mut r = InFlight::from(ev, seq);
                r.progress = Some([done, total]);
                self.push_open(slot, i, r);
                self.workers[slot].1.incs[i].progressed(seq, ev.time);
            }
        }
    }

    /// A request ended: it leaves the open set, and its figures go into the counters, the
    /// histograms, the last successes and its prompt-size band.
    fn on_end(&mut self, slot: usize, i: usize, ev: &Event, seq: u64) {
        let synthesize = self.synthesize_starts;
        let acc = &mut self.workers[slot].1;
        let inc = &mut acc.incs[i];
        self.ends_logged = true;
        let req = inc.open.take_for_end(&ev.id);
        match &req {
            Some(r) => {
                self.open_total -= 1;
                inc.ended(r.seq, ev.time);
            }
            None if synthesize => {
                // A format without start lines: the end is the request's only trace.
                acc.stats.started += 1;
                inc.ended(seq, ev.time);
            }
            None => self.unmatched_ends += 1,
        }
        inc.completed += 1;
        inc.last_completion = inc.last_completion.max(Some(ev.time));
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
    fn on_failed(&mut self, slot: usize, i: usize, ev: &Event, seq: u64) {
        let synthesize = self.synthesize_starts;
        let acc = &mut self.workers[slot].1;
        let inc = &mut acc.incs[i];
        let req = inc.open.take_for_end(&ev.id);
        acc.stats.failed += 1;
        inc.failed += 1;
        match &req {
            Some(r) => {
                self.open_total -= 1;
                inc.ended(r.seq, ev.time);
            }
            None if synthesize => {
                acc.stats.started += 1;
                inc.ended(seq, ev.time);
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
                .map(|m| bounded_text(m.as_bytes(), MESSAGE_CAP).into_owned())
                .or_else(|| ev.status.map(|s| format!("HTTP {s}"))),
            request_started: req.map(|r| r.started),
        });
    }

    /// The orchestrator gave up waiting: the request stays open, timed out, and is an anomaly.
    fn on_timeout(&mut self, slot: usize, i: usize, ev: &Event) {
        let acc = &mut self.workers[slot].1;
        let inc = &mut acc.incs[i];
        acc.stats.timeout_lines += 1;
        inc.timeout_lines += 1;
        let mut started = None;
        if let Some(r) = inc.open.for_timeout(&ev.id) {
            started = inc.open.started_of(r);
            if inc.open.time_out(r, ev.time) {
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
        // Forgotten keys still count in the totals.
        add_totals(&mut g.totals, &self.evicted_stats);
        g.all_tps.merge(&self.evicted_tps);
        g.all_latency.merge(&self.evicted_latency);
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
            workers_evicted: self.evicted,
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
    ///
    /// The log alone cannot tell whether a process is gone: here a pid's incarnation is over
    /// when another pid under the name first logged after this one's last line (a restart);
    /// what it left open is the previous incarnation's. `check` asks the OS instead (see
    /// [`Analysis::for_worker`]).
    fn finish_worker(
        &self,
        g: &mut Gathered,
        name: String,
        acc: &Acc,
        end_of_log: Option<DateTime<Utc>>,
    ) {
        let mut s = acc.stats.clone();
        let incs: Vec<IncState> = (acc.incs.iter())
            .map(|i| IncState {
                pid: i.pid,
                open: i.open.ordered(),
                progressed: i.progressed,
                concurrent: i.concurrent,
                last_progress: i.last_progress,
                last_completion: i.last_completion,
                completed: i.completed,
                failed: i.failed,
                timeout_lines: i.timeout_lines,
                died: i.died.clone(),
                replaced: i.pid.is_some()
                    && (acc.incs.iter())
                        .any(|o| o.pid.is_some() && o.pid != i.pid && o.first_seq > i.last_seq),
            })
            .collect();
        // A line with a pid supersedes that pid's requests and those logged without one.
        let any_progress = incs.iter().filter_map(|i| i.progressed).max();
        let mut current = Vec::new();
        let mut earlier: Vec<InFlight> = acc.earlier.iter().cloned().collect();
        s.abandoned = 0;
        for inc in &incs {
            if inc.replaced {
                s.earlier_incarnation += inc.open.len() as u64;
                earlier.extend(inc.open.iter().cloned());
                continue;
            }
            let p = if inc.pid.is_none() {
                any_progress
            } else {
                inc.progressed
            };
            let split = split(&inc.open, p, self.ends_logged);
            current.extend(split.current);
            g.unended.extend(split.unended);
            if inc.concurrent {
                g.stuck.extend(split.superseded);
            } else {
                s.abandoned += split.superseded.len() as u64;
                g.abandoned.extend(split.superseded);
            }
        }
        current.sort_by_key(|r| r.seq);
        finish_stats(&mut s, &acc.tps, &acc.latency);
        add_totals(&mut g.totals, &s);
        g.all_tps.merge(&acc.tps);
        g.all_latency.merge(&acc.latency);
        if let Some(trigger) = self.hang_trigger(&name, &current, acc, end_of_log) {
            g.hang_triggers.push(trigger);
        }
        g.in_flight.extend(current);
        g.earlier.extend(earlier);
        g.last_successes.insert(
            name.clone(),
            acc.last_successes.iter().cloned().collect::<Vec<_>>(),
        );
        g.keys.insert(
            name.clone(),
            KeyState {
                incs,
                earlier: acc.earlier.iter().cloned().collect(),
                stats: s.clone(),
            },
        );
        g.workers.insert(name, s);
    }

    /// The worker's hang trigger, if it has one.
    fn hang_trigger(
        &self,
        name: &str,
        current: &[InFlight],
        acc: &Acc,
        end_of_log: Option<DateTime<Utc>>,
    ) -> Option<HangTrigger> {
        // The trigger: the oldest request nothing later superseded, with timeouts logged
        // for it or unfinished for --hung-after before the log ended.
        let oldest = current.first().filter(|_| self.ends_logged)?;
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
            queued: current.iter().skip(1).cloned().collect(),
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

/// One incarnation (pid) of a worker key at the end of the log.
#[derive(Debug, Clone, Default)]
struct IncState {
    pid: Option<u32>,
    /// Every request still open, oldest first.
    open: Vec<InFlight>,
    progressed: Option<u64>,
    concurrent: bool,
    last_progress: Option<DateTime<Utc>>,
    last_completion: Option<DateTime<Utc>>,
    completed: u64,
    failed: u64,
    timeout_lines: u64,
    /// Another pid under the key first logged after this one's last line: in the log alone,
    /// a restart replaced it.
    replaced: bool,
    died: Option<Death>,
}

/// One worker key at the end of the log.
#[derive(Debug, Clone, Default)]
struct KeyState {
    /// Per pid (and one for lines without a pid).
    incs: Vec<IncState>,
    /// Requests incarnations that ended (a spawn or exit line) left open, each with its pid.
    earlier: Vec<InFlight>,
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

/// Split open requests by the youngest start that ended or progressed (`progressed`). Where
/// the log shows no ends, superseded requests simply ended unlogged and are dropped; the rest
/// are context only (see [`Analysis::proves_in_flight`]).
fn split(open: &[InFlight], progressed: Option<u64>, ends_logged: bool) -> Split {
    let (mut superseded, current): (Vec<InFlight>, Vec<InFlight>) = open
        .iter()
        .cloned()
        .partition(|r| progressed.is_some_and(|p| p > r.seq));
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
    /// Worker keys forgotten to keep the fold's state bounded (more than [`MAX_WORKERS`]
    /// names): the least recently seen, their counts kept in the totals.
    pub workers_evicted: u64,
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
    /// See [`Analysis::workers_evicted`]: when not 0, this worker's lines may have been forgotten.
    #[serde(skip_serializing_if = "is_zero")]
    pub workers_evicted: u64,
    /// This process's generation thread died (logged while it ran, no progress after).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_died: Option<Death>,
}

/// A server's generation thread's death, as its log tells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Death {
    pub at: DateTime<Utc>,
    /// Index of the log source and line number (1-based) of the line that says it.
    pub source: usize,
    pub line: u64,
    /// The line's message (the exception, or the thread's name).
    pub message: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    ///
    /// Lines under the worker's name that carry another pid are another process's: when
    /// `alive` says that process still runs (a rolling restart's overlap), they are not this
    /// worker's at all, and its ends and progress supersede none of this worker's requests;
    /// when it is gone, what it left open is `earlier` (the previous incarnation's). `alive`
    /// is asked only about those other pids.
    pub fn for_worker(
        &self,
        name: Option<&str>,
        pid: u32,
        only_worker: bool,
        alive_since: Option<DateTime<Utc>>,
        alive: &dyn Fn(u32) -> bool,
    ) -> WorkerLog {
        self.for_process(name, true, pid, only_worker, alive_since, alive)
    }

    /// [`Analysis::for_worker`], where `name_lines` says whether the name's lines that carry no
    /// pid are this process's: `check` gives them to one process of that name only (the
    /// registry's, or the one the process tree and owners make the worker; see
    /// `diagnose::check`). Lines that name the worker and this pid are this process's always.
    pub fn for_process(
        &self,
        name: Option<&str>,
        name_lines: bool,
        pid: u32,
        only_worker: bool,
        alive_since: Option<DateTime<Utc>>,
        alive: &dyn Fn(u32) -> bool,
    ) -> WorkerLog {
        let mut keys = vec![format!("pid:{pid}")];
        if let Some(n) = name {
            // Names are kept bounded: a long one is found by its bounded form.
            keys.push(bounded_text(n.as_bytes(), ID_CAP).into_owned());
        }
        if only_worker {
            keys.push(String::new());
        }
        let states: Vec<&KeyState> = keys.iter().filter_map(|k| self.keys.get(k)).collect();
        let incs = || states.iter().flat_map(|s| &s.incs);
        // Each other pid's liveness, asked once.
        let mut live: Vec<(u32, bool)> = Vec::new();
        let others = (incs().filter_map(|i| i.pid))
            .chain(states.iter().flat_map(|s| &s.earlier).filter_map(|r| r.pid));
        for p in others {
            if p != pid && !live.iter().any(|&(q, _)| q == p) {
                live.push((p, alive(p)));
            }
        }
        let other_live = |p: Option<u32>| match p {
            Some(p) => p != pid && live.contains(&(p, true)),
            None => !name_lines,
        };
        // Lines without a pid are this worker's progress only when no other live process
        // logs under its keys (else they may be the other's).
        let shared = incs().any(|i| i.pid.is_some() && other_live(i.pid));
        let own = |i: &IncState| i.pid == Some(pid) || (i.pid.is_none() && !shared);
        let own_progress = incs().filter(|i| own(i)).filter_map(|i| i.progressed).max();
        // Any pid's progress supersedes the requests logged without a pid.
        let any_progress = incs().filter_map(|i| i.progressed).max();
        let mut out = WorkerLog {
            proves_in_flight: self.proves_in_flight,
            workers_evicted: self.workers_evicted,
            ..WorkerLog::default()
        };
        let before = |r: &InFlight| {
            alive_since.is_some_and(|t| {
                r.started < t - chrono::Duration::from_std(slack_for(r.started)).unwrap_or_default()
            })
        };
        for st in &states {
            out.completed += st.stats.completed;
            out.failed += st.stats.failed;
            out.timeouts += st.stats.timeout_lines;
            // Ended incarnations' requests: the previous process's, unless another live one's.
            out.earlier
                .extend(st.earlier.iter().filter(|r| !other_live(r.pid)).cloned());
        }
        for inc in incs() {
            if other_live(inc.pid) {
                // Another live worker's share: none of it is this one's.
                out.completed = out.completed.saturating_sub(inc.completed);
                out.failed = out.failed.saturating_sub(inc.failed);
                out.timeouts = out.timeouts.saturating_sub(inc.timeout_lines);
                continue;
            }
            out.last_completion = out.last_completion.max(inc.last_completion);
            if inc.pid.is_some_and(|p| p != pid) {
                // A process that is gone: what it left open was the previous incarnation's.
                out.earlier.extend(inc.open.iter().cloned());
                continue;
            }
            if own(inc) {
                out.last_progress = out.last_progress.max(inc.last_progress);
                out.concurrent |= inc.concurrent;
                // A death logged while this process ran (not before it started) is its own.
                let while_alive = |d: &&Death| {
                    alive_since.is_none_or(|t| {
                        d.at >= t - chrono::Duration::from_std(slack_for(d.at)).unwrap_or_default()
                    })
                };
                if let Some(d) = inc.died.as_ref().filter(while_alive)
                    && out.generation_died.as_ref().is_none_or(|o| o.at < d.at)
                {
                    out.generation_died = Some(d.clone());
                }
            }
            let p = if inc.pid.is_none() {
                any_progress
            } else {
                own_progress
            };
            let split = split(&inc.open, p, self.proves_in_flight);
            for r in split.current {
                if before(&r) {
                    out.earlier.push(r);
                } else {
                    out.in_flight.push(r);
                }
            }
            out.unended
                .extend(split.unended.into_iter().filter(|r| !before(r)));
            for r in split.superseded {
                if before(&r) {
                    out.earlier.push(r);
                } else if inc.concurrent {
                    out.stuck.push(r);
                } else {
                    out.abandoned.push(r);
                }
            }
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
        let w1 = a.for_worker(Some("w1"), 1, false, None, &|_| false);
        assert!(w1.in_flight.is_empty());
        assert_eq!(w1.abandoned[0].id.as_deref(), Some("a"));
        let w2 = a.for_worker(Some("w2"), 2, false, None, &|_| false);
        assert_eq!(
            w2.in_flight.len(),
            1,
            "a timeout does not finish the worker's request"
        );
        assert_eq!(w2.in_flight[0].timeouts.len(), 1);
        assert_eq!(a.workers["w2"].timed_out, 1);
        assert!(
            a.for_worker(Some("w3"), 3, false, None, &|_| false)
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
        assert_eq!(
            a.for_worker(Some("x"), 10, false, None, &|_| false)
                .in_flight
                .len(),
            1
        );
        assert_eq!(
            a.for_worker(Some("x"), 10, true, None, &|_| false)
                .in_flight
                .len(),
            2
        );
        assert_eq!(
            a.for_worker(None, 11, false, None, &|_| false)
                .in_flight
                .len(),
            0
        );
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
        let w = a.for_worker(None, 7, true, None, &|_| false);
        assert!(!w.proves_in_flight);
    }

    #[test]
    fn a_generation_thread_death_is_the_process_alive_then_unless_progress_follows() {
        let lines = [
            "127.0.0.1 - - [08/Dec/2026 00:57:07] \"POST /v1/completions HTTP/1.1\" 200 -",
            "2026-12-08 00:57:07,889 - INFO - Prompt processing progress: 1240/3001",
            "Exception in thread Thread-1 (_generate):",
            "TypeError: 'NoneType' object is not iterable",
        ];
        let t = |s| crate::logs::event::parse_timestamp(s).unwrap();
        let a = fold_mlx(&lines);
        let w = a.for_worker(None, 7, true, Some(t("2026-12-08 00:50:00")), &|_| false);
        let d = w.generation_died.expect("died");
        assert_eq!(d.at, t("2026-12-08 00:57:07,889"));
        // A process started after it: the previous one's death, not this one's.
        let w = a.for_worker(None, 7, true, Some(t("2026-12-08 01:10:00")), &|_| false);
        assert!(w.generation_died.is_none());
        // Progress logged after the death: generation runs again.
        let mut more = lines.to_vec();
        more.push("2026-12-08 00:58:00,000 - INFO - Prompt processing progress: 4/10");
        let w = fold_mlx(&more).for_worker(None, 7, true, None, &|_| false);
        assert!(w.generation_died.is_none());
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
        let w = a.for_worker(None, 7, true, None, &|_| false);
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
        let w = a.for_worker(Some("w1"), 1, false, None, &|_| false);
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
        let w = a.for_worker(Some("w1"), 1, false, None, &|_| false);
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
        let w = a.for_worker(Some("w1"), 1, false, Some(t(23, 13, 26)), &|_| false);
        assert_eq!(w.in_flight.len(), 1, "within the clock slack");
        // ...and 1.5 s after it is not.
        let later = t(23, 13, 26) + chrono::Duration::milliseconds(500);
        let w = a.for_worker(Some("w1"), 1, false, Some(later), &|_| false);
        assert_eq!(w.earlier.len(), 1, "beyond a second stamp's slack");
        // A millisecond stamp is precise: 0.4 s before the process started is the previous one's.
        let a2 = fold(&["2026-01-05 23:13:25,100 Chat completion request: worker=w1 id=req-9"]);
        let start = t(23, 13, 25) + chrono::Duration::milliseconds(500);
        assert_eq!(
            a2.for_worker(Some("w1"), 1, false, Some(start), &|_| false)
                .earlier
                .len(),
            1
        );
        let start = t(23, 13, 25) + chrono::Duration::milliseconds(300);
        assert_eq!(
            a2.for_worker(Some("w1"), 1, false, Some(start), &|_| false)
                .in_flight
                .len(),
            1
        );
        // Respawned later under the same name: not this process's request.
        let w = a.for_worker(Some("w1"), 2, false, Some(t(23, 40, 0)), &|_| false);
        assert!(w.in_flight.is_empty());
        assert_eq!(w.earlier.len(), 1);
        // The same for unattributed lines on a one-worker machine.
        let a = fold(&["2026-01-05 23:13:25 Chat completion request: id=req-319"]);
        let w = a.for_worker(Some("w1"), 2, true, Some(t(23, 40, 0)), &|_| false);
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

    /// A rolling restart's overlap: a request on pid 10, then a request and its end on pid 11,
    /// both under worker `w`.
    const ROLLING: [&str; 3] = [
        "2026-01-05 23:00:00 Chat completion request: worker=w pid=10 id=a",
        "2026-01-05 23:00:05 Chat completion request: worker=w pid=11 id=b",
        "2026-01-05 23:00:09 Chat completion: 5 tokens in 4s (1.2 tok/s) worker=w pid=11 id=b",
    ];

    #[test]
    fn two_live_processes_under_one_name_are_two_workers() {
        let a = fold(&ROLLING);
        // Both alive: pid 11's end supersedes none of pid 10's requests.
        let old = a.for_worker(Some("w"), 10, false, None, &|p| p == 11);
        assert_eq!(old.in_flight.len(), 1, "{old:#?}");
        assert_eq!(old.in_flight[0].id.as_deref(), Some("a"));
        assert!(old.earlier.is_empty() && old.abandoned.is_empty() && old.stuck.is_empty());
        // Nor are pid 11's figures pid 10's: no completion, no progress of its own.
        assert_eq!(
            (old.completed, old.last_progress, old.last_completion),
            (0, None, None)
        );
        // And pid 10's request is not pid 11's in any list.
        let new = a.for_worker(Some("w"), 11, false, None, &|p| p == 10);
        assert_eq!(new.requests().count(), 0, "{new:#?}");
        assert_eq!(new.completed, 1);
        assert!(new.last_progress.is_some());
        // A spawn line for the new pid does not end the old one either.
        let spawned = fold(&[
            ROLLING[0],
            "2026-01-05 23:00:04 Worker spawned worker=w pid=11",
            ROLLING[1],
            ROLLING[2],
        ]);
        let old = spawned.for_worker(Some("w"), 10, false, None, &|p| p == 11);
        assert_eq!(old.in_flight.len(), 1, "{old:#?}");
        // A spawn or exit line without a pid still ends every incarnation: toward earlier.
        let exited = fold(&[
            ROLLING[0],
            ROLLING[1],
            "2026-01-05 23:00:06 Worker exited worker=w status=-9",
        ]);
        let old = exited.for_worker(Some("w"), 10, false, None, &|p| p == 11);
        assert!(old.in_flight.is_empty());
        assert_eq!(old.earlier.len(), 1);
    }

    #[test]
    fn a_new_pid_ends_the_old_incarnation_only_when_the_old_process_is_gone() {
        let a = fold(&ROLLING);
        // Pid 10 is gone: its request is the previous incarnation's, never in flight.
        let new = a.for_worker(Some("w"), 11, false, None, &|_| false);
        assert!(new.in_flight.is_empty());
        assert_eq!(new.earlier.len(), 1);
        assert_eq!(new.earlier[0].id.as_deref(), Some("a"));
        assert!(new.abandoned.is_empty(), "not superseded by pid 11's end");
        // The log alone: pid 10 logged nothing after pid 11 began, so `logs` takes it as
        // replaced (as before)...
        assert_eq!(a.earlier_incarnation.len(), 1);
        assert!(a.in_flight.is_empty() && a.abandoned.is_empty());
        // ...but a pid that goes on logging after the other began is alive in the log too:
        // its timed-out request is work in flight and a hang trigger.
        let both = fold(&[
            ROLLING[0],
            ROLLING[1],
            ROLLING[2],
            "2026-01-05 23:10:00 Worker timeout after 600s worker=w pid=10 id=a",
        ]);
        assert_eq!(both.in_flight.len(), 1, "{:#?}", both.in_flight);
        assert_eq!(both.hang_triggers.len(), 1);
        assert_eq!(both.hang_triggers[0].request.id.as_deref(), Some("a"));
        assert!(both.earlier_incarnation.is_empty());
    }

    #[test]
    fn a_worker_past_300_names_keeps_its_own_requests() {
        let mut lines: Vec<String> = (1..=300)
            .flat_map(|i| {
                [
                    format!("2026-01-05 23:00:00 Chat completion request: worker=w{i} id=r{i}"),
                    format!("2026-01-05 23:00:01 Chat completion: 1 tokens in 1s (1.0 tok/s) worker=w{i} id=r{i}"),
                ]
            })
            .collect();
        lines.push("2026-01-05 23:01:00 Chat completion request: worker=w301 id=stuck".into());
        lines.push("2026-01-05 23:20:00 Worker timeout after 600s worker=w301 id=stuck".into());
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let a = fold(&refs);
        assert_eq!(a.workers.len(), 301);
        assert!(!a.workers.contains_key("(other)"));
        let w = a.for_worker(Some("w301"), 301, false, None, &|_| false);
        assert_eq!(w.in_flight.len(), 1);
        assert_eq!(w.in_flight[0].id.as_deref(), Some("stuck"));
        assert_eq!(w.in_flight[0].worker.as_deref(), Some("w301"));
        assert_eq!(a.hang_triggers.len(), 1);
        assert_eq!(a.hang_triggers[0].worker, "w301");
        // Another worker past the interned names has none of it.
        assert!(
            a.for_worker(Some("w300"), 300, false, None, &|_| false)
                .in_flight
                .is_empty()
        );
    }

    #[test]
    fn worker_keys_stay_bounded_and_the_latest_and_the_busy_are_kept() {
        let mut a = Analyzer::new(&[], Duration::from_secs(300), false);
        let mut ctx = ParseCtx::default();
        let mut add = |l: &str| {
            if let Parsed::Event(e) = Format::Mls.parse(l.as_bytes(), &mut ctx) {
                a.add(&e);
            }
        };
        // The first worker takes a request and falls silent: the least recently seen of all.
        add("2026-01-05 10:00:00 Chat completion request: worker=hung id=h");
        let n = MAX_WORKERS + 3 * EVICT_BATCH - 1;
        for i in 0..n {
            add(&format!(
                "2026-01-05 10:00:01 Chat completion request: worker=w{i} id=r"
            ));
            add(&format!(
                "2026-01-05 10:00:02 Chat completion: 1 tokens in 1s (1.0 tok/s) worker=w{i} id=r"
            ));
        }
        let a = a.finish();
        // 1 + n keys, at most MAX_WORKERS at a time: three batches forgotten, idle ones first.
        assert_eq!(a.workers_evicted, 3 * EVICT_BATCH as u64);
        assert_eq!(a.workers.len(), 1 + n - 3 * EVICT_BATCH);
        assert!(a.workers.contains_key(&format!("w{}", n - 1)));
        assert!(!a.workers.contains_key("w0"));
        let hung = a.for_worker(Some("hung"), 1, false, None, &|_| false);
        assert_eq!(hung.in_flight.len(), 1, "a key with a request open is kept");
        assert_eq!(hung.workers_evicted, 3 * EVICT_BATCH as u64);
        // Forgotten keys still count in the totals.
        assert_eq!(a.totals.completed, n as u64);
        assert_eq!(a.totals.started, n as u64 + 1);
    }

    /// A log generated as it is read: `n` requests whose ids are 1 MiB long and differ only
    /// in their last bytes, every other one ended, and one failure with a 1 MiB message.
    struct HugeIds {
        n: usize,
        next: usize,
        line: Vec<u8>,
        at: usize,
    }

    impl std::io::Read for HugeIds {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.at == self.line.len() {
                if self.next == self.n {
                    return Ok(0);
                }
                let i = self.next;
                self.next += 1;
                let id = |i: usize| [vec![b'x'; 1 << 20], format!("-{i}").into_bytes()].concat();
                self.line.clear();
                self.line.extend_from_slice(
                    b"2026-01-05 10:00:00 Chat completion request: worker=w id=",
                );
                self.line.extend_from_slice(&id(i));
                self.line.push(b'\n');
                if i % 2 == 1 {
                    // The previous request ends, by its whole id.
                    self.line.extend_from_slice(
                        b"2026-01-05 10:00:01 Chat completion: 1 tokens in 1s (1.0 tok/s) worker=w id=",
                    );
                    self.line.extend_from_slice(&id(i - 1));
                    self.line.push(b'\n');
                }
                if i == 0 {
                    self.line.extend_from_slice(
                        b"2026-01-05 10:00:00 - ERROR - Chat completion failed: ",
                    );
                    self.line.extend(std::iter::repeat_n(b'm', 1 << 20));
                    self.line.push(b'\n');
                }
                self.at = 0;
            }
            let k = out.len().min(self.line.len() - self.at);
            out[..k].copy_from_slice(&self.line[self.at..self.at + k]);
            self.at += k;
            Ok(k)
        }
    }

    #[test]
    fn megabyte_ids_are_kept_bounded_and_distinct() {
        // 2000 ids of 1 MiB: 2 GB whole; kept bounded, each under a hundred bytes.
        let n = 2000;
        let mut a = Analyzer::new(&[], Duration::from_secs(300), false);
        let reader = HugeIds {
            n,
            next: 0,
            line: Vec::new(),
            at: 0,
        };
        let stats = crate::logs::read::scan(Box::new(reader), &Format::Mls, false, 0, |e| a.add(e))
            .unwrap();
        assert_eq!(stats.bad_count, 0);
        let stored: usize = (a.workers.iter())
            .flat_map(|(_, acc)| &acc.incs)
            .flat_map(|i| i.open.ordered())
            .map(|r| r.id.as_ref().map_or(0, SmallStr::heap_bytes))
            .sum();
        let a = a.finish();
        // Every end found its request by the bounded id: the odd ones' starts stay open.
        assert_eq!((a.totals.completed, a.unmatched_ends), (n as u64 / 2, 0));
        let open: Vec<&InFlight> = a.open().collect();
        assert_eq!(open.len(), n / 2);
        let ids: std::collections::HashSet<&str> =
            open.iter().filter_map(|r| r.id.as_deref()).collect();
        assert_eq!(ids.len(), n / 2, "distinct ids stay distinct");
        let bound = ID_CAP + '…'.len_utf8() + 16;
        assert!(open.iter().all(|r| r.id.as_ref().unwrap().len() <= bound));
        assert!(stored <= n / 2 * bound, "{stored} bytes of ids kept");
        let shown = open[0].id.as_deref().unwrap();
        assert!(
            shown.starts_with(&"x".repeat(ID_CAP)) && shown.contains('…'),
            "{shown}"
        );
        // The last successes and the failure's message are bounded too.
        let last = &a.last_successes["w"];
        assert!(last.iter().all(|s| s.id.as_ref().unwrap().len() <= bound));
        assert_eq!(a.anomalies.len(), 1);
        let message = a.anomalies[0].message.as_deref().unwrap();
        assert!(message.len() <= MESSAGE_CAP + 19, "{}", message.len());
    }
}
