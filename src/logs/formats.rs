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

use super::event::{Clock, Event, EventKind, ParseCtx, digits};
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
    b"generate)",
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
        self.parse_found(line, First::Unknown, ctx, out)
    }

    /// [`Format::parse_into`] for a line whose first needle the scanner has already looked for.
    pub fn parse_found(
        &self,
        line: &[u8],
        first: First,
        ctx: &mut ParseCtx,
        out: &mut Vec<Event>,
    ) -> Parsed {
        let parsed = match self {
            Format::Mls => return parse_mls(line, first.or_find(&CHAT, line), ctx, out),
            Format::MlxLm => parse_mlx_lm(line, first.or_find(&PROGRESS, line), &mut ctx.clock),
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

/// The automaton that finds needles as the reader needs them: the leftmost match, and at one
/// position the needle listed first. Built by the reader where the CPU has no SIMD search, and
/// by [`Custom::from_toml`] to refuse needles it cannot be built for.
pub(super) fn needle_automaton<N: AsRef<[u8]>>(
    needles: &[N],
) -> Result<aho_corasick::AhoCorasick, aho_corasick::BuildError> {
    aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostFirst)
        .build(needles)
}

/// Where the first of a format's [`Format::needles`] is in a line, when the scanner knows:
/// the parser then need not search the line for it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    Unknown,
    At(usize),
}

impl First {
    #[inline]
    fn or_find(self, finder: &memmem::Finder<'_>, line: &[u8]) -> Option<usize> {
        match self {
            First::Unknown => finder.find(line),
            First::At(p) => Some(p),
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

/// Byte classes for the field scanner: a separator between tokens, or a byte of a key.
const SEP: u8 = 1;
const KEY: u8 = 2;
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if matches!(b, b' ' | b'\t' | b',' | b';' | b'(' | b')' | b'\r' | b'\n') {
            t[c] = SEP;
        } else if b.is_ascii_alphanumeric() || b == b'_' {
            t[c] = KEY;
        }
        c += 1;
    }
    t
};

#[inline(always)]
fn is_sep(b: u8) -> bool {
    CLASS[b as usize] == SEP
}

/// The `key=value` fields the parsers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Worker,
    Pid,
    Id,
    PromptChars,
    PromptTokens,
    MaxTokens,
    Temperature,
}

/// What each key means: the keys the parsers know (the definition [`known_key`] is tested
/// against).
#[cfg(test)]
const KEYS: &[(&[u8], Field)] = &[
    (b"worker", Field::Worker),
    (b"pid", Field::Pid),
    (b"id", Field::Id),
    (b"request_id", Field::Id),
    (b"prompt_chars", Field::PromptChars),
    (b"chars", Field::PromptChars),
    (b"prompt_tokens", Field::PromptTokens),
    (b"max_tokens", Field::MaxTokens),
    (b"temperature", Field::Temperature),
    (b"temp", Field::Temperature),
];

/// The known key that starts `token` (with its `=`), and the length of `key=`.
#[inline(always)]
fn known_key(token: &[u8]) -> Option<(Field, usize)> {
    let is = |key: &[u8]| token.starts_with(key);
    let found = match *token.first()? {
        b'w' if is(b"worker=") => (Field::Worker, 7),
        b'p' if is(b"pid=") => (Field::Pid, 4),
        b'p' if is(b"prompt_chars=") => (Field::PromptChars, 13),
        b'p' if is(b"prompt_tokens=") => (Field::PromptTokens, 14),
        b'i' if is(b"id=") => (Field::Id, 3),
        b'r' if is(b"request_id=") => (Field::Id, 11),
        b'c' if is(b"chars=") => (Field::PromptChars, 6),
        b'm' if is(b"max_tokens=") => (Field::MaxTokens, 11),
        b't' if is(b"temperature=") => (Field::Temperature, 12),
        b't' if is(b"temp=") => (Field::Temperature, 5),
        _ => return None,
    };
    Some(found)
}

/// The known `key=value` fields of a line, in order (values may be quoted).
///
/// The rule: tokens are runs of bytes between separators (space, tab, `,;()`, CR, LF); a
/// field is a token that starts with a key (`[A-Za-z0-9_]+`) followed by `=`, and its value
/// runs to the next separator, or is the text between double quotes right after the `=`
/// (the next token then starts after the closing quote). The scanner goes token by token:
/// a known `key=` is recognised by its first byte and a literal compare; any other token has
/// its key read a byte at a time (another key's quoted value still decides where the next
/// token starts); values and the rest of a token are skipped eight bytes at a time to the
/// next separator. A unit test holds this to the byte-at-a-time definition.
fn known_fields<'a>(line: &'a [u8], mut each: impl FnMut(Field, &'a [u8])) {
    let n = line.len();
    let mut i = 0;
    loop {
        while i < n && is_sep(line[i]) {
            i += 1;
        }
        if i >= n {
            return;
        }
        // The value's start: after a known `key=`, or after any other key's `=`; a token
        // without a key is skipped.
        let field = known_key(&line[i..]);
        let v = match field {
            Some((_, key_len)) => i + key_len,
            None => {
                let mut k = i;
                while k < n && CLASS[line[k] as usize] == KEY {
                    k += 1;
                }
                if k == i || line.get(k) != Some(&b'=') {
                    i = sep_or_end(line, k);
                    continue;
                }
                k + 1
            }
        };
        // A quoted value (any key's) moves the next token's start past its closing quote.
        if line.get(v) == Some(&b'"')
            && let Some(end) = memchr::memchr(b'"', &line[v + 1..])
        {
            if let Some((f, _)) = field {
                each(f, &line[v + 1..v + 1 + end]);
            }
            i = v + 2 + end;
            continue;
        }
        let end = sep_or_end(line, v);
        if let Some((f, _)) = field {
            each(f, &line[v..end]);
        }
        i = end;
    }
}

/// Word-at-a-time byte tests (SWAR): a line's tail is short, so a call into a SIMD search per
/// field costs more than reading it eight bytes at a time in place.
const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The 8 bytes at `i` (zero-padded past the end), little-endian: byte `i` is the lowest.
#[inline(always)]
fn word(line: &[u8], i: usize) -> u64 {
    match line.get(i..i + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().unwrap_or_default()),
        None => {
            let mut buf = [0u8; 8];
            let rest = &line[i.min(line.len())..];
            buf[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(buf)
        }
    }
}

/// High bit set in each byte of `w` that is zero. Exact for the lowest such byte (the only one
/// read): a borrow can only flag bytes above a zero byte.
#[inline(always)]
fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(LO) & !w & HI
}

/// The first separator at or after `from`, or the line's end. Separators are all below `-`
/// except `;`, so bytes below `-` (exact: high bit clear, and a borrow only flags bytes above
/// the lowest) and `;` are candidates, checked against the class table.
#[inline(always)]
fn sep_or_end(line: &[u8], mut from: usize) -> usize {
    while from < line.len() {
        let w = word(line, from);
        let m = (w.wrapping_sub(LO * u64::from(b'-')) & !w & HI)
            | zero_bytes(w ^ (LO * u64::from(b';')));
        if m != 0 {
            let at = from + (m.trailing_zeros() / 8) as usize;
            if at >= line.len() || is_sep(line[at]) {
                return at.min(line.len());
            }
            // Not a separator (`"`, `!` …); bytes above it may be flagged by its borrow, so
            // read on from the next byte.
            from = at + 1;
            continue;
        }
        from += 8;
    }
    line.len()
}

/// Numbers in log fields, parsed from bytes without a UTF-8 pass (a trailing `s` unit allowed).
trait Number: Sized {
    fn from_bytes(b: &[u8]) -> Option<Self>;
}

impl Number for u64 {
    fn from_bytes(b: &[u8]) -> Option<Self> {
        digits(b)
    }
}
impl Number for u32 {
    fn from_bytes(b: &[u8]) -> Option<Self> {
        digits(b)?.try_into().ok()
    }
}
impl Number for u16 {
    fn from_bytes(b: &[u8]) -> Option<Self> {
        digits(b)?.try_into().ok()
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
                // At most 15 digits: both fit an i64, whose conversion is one instruction.
                return Some(n as i64 as f64 / scale as i64 as f64);
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

/// A failure's message, bounded (a line may be megabytes; anomalies are kept by the thousand).
fn message(b: &[u8]) -> Box<str> {
    crate::model::bounded_text(b, crate::model::MESSAGE_CAP).into()
}

/// Apply the known `key=value` fields to an event.
fn apply_fields(ev: &mut Event, line: &[u8], ctx: &mut ParseCtx) {
    known_fields(line, |field, v| match field {
        Field::Worker => ev.worker = Some(ctx.names.get(v)),
        Field::Pid => ev.pid = num(v),
        Field::Id => ev.id = Some(SmallStr::from_bytes(v)),
        Field::PromptChars => ev.prompt_chars = num(v),
        Field::PromptTokens => ev.prompt_tokens = num(v),
        Field::MaxTokens => ev.max_tokens = num(v),
        Field::Temperature => ev.temperature = num(v),
    });
}

/// Leading number of `b` (digits and one dot) and the rest.
fn leading_number(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b'.')
        .count();
    (n > 0).then(|| b.split_at(n))
}

/// A completion line's `N tokens in X s (Y tok/s)`.
struct Completion {
    tokens: u32,
    seconds: f64,
    rate: f64,
}

/// `N tokens in X s (Y tok/s)`, tolerant of `Xs`, `X sec`, `X seconds`; and the rest of `b`
/// after `tok/s`.
fn completion_numbers(b: &[u8]) -> Option<(Completion, &[u8])> {
    let b = b.trim_ascii_start();
    let (tokens, rest) = leading_number(b)?;
    let rest = rest.strip_prefix(b" tokens in ")?;
    let (secs, rest) = leading_number(rest)?;
    let open = memchr::memchr(b'(', rest)?;
    let (rate, tail) = leading_number(&rest[open + 1..])?;
    let after = tail.trim_ascii_start().strip_prefix(b"tok/s")?;
    let numbers = Completion {
        tokens: num(tokens)?,
        seconds: num(secs)?,
        rate: num(rate)?,
    };
    Some((numbers, after))
}

fn parse_mls(line: &[u8], chat: Option<usize>, ctx: &mut ParseCtx, out: &mut Vec<Event>) -> Parsed {
    // The marker (found by the scanner, or searched for once); fields are read after it (the
    // prefix is time, logger, level).
    let (kind, at, rest) = if let Some(p) = chat {
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
    // Written straight into the vector's spare slot: a `push` builds the 200-byte event on
    // the stack and copies it.
    out.reserve(1);
    let len = out.len();
    out.spare_capacity_mut()[0].write(Event::blank(time, kind));
    // SAFETY: the slot at `len` (within capacity, reserved above) was initialised just above.
    unsafe { out.set_len(len + 1) };
    let Some(ev) = out.last_mut() else {
        return Parsed::Skip;
    };
    let numbers = match kind {
        EventKind::End => completion_numbers(rest),
        _ => None,
    };
    // A completion's numbers hold no field: its fields are read after them, unless the text
    // between them holds a `=` or a quote, or `tok/s` does not end its token (then from the
    // marker on, as for every other line). Fields are applied before the line is judged, bad
    // or not, as they always were (the name interner remembers what it saw).
    let fields = match &numbers {
        Some((_, after))
            if after.first().is_none_or(|&b| is_sep(b))
                && memchr::memchr2(b'=', b'"', &rest[..rest.len() - after.len()]).is_none() =>
        {
            *after
        }
        _ => rest,
    };
    apply_fields(ev, fields, ctx);
    let bad = match kind {
        EventKind::End => match numbers {
            Some((c, _)) => {
                ev.tokens = Some(c.tokens);
                ev.seconds = Some(c.seconds);
                ev.tokens_per_sec = Some(c.rate);
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
            ev.message = Some(message(rest.trim_ascii()));
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

/// Parse an mlx_lm.server line: a prompt-progress, access, DEBUG or ERROR line, or the first
/// line of the traceback of a generation thread that died.
fn parse_mlx_lm(line: &[u8], progress: Option<usize>, clock: &mut Clock) -> Parsed {
    // First: Python writes the thread's report in pieces, and another thread's line (an access
    // line, a progress line) may land inside it.
    if let Some(died) = generation_thread_died(line, clock) {
        return died;
    }
    let parsed = if let Some(p) = progress {
        mlx_progress(line, p, clock)
    } else if let Some(p) = POST.find(line) {
        mlx_access(line, p, clock)
    } else if let Some(p) = DEBUG.find(line) {
        mlx_debug(line, p, clock)
    } else if let Some(p) = ERROR.find(line) {
        mlx_error(line, p, clock)
    } else {
        return Parsed::Skip;
    };
    if let Parsed::Event(e) = &parsed {
        clock.last = Some(e.time);
    }
    parsed
}

/// `Exception in thread Thread-N (_generate):` (mlx-lm before 0.32; `_run_generate` after):
/// Python's report that the server's generation thread died, which carries no time of its own;
/// it takes the time of the line before it. Python writes it in pieces, so another thread's
/// output may land inside it or split it: the thread's name and its target, `Thread-N
/// (_generate)`, anywhere in the line are enough. `None`: not such a line.
fn generation_thread_died(line: &[u8], clock: &Clock) -> Option<Parsed> {
    let end = [&b" (_generate)"[..], &b" (_run_generate)"[..]]
        .iter()
        .find_map(|t| memmem::find(line, t).map(|at| at + t.len()))?;
    let start = memmem::rfind(&line[..end], b"Thread-")?;
    let Some(time) = clock.last else {
        return Some(Parsed::Bad(
            "a generation thread's traceback before any timed line",
        ));
    };
    Some(Parsed::Event(Event {
        time,
        kind: EventKind::Died,
        message: Some(message(&line[start..end])),
        ..Event::default()
    }))
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
    let msg = line[p + 11..].trim_ascii();
    // mlx-lm 0.32's generation loop logs its own death, and /health turns 503.
    let kind = if memmem::find(msg, b"generation thread died").is_some() {
        EventKind::Died
    } else {
        EventKind::Failed
    };
    Parsed::Event(Event {
        time,
        kind,
        message: Some(message(msg)),
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
        // The reader searches for the prefilter strings with one automaton: refused here, by
        // name, when they cannot make one (it never happens within the file's size limit).
        if let Err(e) = needle_automaton(&file.prefilter) {
            return Err(bad(format!(
                "prefilter: cannot search for these strings: {e}"
            )));
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
            ev.message = get("message").map(message);
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
        assert_eq!(s.worker.as_deref(), Some("mlx-server-v3-1"));
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
        // Fields after the numbers are read from `tok/s` on, but only where that is the same:
        // a `=` between the numbers, or `tok/s` running into the next word, reads them all.
        for (line, worker, id) in [
            ("(3 tok/s)worker=w id=1", Some("w"), Some("1")),
            ("(3 tok/sworker=w) id=1", None, Some("1")),
            ("id=7 (3 tok/s) worker=w", Some("w"), Some("7")),
            ("x=\"a (3 tok/s) id=9\" id=8", None, Some("8")),
        ] {
            let line = format!("2026-01-05 23:12:40 Chat completion: 3 tokens in 1s {line}");
            let e = ev(&Format::Mls, &line);
            assert_eq!(
                (e.worker.as_deref(), e.id.as_deref()),
                (worker, id),
                "{line}"
            );
        }
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
            (q.prompt_chars, q.worker.as_deref()),
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
    fn a_dead_generation_thread_in_either_version() {
        // mlx-lm 0.32.2's own line (server.py, `_run_generate`: logging.exception).
        let e = ev(
            &Format::MlxLm,
            "2026-12-08 00:57:07,950 - ERROR - mlx_lm.server generation thread died: 'NoneType' object is not iterable",
        );
        assert_eq!(e.kind, EventKind::Died);
        assert!(e.message.unwrap().contains("generation thread died"));
        // mlx-lm 0.31.3 (Python's threading excepthook; captured from the #1472 race in
        // tests/cli/run.rs): no time of its own, the line before's; and the same when another
        // thread's output split the line.
        let mut ctx = ParseCtx::default();
        let before = "2026-12-08 00:57:07,889 - INFO - Prompt processing progress: 1240/3001";
        assert!(matches!(
            Format::MlxLm.parse(before.as_bytes(), &mut ctx),
            Parsed::Event(_)
        ));
        for line in [
            "Exception in thread Thread-1 (_generate):",
            "Thread-1 (_generate):",
            "Exception in thread Thread-2 (_run_generate):",
            // Another thread's access line landed inside Python's pieces.
            "Exception in thread Thread-1 (_generate)127.0.0.1 - - [08/Dec/2026 00:57:07] \"POST /v1/completions HTTP/1.1\" 200 -",
        ] {
            let Parsed::Event(d) = Format::MlxLm.parse(line.as_bytes(), &mut ctx) else {
                panic!("{line}");
            };
            assert_eq!(d.kind, EventKind::Died, "{line}");
            assert_eq!(
                d.time,
                crate::logs::event::parse_timestamp("2026-12-08 00:57:07,889").unwrap()
            );
            let m = d.message.unwrap();
            assert!(
                m.starts_with("Thread-") && m.ends_with("generate)"),
                "{line}: {m}"
            );
        }
        // Before any timed line: said, not guessed.
        assert!(matches!(
            Format::MlxLm.parse(
                b"Exception in thread Thread-1 (_generate):",
                &mut ParseCtx::default()
            ),
            Parsed::Bad(_)
        ));
        // Another thread's traceback is not the generation thread's.
        assert!(matches!(
            Format::MlxLm.parse(b"Exception in thread Thread-3 (serve_forever):", &mut ctx),
            Parsed::Skip
        ));
    }

    #[test]
    fn the_first_needle_is_the_marker_each_parser_looks_for_first() {
        // The scanner hands the parser where it found `needles()[0]` (`First`), and the
        // parsers use it in place of their first search: the two must be the same string.
        assert_eq!(Format::Mls.needles()[0], CHAT.needle());
        assert_eq!(Format::MlxLm.needles()[0], PROGRESS.needle());
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

    /// The rule `known_fields` implements, one byte at a time: every `key=value` field.
    fn fields_by_definition(line: &[u8]) -> Vec<(&[u8], &[u8])> {
        let sep = |c: u8| matches!(c, b' ' | b'\t' | b',' | b';' | b'(' | b')' | b'\r' | b'\n');
        let (mut out, mut i) = (Vec::new(), 0);
        loop {
            while i < line.len() && sep(line[i]) {
                i += 1;
            }
            if i >= line.len() {
                return out;
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
                    out.push((key, &line[i + 1..i + 1 + end]));
                    i += end + 2;
                    continue;
                }
                let v = i;
                while i < line.len() && !sep(line[i]) {
                    i += 1;
                }
                out.push((key, &line[v..i]));
                continue;
            }
            while i < line.len() && !sep(line[i]) {
                i += 1;
            }
        }
    }

    fn known_by_definition(line: &[u8]) -> Vec<(Field, &[u8])> {
        fields_by_definition(line)
            .into_iter()
            .filter_map(|(k, v)| Some((KEYS.iter().find(|(key, _)| *key == k)?.1, v)))
            .collect()
    }

    /// A small deterministic generator for the randomized tests (xorshift64).
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    fn known(line: &[u8]) -> Vec<(Field, &[u8])> {
        let mut out = Vec::new();
        known_fields(line, |f, v| out.push((f, v)));
        out
    }

    #[test]
    fn the_word_at_a_time_search_finds_the_first_separator() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1du64);
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            // Every byte value, weighted towards the ones near the tests' edges.
            let line: Vec<u8> = (0..len)
                .map(|_| match next() % 4 {
                    0 => b"=;-,\" ,\x80\xff\x2c\x2d"[(next() % 10) as usize],
                    _ => next() as u8,
                })
                .collect();
            for from in 0..=len {
                let sep = line[from..]
                    .iter()
                    .position(|&b| is_sep(b))
                    .map_or(len, |p| p + from);
                assert_eq!(sep_or_end(&line, from), sep, "{line:?} from {from}");
            }
        }
    }

    #[test]
    fn the_field_scanner_agrees_with_the_byte_at_a_time_definition() {
        // Random lines built from the pieces that matter: known keys and near misses, `=`,
        // quotes, separators, values and other bytes; and real MLS tails.
        let pieces: &[&[u8]] = &[
            b"worker",
            b"pid",
            b"id",
            b"request_id",
            b"prompt_chars",
            b"chars",
            b"temp",
            b"temperature",
            b"max_tokens",
            b"prompt_tokens",
            b"xpid",
            b"_id",
            b"ids",
            b"Worker",
            b"=",
            b"=",
            b"=",
            b"\"",
            b"\"",
            b" ",
            b" ",
            b",",
            b";",
            b"(",
            b")",
            b"\t",
            b"\r",
            b"/",
            b"-",
            b".",
            b"r1",
            b"0.3",
            b"49387",
            b"mlx-server-v3-1",
            b"\xc3\xa9",
            b"x",
            b"x=\"q\"",
            b"id=\"a b\"",
            b"\"q=\"",
            b"a=pid=",
            b" temp=1",
        ];
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15u64);
        let mut lines: Vec<Vec<u8>> = vec![
            b" worker=mlx-server-v3-1 pid=49387 id=r1 prompt_chars=8275 max_tokens=2000 temperature=0.3".to_vec(),
            br#" a=1 worker="two words", pid=3) =x id= x="q"id=2 a=pid=c /id=v chars="unterminated temp=2"#.to_vec(),
        ];
        for _ in 0..50_000 {
            let len = (next() % 16) as usize;
            lines.push(
                (0..len)
                    .flat_map(|_| {
                        pieces[(next() % pieces.len() as u64) as usize]
                            .iter()
                            .copied()
                    })
                    .collect(),
            );
        }
        for line in &lines {
            assert_eq!(known(line), known_by_definition(line), "{:?}", text(line));
        }
        assert_eq!(
            known(br#"worker="mlx server 2", pid=3) =x id= temp="#),
            [
                (Field::Worker, &b"mlx server 2"[..]),
                (Field::Pid, b"3"),
                (Field::Id, b""),
                (Field::Temperature, b"")
            ]
        );
    }
}
