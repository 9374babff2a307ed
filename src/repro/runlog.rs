//! The campaign's own log of `repro --model` runs, written in the MLS log format
//! (docs/log-formats.md): a request line when a run is handed to a runner, a completion,
//! failure or timeout line when it ends.
//!
//! It is what makes a stalled runner's snapshot say HUNG with evidence rather than "idle": the
//! snapshot reads this log like an MLS log and finds the run in flight, by the runner's pid.
//! Afterwards `mlsdiag logs runs.log` gives the campaign's latency and throughput figures.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::InputError;

pub struct RunLog {
    pub path: PathBuf,
    file: Mutex<File>,
}

impl RunLog {
    /// Opens `DIR/runs.log` for appending (a second campaign into the same directory adds to
    /// it); the directory is created private, and neither it nor the file may be a symlink.
    pub fn open(dir: &Path) -> Result<RunLog, InputError> {
        use std::os::unix::fs::OpenOptionsExt;
        crate::store::prepare_dir(dir)?;
        let path = dir.join("runs.log");
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(InputError::io(&path))?;
        Ok(RunLog {
            path,
            file: Mutex::new(file),
        })
    }

    fn line(&self, level: &str, message: &str) {
        let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // A lost log line costs evidence, not the campaign.
        let _ = writeln!(f, "{stamp} - mlsdiag.repro - {level} - {message}");
    }

    pub fn started(
        &self,
        pid: u32,
        run: u64,
        prompt_chars: usize,
        max_tokens: usize,
        temperature: f32,
    ) {
        self.line(
            "INFO",
            &format!(
                "Chat completion request: pid={pid} id=run-{run} prompt_chars={prompt_chars} max_tokens={max_tokens} temperature={temperature}"
            ),
        );
    }

    pub fn completed(&self, pid: u32, run: u64, tokens: u64, secs: f64) {
        self.line(
            "INFO",
            &format!(
                "Chat completion: {tokens} tokens in {secs:.3}s ({:.1} tok/s) pid={pid} id=run-{run}",
                tokens as f64 / secs.max(1e-9)
            ),
        );
    }

    /// A stall: the run stays in flight in the log's eyes (a timeout line does not end it).
    pub fn stalled(&self, pid: u32, run: u64, stall_secs: f64) {
        self.line(
            "ERROR",
            &format!("Worker timeout after {stall_secs:.0}s pid={pid} id=run-{run}"),
        );
    }

    pub fn failed(&self, pid: u32, run: u64, message: &str) {
        let message = message.replace('\n', " ");
        self.line(
            "ERROR",
            &format!("Chat completion failed: {message} pid={pid} id=run-{run}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_log_reads_back_as_mls_with_the_stalled_run_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let log = RunLog::open(&dir.path().join("out")).unwrap();
        log.started(41, 0, 12, 20, 0.0);
        log.completed(41, 0, 20, 0.5);
        log.started(41, 1, 12, 20, 0.0);
        log.failed(41, 1, "runner died\nwith two lines");
        log.started(42, 2, 12, 20, 0.7);
        log.stalled(42, 2, 60.0);
        let outcome = crate::logs::for_check(&log.path, Duration::ZERO).unwrap();
        assert_eq!(outcome.format, "mls");
        let a = &outcome.analysis;
        let ok = a.for_worker(None, 41, false, None, &|_| false);
        assert_eq!((ok.completed, ok.failed, ok.in_flight.len()), (1, 1, 0));
        let hung = a.for_worker(None, 42, false, None, &|_| false);
        assert_eq!(hung.timeouts, 1);
        assert_eq!(hung.in_flight.len(), 1, "{hung:?}");
    }

    #[test]
    fn a_symlinked_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("runs.log")).unwrap();
        let err = RunLog::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("runs.log"), "{err}");
    }
}
