//! `mlsdiag run -- COMMAND ARGS…`: start a stock MLX server with the token record wired in,
//! as `opentelemetry-instrument` and `ddtrace-run` do for their agents.
//!
//! The binary carries the Python module (`python/mlsdiag`) and its start-up hook
//! (`python/mlsdiag/_sitecustomize/sitecustomize.py`). `run` writes them into a directory of
//! the invoking user's (`/tmp/mlsdiag-UID/python-HASH`, judged like every file mlsdiag
//! follows), puts it first on `PYTHONPATH`, sets `MLSDIAG_AUTO=1` and the watchdog's
//! variables, and then *executes* the command in its own place: the server keeps `run`'s PID,
//! gets every signal sent to it directly and its exit status is the one its parent (a shell,
//! launchd, systemd) sees. Each Python process of the command that imports mlx-lm then keeps
//! its record in `/tmp/mlsdiag-UID/progress-PID`, where `check` finds it with no registry.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::cli::RunArgs;

/// The Python files `run` puts on `PYTHONPATH`, by their path there.
const FILES: &[(&str, &str)] = &[
    (
        "sitecustomize.py",
        include_str!("../../python/mlsdiag/_sitecustomize/sitecustomize.py"),
    ),
    (
        "mlsdiag/__init__.py",
        include_str!("../../python/mlsdiag/__init__.py"),
    ),
    (
        "mlsdiag/_auto.py",
        include_str!("../../python/mlsdiag/_auto.py"),
    ),
    (
        "mlsdiag/__main__.py",
        include_str!("../../python/mlsdiag/__main__.py"),
    ),
];

/// Runs the command in this process's place; returns only when it cannot be started (126: it
/// cannot be executed, 127: not found, as `env` and `nohup` say).
pub fn run(args: &RunArgs) -> anyhow::Result<u8> {
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command to run (mlsdiag run -- COMMAND ARGS…)"))?;
    let euid = crate::input::euid();
    let dir = python_dir(&crate::progress::user_dir(euid), euid)?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest).envs(environment(args, &dir));
    let err = cmd.exec();
    eprintln!("mlsdiag run: cannot run {program}: {err}");
    Ok(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

/// The variables `run` sets for the command.
fn environment(args: &RunArgs, python: &Path) -> Vec<(String, std::ffi::OsString)> {
    let mut path = std::ffi::OsString::from(python);
    if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(old);
    }
    let mut env = vec![
        ("PYTHONPATH".to_string(), path),
        ("MLSDIAG_AUTO".to_string(), "1".into()),
    ];
    if let Some(d) = &args.state_dir {
        env.push(("MLSDIAG_STATE_DIR".into(), d.clone().into_os_string()));
    }
    if let Some(w) = args.watchdog {
        env.push((
            "MLSDIAG_WATCHDOG".into(),
            w.as_secs_f64().to_string().into(),
        ));
        if args.watchdog_exit {
            env.push(("MLSDIAG_WATCHDOG_EXIT".into(), "1".into()));
        }
    }
    env
}

/// The directory of the Python files, written for this build: `USER_DIR/python-HASH` when
/// `USER_DIR` is this user's own (mlsdiag would put code there that another user could
/// replace otherwise), else a fresh private temporary directory that is left behind.
fn python_dir(user_dir: &Path, euid: u32) -> anyhow::Result<PathBuf> {
    let name = format!("python-{:016x}", content_hash());
    match own_dir(user_dir, euid).and_then(|()| {
        let d = user_dir.join(&name);
        own_dir(&d, euid)?;
        write_files(&d)?;
        Ok(d)
    }) {
        Ok(d) => Ok(d),
        Err(why) => {
            eprintln!(
                "mlsdiag run: warning: {why}; the Python hook goes to a private temporary directory instead, and the token record finds no usable directory"
            );
            let d = tempfile::Builder::new()
                .prefix("mlsdiag-run-")
                .tempdir()?
                .keep();
            write_files(&d).map_err(|e| anyhow::anyhow!(e))?;
            Ok(d)
        }
    }
}

/// Makes `dir` (mode 0755) or accepts it when it is a directory of `euid`'s or root's that
/// nobody else may write; `Err` says why not.
fn own_dir(dir: &Path, euid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    let m = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !m.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if (m.uid() != euid && m.uid() != 0) || m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is owned by uid {} or writable by others (mode {:o})",
            dir.display(),
            m.uid(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Writes every file under `dir`, each through a fresh temporary name renamed into place (a
/// link planted there is replaced, never followed).
fn write_files(dir: &Path) -> Result<(), String> {
    for (rel, text) in FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .recursive(true)
                .create(parent)
                .map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        if std::fs::read(&path).is_ok_and(|b| b == text.as_bytes()) {
            continue;
        }
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("{}: {e}", path.display()));
        }
    }
    Ok(())
}

/// A hash of the files (FNV-1a), so that two builds never share a directory.
fn content_hash() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (rel, text) in FILES {
        for b in rel.bytes().chain([0]).chain(text.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_are_written_once_into_a_directory_of_ours_and_refused_elsewhere() {
        let t = tempfile::tempdir().unwrap();
        let me = crate::input::euid();
        let user = t.path().join("mlsdiag-user");
        let d = python_dir(&user, me).unwrap();
        assert!(d.starts_with(&user), "{d:?}");
        for (rel, text) in FILES {
            assert_eq!(std::fs::read_to_string(d.join(rel)).unwrap(), *text);
        }
        assert_eq!(
            python_dir(&user, me).unwrap(),
            d,
            "the same build, the same place"
        );
        // A directory others may write is not where code is put.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&user, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            own_dir(&user, me)
                .unwrap_err()
                .contains("writable by others")
        );
        let elsewhere = python_dir(&user, me).unwrap();
        assert!(!elsewhere.starts_with(&user), "{elsewhere:?}");
        std::fs::remove_dir_all(elsewhere).unwrap();
    }

    #[test]
    fn the_environment_puts_the_hook_first_and_names_the_watchdog() {
        let args = RunArgs {
            watchdog: Some(std::time::Duration::from_millis(2500)),
            watchdog_exit: true,
            state_dir: None,
            command: vec!["mlx_lm.server".into()],
        };
        let env = environment(&args, Path::new("/x/python-1"));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert!(
            get("PYTHONPATH")
                .unwrap()
                .to_string_lossy()
                .starts_with("/x/python-1")
        );
        assert_eq!(get("MLSDIAG_AUTO").unwrap(), "1");
        assert_eq!(get("MLSDIAG_WATCHDOG").unwrap(), "2.5");
        assert_eq!(get("MLSDIAG_WATCHDOG_EXIT").unwrap(), "1");
        assert_eq!(get("MLSDIAG_STATE_DIR"), None);
    }
}
