//! Log formats: MLS, `mlx_lm.server`, and user formats from a TOML file. All patterns live here.
//!
//! Each format names the literal "needles" an event line must contain, so the scanner can skip
//! every other line with a SIMD substring search instead of looking at it, and a parser that
//! turns one candidate line into an [`Event`]. docs/log-formats.md documents the built-ins.

use std::path::Path;

use memchr::memmem;
use regex::bytes::Regex;
use serde::Deserialize;

use std::sync::LazyLock;

use super::event::{Clock, Event, EventKind, ParseCtx};
use crate::error::InputError;
use crate::model::SmallStr;

/// What one line turned out to be.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built once per candidate line and moved, never stored
pub enum Parsed {
    Event(Event),
    /// Not an event line.
    Skip,
    /// It looks like an event (a marker matched) but could not be read; the reason.
    Bad(&'static str),
}

#[derive(Debug)]
pub enum Format {
    /// MLS orchestrator lines: `Chat completion request:` / `Chat completion:` /
    /// `Chat completion failed:` / `Worker timeout after Ns` / `Worker spawned` /
    /// `Worker exited`, and `Prompt processing progress: a/b` (prefill progress, with the
    /// worker's `worker=`/`pid=` fields).
    Mls,
    /// `mlx_lm.server`: HTTP access lines (a request starts), `Prompt processing progress: a/b`
    /// and DEBUG token lines (progress), DEBUG `Outgoing Response:` (an end), `ERROR` lines.
    MlxLm,
    /// A user's format (`--format-file`).
    Custom(Box<Custom>),
}

// `Worker ` covers `Worker timeout after`, `Worker spawned` and `Worker exited` in one pass.
const MLS_NEEDLES: &[&[u8]] = &[b"Chat completion", b"Worker "];
// What an MLS log is scanned for: its own lines, and the prefill progress lines its workers
// forward (`Prompt processing progress: a/b worker=… id=…`).
const MLS_SCAN: &[&[u8]] = &[
    b"Chat completion",
    b"Worker ",
    b"Prompt processing progress: ",
];
const MLX_NEEDLES: &[&[u8]] = &[
    b"Prompt processing progress: ",
    b"\"POST /v1/",
    b" - ERROR - ",
    b" - DEBUG - ",
];

impl Format {
    pub fn name(&self) -> String {
        match self {
            Format::Mls => "mls".into(),
            Format::MlxLm => "mlx_lm.server".into(),
            Format::Custom(c) => format!("custom:{}", c.name),
        }
    }

    /// Whether the format logs the end of every request. Where it does not, a request still
    /// open in the log is context, not proof of work in flight, unless end lines turn up.
    pub fn logs_ends(&self) -> bool {
        match self {
            Format::Mls => true,
            Format::MlxLm => false,
            Format::Custom(c) => c.rules.iter().any(|(k, _)| *k == EventKind::End),
        }
    }

    /// Literal substrings; a line containing none of them is not an event. Empty: every line.
    pub fn needles(&self) -> Vec<Vec<u8>> {
        match self {
            Format::Mls => MLS_SCAN.iter().map(|n| n.to_vec()).collect(),
            Format::MlxLm => MLX_NEEDLES.iter().map(|n| n.to_vec()).collect(),
            Format::Custom(c) => c.prefilter.iter().map(|n| n.as_bytes().to_vec()).collect(),
        }
    }

    pub fn parse(&self, line: &[u8], ctx: &mut ParseCtx) -> Parsed {
        let mut one = Vec::with_capacity(1);
        match self.parse_into(line, ctx, &mut one) {
            Parsed::Event(_) => Parsed::Event(one.pop().unwrap_or_default()),
            other => other,
        }
    }

    /// The hot path: a parsed event is appended to `out` (built in place, never moved), and
    /// `Parsed::Event` carries only an empty placeholder.
    pub fn parse_into(&self, line: &[u8], ctx: &mut ParseCtx, out: &mut Vec<Event>) -> Parsed {
        let parsed = match self {
            Format::Mls => return parse_mls(line, ctx, out),
            Format::MlxLm => parse_mlx_lm(line, &mut ctx.clock),
            Format::Custom(c) => c.parse(line, ctx),
        };
        match parsed {
            Parsed::Event(e) => {
                out.push(e);
                Parsed::Event(Event::default())
            }
            other => other,
        }
    }

    /// Pick the built-in format that explains more of `sample` (the head of the first source).
    pub fn detect(sample: &[u8]) -> Format {
        let count = |needles: &[&[u8]]| -> usize {
            needles
                .iter()
                .map(|n| memmem::find_iter(sample, n).count())
                .sum()
        };
        if count(MLX_NEEDLES) > count(MLS_NEEDLES) {
            Format::MlxLm
        } else {
            Format::Mls
        }
    }
}

/// Searchers built once: building one per line costs more than the search.
static CHAT: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"Chat completion"));
static WORKER: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"Worker "));
static PROGRESS: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"Prompt processing progress: "));
static POST: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"POST /v1/"));
static DEBUG: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b" - DEBUG - "));
static ERROR: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b" - ERROR - "));

/// Every `key=value` field of a line, in one forward pass (values may be quoted).
pub fn fields(line: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let sep = |c: u8| matches!(c, b' ' | b'\t' | b',' | b';' | b'(' | b')' | b'\r' | b'\n');
    let mut i = 0;
    std::iter::from_fn(move || {
        loop {
            while i < line.len() && sep(line[i]) {
                i += 1;
            }
            if i >= line.len() {
                return None;
            }
            let start = i;
            while i < line.len() && (line[i].is_ascii_alphanumeric() || line[i] == b'_') {
                i += 1;
            }
            if i > start && line.get(i) == Some(&b'=') {
                let key = &line[start..i];
                i += 1;
                if line.get(i) == Some(&b'"')
                    && let Some(end) = memchr::memchr(b'"', &line[i + 1..])
                {
                    let value = &line[i + 1..i + 1 + end];
                    i += end + 2;
                    return Some((key, value));
                }
                let v = i;
                while i < line.len() && !sep(line[i]) {
                    i += 1;
                }
                return Some((key, &line[v..i]));
            }
            // Not a key=value token: skip it.
            while i < line.len() && !sep(line[i]) {
                i += 1;
            }
        }
    })
}

/// Numbers in log fields, parsed from bytes without a UTF-8 pass (a trailing `s` unit allowed).
trait Number: Sized {
    fn from_bytes(b: &[u8]) -> Option<Self>;
}

fn uint(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &d in b {
        let v = d.wrapping_sub(b'0');
        if v > 9 {
            return None;
        }
        n = n * 10 + u64::from(v);
    }
    Some(n)
}

impl Number for u64 {
    fn from_bytes(b: &[u8]) -> Option<Self> {
        uint(b)
    }
}
impl Number for u32 {
    fn from_bytes(b: &[u8]) -> Option<Self> {
        uint(b)?.try_into().ok()
    }
}
impl Number for u16 {
    fn from_bytes(b: &[u8]) -> Option<Self> {
        uint(b)?.try_into().ok()
    }
}
impl Number for f64 {
    /// `123`, `13.6`: one pass, exact integer over an exact power of ten, so correctly rounded;
    /// anything else (exponents, signs, long numbers) goes through the standard parser.
    fn from_bytes(b: &[u8]) -> Option<Self> {
        if !b.is_empty() && b.len() <= 15 {
            let (mut n, mut scale, mut dot, mut ok) = (0u64, 1u64, false, b[0] != b'.');
            for &c in b {
                match c {
                    b'0'..=b'9' => {
                        n = n * 10 + u64::from(c - b'0');
                        if dot {
                            scale *= 10;
                        }
                    }
                    b'.' if !dot => dot = true,
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                return Some(n as f64 / scale as f64);
            }
        }
        std::str::from_utf8(b).ok()?.parse().ok()
    }
}

fn num<T: Number>(b: &[u8]) -> Option<T> {
    T::from_bytes(b.strip_suffix(b"s").unwrap_or(b))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Apply the known `key=value` fields to an event.
fn apply_fields(ev: &mut Event, line: &[u8], ctx: &mut ParseCtx) {
    for (k, v) in fields(line) {
        match k {
            b"worker" => ev.worker = Some(ctx.names.get(v)),
            b"pid" => ev.pid = num(v),
            b"id" | b"request_id" => ev.id = Some(SmallStr::from_bytes(v)),
            b"prompt_chars" | b"chars" => ev.prompt_chars = num(v),
            b"prompt_tokens" => ev.prompt_tokens = num(v),
            b"max_tokens" => ev.max_tokens = num(v),
            b"temperature" | b"temp" => ev.temperature = num(v),
            _ => {}
        }
    }
}

/// Leading number of `b` (digits and one dot) and the rest.
fn leading_number(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b'.')
        .count();
    (n > 0).then(|| b.split_at(n))
}

/// `N tokens in X s (Y tok/s)`, tolerant of `Xs`, `X sec`, `X seconds`.
fn completion_numbers(b: &[u8]) -> Option<(u32, f64, f64)> {
    let b = b.trim_ascii_start();
    let (tokens, rest) = leading_number(b)?;
    let rest = rest.strip_prefix(b" tokens in ")?;
    let (secs, rest) = leading_number(rest)?;
    let open = memchr::memchr(b'(', rest)?;
    let (rate, tail) = leading_number(&rest[open + 1..])?;
    tail.trim_ascii_start()
        .starts_with(b"tok/s")
        .then_some(())?;
    Some((num(tokens)?, num(secs)?, num(rate)?))
}

fn parse_mls(line: &[u8], ctx: &mut ParseCtx, out: &mut Vec<Event>) -> Parsed {
    // Find the marker once; fields are read from it onwards (the prefix is time, logger, level).
    let (kind, at, rest) = if let Some(p) = CHAT.find(line) {
        let after = &line[p + b"Chat completion".len()..];
        if let Some(r) = after.strip_prefix(b" request:") {
            (EventKind::Start, p, r)
        } else if let Some(r) = after.strip_prefix(b" failed:") {
            (EventKind::Failed, p, r)
        } else if let Some(r) = after.strip_prefix(b":") {
            (EventKind::End, p, r)
        } else {
            return Parsed::Skip;
        }
    } else if let Some(p) = PROGRESS.find(line) {
        return mls_progress(line, p, ctx, out);
    } else if let Some(p) = WORKER.find(line) {
        let after = &line[p + b"Worker ".len()..];
        if let Some(r) = after.strip_prefix(b"timeout after") {
            (EventKind::Timeout, p, r)
        } else if let Some(r) = after.strip_prefix(b"spawned") {
            (EventKind::Spawned, p, r)
        } else if let Some(r) = after.strip_prefix(b"exited") {
            (EventKind::Exited, p, r)
        } else {
            return Parsed::Skip;
        }
    } else {
        return Parsed::Skip;
    };
    let Some((time, _)) = ctx.clock.leading(&line[..at]) else {
        return Parsed::Bad("event line without a leading timestamp");
    };
    out.push(Event {
        time,
        kind,
        ..Event::default()
    });
    let Some(ev) = out.last_mut() else {
        return Parsed::Skip;
    };
    apply_fields(ev, rest, ctx);
    let bad = match kind {
        EventKind::End => match completion_numbers(rest) {
            Some((tokens, secs, rate)) => {
                ev.tokens = Some(tokens);
                ev.seconds = Some(secs);
                ev.tokens_per_sec = Some(rate);
                None
            }
            None => Some("completion line without \"N tokens in X s (Y tok/s)\""),
        },
        EventKind::Timeout => {
            ev.timeout_secs = leading_number(rest.trim_ascii_start()).and_then(|(n, _)| num(n));
            ev.timeout_secs
                .is_none()
                .then_some("timeout line without a number of seconds")
        }
        EventKind::Failed => {
            ev.message = Some(text(rest.trim_ascii()).into());
            None
        }
        _ => None,
    };
    match bad {
        Some(why) => {
            out.pop();
            Parsed::Bad(why)
        }
        None => Parsed::Event(Event::default()),
    }
}

/// `127.0.0.1 - - [05/Jan/2026 23:13:25] "POST /v1/chat/completions HTTP/1.1" 200 -`
fn access_time(line: &[u8], clock: &mut Clock) -> Option<chrono::DateTime<chrono::Utc>> {
    let open = memchr::memchr(b'[', line)?;
    let b = line.get(open + 1..open + 22)?;
    if b[2] != b'/' || b[6] != b'/' || b[11] != b' ' || b[20] != b']' {
        return None;
    }
    let month = match &b[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    let iso = format!(
        "{}-{month:02}-{} {}",
        text(&b[7..11]),
        text(&b[0..2]),
        text(&b[12..20])
    );
    clock.leading(iso.as_bytes()).map(|(t, _)| t)
}

/// An MLS `Prompt processing progress: a/b` line (found at `p`): prefill progress of the
/// worker its fields name.
fn mls_progress(line: &[u8], p: usize, ctx: &mut ParseCtx, out: &mut Vec<Event>) -> Parsed {
    let Some((time, _)) = ctx.clock.leading(&line[..p]) else {
        return Parsed::Bad("progress line without a leading timestamp");
    };
    let rest = &line[p + b"Prompt processing progress: ".len()..];
    let counts = leading_number(rest).and_then(|(done, r)| {
        let (total, r) = r.strip_prefix(b"/").and_then(leading_number)?;
        Some((done, total, r))
    });
    let Some((done, total, fields)) = counts else {
        return Parsed::Bad("progress line without a/b");
    };
    let mut ev = Event {
        time,
        kind: EventKind::Progress,
        tokens: num(done),
        prompt_tokens: num(total),
        ..Event::default()
    };
    apply_fields(&mut ev, fields, ctx);
    out.push(ev);
    Parsed::Event(Event::default())
}

/// Parse an mlx_lm.server line: a prompt-progress, access, DEBUG or ERROR line.
fn parse_mlx_lm(line: &[u8], clock: &mut Clock) -> Parsed {
    if let Some(p) = PROGRESS.find(line) {
        return mlx_progress(line, p, clock);
    }
    if let Some(p) = POST.find(line) {
        return mlx_access(line, p, clock);
    }
    if let Some(p) = DEBUG.find(line) {
        return mlx_debug(line, p, clock);
    }
    if let Some(p) = ERROR.find(line) {
        return mlx_error(line, p, clock);
    }
    Parsed::Skip
}

/// A `Prompt processing progress: a/b` line (found at `p`): prefill progress.
#[inline]
fn mlx_progress(line: &[u8], p: usize, clock: &mut Clock) -> Parsed {
    let Some((time, _)) = clock.leading(line) else {
        return Parsed::Bad("progress line without a leading timestamp");
    };
    let rest = &line[p + 28..];
    let Some((done, rest)) = leading_number(rest) else {
        return Parsed::Bad("progress line without a/b");
    };
    let Some((total, _)) = rest.strip_prefix(b"/").and_then(leading_number) else {
        return Parsed::Bad("progress line without a/b");
    };
    Parsed::Event(Event {
        time,
        kind: EventKind::Progress,
        tokens: num(done),
        prompt_tokens: num(total),
        ..Event::default()
    })
}

/// An access line for `"POST /v1/…` (found at `p`): a completions request starts or fails.
#[inline]
fn mlx_access(line: &[u8], p: usize, clock: &mut Clock) -> Parsed {
    let Some(time) = access_time(line, clock) else {
        return Parsed::Bad("access line without a [dd/Mon/yyyy hh:mm:ss] time");
    };
    let path_end = memchr::memchr(b' ', &line[p + 6..]).map_or(line.len(), |e| p + 6 + e);
    if !line[p + 6..path_end].ends_with(b"completions") {
        return Parsed::Skip;
    }
    let after_quote = memchr::memchr(b'"', &line[p + 1..]).map(|q| p + 2 + q);
    let status: Option<u16> = after_quote
        .and_then(|q| leading_number(line[q..].trim_ascii_start()))
        .and_then(|(n, _)| num(n));
    let Some(status) = status else {
        return Parsed::Bad("access line without a status code");
    };
    // Python's HTTP server writes this line at send_response, which mlx_lm.server calls
    // before prefill, for streaming and non-streaming responses alike: a start.
    let kind = if status < 400 {
        EventKind::Start
    } else {
        EventKind::Failed
    };
    Parsed::Event(Event {
        time,
        kind,
        status: Some(status),
        ..Event::default()
    })
}

/// A ` - DEBUG - ` line (found at `p`): a response's end, a stream's start, or progress.
#[inline]
fn mlx_debug(line: &[u8], p: usize, clock: &mut Clock) -> Parsed {
    let Some((time, _)) = clock.leading(line) else {
        return Parsed::Skip;
    };
    let msg = &line[p + b" - DEBUG - ".len()..];
    // Non-streaming responses end with this (logged just before the body is written).
    if msg.starts_with(b"Outgoing Response:") {
        return Parsed::Event(Event {
            time,
            kind: EventKind::End,
            ..Event::default()
        });
    }
    // A streamed response ends with no line of its own.
    if msg.starts_with(b"Starting stream:") {
        return Parsed::Event(Event {
            time,
            kind: EventKind::Unended,
            ..Event::default()
        });
    }
    if msg.starts_with(b"Incoming Request Body:") || msg.starts_with(b"Starting ") {
        return Parsed::Skip;
    }
    // Every other DEBUG line of a request is a generated segment: progress.
    Parsed::Event(Event {
        time,
        kind: EventKind::Progress,
        ..Event::default()
    })
}

/// A ` - ERROR - ` line (found at `p`): a failure with its message.
#[inline]
fn mlx_error(line: &[u8], p: usize, clock: &mut Clock) -> Parsed {
    let Some((time, _)) = clock.leading(line) else {
        return Parsed::Skip;
    };
    Parsed::Event(Event {
        time,
        kind: EventKind::Failed,
        message: Some(text(line[p + 11..].trim_ascii()).into()),
        ..Event::default()
    })
}

/// A user format, read from TOML:
///
/// ```toml
/// name = "my-server"
/// prefilter = ["Request", "timed out"]          # optional literal needles
/// timestamp_format = "%d/%m/%Y %H:%M:%S"        # optional; for a `ts` capture
/// [start]
/// regex = 'Request (?P<id>\S+) from (?P<worker>\S+) chars=(?P<prompt_chars>\d+)'
/// [end]
/// regex = 'Request (?P<id>\S+) done: (?P<tokens>\d+) tokens in (?P<seconds>[\d.]+)s'
/// [timeout]
/// regex = 'Request (?P<id>\S+) timed out after (?P<timeout_secs>\d+)s'
/// [failure]
/// regex = 'Request (?P<id>\S+) failed: (?P<message>.*)'
/// ```
#[derive(Debug)]
pub struct Custom {
    pub name: String,
    pub prefilter: Vec<String>,
    timestamp_format: Option<String>,
    rules: Vec<(EventKind, Regex)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomFile {
    name: Option<String>,
    #[serde(default)]
    prefilter: Vec<String>,
    timestamp_format: Option<String>,
    start: Option<Rule>,
    end: Option<Rule>,
    timeout: Option<Rule>,
    failure: Option<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    regex: String,
}

const CAPTURES: &[&str] = &[
    "ts",
    "worker",
    "pid",
    "id",
    "prompt_chars",
    "prompt_tokens",
    "max_tokens",
    "temperature",
    "tokens",
    "seconds",
    "tok_s",
    "timeout_secs",
    "status",
    "message",
];

impl Custom {
    pub fn load(path: &Path) -> Result<Custom, InputError> {
        let text = crate::input::read_to_string(path, crate::input::FORMAT_FILE_LIMIT)?;
        Custom::from_toml(&text, path)
    }

    /// A format from the text of a format file; `path` names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Custom, InputError> {
        let bad = |message: String| InputError::BadFile {
            path: path.to_path_buf(),
            message,
        };
        let file: CustomFile =
            toml::from_str(text).map_err(|e| bad(format!("invalid format file: {e}")))?;
        let mut rules = Vec::new();
        for (kind, rule, what) in [
            (EventKind::Start, file.start, "start"),
            (EventKind::End, file.end, "end"),
            (EventKind::Timeout, file.timeout, "timeout"),
            (EventKind::Failed, file.failure, "failure"),
        ] {
            let Some(rule) = rule else { continue };
            let re = Regex::new(&rule.regex).map_err(|e| bad(format!("[{what}] regex: {e}")))?;
            if let Some(unknown) = re.capture_names().flatten().find(|n| !CAPTURES.contains(n)) {
                return Err(bad(format!(
                    "[{what}] regex: unknown capture group {unknown:?} (known: {})",
                    CAPTURES.join(", ")
                )));
            }
            rules.push((kind, re));
        }
        if rules.is_empty() {
            return Err(bad("no [start], [end], [timeout] or [failure] rule".into()));
        }
        Ok(Custom {
            name: file.name.unwrap_or_else(|| {
                path.file_stem()
                    .map_or("format".into(), |s| s.to_string_lossy().into_owned())
            }),
            prefilter: file.prefilter,
            timestamp_format: file.timestamp_format,
            rules,
        })
    }

    fn parse(&self, line: &[u8], ctx: &mut ParseCtx) -> Parsed {
        for (kind, re) in &self.rules {
            let Some(c) = re.captures(line) else { continue };
            let get = |name: &str| c.name(name).map(|m| m.as_bytes());
            let time = match (get("ts"), &self.timestamp_format) {
                (Some(ts), Some(fmt)) => chrono::NaiveDateTime::parse_from_str(&text(ts), fmt)
                    .ok()
                    .and_then(|n| ctx.clock.local(n)),
                (Some(ts), None) => ctx.clock.leading(ts).map(|t| t.0),
                (None, _) => ctx.clock.leading(line).map(|t| t.0),
            };
            let Some(time) = time else {
                return Parsed::Bad("matched a rule but has no readable timestamp");
            };
            let mut ev = Event {
                time,
                kind: *kind,
                ..Event::default()
            };
            ev.worker = get("worker").map(|w| ctx.names.get(w));
            ev.pid = get("pid").and_then(num);
            ev.id = get("id").map(SmallStr::from_bytes);
            ev.prompt_chars = get("prompt_chars").and_then(num);
            ev.prompt_tokens = get("prompt_tokens").and_then(num);
            ev.max_tokens = get("max_tokens").and_then(num);
            ev.temperature = get("temperature").and_then(num);
            ev.tokens = get("tokens").and_then(num);
            ev.seconds = get("seconds").and_then(num);
            ev.tokens_per_sec = get("tok_s").and_then(num);
            ev.timeout_secs = get("timeout_secs").and_then(num);
            ev.status = get("status").and_then(num);
            ev.message = get("message").map(|m| text(m).into());
            if ev.tokens_per_sec.is_none()
                && let (Some(t), Some(s)) = (ev.tokens, ev.seconds)
            {
                ev.tokens_per_sec = (s > 0.0).then(|| t as f64 / s);
            }
            return Parsed::Event(ev);
        }
        Parsed::Skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(f: &Format, line: &str) -> Event {
        match f.parse(line.as_bytes(), &mut ParseCtx::default()) {
            Parsed::Event(e) => e,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn mls_lines() {
        let s = ev(
            &Format::Mls,
            "2026-01-05 23:13:25,001 - mls.api - INFO - Chat completion request: worker=mlx-server-v3-1 pid=49387 \
             id=req-319 prompt_chars=8489 max_tokens=2000 temperature=0.3",
        );
        assert_eq!(s.kind, EventKind::Start);
        assert_eq!(s.worker, Some("mlx-server-v3-1"));
        assert_eq!(
            (s.pid, s.prompt_chars, s.max_tokens, s.temperature),
            (Some(49387), Some(8489), Some(2000), Some(0.3))
        );
        let e = ev(
            &Format::Mls,
            "2026-01-05 23:12:40,000 - INFO - Chat completion: 412 tokens in 13.6s (30.2 tok/s) id=req-318",
        );
        assert_eq!(
            (e.kind, e.tokens, e.seconds, e.tokens_per_sec),
            (EventKind::End, Some(412), Some(13.6), Some(30.2))
        );
        let e = ev(
            &Format::Mls,
            "2026-01-05 23:12:40 Chat completion: 9 tokens in 2 seconds (4.5 tok/s)",
        );
        assert_eq!(e.seconds, Some(2.0));
        let t = ev(
            &Format::Mls,
            "2026-01-05 23:23:25,000 - ERROR - Worker timeout after 600s (shared memory) id=req-319",
        );
        assert_eq!((t.kind, t.timeout_secs), (EventKind::Timeout, Some(600.0)));
        let f = ev(
            &Format::Mls,
            "2026-01-05 23:33:25,000 - ERROR - Chat completion failed: 500 worker timeout",
        );
        assert_eq!(
            (f.kind, f.message.as_deref()),
            (EventKind::Failed, Some("500 worker timeout"))
        );
        let q = ev(
            &Format::Mls,
            r#"2026-01-05 23:33:25 Chat completion request: chars=60211 worker="mlx server 2""#,
        );
        assert_eq!(
            (q.prompt_chars, q.worker),
            (Some(60211), Some("mlx server 2"))
        );
        assert!(matches!(
            Format::Mls.parse(
                b"2026-01-05 23:33:25 - INFO - Loaded model",
                &mut ParseCtx::default()
            ),
            Parsed::Skip
        ));
        assert!(matches!(
            Format::Mls.parse(
                b"Chat completion: 3 tokens in 1s (3 tok/s)",
                &mut ParseCtx::default()
            ),
            Parsed::Bad(_)
        ));
        assert!(matches!(
            Format::Mls.parse(
                b"2026-01-05 23:33:25 Chat completion: garbage",
                &mut ParseCtx::default()
            ),
            Parsed::Bad(_)
        ));
    }

    #[test]
    fn mlx_lm_server_lines() {
        let p = ev(
            &Format::MlxLm,
            "2026-01-05 23:13:25,118 - INFO - Prompt processing progress: 2048/8192",
        );
        assert_eq!(
            (p.kind, p.tokens, p.prompt_tokens),
            (EventKind::Progress, Some(2048), Some(8192))
        );
        let a = ev(
            &Format::MlxLm,
            r#"127.0.0.1 - - [05/Jan/2026 23:13:29] "POST /v1/chat/completions HTTP/1.1" 200 -"#,
        );
        assert_eq!((a.kind, a.status), (EventKind::Start, Some(200)));
        assert_eq!(
            a.time,
            crate::logs::event::parse_timestamp("2026-01-05 23:13:29").unwrap()
        );
        let f = ev(
            &Format::MlxLm,
            r#"127.0.0.1 - - [05/Jan/2026 23:13:29] "POST /v1/completions HTTP/1.1" 404 -"#,
        );
        assert_eq!(f.kind, EventKind::Failed);
        let e = ev(
            &Format::MlxLm,
            "2026-01-05 23:13:30,000 - ERROR - JSONDecodeError: Expecting value",
        );
        assert_eq!(
            e.message.as_deref(),
            Some("JSONDecodeError: Expecting value")
        );
        assert!(matches!(
            Format::MlxLm.parse(
                br#"127.0.0.1 - - [05/Jan/2026 23:13:29] "POST /v1/embeddings HTTP/1.1" 200 -"#,
                &mut ParseCtx::default()
            ),
            Parsed::Skip
        ));
    }

    #[test]
    fn detection() {
        assert_eq!(
            Format::detect(b"2026-01-05 23:13:25 - INFO - Chat completion request: x").name(),
            "mls"
        );
        let mlx = b"2026-01-05 23:13:25,118 - INFO - Prompt processing progress: 0/10\n127.0.0.1 - - [05/Jan/2026 23:13:29] \"POST /v1/chat/completions HTTP/1.1\" 200 -\n";
        assert_eq!(Format::detect(mlx).name(), "mlx_lm.server");
        assert_eq!(Format::detect(b"").name(), "mls", "MLS is the default");
    }

    #[test]
    fn custom_format_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("srv.toml");
        std::fs::write(
            &p,
            r#"
name = "srv"
prefilter = ["Request"]
timestamp_format = "%d/%m/%Y %H:%M:%S"
[start]
regex = '^(?P<ts>\S+ \S+) Request (?P<id>\S+) from (?P<worker>\S+) chars=(?P<prompt_chars>\d+)'
[end]
regex = '^(?P<ts>\S+ \S+) Request (?P<id>\S+) done: (?P<tokens>\d+) tokens in (?P<seconds>[\d.]+)s'
"#,
        )
        .unwrap();
        let f = Format::Custom(Box::new(Custom::load(&p).unwrap()));
        assert_eq!(f.name(), "custom:srv");
        let s = ev(&f, "05/01/2026 23:13:25 Request r1 from w1 chars=8489");
        assert_eq!(
            (s.kind, s.id.as_deref(), s.prompt_chars),
            (EventKind::Start, Some("r1"), Some(8489))
        );
        let e = ev(
            &f,
            "05/01/2026 23:13:39 Request r1 done: 420 tokens in 14.0s",
        );
        assert_eq!((e.tokens, e.tokens_per_sec), (Some(420), Some(30.0)));
        std::fs::write(&p, "[start]\nregex = '(?P<bogus>x)'\n").unwrap();
        let err = Custom::load(&p).unwrap_err().to_string();
        assert!(err.contains("srv.toml") && err.contains("bogus"), "{err}");
        std::fs::write(&p, "name = 3").unwrap();
        assert!(
            Custom::load(&p)
                .unwrap_err()
                .to_string()
                .contains("invalid format file")
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(num::<f64>(b"13.6"), Some(13.6));
        assert_eq!(num::<f64>(b"0.3"), Some(0.3));
        assert_eq!(num::<f64>(b"600s"), Some(600.0));
        assert_eq!(num::<f64>(b"1e3"), Some(1000.0));
        assert_eq!(num::<f64>(b"-2.5"), Some(-2.5));
        assert_eq!(num::<f64>(b"x"), None);
        assert_eq!(num::<u64>(b"8489"), Some(8489));
        assert_eq!(num::<u16>(b"70000"), None);
        assert_eq!(num::<u64>(b"99999999999999999999"), None);
        assert_eq!(num::<u32>(b""), None);
    }

    #[test]
    fn key_values() {
        let kv: Vec<(String, String)> = fields(br#"a=1 b="two words", c=3) =x d="#)
            .map(|(k, v)| (text(k), text(v)))
            .collect();
        assert_eq!(
            kv,
            [
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), "3".into()),
                ("d".into(), "".into())
            ]
        );
    }
}
