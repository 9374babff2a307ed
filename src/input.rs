//! Input files from places others can write: opened so they cannot hang or exhaust mlsdiag, and
//! judged for whether they may make it act.
//!
//! mlsdiag often runs as root and reads `/tmp/mlx-server`, which any local user can create. So:
//!
//! - **Opening** ([`open_regular`]): a path is opened with `O_NONBLOCK` (a FIFO cannot block the
//!   open) and `O_NOCTTY`, `fstat`ed, and refused unless it is a regular file; only then is the
//!   descriptor made blocking again. `/dev/zero`, a FIFO, a socket or a directory is an error that
//!   names the file and what it is.
//! - **Reading whole** ([`read_to_string`]): with a size limit per kind of file, checked on the
//!   open descriptor and while reading (a file growing under us stops at the limit too).
//! - **Trust** ([`trust`]): OpenSSH StrictModes, in short. A file may make mlsdiag act (signal a
//!   process, follow a path it names) only when it and every directory above it are owned by
//!   the invoking user or root and writable by nobody else; a world-writable directory is
//!   accepted only with the sticky bit (`/tmp`), which keeps others from replacing entries they
//!   do not own. Symlinks are judged as the path names them (the link's directory and owner)
//!   and as they resolve.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::InputError;

/// Size limits for files read whole.
pub const REGISTRY_LIMIT: u64 = 64 << 20;
pub const SNAPSHOT_LIMIT: u64 = 64 << 20;
pub const RECORDING_LIMIT: u64 = 256 << 20;
pub const FORMAT_FILE_LIMIT: u64 = 1 << 20;
pub const SMALL_FILE_LIMIT: u64 = 16 << 20;

fn bad(path: &Path, message: impl Into<String>) -> InputError {
    InputError::BadFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// What a non-regular file is, in words.
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Open `path` for reading without blocking on it, and only if it is a regular file. The path
/// is `stat`ed before the open (opening some devices is itself an action: a watchdog arms, a
/// tape rewinds) and the descriptor `fstat`ed after it, and both must be the same file.
pub fn open_regular(path: &Path) -> Result<File, InputError> {
    // A file replaced by rename between the stat and the open (an orchestrator rewriting its
    // registry atomically, logrotate's create) is tried again, a few times.
    let mut tries = 0;
    loop {
        match open_regular_once(path) {
            Err(InputError::BadFile { message, .. })
                if message.starts_with("was replaced") && tries < 3 =>
            {
                tries += 1;
            }
            other => return other,
        }
    }
}

fn open_regular_once(path: &Path) -> Result<File, InputError> {
    let refuse = |ft: &std::fs::FileType| {
        bad(
            path,
            format!(
                "is {}, not a regular file; refusing to read it",
                kind_of(ft)
            ),
        )
    };
    let before = std::fs::metadata(path).map_err(InputError::io(path))?;
    if !before.file_type().is_file() {
        return Err(refuse(&before.file_type()));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(InputError::io(path))?;
    let meta = file.metadata().map_err(InputError::io(path))?;
    if !meta.file_type().is_file() {
        return Err(refuse(&meta.file_type()));
    }
    if (meta.dev(), meta.ino()) != (before.dev(), before.ino()) {
        return Err(bad(
            path,
            "was replaced while it was opened; refusing to read it",
        ));
    }
    set_blocking(&file).map_err(InputError::io(path))?;
    Ok(file)
}

fn set_blocking(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function's caller owns; F_GETFL/F_SETFL take no
    // pointers.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Read a regular file whole, refusing more than `limit` bytes.
pub fn read_to_string(path: &Path, limit: u64) -> Result<String, InputError> {
    read_with_metadata(path, limit).map(|(text, _)| text)
}

/// [`read_to_string`], with the metadata of the very file read (for [`trust_read`]).
pub fn read_with_metadata(
    path: &Path,
    limit: u64,
) -> Result<(String, std::fs::Metadata), InputError> {
    let file = open_regular(path)?;
    let too_big = || {
        bad(
            path,
            format!(
                "is larger than {} MiB; refusing to read it whole",
                limit >> 20
            ),
        )
    };
    let meta = file.metadata().map_err(InputError::io(path))?;
    let len = meta.len();
    if len > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(InputError::io(path))?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        bad(
            path,
            format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })?;
    Ok((text, meta))
}

/// Whether a file may make mlsdiag act, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    Trusted,
    Untrusted(String),
}

impl Trust {
    pub fn is_trusted(&self) -> bool {
        matches!(self, Trust::Trusted)
    }
}

/// The invoking user's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Judge `path` by the rule in the module docs, for a process running as `euid`.
pub fn trust(path: &Path, euid: u32) -> Trust {
    match untrusted_because(path, euid) {
        None => Trust::Trusted,
        Some(why) => Trust::Untrusted(why),
    }
}

/// Judge a file that was read, by the metadata of the descriptor it was read from (`meta`,
/// from [`read_with_metadata`]) as well as by its path: a file swapped after the read and
/// before a check by path cannot pass for the one that was read.
pub fn trust_read(path: &Path, meta: &std::fs::Metadata, euid: u32) -> Trust {
    if let Some(why) = judge(path, meta, true, euid) {
        return Trust::Untrusted(why);
    }
    trust(path, euid)
}

/// Judge one file of a directory judged once by [`trust`] (a directory of thousands of
/// snapshots): the file alone, by the metadata of the descriptor it was read from. The caller
/// makes sure the name was no symlink.
pub fn trust_file(path: &Path, meta: &std::fs::Metadata, euid: u32) -> Trust {
    match judge(path, meta, true, euid) {
        None => Trust::Trusted,
        Some(why) => Trust::Untrusted(why),
    }
}

fn judge(p: &Path, meta: &std::fs::Metadata, last: bool, euid: u32) -> Option<String> {
    let uid = meta.uid();
    if uid != euid && uid != 0 {
        return Some(format!(
            "{} is owned by uid {uid}, not by you (uid {euid}) or root",
            p.display()
        ));
    }
    if meta.file_type().is_symlink() {
        return None; // a link's own mode means nothing; its owner and directory do
    }
    let mode = meta.permissions().mode();
    let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
    if mode & 0o022 != 0 && (last || !sticky_dir) {
        return Some(format!(
            "{} is writable by {} (mode {:o})",
            p.display(),
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            mode & 0o7777
        ));
    }
    None
}

fn untrusted_because(path: &Path, euid: u32) -> Option<String> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(d) => d.join(path),
            Err(e) => return Some(format!("{}: the current directory: {e}", path.display())),
        }
    };
    // `..` is resolved by the kernel through links; judging it as text could judge another
    // path than the one read.
    if abs.components().any(|c| c == Component::ParentDir) {
        return Some(format!("{} contains `..`", path.display()));
    }
    // The path as named: every directory on the way, and the last component itself (a link).
    let mut chain: Vec<PathBuf> = Vec::new();
    let mut cur = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::RootDir => cur.push("/"),
            Component::Normal(n) => {
                cur.push(n);
                chain.push(cur.clone());
            }
            _ => {}
        }
    }
    let root = match std::fs::symlink_metadata("/") {
        Ok(m) => m,
        Err(e) => return Some(format!("/: {e}")),
    };
    if let Some(why) = judge(Path::new("/"), &root, false, euid) {
        return Some(why);
    }
    for (i, p) in chain.iter().enumerate() {
        let meta = match std::fs::symlink_metadata(p) {
            Ok(m) => m,
            Err(e) => return Some(format!("{}: {e}", p.display())),
        };
        if let Some(why) = judge(p, &meta, i + 1 == chain.len(), euid) {
            return Some(why);
        }
        // A link on the way is also judged as it resolves, its whole target chain included.
        if meta.file_type().is_symlink() {
            let target = match std::fs::canonicalize(p) {
                Ok(t) => t,
                Err(e) => return Some(format!("{}: {e}", p.display())),
            };
            if let Some(why) = untrusted_because(&target, euid) {
                return Some(why);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_directories_are_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("registry.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err().to_string();
        assert!(e.contains("registry.json") && e.contains("FIFO"), "{e}");
        let e = read_to_string(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/dev/zero") && e.contains("character device"),
            "{e}"
        );
        let e = open_regular(d.path()).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
    }

    #[test]
    fn size_limits_and_text() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big.json");
        std::fs::write(&p, vec![b'x'; 3 << 20]).unwrap();
        let e = read_to_string(&p, 2 << 20).unwrap_err().to_string();
        assert!(
            e.contains("big.json") && e.contains("larger than 2 MiB"),
            "{e}"
        );
        assert_eq!(read_to_string(&p, 4 << 20).unwrap().len(), 3 << 20);
        std::fs::write(&p, b"ok\xff").unwrap();
        assert!(
            read_to_string(&p, 1 << 20)
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
    }

    #[test]
    fn trust_follows_owner_and_write_bits_up_the_path() {
        let me = euid();
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("mlx-server");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.join("worker_registry.json");
        std::fs::write(&f, "[]").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        // /tmp is world-writable but sticky: fine above our own directory.
        assert_eq!(trust(&f, me), Trust::Trusted);
        // Group- or world-writable file or directory: not.
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(trust(&f, me), Trust::Untrusted(w) if w.contains("writable by everyone")));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(
            matches!(trust(&f, me), Trust::Untrusted(w) if w.contains("writable by its group"))
        );
        // A sticky world-writable directory right above the file is not enough for the file
        // itself... but is for what is below it.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(trust(&f, me), Trust::Trusted);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Judged as another user would be: owned by neither them nor root.
        if me == 0 {
            assert!(
                matches!(trust(&f, 4242), Trust::Trusted),
                "root's files are trusted by all"
            );
        } else {
            assert!(matches!(trust(&f, 4242), Trust::Untrusted(w) if w.contains("owned by uid")));
        }
        // A link is judged where it is and where it leads.
        let link = d.path().join("link.json");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert_eq!(trust(&link, me), Trust::Trusted);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o646)).unwrap();
        assert!(!trust(&link, me).is_trusted());
        assert!(!trust(&d.path().join("absent"), me).is_trusted());
        // `..` is resolved by the kernel through links: never judged as text.
        let dotted = dir
            .join("..")
            .join("mlx-server")
            .join("worker_registry.json");
        assert!(matches!(trust(&dotted, me), Trust::Untrusted(w) if w.contains("`..`")));
        // The file read is judged by its own descriptor's metadata too.
        let (_, meta) = read_with_metadata(&f, 1 << 20).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o646)).unwrap();
        assert!(
            !trust_read(&f, &meta, me).is_trusted(),
            "the path is judged as well"
        );
    }
}
