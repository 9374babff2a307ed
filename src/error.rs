//! Expected failures, typed so callers can turn them into a verdict or an exit code.
//!
//! Inspecting other processes fails in ordinary ways: the process exits mid-read, belongs to
//! another user, or a file is malformed. Those are reported (verdict `unknown`, "gone", an error
//! naming the file), never a panic. Everything else travels as `anyhow::Error` to `main`.

use std::path::{Path, PathBuf};

/// Why a process could not be inspected.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum InspectError {
    #[error("process {pid} is gone")]
    Gone { pid: u32 },
    #[error("permission denied reading {path} of process {pid}; {remedy}")]
    PermissionDenied {
        pid: u32,
        path: String,
        remedy: String,
    },
    #[error("cannot read {path} of process {pid}: {message}")]
    Io {
        pid: u32,
        path: String,
        message: String,
    },
    #[error("{0}")]
    Unsupported(String),
}

/// Usage and input errors that end a command with exit code 3 (UNKNOWN).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl InputError {
    /// An I/O error on `path`, for `map_err`: the error names the file it is about.
    pub fn io(path: &Path) -> impl Fn(std::io::Error) -> InputError + Copy + '_ {
        move |source| InputError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The advice printed with a permission error, kept in one place so README's "Permissions"
/// section and the tool say the same thing.
///
/// # Platform specific behavior
/// Linux adds the Yama ptrace rule (syscall details); macOS adds that SIP-protected processes
/// cannot be inspected even as root.
pub fn permission_remedy(owner_uid: Option<u32>) -> String {
    let who = match owner_uid {
        Some(uid) => format!("run mlsdiag as the worker's user (uid {uid})"),
        None => "run mlsdiag as the worker's user".to_string(),
    };
    if cfg!(target_os = "macos") {
        format!("{who}, or with sudo; SIP-protected processes cannot be inspected even as root")
    } else {
        format!(
            "{who}, or with sudo; under Yama (kernel.yama.ptrace_scope >= 1) syscall details need the same \
             user and ptrace rights (CAP_SYS_PTRACE in containers)"
        )
    }
}

/// An error and its causes as one line, each said once: a message that already holds its
/// cause's text (a context written as `"{path}: {e}"`) does not repeat it
/// (`/missing: No such file or directory (os error 2)`, not that twice).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod one_line_tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(io).context("/missing: entity not found");
        assert_eq!(one_line(&e), "/missing: entity not found");
        let e = anyhow::anyhow!("bad line 3").context("registry /tmp/r.json");
        assert_eq!(one_line(&e), "registry /tmp/r.json: bad line 3");
    }
}
