//! Reading a worker's token progress record: the 128-byte file the `mlsdiag` Python module
//! (python/mlsdiag/__init__.py documents the layout) maps into the worker and updates on every
//! token. The worker writes it without locks, marking a write in progress with an odd sequence
//! number; a reading is taken twice and kept only when both agree and the sequence is even.

use std::io::Read;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::model::TokenRecord;

pub const RECORD_SIZE: usize = 128;
const MAGIC: &[u8; 8] = b"MLSPROG1";
const ID_AT: usize = 96;
const ID_LEN: usize = 24;
const WAITING_AT: usize = 120;

/// Parses one record; `Err` says what is wrong with it.
pub fn parse(b: &[u8], read_at: DateTime<Utc>) -> Result<TokenRecord, String> {
    if b.len() < RECORD_SIZE {
        return Err(format!(
            "{} bytes, not a progress record ({RECORD_SIZE})",
            b.len()
        ));
    }
    if &b[..8] != MAGIC {
        return Err("not a progress record (no MLSPROG1 magic)".into());
    }
    let u = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
    let time = |at: usize| match u(at) {
        0 => None,
        ns => i64::try_from(ns).ok().map(DateTime::from_timestamp_nanos),
    };
    if u(8) % 2 == 1 {
        return Err("being written".into());
    }
    let pid = u32::try_from(u(16)).map_err(|_| format!("pid {} out of range", u(16)))?;
    let created = time(24).ok_or("no creation time")?;
    let (done, total) = (u(64), u(72));
    let id = &b[ID_AT..ID_AT + ID_LEN];
    let id = &id[..id.iter().position(|&c| c == 0).unwrap_or(ID_LEN)];
    let request = (!id.is_empty()).then(|| crate::fmt::sanitize(&String::from_utf8_lossy(id)));
    let generating_since = time(48);
    Ok(TokenRecord {
        pid,
        created,
        tokens: u(32),
        last_token: time(40),
        generating_since,
        request_tokens: u(56),
        prompt: (total > 0).then_some([done.min(total), total]),
        last_progress: time(80),
        generations: u(88),
        request: request.filter(|_| generating_since.is_some()),
        waiting_since: time(WAITING_AT).filter(|_| generating_since.is_some()),
        read_at,
    })
}

/// Reads the record at `path` for process `pid` started at `started`: a consistent reading,
/// or why there is none (a record of another process, one older than the process, garbage).
pub fn read(path: &Path, pid: u32, started: Option<DateTime<Utc>>) -> Result<TokenRecord, String> {
    let shown = path.display();
    let mut last_err = String::new();
    for _ in 0..5 {
        let first = bytes(path)?;
        let at = Utc::now();
        let second = bytes(path)?;
        if first != second {
            last_err = "changed while read".into();
            continue;
        }
        match parse(&first, at) {
            Ok(r) => return check(r, pid, started).map_err(|e| format!("progress {shown}: {e}")),
            Err(e) => last_err = e,
        }
    }
    Err(format!("progress {shown}: {last_err}"))
}

/// The per-user directory where the Python module keeps the files of a worker that no
/// registry names (`mlsdiag run`, `MLSDIAG_AUTO=1`, or a fallback from an unusable state
/// directory): `/tmp/mlsdiag-UID`, found by the worker's uid and PID alone.
pub fn user_dir(uid: u32) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/tmp/mlsdiag-{uid}"))
}

/// A worker's own file in its user's directory ([`user_dir`]): `progress-PID` (`kind`
/// "progress") or `faulthandler-PID.txt` (`kind` "faulthandler"), followed only when it is the
/// worker's own as [`crate::registry::Registry::worker_file`] judges a registry's paths (owned
/// by the worker's user or root, in directories nobody else can write). `Ok(None)` when there
/// is none; `Err` says why it is not followed.
pub fn user_file(kind: &str, pid: u32, uid: u32) -> Result<Option<std::path::PathBuf>, String> {
    let name = match kind {
        "faulthandler" => format!("faulthandler-{pid}.txt"),
        _ => format!("{kind}-{pid}"),
    };
    let path = user_dir(uid).join(name);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    match crate::input::trust(&path, uid) {
        crate::input::Trust::Trusted => Ok(Some(path)),
        crate::input::Trust::Untrusted(why) => Err(format!(
            "{kind} {} not followed: it is not the worker's own file ({why})",
            path.display()
        )),
    }
}

/// A worker's `progress` or `faulthandler` file: the one its registry entry names (see
/// [`crate::registry::Registry::worker_file`]), else the one in its user's directory
/// ([`user_file`]). `Ok(None)`: none; `Err`: why the file there is not followed.
pub fn worker_file(
    registered: Option<(&crate::model::RegistryEntry, &crate::registry::Registry)>,
    kind: &str,
    pid: u32,
    uid: u32,
) -> Result<Option<std::path::PathBuf>, String> {
    match registered {
        Some((e, r)) if e.extra_path(kind).is_some() => r.worker_file(e, kind, Some(uid)),
        _ => user_file(kind, pid, uid),
    }
}

/// Where the worker `pid` writes its faulthandler dump (and the module's watchdog its stacks):
/// the registry entry's path ([`crate::registry::Registry::faulthandler`]), else the file in the
/// worker's user directory ([`user_file`]), when either may be followed.
pub fn faulthandler_file(
    registry: Option<&crate::registry::Registry>,
    pid: u32,
    platform: &dyn crate::platform::Platform,
) -> Option<std::path::PathBuf> {
    registry
        .and_then(|r| r.faulthandler(pid, platform))
        .or_else(|| {
            let uid = platform.process(pid).ok()?.uid;
            user_file("faulthandler", pid, uid).ok().flatten()
        })
}

/// Whether the record is this process's: its PID, and made after the process started.
fn check(r: TokenRecord, pid: u32, started: Option<DateTime<Utc>>) -> Result<TokenRecord, String> {
    if r.pid != pid {
        return Err(format!("the record is PID {}'s, not {pid}'s", r.pid));
    }
    // The start time from the OS is rounded (to clock ticks on Linux): a small slack.
    let slack = chrono::Duration::seconds(2);
    if let Some(s) = started
        && r.created + slack < s
    {
        return Err(format!(
            "the record was made at {}, before this process started ({}): an earlier process on this PID",
            r.created.to_rfc3339(),
            s.to_rfc3339()
        ));
    }
    Ok(r)
}

fn bytes(path: &Path) -> Result<Vec<u8>, String> {
    let file = crate::input::open_regular(path).map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(RECORD_SIZE);
    file.take(4096)
        .read_to_end(&mut buf)
        .map_err(|e| format!("progress {}: {e}", path.display()))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, pid: u64, fields: [u64; 9], id: &str) -> Vec<u8> {
        record_waiting(seq, pid, fields, id, 0)
    }

    fn record_waiting(seq: u64, pid: u64, fields: [u64; 9], id: &str, waiting: u64) -> Vec<u8> {
        let mut b = Vec::from(&MAGIC[..]);
        for v in [seq, pid].into_iter().chain(fields) {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.resize(ID_AT, 0);
        b.extend_from_slice(id.as_bytes());
        b.resize(WAITING_AT, 0);
        b.extend_from_slice(&waiting.to_le_bytes());
        b
    }

    const T0: u64 = 1_767_000_000_000_000_000;

    #[test]
    fn a_record_in_a_generation() {
        let s = 1_000_000_000;
        let b = record(
            4,
            42,
            [T0, 10, T0 + 5 * s, T0 + 2 * s, 7, 30, 30, T0 + 5 * s, 3],
            "req-9",
        );
        let r = parse(&b, Utc::now()).unwrap();
        assert_eq!(
            (r.pid, r.tokens, r.request_tokens, r.generations),
            (42, 10, 7, 3)
        );
        assert_eq!(r.prompt, Some([30, 30]));
        assert_eq!(r.request.as_deref(), Some("req-9"));
        assert!(r.generating_since.is_some());
        assert_eq!(r.last_progress, r.last_token);
        assert_eq!(r.waiting_since, None);
        // Handed to its consumer and not resumed.
        let b = record_waiting(
            4,
            42,
            [T0, 10, T0 + 5 * s, T0 + 2 * s, 7, 30, 30, T0 + 5 * s, 3],
            "req-9",
            T0 + 5 * s,
        );
        assert!(parse(&b, Utc::now()).unwrap().waiting_since.is_some());
    }

    #[test]
    fn idle_torn_and_foreign_records() {
        // Between generations: no request named, no prefill.
        let b = record(2, 42, [T0, 10, T0, 0, 0, 0, 0, T0, 1], "old");
        let r = parse(&b, Utc::now()).unwrap();
        assert_eq!(
            (r.generating_since, r.request, r.prompt),
            (None, None, None)
        );
        // A write in progress, a short file, no magic.
        assert!(parse(&record(3, 42, [T0; 9], ""), Utc::now()).is_err());
        assert!(parse(&b[..100], Utc::now()).is_err());
        let mut bad = b.clone();
        bad[0] = b'X';
        assert!(parse(&bad, Utc::now()).unwrap_err().contains("magic"));
        // Another PID's record, and one made before the process started.
        let r = parse(&b, Utc::now()).unwrap();
        assert!(check(r.clone(), 43, None).unwrap_err().contains("PID 42"));
        let later = r.created + chrono::Duration::seconds(60);
        assert!(
            check(r.clone(), 42, Some(later))
                .unwrap_err()
                .contains("earlier process")
        );
        assert!(check(r, 42, Some(later - chrono::Duration::seconds(59))).is_ok());
    }
}
