//! Writing into directories others may reach: opened once, written relative to that handle.
//!
//! Snapshots and metrics go into directories named by a flag (`--dir`, `--textfile`), often as
//! root. A path is a question asked again at every use: between checking `snaps` and writing
//! `snaps/x.json`, another user could swap the directory for a symlink and root would write where
//! they chose. So a directory is opened once, with `O_DIRECTORY | O_NOFOLLOW` on the path with
//! any trailing slash removed (`link/` would otherwise follow the link), and every file is
//! created (`openat` with `O_CREAT | O_EXCL | O_NOFOLLOW`), published (`linkat`, which never
//! replaces, or `renameat`) and removed (`unlinkat`) relative to that descriptor.
//!
//! A snapshot directory must also be the invoker's or root's and writable by nobody else
//! ([`Dir::open_private`]): evidence others can rewrite is not evidence.

use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::InputError;

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn bad(path: &Path, message: impl Into<String>) -> InputError {
    InputError::BadFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn cstr(s: &OsStr) -> std::io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// `path` without trailing slashes (`/` stays `/`).
fn trimmed(path: &Path) -> PathBuf {
    let b = path.as_os_str().as_bytes();
    let mut end = b.len();
    while end > 1 && b[end - 1] == b'/' {
        end -= 1;
    }
    PathBuf::from(OsStr::from_bytes(&b[..end]))
}

impl Dir {
    /// Open an existing directory for writing `what` into it. A symlink (with or without a
    /// trailing slash) or anything but a directory is an error naming it; `Ok(None)` when it
    /// does not exist.
    pub fn open(path: &Path, what: &str) -> Result<Option<Dir>, InputError> {
        let p = trimmed(path);
        let c = cstr(p.as_os_str()).map_err(InputError::io(path))?;
        // SAFETY: open(2) with a NUL-terminated path; the descriptor is owned below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(None),
                Some(libc::ELOOP) => Err(bad(
                    path,
                    format!("is a symbolic link; refusing to write {what} through it"),
                )),
                Some(libc::ENOTDIR)
                    if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_symlink()) =>
                {
                    Err(bad(
                        path,
                        format!("is a symbolic link; refusing to write {what} through it"),
                    ))
                }
                Some(libc::ENOTDIR) => Err(bad(path, "exists and is not a directory")),
                _ => Err(InputError::io(path)(e)),
            };
        }
        // SAFETY: `fd` was just returned by open(2) and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Some(Dir {
            fd,
            path: path.to_path_buf(),
        }))
    }

    /// Open (creating it 0700 when missing) a directory for evidence: it must be owned by the
    /// invoking user or root and writable by nobody else, or it is refused with the reason.
    pub fn open_private(path: &Path, what: &str) -> Result<Dir, InputError> {
        let dir = match Dir::open(path, what)? {
            Some(d) => d,
            None => {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(trimmed(path))
                    .map_err(InputError::io(path))?;
                let d = Dir::open(path, what)?
                    .ok_or_else(|| bad(path, "vanished after it was created"))?;
                // 0700 whatever the umask, set on the descriptor, never by name, and only on a
                // directory that is ours (another user may have made it in between).
                let (uid, me) = (d.metadata()?.uid(), crate::input::euid());
                // SAFETY: fchmod(2) on the directory descriptor `d` owns.
                if uid == me && unsafe { libc::fchmod(d.fd.as_raw_fd(), 0o700) } != 0 {
                    return Err(InputError::io(path)(std::io::Error::last_os_error()));
                }
                d
            }
        };
        let meta = dir.metadata()?;
        let (uid, me) = (meta.uid(), crate::input::euid());
        if uid != me && uid != 0 {
            return Err(bad(
                path,
                format!(
                    "is owned by uid {uid}, not by you (uid {me}) or root; refusing to write {what} into it"
                ),
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(bad(
                path,
                format!(
                    "is writable by others (mode {:o}); refusing to write {what} into it (chmod go-w it, or choose another --dir)",
                    meta.mode() & 0o7777
                ),
            ));
        }
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's own metadata, from the open descriptor.
    pub fn metadata(&self) -> Result<std::fs::Metadata, InputError> {
        // SAFETY: dup(2) of a descriptor this Dir owns; the File below owns the duplicate.
        let dup = unsafe { libc::dup(self.fd.as_raw_fd()) };
        if dup < 0 {
            return Err(InputError::io(&self.path)(std::io::Error::last_os_error()));
        }
        // SAFETY: `dup` is a fresh descriptor owned by nothing else.
        let f = unsafe { std::fs::File::from_raw_fd(dup) };
        f.metadata().map_err(InputError::io(&self.path))
    }

    fn name(&self, name: &str) -> Result<CString, InputError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(bad(&self.path.join(name), "is not a plain file name"));
        }
        cstr(OsStr::new(name)).map_err(InputError::io(&self.path.join(name)))
    }

    /// A new temporary file holding `bytes` (mode `mode`, synced): its name in this directory.
    fn temp(&self, bytes: &[u8], mode: u32) -> Result<CString, InputError> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!(".mlsdiag-{}-{n}-{nanos}.tmp", std::process::id());
            let c = self.name(&name)?;
            // SAFETY: openat(2) relative to our directory descriptor, a NUL-terminated name.
            let fd = unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    c.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    mode as libc::c_uint,
                )
            };
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    continue;
                }
                return Err(InputError::io(&self.path.join(&name))(e));
            }
            // SAFETY: `fd` was just returned by openat(2) and is owned by nothing else.
            let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
            // The mode is set on the open descriptor (the umask reduced the creation mode):
            // never by name, which someone could swap for a symlink.
            // SAFETY: fchmod(2) on a descriptor `f` owns.
            let chmod = if unsafe { libc::fchmod(f.as_raw_fd(), mode as libc::mode_t) } == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            };
            let written = chmod
                .and_then(|()| f.write_all(bytes))
                .and_then(|()| f.sync_all());
            if let Err(e) = written {
                self.unlink_c(&c);
                return Err(InputError::io(&self.path.join(&name))(e));
            }
            return Ok(c);
        }
        Err(bad(&self.path, "no free temporary file name"))
    }

    /// Give the temporary file `tmp` (holding `bytes`) the name `target`, failing if it exists:
    /// a hard link, or on a filesystem without them (exFAT, some network mounts), a new file
    /// created exclusively and written (never replacing anything either way).
    fn publish_new(&self, tmp: &CString, target: &CString, bytes: &[u8]) -> std::io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: linkat(2) between two names in our directory; fails if `target` exists.
        if unsafe { libc::linkat(fd, tmp.as_ptr(), fd, target.as_ptr(), 0) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if !matches!(
            e.raw_os_error(),
            Some(libc::EPERM | libc::EOPNOTSUPP | libc::ENOSYS | libc::EXDEV)
        ) {
            return Err(e);
        }
        // SAFETY: openat(2) relative to our directory descriptor, a NUL-terminated name.
        let nfd = unsafe {
            libc::openat(
                fd,
                target.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if nfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `nfd` was just returned by openat(2) and is owned by nothing else.
        let mut f = unsafe { std::fs::File::from_raw_fd(nfd) };
        let written = f.write_all(bytes).and_then(|()| f.sync_all());
        if written.is_err() {
            // Never leave half a file under its final name.
            self.unlink_c(target);
        }
        written
    }

    fn unlink_c(&self, c: &CString) {
        // SAFETY: unlinkat(2) relative to our directory descriptor.
        unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) };
    }

    /// Write `bytes` to the new file `name` (0600). `Ok(false)` when the name is taken: nothing
    /// is ever replaced.
    pub fn write_new(&self, name: &str, bytes: &[u8]) -> Result<bool, InputError> {
        self.write_new_together(&[(name, bytes)])
    }

    /// Write several new files that land together or not at all: each is written to a
    /// temporary file first, then all are linked; if one name is taken or a link fails, the
    /// ones already linked are removed. `Ok(false)` when a name was taken.
    pub fn write_new_together(&self, files: &[(&str, &[u8])]) -> Result<bool, InputError> {
        // Every name is checked before anything is created.
        let targets = files
            .iter()
            .map(|(name, _)| self.name(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut temps = Vec::new();
        for ((_, bytes), target) in files.iter().zip(targets) {
            match self.temp(bytes, 0o600) {
                Ok(t) => temps.push((target, t)),
                Err(e) => {
                    for (_, t) in &temps {
                        self.unlink_c(t);
                    }
                    return Err(e);
                }
            }
        }
        let mut linked: Vec<&CString> = Vec::new();
        let mut outcome = Ok(true);
        for ((target, tmp), (name, bytes)) in temps.iter().zip(files) {
            if let Err(e) = self.publish_new(tmp, target, bytes) {
                outcome = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Ok(false)
                } else {
                    Err(InputError::io(&self.path.join(name))(e))
                };
                break;
            }
            linked.push(target);
        }
        if !matches!(outcome, Ok(true)) {
            for t in linked {
                self.unlink_c(t);
            }
        }
        for (_, t) in &temps {
            self.unlink_c(t);
        }
        outcome
    }

    /// Replace `name` with `bytes` (mode `mode`) atomically: readers see the old file or the
    /// new one, never part of either.
    pub fn replace(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), InputError> {
        let target = self.name(name)?;
        let tmp = self.temp(bytes, mode)?;
        let fd = self.fd.as_raw_fd();
        // SAFETY: renameat(2) between two names in our directory.
        if unsafe { libc::renameat(fd, tmp.as_ptr(), fd, target.as_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            self.unlink_c(&tmp);
            return Err(InputError::io(&self.path.join(name))(e));
        }
        Ok(())
    }

    /// Remove the file `name` from this directory.
    pub fn remove(&self, name: &str) -> Result<(), InputError> {
        let c = self.name(name)?;
        // SAFETY: unlinkat(2) relative to our directory descriptor.
        if unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) } != 0 {
            return Err(InputError::io(&self.path.join(name))(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn symlinks_are_refused_with_or_without_a_trailing_slash() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        for p in [
            link.clone(),
            PathBuf::from(format!("{}/", link.display())),
            PathBuf::from(format!("{}//", link.display())),
        ] {
            let e = Dir::open(&p, "snapshots").unwrap_err().to_string();
            assert!(e.contains("symbolic link"), "{}: {e}", p.display());
        }
        let file = d.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(
            Dir::open(&file, "x")
                .unwrap_err()
                .to_string()
                .contains("not a directory")
        );
        assert!(Dir::open(&d.path().join("absent"), "x").unwrap().is_none());
    }

    #[test]
    fn writes_stay_in_the_directory_opened_even_if_it_is_swapped() {
        let d = tempfile::tempdir().unwrap();
        let snaps = d.path().join("snaps");
        let dir = Dir::open_private(&snaps, "snapshots").unwrap();
        assert_eq!(
            std::fs::metadata(&snaps).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // Someone renames the directory away and puts a symlink to elsewhere in its place.
        let elsewhere = d.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::rename(&snaps, d.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &snaps).unwrap();
        assert!(dir.write_new("a.json", b"{}").unwrap());
        assert!(d.path().join("moved/a.json").exists());
        assert!(
            std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
            "nothing written elsewhere"
        );
        // Never replaced; pairs land together or not at all.
        assert!(!dir.write_new("a.json", b"again").unwrap());
        assert_eq!(std::fs::read(d.path().join("moved/a.json")).unwrap(), b"{}");
        assert!(
            !dir.write_new_together(&[("b.json", b"1"), ("a.json", b"2")])
                .unwrap()
        );
        assert!(
            !d.path().join("moved/b.json").exists(),
            "b.json was taken back"
        );
        assert!(
            dir.write_new_together(&[("c.json", b"1"), ("c.txt", b"2")])
                .unwrap()
        );
        dir.replace("m.prom", b"x 1\n", 0o644).unwrap();
        dir.replace("m.prom", b"x 2\n", 0o644).unwrap();
        assert_eq!(
            std::fs::read(d.path().join("moved/m.prom")).unwrap(),
            b"x 2\n"
        );
        dir.remove("c.txt").unwrap();
        let left: Vec<_> = std::fs::read_dir(d.path().join("moved"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".mlsdiag-"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
        assert!(dir.write_new("../escape", b"").is_err());
    }

    #[test]
    fn a_snapshot_directory_others_can_write_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Dir::open_private(&open, "snapshots")
            .unwrap_err()
            .to_string();
        assert!(e.contains("writable by others (mode 777)"), "{e}");
    }
}
