//! The MLS worker registry (`/tmp/mlx-server/worker_registry.json`).
//!
//! The registry is what the orchestrator believes; the process table is what is true. mlsdiag
//! reads the registry in any of the shapes orchestrators write (`{"workers":[…]}`, a bare array,
//! a map keyed by worker name), keeps fields it does not know, and reports malformed files with
//! the file, line and column.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::InputError;

/// Where MLS writes its worker registry (the default `--registry`).
pub const DEFAULT_PATH: &str = "/tmp/mlx-server/worker_registry.json";
use crate::model::RegistryEntry;

/// The most bytes kept of one field of an entry (its name, model, a path, any other value, a
/// field's name): a longer one is kept as its first bytes, `…` and a hash of the whole (see
/// [`bound`]), so a registry's size never becomes the size of a name every round renders,
/// compares and clones. Any path that can be opened fits (Linux's `PATH_MAX` is 4096).
pub const FIELD_CAP: usize = 4096;

#[derive(Debug, Clone, Serialize)]
pub struct Registry {
    pub path: PathBuf,
    pub entries: Vec<RegistryEntry>,
    /// Whether the file may make mlsdiag act or follow the paths it names (see `input`).
    #[serde(skip)]
    pub trust: crate::input::Trust,
}

impl Registry {
    pub fn get(&self, pid: u32) -> Option<&RegistryEntry> {
        self.entries.iter().find(|e| e.pid == pid)
    }

    /// Where the worker `pid` writes its faulthandler dump, when its entry names one that may be
    /// followed ([`Registry::worker_file`], for the worker's uid as the OS reports it now).
    pub fn faulthandler(
        &self,
        pid: u32,
        platform: &dyn crate::platform::Platform,
    ) -> Option<PathBuf> {
        let e = self.get(pid)?;
        let owner = platform.process(pid).ok().map(|p| p.uid);
        self.worker_file(e, "faulthandler", owner).ok().flatten()
    }

    /// A file the worker's entry names (`heartbeat`, `faulthandler`), followed only when this
    /// registry is trusted and the file is the worker's own: owned by the worker's user or root,
    /// in directories nobody else can write (`input::trust` judged for the worker's uid).
    /// `Ok(None)` when the entry names none, or it does not exist; `Err` says why it is not
    /// followed.
    pub fn worker_file(
        &self,
        e: &RegistryEntry,
        key: &str,
        worker_uid: Option<u32>,
    ) -> Result<Option<PathBuf>, String> {
        let Some(path) = e.extra_path(key) else {
            return Ok(None);
        };
        if let crate::input::Trust::Untrusted(why) = &self.trust {
            return Err(format!(
                "{key} {} not followed: the registry is untrusted ({why})",
                path.display()
            ));
        }
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let Some(uid) = worker_uid else {
            return Err(format!(
                "{key} {} not followed: the worker's owner is unknown",
                path.display()
            ));
        };
        match crate::input::trust(&path, uid) {
            crate::input::Trust::Trusted => Ok(Some(path)),
            crate::input::Trust::Untrusted(why) => Err(format!(
                "{key} {} not followed: it is not the worker's own file ({why})",
                path.display()
            )),
        }
    }
}

/// How reading the registry went: `check` reports what it finds by pattern even when it failed.
#[derive(Debug)]
pub enum Loaded {
    Ok(Registry),
    Missing(PathBuf),
    Invalid(InputError),
}

impl Loaded {
    /// The registry when it was read; commands that only use it to name workers go on
    /// without it (`check` and `registry` report why it is missing).
    pub fn ok(self) -> Option<Registry> {
        match self {
            Loaded::Ok(r) => Some(r),
            Loaded::Missing(_) | Loaded::Invalid(_) => None,
        }
    }
}

/// Read and parse the registry: a regular file of at most [`crate::input::REGISTRY_LIMIT`]
/// bytes (a FIFO or `/dev/zero` planted at the default path in /tmp is refused, never read).
pub fn load(path: &Path) -> Loaded {
    match crate::input::read_with_metadata(path, crate::input::REGISTRY_LIMIT) {
        Ok((text, meta)) => match parse(&text) {
            Ok(entries) => Loaded::Ok(Registry {
                path: path.to_path_buf(),
                entries,
                trust: crate::input::trust_read(path, &meta, crate::input::euid()),
            }),
            Err(message) => Loaded::Invalid(InputError::BadFile {
                path: path.to_path_buf(),
                message,
            }),
        },
        Err(InputError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Loaded::Missing(path.to_path_buf())
        }
        Err(e) => Loaded::Invalid(e),
    }
}

/// Parse registry JSON text. Errors say where and what, e.g. "line 3, column 9: expected `,`".
pub fn parse(text: &str) -> Result<Vec<RegistryEntry>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        // serde_json appends " at line L column C"; say it first, in words an operator reads.
        let what = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        format!(
            "invalid JSON at line {}, column {}: {what}",
            e.line(),
            e.column()
        )
    })?;
    let items: Vec<(Option<String>, &Value)> = match &value {
        Value::Array(a) => a.iter().map(|v| (None, v)).collect(),
        Value::Object(o) => match o.get("workers") {
            Some(Value::Array(a)) => a.iter().map(|v| (None, v)).collect(),
            Some(Value::Object(m)) => m.iter().map(|(k, v)| (Some(k.clone()), v)).collect(),
            Some(_) => return Err("\"workers\" must be an array or an object".into()),
            None => o.iter().map(|(k, v)| (Some(k.clone()), v)).collect(),
        },
        _ => return Err("expected an object or an array of workers at the top level".into()),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, (key, v))| {
            let place = match &key {
                Some(k) => format!("worker {k:?}"),
                None => format!("worker #{}", i + 1),
            };
            entry(key, v).map_err(|e| format!("{place}: {e}"))
        })
        .collect()
}

fn entry(key: Option<String>, v: &Value) -> Result<RegistryEntry, String> {
    let Value::Object(obj) = v else {
        return Err(format!(
            "expected an object with a \"pid\", found {}",
            kind(v)
        ));
    };
    let mut extra: serde_json::Map<String, Value> = obj
        .iter()
        .map(|(k, v)| (bound(k).into_owned(), bound_value(v)))
        .collect();
    let key = key.map(|k| bound(&k).into_owned());
    let pid = match extra.remove("pid") {
        Some(Value::Number(n)) => n.as_u64().filter(|&p| p > 0 && p <= u64::from(u32::MAX)),
        Some(Value::String(s)) => s.trim().parse::<u32>().ok().map(u64::from),
        Some(_) => None,
        None => return Err("missing \"pid\"".into()),
    }
    .ok_or_else(|| format!("\"pid\" must be a positive integer, found {}", obj["pid"]))?
        as u32;
    let name = match extra.remove("name") {
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
        None => key,
    };
    let model = match extra.remove("model") {
        Some(Value::String(s)) => Some(s),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let spawned_at = match extra.remove("spawned_at") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_time(&v).ok_or_else(|| {
            format!("\"spawned_at\" must be RFC 3339 or epoch seconds, found {v}")
        })?),
    };
    let port = match extra.remove("port") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or("\"port\" out of range")?,
        ),
        Some(Value::String(s)) => Some(
            s.parse()
                .map_err(|_| format!("\"port\" {s:?} is not a number"))?,
        ),
        Some(other) => return Err(format!("\"port\" must be a number, found {other}")),
    };
    Ok(RegistryEntry {
        pid,
        name,
        model,
        spawned_at,
        port,
        extra,
    })
}

/// `s` whole when it has at most [`FIELD_CAP`] bytes; else its first bytes up to that, `…` and a
/// hash of the whole ([`crate::model::bounded_text`]), so that two long names that differ after
/// the cut stay two names.
pub fn bound(s: &str) -> std::borrow::Cow<'_, str> {
    crate::model::bounded_text(s.as_bytes(), FIELD_CAP)
}

/// A field's value as kept: a string [`bound`]ed; any other value whose JSON text is longer than
/// [`FIELD_CAP`] kept as that text, bounded.
fn bound_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(bound(s).into_owned()),
        Value::Array(_) | Value::Object(_) => {
            let text = v.to_string();
            if text.len() <= FIELD_CAP {
                v.clone()
            } else {
                Value::String(bound(&text).into_owned())
            }
        }
        _ => v.clone(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// RFC 3339, Python's `isoformat()` without zone (local time), or epoch seconds (number or string).
pub fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => epoch(n.as_f64()?),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
            if let Ok(secs) = s.parse::<f64>() {
                return epoch(secs);
            }
            for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
                    return Local
                        .from_local_datetime(&naive)
                        .earliest()
                        .map(|t| t.with_timezone(&Utc));
                }
            }
            None
        }
        _ => None,
    }
}

fn epoch(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Utc.timestamp_opt(secs.trunc() as i64, (secs.fract() * 1e9) as u32)
        .single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_shapes() {
        let a = parse(
            r#"{"workers":[{"pid":49387,"name":"mlx-server-v3-1","model":"m","port":8081}]}"#,
        )
        .unwrap();
        let b =
            parse(r#"[{"pid":49387,"name":"mlx-server-v3-1","model":"m","port":8081}]"#).unwrap();
        let c = parse(r#"{"mlx-server-v3-1":{"pid":49387,"model":"m","port":8081}}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a[0].name.as_deref(), Some("mlx-server-v3-1"));
        assert_eq!(a[0].port, Some(8081));
    }

    #[test]
    fn unknown_fields_are_kept_and_pid_may_be_a_string() {
        let e = &parse(r#"[{"pid":"123","status":"busy","requests":318}]"#).unwrap()[0];
        assert_eq!(e.pid, 123);
        assert_eq!(e.extra["status"], "busy");
        assert_eq!(e.extra["requests"], 318);
    }

    #[test]
    fn every_field_is_kept_to_a_bounded_size() {
        let big = "w".repeat(1 << 20);
        let text = serde_json::json!([
            {"pid": 1, "name": big, "model": big, "heartbeat": format!("/tmp/{big}"),
             "tags": vec![big.as_str(); 4], big.clone(): 1},
            {"pid": 2, "name": format!("{big}x")},
            {"pid": 3, "name": "mlx-server-v3-1", "status": "busy", "ports": [8081, 8082]},
        ])
        .to_string();
        let e = parse(&text).unwrap();
        let tail = '…'.len_utf8() + 16;
        let name = e[0].name.as_deref().unwrap();
        assert_eq!(name.len(), FIELD_CAP + tail);
        assert!(name.starts_with("www") && name.contains('…'), "{name:.40}");
        assert_eq!(e[0].model.as_deref().unwrap().len(), FIELD_CAP + tail);
        for (k, v) in &e[0].extra {
            assert!(k.len() <= FIELD_CAP + tail);
            let kept = v.as_str().map_or_else(|| v.to_string().len(), str::len);
            assert!(kept <= FIELD_CAP + tail, "{k:.20}");
        }
        // Two long names that differ past the cut stay two names.
        assert_ne!(e[0].name, e[1].name);
        // Short fields are kept whole.
        assert_eq!(e[2].name.as_deref(), Some("mlx-server-v3-1"));
        assert_eq!(e[2].extra["status"], "busy");
        assert_eq!(e[2].extra["ports"], serde_json::json!([8081, 8082]));
    }

    #[test]
    fn spawned_at_forms() {
        let rfc = parse(r#"[{"pid":1,"spawned_at":"2026-01-05T18:17:00Z"}]"#).unwrap();
        let num = parse(r#"[{"pid":1,"spawned_at":1767637020}]"#).unwrap();
        let frac = parse(r#"[{"pid":1,"spawned_at":"1767637020.5"}]"#).unwrap();
        assert_eq!(rfc[0].spawned_at, num[0].spawned_at);
        assert_eq!(
            frac[0].spawned_at.unwrap().timestamp_millis(),
            1_767_637_020_500
        );
        // Python's datetime.now().isoformat(): naive, read as local time.
        assert!(
            parse(r#"[{"pid":1,"spawned_at":"2026-01-05T18:17:00.123456"}]"#).unwrap()[0]
                .spawned_at
                .is_some()
        );
        let err = parse(r#"[{"pid":1,"spawned_at":"yesterday"}]"#).unwrap_err();
        assert!(
            err.contains("worker #1") && err.contains("spawned_at"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_place() {
        let e = parse("{\n  \"workers\": [\n    {\"pid\": 1,}\n  ]\n}").unwrap_err();
        assert!(e.starts_with("invalid JSON at line 3, column"), "{e}");
        assert!(
            parse(r#"[{"name":"x"}]"#)
                .unwrap_err()
                .contains("missing \"pid\"")
        );
        assert!(
            parse(r#"[{"pid":-4}]"#)
                .unwrap_err()
                .contains("positive integer")
        );
        assert!(
            parse(r#"{"w1":{"pid":1},"w2":3}"#)
                .unwrap_err()
                .contains("worker \"w2\"")
        );
        assert!(parse("42").unwrap_err().contains("top level"));
        assert!(parse(r#"{"workers":[]}"#).unwrap().is_empty());
    }

    #[test]
    fn load_reports_missing_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(&dir.path().join("nope.json")),
            Loaded::Missing(_)
        ));
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"workers\": [").unwrap();
        match load(&bad) {
            Loaded::Invalid(e) => {
                let text = e.to_string();
                assert!(
                    text.contains("bad.json") && text.contains("line 1"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
