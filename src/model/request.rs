//! Requests as a server log shows them: one in flight, one completed, and a worker's counters.
//!
//! `logs` builds them from log lines; `check` judges a worker by the ones in flight; snapshots
//! keep them. [`SmallStr`] keeps request ids inline, so a fold over millions of events does
//! not allocate one per event.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::fmt::{local_time as ts, sanitize};

/// A short string stored inline (request ids, worker names are short): no allocation per event.
///
/// A long one is bounded (see [`bounded_text`]): its first [`ID_CAP`] bytes, `…` and a hash of the
/// whole, so a request id of a megabyte costs under a hundred bytes, and distinct ids stay
/// distinct.
#[derive(Clone, PartialEq, Eq)]
pub enum SmallStr {
    Inline { len: u8, buf: [u8; 30] },
    Heap(Box<str>),
}

/// The most bytes of a request id or a worker name kept whole: a longer one is kept as its
/// first `ID_CAP` bytes, `…` and a hash of the whole (see [`bounded_text`]).
pub const ID_CAP: usize = 64;

/// The most bytes of a failure's message kept (a longer one is bounded, see [`bounded_text`]).
pub const MESSAGE_CAP: usize = 512;

/// Hex digits of the hash a bounded string ends with (64 bits).
const HASH_HEX: usize = 16;

/// `b` as text (invalid UTF-8 replaced, as everywhere else) of at most `cap` bytes of its own:
/// whole when it fits, else its first bytes up to `cap` (cut at a character boundary), `…` and
/// 16 hex digits of a hash of all of `b`. Equal inputs give equal outputs and distinct long
/// inputs distinct ones (up to a 64-bit hash collision, about 2⁻⁶⁴ a pair); a whole string is
/// at most `cap` bytes, a bounded one longer, so they never meet. The hash (std's SipHash,
/// fixed keys) is the same on every run of one build.
pub fn bounded_text(b: &[u8], cap: usize) -> std::borrow::Cow<'_, str> {
    let text = String::from_utf8_lossy(b);
    if text.len() <= cap {
        return text;
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 3 + HASH_HEX);
    out.push_str(&text[..end]);
    out.push('…');
    out.push_str(&format!("{:016x}", hash_bytes(b)));
    std::borrow::Cow::Owned(out)
}

/// A 64-bit hash of `b`, the same on every run of one build.
fn hash_bytes(b: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write(b);
    h.finish()
}

/// Whether `s` already has [`bounded_text`]'s shape for `cap` (a serialized bounded id read back):
/// a prefix of at most `cap` bytes, `…` and 16 hex digits. Bounding it again would change it.
fn is_bounded(s: &str, cap: usize) -> bool {
    let tail = HASH_HEX + '…'.len_utf8();
    s.len() > cap
        && s.len() <= cap + tail
        && s.is_char_boundary(s.len() - tail)
        && s[s.len() - tail..].starts_with('…')
        && s[s.len() - HASH_HEX..]
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

impl SmallStr {
    /// From log bytes; invalid UTF-8 is replaced, as everywhere else; longer than [`ID_CAP`]:
    /// bounded (see [`bounded_text`]).
    pub fn from_bytes(b: &[u8]) -> SmallStr {
        if b.len() <= 30 {
            let mut buf = [0u8; 30];
            buf[..b.len()].copy_from_slice(b);
            // The whole (zero-padded) buffer: a check of fixed length, unrolled.
            if buf.is_ascii() {
                return SmallStr::Inline {
                    len: b.len() as u8,
                    buf,
                };
            }
        }
        match std::str::from_utf8(b) {
            Ok(s) if s.len() <= 30 => {
                let mut buf = [0u8; 30];
                buf[..s.len()].copy_from_slice(s.as_bytes());
                SmallStr::Inline {
                    len: s.len() as u8,
                    buf,
                }
            }
            _ => SmallStr::Heap(bounded_text(b, ID_CAP).into()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            // The inline bytes were copied from a valid &str of exactly `len` bytes.
            SmallStr::Inline { len, buf } => {
                std::str::from_utf8(&buf[..*len as usize]).unwrap_or_default()
            }
            SmallStr::Heap(s) => s,
        }
    }
    /// Bytes kept for it, beyond its own size (at most [`ID_CAP`] plus the hash's 19).
    pub fn heap_bytes(&self) -> usize {
        match self {
            SmallStr::Inline { .. } => 0,
            SmallStr::Heap(s) => s.len(),
        }
    }
}

// Hashes what `Eq` compares: one string always has one representation (see `from_bytes`).
impl std::hash::Hash for SmallStr {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}

impl std::ops::Deref for SmallStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for SmallStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for SmallStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for SmallStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // A bounded id written out and read back stays the same id.
        if is_bounded(&s, ID_CAP) {
            return Ok(SmallStr::Heap(s.into()));
        }
        Ok(SmallStr::from_bytes(s.as_bytes()))
    }
}

impl Serialize for SmallStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
/// A request that started and has not finished (yet).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct InFlight {
    /// Position of its start among all events: orders requests across worker keys and files.
    #[serde(skip)]
    pub seq: u64,
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
    /// False when the log will record no end for it (an mlx_lm.server stream): then it is
    /// context, never proof of work in flight.
    pub end_logged: bool,
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
    /// Requests still open at the end that a later request superseded (never finished, and
    /// not evidence of a hang).
    pub abandoned: u64,
    /// Requests left open by an earlier incarnation of the worker (another pid, or before a
    /// `Worker spawned` / `Worker exited` line).
    pub earlier_incarnation: u64,
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

impl InFlight {
    /// `request req-319 (8489 chars, max_tokens 2000, temperature 0.3)`: the request as a
    /// verdict's evidence names it.
    pub fn describe(&self) -> String {
        self.describe_with(false)
    }

    /// The request as `logs` lists it: with prompt tokens and prefill progress where the log
    /// gives them, the id made safe for a terminal, and the time it started.
    pub fn describe_started(&self) -> String {
        format!("{} started {}", self.describe_with(true), ts(self.started))
    }

    fn describe_with(&self, all: bool) -> String {
        let mut parts = vec![self.id.as_ref().map_or_else(
            || {
                if all {
                    format!("request at line {}", self.line)
                } else {
                    format!("request logged at line {}", self.line)
                }
            },
            |id| {
                if all {
                    format!("request {}", sanitize(id))
                } else {
                    format!("request {id}")
                }
            },
        )];
        let mut detail = Vec::new();
        if let Some(c) = self.prompt_chars {
            detail.push(format!("{c} chars"));
        }
        if let Some(t) = self.prompt_tokens.filter(|_| all) {
            detail.push(format!("{t} prompt tokens"));
        }
        if let Some(m) = self.max_tokens {
            detail.push(format!("max_tokens {m}"));
        }
        if let Some(t) = self.temperature {
            detail.push(format!("temperature {t}"));
        }
        if let Some([d, t]) = self.progress.filter(|_| all) {
            detail.push(format!("prefill {d}/{t}"));
        }
        if !detail.is_empty() {
            parts.push(format!("({})", detail.join(", ")));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ids_are_bounded_distinct_and_read_back_the_same() {
        let short = SmallStr::from_bytes(&[b'a'; ID_CAP]);
        assert_eq!(short.len(), ID_CAP, "kept whole up to the cap");
        let long = |last: u8| SmallStr::from_bytes(&[&[b'a'; 1 << 20][..], &[last]].concat());
        let (a, b) = (long(b'1'), long(b'2'));
        assert_ne!(a, b, "ids that differ only past the first megabyte");
        assert_eq!(a, long(b'1'));
        assert!(a.heap_bytes() <= ID_CAP + 19 && a.starts_with(&*short) && a.contains('…'));
        // Written out (a snapshot) and read back: the same id, not bounded again.
        let back: SmallStr = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        // A cut never splits a character.
        let wide = SmallStr::from_bytes("é".repeat(100).as_bytes());
        assert!(wide.starts_with(&"é".repeat(ID_CAP / 2)), "{wide}");
    }
}
