//! Request events and the fast timestamp parser they start with.
//!
//! A multi-gigabyte log is mostly lines that are not request events, and most event lines start
//! with the same hour as the previous one; so parsing works on bytes, never validates UTF-8 of
//! whole lines, and converts local times through an offset cached per hour.

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use serde::Serialize;

use crate::model::{ID_CAP, SmallStr, bounded_text};

/// Worker names repeat on every line. The first [`INTERNED`] distinct names a parsing thread
/// sees are stored once for the life of the process (a deliberate, bounded leak: at most
/// `INTERNED` names of at most [`ID_CAP`] bytes and a hash each), so their events carry a plain
/// `&'static str`: no allocation and no shared reference count bouncing between cores. A name
/// past those is carried owned (see [`Name`]): still itself, never lumped with others.
#[derive(Debug, Default)]
pub struct Interner {
    names: Vec<&'static str>,
}

/// Names a parsing thread interns.
pub const INTERNED: usize = 256;

/// A worker name as an event carries it: interned (the common case, a pointer), or owned when
/// the thread has interned [`INTERNED`] names already. Either way at most [`ID_CAP`] bytes and
/// a hash (see [`bounded_text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    Interned(&'static str),
    Owned(Box<str>),
}

impl Name {
    pub fn as_str(&self) -> &str {
        match self {
            Name::Interned(s) => s,
            Name::Owned(s) => s,
        }
    }
    /// The interned text, when it is interned (its address identifies the name).
    #[inline]
    pub fn interned(&self) -> Option<&'static str> {
        match self {
            Name::Interned(s) => Some(s),
            Name::Owned(_) => None,
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Byte strings compared as two overlapping words when they are 8 to 16 bytes long (worker
/// names usually are), in place of a call to `memcmp`.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if !(8..=16).contains(&n) {
        return a == b;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8)
}

impl Interner {
    pub fn get(&mut self, b: &[u8]) -> Name {
        if b.len() > ID_CAP {
            // A long name: by its bounded form (rare, so the hash per line is no matter).
            let bounded = bounded_text(b, ID_CAP);
            return self.get_bounded(bounded.as_bytes());
        }
        self.get_bounded(b)
    }

    fn get_bounded(&mut self, b: &[u8]) -> Name {
        if let Some(n) = self.names.iter().find(|n| same_bytes(n.as_bytes(), b)) {
            return Name::Interned(n);
        }
        let text = String::from_utf8_lossy(b).into_owned().into_boxed_str();
        if self.names.len() >= INTERNED {
            return Name::Owned(text);
        }
        let n: &'static str = Box::leak(text);
        self.names.push(n);
        Name::Interned(n)
    }
}

/// Per-thread parsing state: the timestamp caches and the name interner.
#[derive(Debug, Default)]
pub struct ParseCtx {
    pub clock: Clock,
    pub names: Interner,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A request was received / started.
    #[default]
    Start,
    /// Prefill progress of the current request (mlx_lm.server).
    Progress,
    /// A request finished successfully.
    End,
    /// The orchestrator gave up waiting (`Worker timeout after Ns`).
    Timeout,
    /// A request failed.
    Failed,
    /// The orchestrator spawned the worker (`Worker spawned`): a new incarnation begins.
    Spawned,
    /// The orchestrator saw the worker exit (`Worker exited`): its incarnation ended.
    Exited,
    /// The newest open request's end will not be logged (mlx_lm.server's `Starting stream:`).
    Unended,
    /// The server's generation thread died (mlx_lm.server: `Exception in thread … (_generate)`
    /// before 0.32, `ERROR - mlx_lm.server generation thread died` after): it generates
    /// nothing more, while its HTTP side may still answer.
    Died,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Event {
    /// Line number in its source (1-based).
    pub line: u64,
    /// Index of the source file, in processing order.
    pub source: usize,
    pub time: DateTime<Utc>,
    pub kind: EventKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<Name>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<SmallStr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_chars: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Free text of failures (the message after the marker), for the anomaly list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Box<str>>,
}

impl Event {
    /// An event with only its time and kind, every field spelled out: built in place in a
    /// vector, where `..Event::default()` makes a copy first.
    #[inline(always)]
    pub fn blank(time: DateTime<Utc>, kind: EventKind) -> Event {
        Event {
            line: 0,
            source: 0,
            time,
            kind,
            worker: None,
            pid: None,
            id: None,
            prompt_chars: None,
            prompt_tokens: None,
            max_tokens: None,
            temperature: None,
            tokens: None,
            seconds: None,
            tokens_per_sec: None,
            timeout_secs: None,
            status: None,
            message: None,
        }
    }
}

/// Converts zone-less local times, caching the UTC offset per hour, the last date, and the last
/// minute's `YYYY-MM-DD HH:MM` (lines of one minute then only have their seconds read).
#[derive(Debug, Default, Clone)]
pub struct Clock {
    hour: i64,
    offset_secs: i64,
    primed: bool,
    date: [u8; 10],
    date_days: i64,
    /// The UTC day of the last result and its date, to build times without calendar math.
    utc_day: i64,
    utc_date: Option<NaiveDate>,
    /// The last `YYYY-MM-DD HH:MM` read and its seconds since the epoch (as if UTC): lines
    /// of one minute share it, so only the seconds are read again.
    minute: [u8; 16],
    minute_secs: Option<i64>,
    /// The time of the last event a format parsed with this clock, for a line that has none
    /// of its own (a Python traceback's first line belongs to the moment before it).
    pub last: Option<DateTime<Utc>>,
}

/// ASCII digits as a number, without a UTF-8 pass: at most 19 of them (so any fits), no sign.
/// The one digit loop of the log parsers (`formats` reads its numbers with it too).
#[inline(always)]
pub(super) fn digits(b: &[u8]) -> Option<u64> {
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

/// [`digits`] of a timestamp's short fields (at most 9 digits: nanoseconds).
#[inline(always)]
fn small(b: &[u8]) -> Option<u32> {
    digits(b)?.try_into().ok()
}

impl Clock {
    /// Seconds since the epoch of a local wall-clock time given as seconds since the epoch of
    /// the same wall-clock reading in UTC.
    fn local_secs(&mut self, naive_secs: i64) -> Option<i64> {
        let hour = naive_secs.div_euclid(3600);
        if !self.primed || hour != self.hour {
            let naive = DateTime::from_timestamp(naive_secs, 0)?.naive_utc();
            let local = Local.from_local_datetime(&naive).earliest()?;
            self.offset_secs = i64::from(local.offset().fix().local_minus_utc());
            self.hour = hour;
            self.primed = true;
        }
        Some(naive_secs - self.offset_secs)
    }

    /// Local naive time → UTC, with the offset of that hour.
    pub fn local(&mut self, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
        let utc = naive.and_utc();
        DateTime::from_timestamp(
            self.local_secs(utc.timestamp())?,
            utc.timestamp_subsec_nanos(),
        )
    }

    fn days(&mut self, b: &[u8]) -> Option<i64> {
        if b == self.date && self.date_days != 0 {
            return Some(self.date_days);
        }
        let date =
            NaiveDate::from_ymd_opt(small(&b[0..4])? as i32, small(&b[5..7])?, small(&b[8..10])?)?;
        let days = date
            .and_hms_opt(0, 0, 0)?
            .and_utc()
            .timestamp()
            .div_euclid(86_400);
        self.date.copy_from_slice(b);
        self.date_days = days;
        Some(days)
    }

    /// A leading `YYYY-MM-DD[ T]HH:MM:SS[.,frac][Z|±HH[:]MM]`, optionally after `[`.
    /// Returns the time and the number of bytes it used.
    pub fn leading(&mut self, line: &[u8]) -> Option<(DateTime<Utc>, usize)> {
        let start = usize::from(line.first() == Some(&b'['));
        let b = line.get(start..)?;
        if b.len() < 19
            || b[4] != b'-'
            || b[7] != b'-'
            || !(b[10] == b' ' || b[10] == b'T')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let minute_secs = match self.minute_secs {
            Some(secs) if b[..16] == self.minute => secs,
            _ => {
                let days = self.days(&b[0..10])?;
                let (h, m) = (small(&b[11..13])?, small(&b[14..16])?);
                if h > 23 || m > 59 {
                    return None;
                }
                let secs = days * 86_400 + i64::from(h * 3600 + m * 60);
                self.minute.copy_from_slice(&b[..16]);
                self.minute_secs = Some(secs);
                secs
            }
        };
        let (tens, ones) = (b[17].wrapping_sub(b'0'), b[18].wrapping_sub(b'0'));
        if tens > 9 || ones > 9 || tens * 10 + ones > 60 {
            return None;
        }
        let sec = u32::from(tens * 10 + ones);
        let mut used = 19;
        let mut nanos = 0u32;
        if matches!(b.get(19), Some(b'.' | b',')) {
            // The fraction's digits in one pass: the first nine are kept (nanoseconds).
            let (mut k, mut frac) = (20, 0u32);
            while let Some(d) = b.get(k).map(|c| c.wrapping_sub(b'0')).filter(|&d| d <= 9) {
                if k < 29 {
                    frac = frac * 10 + u32::from(d);
                }
                k += 1;
            }
            if k > 20 {
                nanos = frac * 10u32.pow(9 - (k - 20).min(9) as u32);
                used = k;
            }
        }
        let naive_secs = minute_secs + i64::from(sec);
        let secs = match b.get(used) {
            Some(b'Z') => {
                used += 1;
                naive_secs
            }
            Some(&sign @ (b'+' | b'-')) if b.len() >= used + 5 && b[used + 1].is_ascii_digit() => {
                let (oh, om, len) = if b.get(used + 3) == Some(&b':') {
                    (
                        small(&b[used + 1..used + 3])?,
                        small(b.get(used + 4..used + 6)?)?,
                        6,
                    )
                } else {
                    (
                        small(&b[used + 1..used + 3])?,
                        small(&b[used + 3..used + 5])?,
                        5,
                    )
                };
                let off = i64::from(oh * 3600 + om * 60) * if sign == b'-' { -1 } else { 1 };
                used += len;
                naive_secs - off
            }
            _ => self.local_secs(naive_secs)?,
        };
        let day = secs.div_euclid(86_400);
        if self.utc_date.is_none() || day != self.utc_day {
            self.utc_day = day;
            self.utc_date = Some(DateTime::from_timestamp(day * 86_400, 0)?.date_naive());
        }
        let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
            secs.rem_euclid(86_400) as u32,
            nanos,
        )?;
        let utc = NaiveDateTime::new(self.utc_date?, time).and_utc();
        Some((utc, start + used))
    }
}

/// Parse a timestamp given by a user (`--since`): RFC 3339, or `YYYY-MM-DD[ HH:MM[:SS]]` local.
pub fn parse_user_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let padded = match s.len() {
        10 => format!("{s} 00:00:00"),
        16 => format!("{s}:00"),
        _ => s.to_string(),
    };
    Clock::default()
        .leading(padded.as_bytes())
        .filter(|&(_, used)| used == padded.len())
        .map(|(t, _)| t)
        .ok_or_else(|| {
            format!("invalid time {s:?}: use RFC 3339 or \"YYYY-MM-DD HH:MM:SS\" (local)")
        })
}

/// Parse a leading timestamp of a text line (convenience for tests and callers with `&str`).
pub fn parse_timestamp(line: &str) -> Option<DateTime<Utc>> {
    Clock::default().leading(line.as_bytes()).map(|(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_compares_every_byte_at_every_length() {
        for n in 0..=20usize {
            let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i).collect();
            assert!(same_bytes(&a, &a.clone()));
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 1;
                assert!(!same_bytes(&a, &b), "length {n}, byte {i}");
            }
            assert!(!same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
        let mut names = Interner::default();
        let (one, two) = (names.get(b"mlx-server-v3-1"), names.get(b"mlx-server-v3-2"));
        assert_ne!(one, two);
        assert_eq!(names.get(b"mlx-server-v3-1").as_ptr(), one.as_ptr());
    }

    #[test]
    fn names_past_the_interned_ones_stay_themselves_and_long_ones_are_bounded() {
        let mut names = Interner::default();
        for i in 0..INTERNED + 50 {
            let n = format!("worker-{i}");
            let got = names.get(n.as_bytes());
            assert_eq!(got.as_str(), n);
            assert_eq!(got.interned().is_some(), i < INTERNED, "{n}");
        }
        // An interned name is still found once the table is full.
        assert!(names.get(b"worker-3").interned().is_some());
        // Two long names that share their first bytes: bounded, and distinct.
        let long = |c: u8| [vec![b'w'; 100_000], vec![c]].concat();
        let (a, b) = (names.get(&long(b'a')), names.get(&long(b'b')));
        assert!(a.len() <= ID_CAP + 19, "{}", a.len());
        assert_ne!(a, b);
        assert_eq!(names.get(&long(b'a')), a);
        assert!(a.starts_with("wwww") && a.contains('…'));
    }

    #[test]
    fn timestamp_forms() {
        let a = parse_timestamp("2026-01-05 23:13:25,512 - mls - INFO - x").unwrap();
        let b = parse_timestamp("2026-01-05T23:13:25.512 x").unwrap();
        assert_eq!(a, b);
        let z = parse_timestamp("2026-01-05T23:13:25Z x").unwrap();
        let off = parse_timestamp("2026-01-06T00:13:25+01:00 x").unwrap();
        let off2 = parse_timestamp("2026-01-06T00:13:25+0100 x").unwrap();
        assert_eq!(z, off);
        assert_eq!(z, off2);
        assert_eq!(
            parse_timestamp("[2026-01-05 23:13:25] x")
                .unwrap()
                .timestamp()
                % 60,
            25
        );
        assert_eq!(
            parse_timestamp("2026-01-05 23:13:25.123456789Z")
                .unwrap()
                .timestamp_subsec_nanos(),
            123_456_789
        );
        // Fractions of one to twelve digits: nanoseconds from the first nine, all of them used.
        for (frac, nanos) in [
            ("5", 500_000_000),
            ("05", 50_000_000),
            ("123456789012", 123_456_789),
        ] {
            let line = format!("2026-01-05 23:13:25.{frac}Z rest");
            let (t, used) = Clock::default().leading(line.as_bytes()).unwrap();
            assert_eq!(
                (t.timestamp_subsec_nanos(), used),
                (nanos, 21 + frac.len()),
                "{frac}"
            );
        }
        assert_eq!(
            parse_timestamp("2026-01-05 23:13:60Z").map(|t| t.timestamp() % 60),
            Some(0)
        );
        for bad in [
            "2026-01-05 23:13:61 x",
            "2026-01-05 23:13:6x x",
            "2026-01-05 23:13:x5 x",
            "Chat completion: no time",
            "2026-13-05 23:13:25 x",
            "2026-01-05 25:13:25",
            "2026-01-0",
            "",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_hour_cache_gives_the_same_answer_as_chrono() {
        let mut clock = Clock::default();
        for line in [
            "2026-03-29 00:30:00",
            "2026-03-29 01:30:00",
            "2026-03-29 03:30:00",
            "2026-10-25 12:00:00",
        ] {
            let naive = NaiveDateTime::parse_from_str(line, "%Y-%m-%d %H:%M:%S").unwrap();
            let expect = Local
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc));
            assert_eq!(
                clock.leading(line.as_bytes()).map(|t| t.0),
                expect,
                "{line}"
            );
        }
    }

    #[test]
    fn user_times() {
        assert!(parse_user_time("2026-01-05T23:13:25Z").is_ok());
        assert!(parse_user_time("2026-01-05 23:13").is_ok());
        assert!(parse_user_time("2026-01-05").is_ok());
        assert!(parse_user_time("yesterday").is_err());
    }
}
