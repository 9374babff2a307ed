//! The snapshot store: snapshots on disk, the evidence that outlives the process it describes.
//!
//! One snapshot is everything mlsdiag knew about one worker at one moment, as JSON (for
//! `history` and `postmortem`) and as text (for people), named like the seed's
//! `worker_<pid>_<YYYYmmdd_HHMMSS>`. Writing is safe for cron: the directory is private, files
//! are created new (never overwritten, never through a symlink) via a temp file and a link, and
//! a failed write leaves nothing behind. Retention only ever deletes files with mlsdiag's names.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::error::InputError;
use crate::model::{SNAPSHOT_KIND, Snapshot};

/// Where snapshots go: `--dir`, else `$MLSDIAG_DIR`, else a per-user directory.
///
/// # Platform specific behavior
/// macOS: `~/Library/Logs/mlsdiag`; elsewhere `$XDG_STATE_HOME/mlsdiag` or
/// `~/.local/state/mlsdiag`.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MLSDIAG_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    if cfg!(target_os = "macos") {
        return home.join("Library/Logs/mlsdiag");
    }
    match std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        Some(s) => PathBuf::from(s).join("mlsdiag"),
        None => home.join(".local/state/mlsdiag"),
    }
}

/// Open the snapshot directory once (creating it private when missing); it must be yours or
/// root's and writable by nobody else (see `output::Dir::open_private`).
pub fn prepare_dir(dir: &Path) -> Result<crate::output::Dir, InputError> {
    crate::output::Dir::open_private(dir, "snapshots")
}

/// Write `bytes` to a new file `path` (mode 0600), through its directory opened once: a temp
/// file, then a link that fails if the name exists. Returns false when the name was taken.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<bool, InputError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| InputError::BadFile {
            path: path.to_path_buf(),
            message: "is not a file name".into(),
        })?;
    let handle = crate::output::Dir::open(dir, "files")?.ok_or_else(|| InputError::BadFile {
        path: dir.to_path_buf(),
        message: "does not exist".into(),
    })?;
    handle.write_new(name, bytes)
}

/// Save a snapshot as `worker_<pid>_<stamp>[_n].json` and `.txt`; returns the JSON path.
/// Two runs in the same second get different names; nothing is ever replaced.
pub fn save(dir: &crate::output::Dir, snap: &Snapshot, text: &str) -> Result<PathBuf, InputError> {
    let stamp = snap
        .taken_at
        .with_timezone(&chrono::Local)
        .format("%Y%m%d_%H%M%S");
    let json = serde_json::to_vec_pretty(snap).map_err(|e| InputError::BadFile {
        path: dir.path().to_path_buf(),
        message: e.to_string(),
    })?;
    for n in 0..1000 {
        let base = if n == 0 {
            format!("worker_{}_{stamp}", snap.pid)
        } else {
            format!("worker_{}_{stamp}_{n}", snap.pid)
        };
        // Both files land together or neither does (a full disk leaves no .json without .txt).
        let (json_name, txt_name) = (format!("{base}.json"), format!("{base}.txt"));
        if dir.write_new_together(&[(&json_name, &json), (&txt_name, text.as_bytes())])? {
            return Ok(dir.path().join(json_name));
        }
    }
    Err(InputError::BadFile {
        path: dir.path().to_path_buf(),
        message: "no free snapshot name".into(),
    })
}

static OWN_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^worker_(\d+)_(\d{8}_\d{6})(_\d+)?\.(json|txt)$").unwrap());

/// mlsdiag's own snapshot files in `dir`: (path, pid), regular files only.
pub fn own_files(dir: &Path) -> Result<Vec<(PathBuf, u32)>, InputError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)
        .map_err(InputError::io(dir))?
        .flatten()
    {
        let name = e.file_name();
        let Some(c) = name.to_str().and_then(|n| OWN_NAME.captures(n)) else {
            continue;
        };
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        out.push((e.path(), c[1].parse().unwrap_or(0)));
    }
    out.sort();
    Ok(out)
}

/// Snapshots with the file each came from.
pub type Loaded = Vec<(PathBuf, Snapshot)>;

/// Read every snapshot JSON in `dir` (oldest first); unreadable ones are reported, not fatal.
pub fn load_all(dir: &Path) -> Result<(Loaded, Vec<String>), InputError> {
    let mut snaps = Vec::new();
    let mut problems = Vec::new();
    for (path, _) in own_files(dir)? {
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        match load(&path) {
            Ok(s) => snaps.push((path, s)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    snaps.sort_by_key(|(p, s)| (s.taken_at, p.clone()));
    Ok((snaps, problems))
}

pub fn load(path: &Path) -> Result<Snapshot, InputError> {
    let text = crate::input::read_to_string(path, crate::input::SNAPSHOT_LIMIT)?;
    let snap: Snapshot = serde_json::from_str(&text).map_err(|e| InputError::BadFile {
        path: path.to_path_buf(),
        message: format!(
            "not an mlsdiag snapshot: line {}, column {}: {e}",
            e.line(),
            e.column()
        ),
    })?;
    if snap.kind != SNAPSHOT_KIND {
        return Err(InputError::BadFile {
            path: path.to_path_buf(),
            message: format!("kind {:?} is not {SNAPSHOT_KIND}", snap.kind),
        });
    }
    Ok(snap)
}

/// Retention: keep the newest `keep` snapshots per pid and/or delete those older than
/// `max_age`. Returns the files deleted. Only files with mlsdiag's names are touched.
pub fn prune(
    handle: &crate::output::Dir,
    keep: Option<usize>,
    max_age: Option<Duration>,
    now: std::time::SystemTime,
) -> Result<Vec<PathBuf>, InputError> {
    let dir = handle.path();
    let files = own_files(dir)?;
    let mut doomed: Vec<PathBuf> = Vec::new();
    if let Some(age) = max_age {
        for (p, _) in &files {
            let old = std::fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|d| d > age);
            if old {
                doomed.push(p.clone());
            }
        }
    }
    if let Some(keep) = keep {
        // Group files by base name (json + txt) per pid, newest first by the stamp in the name.
        let mut by_pid: std::collections::BTreeMap<u32, Vec<String>> =
            std::collections::BTreeMap::new();
        for (p, pid) in &files {
            let base = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bases = by_pid.entry(*pid).or_default();
            if !bases.contains(&base) {
                bases.push(base);
            }
        }
        for bases in by_pid.values_mut() {
            bases.sort_by(|a, b| b.cmp(a));
            for base in bases.iter().skip(keep) {
                for ext in ["json", "txt"] {
                    let p = dir.join(format!("{base}.{ext}"));
                    if files.iter().any(|(f, _)| *f == p) && !doomed.contains(&p) {
                        doomed.push(p);
                    }
                }
            }
        }
    }
    for p in &doomed {
        // Removed through the directory opened once, by name.
        if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
            handle.remove(name)?;
        }
    }
    Ok(doomed)
}

/// The machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The last `n` lines of a file (reads at most the last 256 KiB).
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = crate::input::open_regular(path) else {
        return vec![];
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(256 << 10);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return vec![];
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return vec![];
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text
        .lines()
        .rev()
        .take(n)
        .map(|l| l.chars().take(500).collect())
        .collect();
    lines.reverse();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_refuses_symlinks_and_files() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(
            prepare_dir(&link)
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        let file = d.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(prepare_dir(&file).is_err());
        let fresh = d.path().join("a/b");
        prepare_dir(&fresh).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn write_new_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("worker_1_20260105_231325.json");
        assert!(write_new(&p, b"first").unwrap());
        assert!(!write_new(&p, b"second").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".mlsdiag-"))
            .collect();
        assert!(leftovers.is_empty(), "no temp files left");
    }

    #[test]
    fn prune_touches_only_own_files() {
        let d = tempfile::tempdir().unwrap();
        for stamp in ["20260105_100000", "20260105_110000", "20260105_120000"] {
            for ext in ["json", "txt"] {
                std::fs::write(d.path().join(format!("worker_7_{stamp}.{ext}")), "x").unwrap();
            }
        }
        std::fs::write(d.path().join("notes.txt"), "mine").unwrap();
        std::fs::write(d.path().join("worker_7_yesterday.json"), "mine").unwrap();
        let h = prepare_dir(d.path()).unwrap();
        let gone = prune(&h, Some(1), None, std::time::SystemTime::now()).unwrap();
        assert_eq!(gone.len(), 4);
        assert!(d.path().join("worker_7_20260105_120000.json").exists());
        assert!(
            d.path().join("notes.txt").exists()
                && d.path().join("worker_7_yesterday.json").exists()
        );
        let gone = prune(
            &h,
            None,
            Some(Duration::from_secs(0)),
            std::time::SystemTime::now() + Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(gone.len(), 2);
        assert!(d.path().join("notes.txt").exists());
    }
}
