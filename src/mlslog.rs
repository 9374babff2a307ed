//! MLS server log lines: the one place their patterns live.
//!
//! The seed's step 6 greps three patterns by hand. `check` needs the same facts to prove a hang:
//! which request each worker started and never finished. Lines look like Python logging output,
//! timestamp first (`2026-01-05 23:13:25,512 - mls.api - INFO - Chat completion request: …`),
//! and may carry `key=value` fields (`worker=`, `pid=`, `id=`, `prompt_chars=` …) in any order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::BufRead;
use std::path::Path;
use std::sync::LazyLock;

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use regex::Regex;
use serde::Serialize;

use crate::error::InputError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// `Chat completion request: …`
    Start,
    /// `Chat completion: N tokens in X s (Y tok/s)`
    End,
    /// `Worker timeout after Ns`
    Timeout,
    /// `Chat completion failed: …`
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub line: usize,
    pub time: DateTime<Utc>,
    pub kind: EventKind,
    pub worker: Option<String>,
    pub pid: Option<u32>,
    pub id: Option<String>,
    pub prompt_chars: Option<u64>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub tokens: Option<u64>,
    pub seconds: Option<f64>,
    pub tokens_per_sec: Option<f64>,
    pub timeout_secs: Option<f64>,
}

static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\[?(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?",
    )
    .unwrap()
});
static END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Chat completion: (\d+) tokens in ([\d.]+) ?s(?:ec(?:onds)?)? \(([\d.]+) tok/s\)")
        .unwrap()
});
static TIMEOUT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Worker timeout after ([\d.]+) ?s").unwrap());
static FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"\b([A-Za-z_]+)=("[^"]*"|[^\s,;)]+)"#).unwrap());

const START_MARK: &str = "Chat completion request:";
const FAILED_MARK: &str = "Chat completion failed:";

/// Parse the leading timestamp. Zone-less times are local, as Python's logging writes them.
pub fn parse_timestamp(line: &str) -> Option<DateTime<Utc>> {
    let c = TIMESTAMP.captures(line)?;
    let frac = c.get(3).map_or("0", |m| m.as_str());
    let text = format!("{} {}.{}", &c[1], &c[2], frac);
    let naive = NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    match c.get(4).map(|m| m.as_str()) {
        None => Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
        Some("Z") => Some(Utc.from_utc_datetime(&naive)),
        Some(off) => {
            let off = off.replace(':', "");
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let h: i32 = off[1..3].parse().ok()?;
            let m: i32 = off[3..5].parse().ok()?;
            let tz = chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60))?;
            tz.from_local_datetime(&naive)
                .single()
                .map(|t| t.with_timezone(&Utc))
        }
    }
}

/// Parse one log line; `None` for lines that are not MLS request events.
pub fn parse_line(line_no: usize, line: &str) -> Option<Event> {
    let kind = if line.contains(START_MARK) {
        EventKind::Start
    } else if line.contains(FAILED_MARK) {
        EventKind::Failed
    } else if line.contains("Chat completion:") {
        EventKind::End
    } else if line.contains("Worker timeout after") {
        EventKind::Timeout
    } else {
        return None;
    };
    let time = parse_timestamp(line)?;
    let mut fields: HashMap<String, String> = HashMap::new();
    for c in FIELD.captures_iter(line) {
        fields.insert(
            c[1].to_ascii_lowercase(),
            c[2].trim_matches('"').to_string(),
        );
    }
    let num = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
    let float = |k: &str| {
        fields
            .get(k)
            .and_then(|v| v.trim_end_matches('s').parse::<f64>().ok())
    };
    let mut ev = Event {
        line: line_no,
        time,
        kind,
        worker: fields.get("worker").cloned(),
        pid: fields.get("pid").and_then(|v| v.parse().ok()),
        id: fields
            .get("id")
            .or_else(|| fields.get("request_id"))
            .cloned(),
        prompt_chars: num("prompt_chars").or_else(|| num("chars")),
        max_tokens: num("max_tokens"),
        temperature: float("temperature").or_else(|| float("temp")),
        tokens: None,
        seconds: None,
        tokens_per_sec: None,
        timeout_secs: None,
    };
    match kind {
        EventKind::End => {
            if let Some(c) = END.captures(line) {
                ev.tokens = c[1].parse().ok();
                ev.seconds = c[2].parse().ok();
                ev.tokens_per_sec = c[3].parse().ok();
            }
        }
        EventKind::Timeout => {
            ev.timeout_secs = TIMEOUT.captures(line).and_then(|c| c[1].parse().ok())
        }
        EventKind::Start | EventKind::Failed => {}
    }
    Some(ev)
}

/// A request a worker started and has not finished.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InFlight {
    pub started: DateTime<Utc>,
    pub line: usize,
    pub worker: Option<String>,
    pub pid: Option<u32>,
    pub id: Option<String>,
    pub prompt_chars: Option<u64>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    /// Times the orchestrator gave up waiting for this request (`Worker timeout after …`).
    pub timeouts: Vec<DateTime<Utc>>,
}

/// Per-worker facts from the log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerLog {
    pub completed: u64,
    pub failed: u64,
    pub timeouts: u64,
    pub last_completion: Option<DateTime<Utc>>,
    pub in_flight: Vec<InFlight>,
}

/// What the log says, keyed by worker (name, or `pid:N`, or `""` when lines carry neither).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogState {
    pub events: usize,
    pub workers: BTreeMap<String, WorkerLog>,
}

fn key(ev: &Event) -> String {
    match (&ev.worker, ev.pid) {
        (Some(w), _) => w.clone(),
        (None, Some(p)) => format!("pid:{p}"),
        (None, None) => String::new(),
    }
}

impl LogState {
    /// Fold events in log order. Completions and failures finish a request (by `id` when both
    /// lines carry one, else the worker's oldest); a timeout is the orchestrator giving up, so the
    /// request stays in flight on the worker and the timeout is kept as evidence.
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> LogState {
        let mut state = LogState::default();
        let mut open: BTreeMap<String, VecDeque<InFlight>> = BTreeMap::new();
        for ev in events {
            state.events += 1;
            let k = key(&ev);
            let w = state.workers.entry(k.clone()).or_default();
            let queue = open.entry(k).or_default();
            let pos = |q: &VecDeque<InFlight>| match &ev.id {
                Some(id) => q.iter().position(|r| r.id.as_deref() == Some(id)),
                None => (!q.is_empty()).then_some(0),
            };
            match ev.kind {
                EventKind::Start => queue.push_back(InFlight {
                    started: ev.time,
                    line: ev.line,
                    worker: ev.worker.clone(),
                    pid: ev.pid,
                    id: ev.id.clone(),
                    prompt_chars: ev.prompt_chars,
                    max_tokens: ev.max_tokens,
                    temperature: ev.temperature,
                    timeouts: vec![],
                }),
                EventKind::End | EventKind::Failed => {
                    if ev.kind == EventKind::End {
                        w.completed += 1;
                        w.last_completion = Some(ev.time);
                    } else {
                        w.failed += 1;
                    }
                    if let Some(i) = pos(queue) {
                        queue.remove(i);
                    }
                }
                EventKind::Timeout => {
                    w.timeouts += 1;
                    if let Some(i) = pos(queue) {
                        queue[i].timeouts.push(ev.time);
                    }
                }
            }
        }
        for (k, q) in open {
            state.workers.entry(k).or_default().in_flight = q.into_iter().collect();
        }
        state
    }

    /// Read and fold a whole log. Non-UTF-8 bytes are replaced, not fatal.
    pub fn read(path: &Path) -> Result<LogState, InputError> {
        let file = std::fs::File::open(path).map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
        let mut buf = Vec::new();
        let mut events = Vec::new();
        let mut line_no = 0;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|source| InputError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let line = String::from_utf8_lossy(&buf);
            if let Some(ev) = parse_line(line_no, &line) {
                events.push(ev);
            }
        }
        Ok(LogState::from_events(events))
    }

    /// The log entries that belong to a worker: lines naming it, lines naming its pid, and,
    /// when `only_worker` is true, lines that name nobody.
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
            let Some(w) = self.workers.get(&k) else {
                continue;
            };
            out.completed += w.completed;
            out.failed += w.failed;
            out.timeouts += w.timeouts;
            out.last_completion = out.last_completion.max(w.last_completion);
            // A line naming both worker and pid is keyed by name; pid-only lines must match pid.
            out.in_flight.extend(
                w.in_flight
                    .iter()
                    .filter(|r| r.pid.is_none_or(|p| p == pid))
                    .cloned(),
            );
        }
        out.in_flight.sort_by_key(|r| r.started);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_forms() {
        let a = parse_timestamp("2026-01-05 23:13:25,512 - mls - INFO - x").unwrap();
        let b = parse_timestamp("2026-01-05T23:13:25.512 x").unwrap();
        assert_eq!(a, b);
        let z = parse_timestamp("2026-01-05T23:13:25Z x").unwrap();
        let off = parse_timestamp("2026-01-06T00:13:25+01:00 x").unwrap();
        assert_eq!(z, off);
        assert!(parse_timestamp("Chat completion: no time").is_none());
    }

    #[test]
    fn the_four_line_kinds() {
        let s = parse_line(
            1,
            "2026-01-05 23:13:25,001 - mls.api - INFO - Chat completion request: worker=mlx-server-v3-1 pid=49387 \
             id=req-319 prompt_chars=8489 max_tokens=2000 temperature=0.3",
        )
        .unwrap();
        assert_eq!(s.kind, EventKind::Start);
        assert_eq!(s.worker.as_deref(), Some("mlx-server-v3-1"));
        assert_eq!(
            (s.pid, s.prompt_chars, s.max_tokens),
            (Some(49387), Some(8489), Some(2000))
        );
        assert_eq!(s.temperature, Some(0.3));
        let e = parse_line(2, "2026-01-05 23:12:40,000 - INFO - Chat completion: 412 tokens in 13.6s (30.2 tok/s) id=req-318").unwrap();
        assert_eq!(
            (e.kind, e.tokens, e.seconds, e.tokens_per_sec),
            (EventKind::End, Some(412), Some(13.6), Some(30.2))
        );
        let t = parse_line(3, "2026-01-05 23:23:25,000 - ERROR - Worker timeout after 600s (shared memory) id=req-319").unwrap();
        assert_eq!((t.kind, t.timeout_secs), (EventKind::Timeout, Some(600.0)));
        let f = parse_line(
            4,
            "2026-01-05 23:33:25,000 - ERROR - Chat completion failed: 500 worker timeout",
        )
        .unwrap();
        assert_eq!(f.kind, EventKind::Failed);
        assert!(parse_line(5, "2026-01-05 23:33:25,000 - INFO - Loaded model").is_none());
        // `chars=` is accepted for the prompt size, quoted values are unquoted.
        let q = parse_line(
            6,
            r#"2026-01-05 23:33:25 Chat completion request: chars=60211 worker="mlx server 2""#,
        )
        .unwrap();
        assert_eq!(
            (q.prompt_chars, q.worker.as_deref()),
            (Some(60211), Some("mlx server 2"))
        );
    }

    fn ev(line: &str) -> Event {
        parse_line(0, line).unwrap()
    }

    #[test]
    fn in_flight_by_id_and_fifo_and_timeouts_keep_requests_open() {
        let st = LogState::from_events([
            ev("2026-01-05 23:12:00 Chat completion request: worker=w1 id=a"),
            ev("2026-01-05 23:12:01 Chat completion request: worker=w1 id=b"),
            ev(
                "2026-01-05 23:12:10 Chat completion: 10 tokens in 1.0s (10.0 tok/s) worker=w1 id=b",
            ),
            ev("2026-01-05 23:13:25 Chat completion request: worker=w2"),
            ev("2026-01-05 23:23:25 Worker timeout after 600s worker=w2"),
            ev("2026-01-05 23:14:00 Chat completion request: worker=w3"),
            ev("2026-01-05 23:14:09 Chat completion: 5 tokens in 9s (0.6 tok/s) worker=w3"),
        ]);
        let w1 = &st.workers["w1"];
        assert_eq!(w1.in_flight.len(), 1);
        assert_eq!(w1.in_flight[0].id.as_deref(), Some("a"));
        let w2 = &st.workers["w2"];
        assert_eq!(
            w2.in_flight.len(),
            1,
            "a timeout does not finish the worker's request"
        );
        assert_eq!(w2.in_flight[0].timeouts.len(), 1);
        assert!(st.workers["w3"].in_flight.is_empty());
        assert_eq!(st.workers["w3"].completed, 1);
    }

    #[test]
    fn attribution_by_pid_and_unnamed_lines() {
        let st = LogState::from_events([
            ev("2026-01-05 23:12:00 Chat completion request: pid=10"),
            ev("2026-01-05 23:12:00 Chat completion request: prompt_chars=5"),
        ]);
        assert_eq!(st.for_worker(Some("x"), 10, false).in_flight.len(), 1);
        assert_eq!(st.for_worker(Some("x"), 10, true).in_flight.len(), 2);
        assert_eq!(st.for_worker(None, 11, false).in_flight.len(), 0);
    }

    #[test]
    fn read_tolerates_invalid_utf8_and_a_truncated_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mls.log");
        let mut bytes =
            b"2026-01-05 23:12:00 Chat completion request: worker=w id=1 \xff\xfe\n".to_vec();
        bytes.extend_from_slice(
            b"garbage \x00\x01\n2026-01-05 23:13:00 Chat completion request: worker=w id=2",
        );
        std::fs::write(&p, bytes).unwrap();
        let st = LogState::read(&p).unwrap();
        assert_eq!(st.workers["w"].in_flight.len(), 2);
        let err = LogState::read(&dir.path().join("missing.log"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.log"), "{err}");
    }
}
