//! The snapshot store: snapshots on disk, the evidence that outlives the process it describes.
//!
//! One snapshot is everything mlsdiag knew about one worker at one moment, as JSON (for
//! `history` and `postmortem`) and as text (for people), named like the seed's
//! `worker_<pid>_<YYYYmmdd_HHMMSS>`. Writing is safe for cron: the directory is private, files
//! are created new (never overwritten, never through a symlink) via a temp file and a link, and
//! a failed write leaves nothing behind (what a killed one leaves, the next `snapshot` removes).
//! Retention only ever deletes files with mlsdiag's names. Listing, reading and pruning are
//! linear in the number of files, bar one sort: `history` and `--keep` over 100k snapshots
//! take seconds (docs/benchmarks.md).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
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
    LazyLock::new(|| Regex::new(r"^worker_(\d+)_(\d{8}_\d{6})(?:_(\d+))?\.(json|txt)$").unwrap());

/// The temporary files of `output::Dir` writes: `.mlsdiag-<writer pid>-<n>-<nanos>.tmp`.
static TEMP_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\.mlsdiag-(\d+)-\d+-\d+\.tmp$").unwrap());

/// One of mlsdiag's snapshot files in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnFile {
    pub path: PathBuf,
    /// Its name: `worker_<pid>_<stamp>[_n].json` or `.txt`.
    pub name: String,
    pub pid: u32,
    /// The stamp in its name and the same-second counter (`_n`, 0 without): the `.json` and
    /// `.txt` of one snapshot share them, and a newer snapshot of a PID sorts after an older.
    pub when: (String, u32),
    pub json: bool,
}

/// A snapshot directory as listed once: mlsdiag's snapshot files (regular files, by name),
/// the entries with a snapshot JSON's name that are no regular file (a symlink), and
/// mlsdiag's temporary files with their writer's PID.
struct Listing {
    files: Vec<OwnFile>,
    odd: Vec<PathBuf>,
    temps: Vec<(String, u32)>,
}

fn list(dir: &Path) -> Result<Listing, InputError> {
    let mut l = Listing {
        files: Vec::new(),
        odd: Vec::new(),
        temps: Vec::new(),
    };
    for e in std::fs::read_dir(dir)
        .map_err(InputError::io(dir))?
        .flatten()
    {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let regular = e.file_type().is_ok_and(|t| t.is_file());
        if let Some(c) = TEMP_NAME.captures(&name) {
            let writer = c[1].parse().unwrap_or(0);
            if regular {
                l.temps.push((name, writer));
            }
            continue;
        }
        let Some(c) = OWN_NAME.captures(&name) else {
            continue;
        };
        if !regular {
            if &c[4] == "json" {
                l.odd.push(e.path());
            }
            continue;
        }
        let f = OwnFile {
            path: e.path(),
            pid: c[1].parse().unwrap_or(0),
            when: (
                c[2].to_string(),
                c.get(3)
                    .map_or(0, |n| n.as_str().parse().unwrap_or(u32::MAX)),
            ),
            json: &c[4] == "json",
            name,
        };
        l.files.push(f);
    }
    l.files.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    l.odd.sort_unstable();
    Ok(l)
}

/// mlsdiag's own snapshot files in `dir`, regular files only, sorted by name.
pub fn own_files(dir: &Path) -> Result<Vec<OwnFile>, InputError> {
    Ok(list(dir)?.files)
}

/// What is kept in a snapshot file, read whole ([`Snapshot`]) or only the part one reader
/// needs (`history`'s).
pub trait Record: serde::de::DeserializeOwned + Send {
    /// The file's `kind` ([`SNAPSHOT_KIND`] for a snapshot).
    fn kind(&self) -> &str;
    fn taken_at(&self) -> DateTime<Utc>;
}

impl Record for Snapshot {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn taken_at(&self) -> DateTime<Utc> {
        self.taken_at
    }
}

/// The snapshot files of a directory, read.
#[derive(Debug)]
pub struct Read<T> {
    /// Oldest first (by the time taken, then by file name), with the file each came from.
    pub snaps: Vec<(PathBuf, T)>,
    /// The files that could not be read, each with why.
    pub unreadable: Vec<String>,
    /// The files left unread because they may not make mlsdiag act, each with why (see
    /// [`read_all`]).
    pub untrusted: Vec<String>,
}

/// Snapshots with the file each came from.
pub type Loaded = Vec<(PathBuf, Snapshot)>;

/// Read every snapshot JSON in `dir` (oldest first); unreadable ones are reported, not fatal.
/// Every file is read, whoever owns it: for showing (`postmortem`), never for acting.
pub fn load_all(dir: &Path) -> Result<(Loaded, Vec<String>), InputError> {
    let r = read_all::<Snapshot>(dir, None)?;
    Ok((r.snaps, r.unreadable))
}

/// Read every snapshot JSON in `dir` as `T`, oldest first, on up to 8 threads; files that
/// cannot be read are reported, not fatal. With `euid`, each file is judged as well, by the
/// descriptor it was read from: one owned by neither `euid` nor root, writable by its group or
/// others, or a symlink is left out, unparsed, and listed in `untrusted` (the directory
/// itself is for the caller to judge, once, with [`crate::input::trust`]).
pub fn read_all<T: Record>(dir: &Path, euid: Option<u32>) -> Result<Read<T>, InputError> {
    let listing = list(dir)?;
    let mut read = Read {
        snaps: Vec::new(),
        unreadable: Vec::new(),
        untrusted: Vec::new(),
    };
    if euid.is_some() {
        read.untrusted = (listing.odd.iter())
            .map(|p| format!("{} is not a regular file (a symbolic link?)", p.display()))
            .collect();
    }
    let jsons: Vec<&OwnFile> = listing.files.iter().filter(|f| f.json).collect();
    for (f, outcome) in jsons.iter().zip(read_files::<T>(&jsons, euid)) {
        match outcome {
            Outcome::Read(s) => read.snaps.push((f.path.clone(), s)),
            Outcome::Unreadable(why) => read.unreadable.push(why),
            Outcome::Untrusted(why) => read.untrusted.push(why),
        }
    }
    read.snaps.sort_by(|(pa, a), (pb, b)| {
        (a.taken_at().cmp(&b.taken_at())).then_with(|| pa.as_os_str().cmp(pb.as_os_str()))
    });
    Ok(read)
}

enum Outcome<T> {
    Read(T),
    Unreadable(String),
    Untrusted(String),
}

/// Reads `files` in order, split between threads (reading and parsing is all the work).
fn read_files<T: Record>(files: &[&OwnFile], euid: Option<u32>) -> Vec<Outcome<T>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads < 2 || files.len() < 64 {
        return files.iter().map(|f| read_one(f, euid)).collect();
    }
    std::thread::scope(|s| {
        let parts: Vec<_> = files
            .chunks(files.len().div_ceil(threads))
            .map(|part| s.spawn(move || part.iter().map(|f| read_one(f, euid)).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn read_one<T: Record>(f: &OwnFile, euid: Option<u32>) -> Outcome<T> {
    use std::os::unix::fs::MetadataExt;
    let path = &f.path;
    let (text, meta) = match crate::input::read_with_metadata(path, crate::input::SNAPSHOT_LIMIT) {
        Ok(r) => r,
        Err(e) => return Outcome::Unreadable(e.to_string()),
    };
    if let Some(euid) = euid {
        // The descriptor read must be the entry listed, not what a symlink put there since.
        let same = std::fs::symlink_metadata(path).is_ok_and(|m| {
            m.file_type().is_file() && (m.dev(), m.ino()) == (meta.dev(), meta.ino())
        });
        if !same {
            return Outcome::Untrusted(format!(
                "{} was replaced while it was read",
                path.display()
            ));
        }
        if let crate::input::Trust::Untrusted(why) = crate::input::trust_file(path, &meta, euid) {
            return Outcome::Untrusted(why);
        }
    }
    match parse(path, &text) {
        Ok(s) => Outcome::Read(s),
        Err(e) => Outcome::Unreadable(e.to_string()),
    }
}

fn parse<T: Record>(path: &Path, text: &str) -> Result<T, InputError> {
    let snap: T = serde_json::from_str(text).map_err(|e| InputError::BadFile {
        path: path.to_path_buf(),
        message: format!(
            "not an mlsdiag snapshot: line {}, column {}: {e}",
            e.line(),
            e.column()
        ),
    })?;
    if snap.kind() != SNAPSHOT_KIND {
        return Err(InputError::BadFile {
            path: path.to_path_buf(),
            message: format!("kind {:?} is not {SNAPSHOT_KIND}", snap.kind()),
        });
    }
    Ok(snap)
}

pub fn load(path: &Path) -> Result<Snapshot, InputError> {
    let text = crate::input::read_to_string(path, crate::input::SNAPSHOT_LIMIT)?;
    parse(path, &text)
}

/// Retention: keep the newest `keep` snapshots per pid and/or delete those older than
/// `max_age`. Returns the files deleted. Only files with mlsdiag's names are touched; a lone
/// `.json` or `.txt` (the other half deleted, or a write killed between its two links) is a
/// snapshot like a pair. Sorting is all the work: 100k files take well under a second.
pub fn prune(
    handle: &crate::output::Dir,
    keep: Option<usize>,
    max_age: Option<Duration>,
    now: std::time::SystemTime,
) -> Result<Vec<PathBuf>, InputError> {
    let files = own_files(handle.path())?;
    let mut doomed = vec![false; files.len()];
    if let Some(age) = max_age {
        for (f, d) in files.iter().zip(doomed.iter_mut()) {
            *d = std::fs::symlink_metadata(&f.path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|d| d > age);
        }
    }
    if let Some(keep) = keep {
        // Per PID, newest first; the two files of a snapshot share their rank.
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (&files[a], &files[b]);
            a.pid.cmp(&b.pid).then_with(|| b.when.cmp(&a.when))
        });
        let mut rank = 0;
        for (k, &i) in order.iter().enumerate() {
            if let Some(&prev) = k.checked_sub(1).map(|k| &order[k]) {
                if files[prev].pid != files[i].pid {
                    rank = 0;
                } else if files[prev].when != files[i].when {
                    rank += 1;
                }
            }
            if rank >= keep {
                doomed[i] = true;
            }
        }
    }
    let mut gone = Vec::new();
    for (f, _) in files.iter().zip(&doomed).filter(|(_, d)| **d) {
        // Removed through the directory opened once, by name; one a concurrent run removed
        // first is gone all the same.
        match handle.remove(&f.name) {
            Ok(()) => gone.push(f.path.clone()),
            Err(InputError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            }
            Err(e) => return Err(e),
        }
    }
    Ok(gone)
}

/// How old a temporary file must be before it may be a killed write's leftover.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60);

/// Removes what a snapshot write killed mid-way (SIGKILL, power loss) left in `handle`'s
/// directory: mlsdiag's temporary files that are yours, older than [`STALE_TEMP_AGE`], and
/// whose writer (the PID in the name) is gone, or older than a day whoever has that PID now.
/// A lone `.json` it linked before it died is kept: it is a whole snapshot. Returns the files
/// removed. Best effort: a file it cannot remove stays, and never stops a snapshot.
pub fn remove_stale_temps(handle: &crate::output::Dir, now: std::time::SystemTime) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let euid = crate::input::euid();
    let Ok(listing) = list(handle.path()) else {
        return vec![];
    };
    let mut gone = Vec::new();
    for (name, writer) in listing.temps {
        let path = handle.path().join(&name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        let stale =
            age > STALE_TEMP_AGE && (!running(writer) || age > Duration::from_secs(24 * 3600));
        let yours = meta.file_type().is_file() && meta.uid() == euid;
        if stale && yours && handle.remove(&name).is_ok() {
            gone.push(path);
        }
    }
    gone
}

/// Whether a process `pid` exists (ours or another user's).
fn running(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
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

    /// The least a snapshot file holds: its kind and when it was taken.
    #[derive(Debug, serde::Deserialize)]
    struct Tiny {
        kind: String,
        taken_at: DateTime<Utc>,
    }

    impl Record for Tiny {
        fn kind(&self) -> &str {
            &self.kind
        }
        fn taken_at(&self) -> DateTime<Utc> {
            self.taken_at
        }
    }

    fn tiny(at: &str) -> String {
        format!(r#"{{"kind":"{SNAPSHOT_KIND}","taken_at":"{at}"}}"#)
    }

    /// A private file with `text`, as `save` writes them.
    fn put(dir: &Path, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::OpenOptionsExt;
        let p = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        p
    }

    #[test]
    fn every_snapshot_file_is_judged_and_an_untrusted_one_is_left_out() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let me = crate::input::euid();
        put(
            d.path(),
            "worker_7_20260105_100000.json",
            &tiny("2026-01-05T10:00:00Z"),
        );
        let forged = put(
            d.path(),
            "worker_7_20260105_110000.json",
            &tiny("2026-01-05T11:00:00Z"),
        );
        std::fs::set_permissions(&forged, std::fs::Permissions::from_mode(0o666)).unwrap();
        let group = put(
            d.path(),
            "worker_7_20260105_120000.json",
            &tiny("2026-01-05T12:00:00Z"),
        );
        std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o620)).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = put(elsewhere.path(), "x.json", &tiny("2026-01-05T13:00:00Z"));
        std::os::unix::fs::symlink(&target, d.path().join("worker_7_20260105_130000.json"))
            .unwrap();
        // A .txt is for people, never read: whatever it is, it says nothing to act on.
        std::os::unix::fs::symlink(&target, d.path().join("worker_7_20260105_130000.txt")).unwrap();
        put(d.path(), "worker_7_20260105_140000.json", "{not json");

        let r = read_all::<Tiny>(d.path(), Some(me)).unwrap();
        let read: Vec<String> = r
            .snaps
            .iter()
            .map(|(_, t)| t.taken_at.to_rfc3339())
            .collect();
        assert_eq!(
            read,
            ["2026-01-05T10:00:00+00:00"],
            "only the trusted file is read"
        );
        assert_eq!(r.untrusted.len(), 3, "{:?}", r.untrusted);
        assert!(
            r.untrusted
                .iter()
                .any(|u| u.contains("worker_7_20260105_110000.json")
                    && u.contains("writable by everyone")),
            "{:?}",
            r.untrusted
        );
        assert!(
            r.untrusted
                .iter()
                .any(|u| u.contains("worker_7_20260105_120000.json")
                    && u.contains("writable by its group")),
            "{:?}",
            r.untrusted
        );
        assert!(
            r.untrusted
                .iter()
                .any(|u| u.contains("worker_7_20260105_130000.json")
                    && u.contains("not a regular file")),
            "{:?}",
            r.untrusted
        );
        assert_eq!(r.unreadable.len(), 1, "{:?}", r.unreadable);
        // Judged as another user would be: a file of yours is theirs to distrust (root's are
        // trusted by all).
        if me != 0 {
            let r = read_all::<Tiny>(d.path(), Some(me + 4242)).unwrap();
            assert!(r.snaps.is_empty(), "{:?}", r.snaps);
            assert!(
                r.untrusted.iter().any(|u| u.contains("owned by uid")),
                "{:?}",
                r.untrusted
            );
        }
        // Read for showing only (postmortem): every regular file, oldest first.
        let r = read_all::<Tiny>(d.path(), None).unwrap();
        assert_eq!(r.snaps.len(), 3);
        assert!(r.untrusted.is_empty());
        assert!(
            r.snaps
                .windows(2)
                .all(|w| w[0].1.taken_at <= w[1].1.taken_at)
        );
    }

    #[test]
    fn many_snapshots_are_read_in_order_on_every_thread() {
        let d = tempfile::tempdir().unwrap();
        // Names and times in opposite orders: the result is by time.
        for i in 0..300 {
            let at = DateTime::from_timestamp(1_767_600_000 - i * 60, 0).unwrap();
            put(
                d.path(),
                &format!("worker_{}_20260105_{:06}.json", i % 3, i),
                &tiny(&at.to_rfc3339()),
            );
        }
        let r = read_all::<Tiny>(d.path(), Some(crate::input::euid())).unwrap();
        assert_eq!(r.snaps.len(), 300);
        assert!(
            r.snaps
                .windows(2)
                .all(|w| w[0].1.taken_at < w[1].1.taken_at)
        );
        assert!(r.snaps[0].0.ends_with("worker_2_20260105_000299.json"));
    }

    #[test]
    fn prune_is_linear_in_the_files() {
        // 10k files of one PID: comparing each file with every other (as retention once did)
        // takes minutes here; a sort takes a fraction of a second.
        let d = tempfile::tempdir().unwrap();
        for i in 0..5000 {
            for ext in ["json", "txt"] {
                put(d.path(), &format!("worker_7_20260105_{i:06}.{ext}"), "x");
            }
        }
        let h = prepare_dir(d.path()).unwrap();
        let t = std::time::Instant::now();
        let gone = prune(&h, Some(3), None, std::time::SystemTime::now()).unwrap();
        let took = t.elapsed();
        assert_eq!(gone.len(), 10_000 - 6);
        assert!(d.path().join("worker_7_20260105_004999.json").exists());
        assert!(took < Duration::from_secs(10), "prune took {took:?}");
    }

    #[test]
    fn prune_counts_a_lone_half_and_orders_same_second_snapshots_by_number() {
        let d = tempfile::tempdir().unwrap();
        // A write killed between its two links left a .json alone: still a snapshot.
        put(d.path(), "worker_7_20260105_100000.json", "x");
        for n in ["", "_2", "_10"] {
            for ext in ["json", "txt"] {
                put(d.path(), &format!("worker_7_20260105_110000{n}.{ext}"), "x");
            }
        }
        let h = prepare_dir(d.path()).unwrap();
        let gone = prune(&h, Some(3), None, std::time::SystemTime::now()).unwrap();
        assert_eq!(gone, [d.path().join("worker_7_20260105_100000.json")]);
        let gone = prune(&h, Some(1), None, std::time::SystemTime::now()).unwrap();
        assert_eq!(gone.len(), 4, "{gone:?}");
        assert!(
            d.path().join("worker_7_20260105_110000_10.json").exists(),
            "_10 is after _2"
        );
    }

    #[test]
    fn a_killed_writes_temp_files_are_removed_once_stale_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now();
        let aged = |p: &Path, secs: u64| {
            let f = std::fs::File::options().write(true).open(p).unwrap();
            f.set_modified(now - Duration::from_secs(secs)).unwrap();
        };
        // No process has this PID (above any pid_max): its writer is gone.
        let dead = ".mlsdiag-999999999-3-123456.tmp";
        let stale = put(d.path(), dead, "{\"half\":");
        aged(&stale, 120);
        let fresh = put(d.path(), ".mlsdiag-999999999-4-123456.tmp", "x");
        aged(&fresh, 10);
        // Its writer is alive (this test): a write in progress, however slow.
        let live = put(
            d.path(),
            &format!(".mlsdiag-{}-0-1.tmp", std::process::id()),
            "x",
        );
        aged(&live, 120);
        // Not a temp file's name: never touched.
        let other = put(d.path(), ".mlsdiag-x.tmp", "x");
        aged(&other, 3600);
        let lone = put(
            d.path(),
            "worker_7_20260105_100000.json",
            &tiny("2026-01-05T10:00:00Z"),
        );
        aged(&lone, 3600);
        let h = prepare_dir(d.path()).unwrap();
        let gone = remove_stale_temps(&h, now);
        assert_eq!(gone, std::slice::from_ref(&stale));
        assert!(!stale.exists() && fresh.exists() && live.exists() && other.exists());
        // The lone .json the killed write linked is a snapshot: kept, and read.
        let r = read_all::<Tiny>(d.path(), Some(crate::input::euid())).unwrap();
        assert_eq!(r.snaps.len(), 1, "{r:?}");
        assert!(r.unreadable.is_empty() && r.untrusted.is_empty(), "{r:?}");
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
