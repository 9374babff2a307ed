//! Following one log across `watch` rounds: each round reads only what was appended since the
//! last, and keeps the fold, so a watch that runs for weeks costs per round what the server
//! wrote in that round, not the size of its whole log.
//!
//! A file that was replaced (another inode) or truncated (copytruncate) is read again from the
//! start with a fresh fold. A line is folded once it ends with a newline; a line still being
//! written waits for the next round. Compressed logs are read whole each round.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Analyzer, Format, Outcome, read};
use crate::error::InputError;
use crate::model::SourceInfo;

/// How much of the head decides the format, as for a whole read.
const HEAD: u64 = 64 << 10;

struct State {
    format: Format,
    analyzer: Analyzer,
    /// Device and inode: the identity of the file being followed.
    identity: (u64, u64),
    /// Bytes folded: everything before the last newline read.
    offset: u64,
    lines: u64,
}

/// The offset just past the last newline in `from..len`, or `from` when there is none; read
/// backwards from the end in small blocks.
fn last_line_end(file: &mut std::fs::File, from: u64, len: u64) -> std::io::Result<u64> {
    const BLOCK: u64 = 64 << 10;
    let mut hi = len;
    let mut buf = vec![0u8; BLOCK as usize];
    while hi > from {
        let lo = hi.saturating_sub(BLOCK).max(from);
        let chunk = &mut buf[..(hi - lo) as usize];
        file.seek(SeekFrom::Start(lo))?;
        file.read_exact(chunk)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(lo + i as u64 + 1);
        }
        hi = lo;
    }
    Ok(from)
}

pub struct Follower {
    path: PathBuf,
    hung_after: Duration,
    state: Option<State>,
    /// Set when the file turned out to be compressed: read whole, every round.
    whole: bool,
}

impl Follower {
    pub fn new(path: &Path, hung_after: Duration) -> Follower {
        Follower {
            path: path.to_path_buf(),
            hung_after,
            state: None,
            whole: false,
        }
    }

    /// Folds what was appended since the last call (everything, the first time or after a
    /// replacement or truncation) and returns the fold so far, as [`super::for_check`] would.
    pub fn update(&mut self) -> Result<Outcome, InputError> {
        use std::os::unix::fs::MetadataExt;
        if self.whole {
            return super::for_check(&self.path, self.hung_after);
        }
        let io = InputError::io(&self.path);
        // Opened without blocking and refused unless regular (a FIFO swapped in between rounds).
        let mut file = crate::input::open_regular(&self.path)?;
        let meta = file.metadata().map_err(&io)?;
        let identity = (meta.dev(), meta.ino());
        let len = meta.len();
        let restart = match &self.state {
            None => true,
            Some(s) => s.identity != identity || len < s.offset,
        };
        if restart {
            let mut head = Vec::new();
            (&mut file).take(HEAD).read_to_end(&mut head).map_err(&io)?;
            if head.starts_with(&[0x1f, 0x8b]) {
                self.whole = true;
                return super::for_check(&self.path, self.hung_after);
            }
            let format = Format::detect(&head);
            let analyzer = Analyzer::for_format(&[], self.hung_after, &format);
            self.state = Some(State {
                format,
                analyzer,
                identity,
                offset: 0,
                lines: 0,
            });
        }
        let s = self.state.as_mut().expect("state was just set");
        // Fold up to the last newline; a line still being written waits for the next round.
        let end = last_line_end(&mut file, s.offset, len).map_err(&io)?;
        if end > s.offset {
            file.seek(SeekFrom::Start(s.offset)).map_err(&io)?;
            let base = s.lines;
            let analyzer = &mut s.analyzer;
            // Streamed through the fixed buffers of a read, never held whole in memory.
            let stats = read::scan(
                Box::new(file.take(end - s.offset)),
                &s.format,
                false,
                0,
                |ev| {
                    let mut ev = ev.clone();
                    ev.line += base;
                    analyzer.add(&ev);
                },
            )
            .map_err(&io)?;
            s.offset = end;
            s.lines += stats.lines;
        }
        Ok(Outcome {
            format: s.format.name(),
            sources: vec![SourceInfo {
                path: self.path.display().to_string(),
                bytes: s.offset,
                lines: s.lines,
            }],
            analysis: s.analyzer.clone().finish(),
            unparseable: vec![],
            unparseable_count: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const START: &str = "2026-01-05 23:13:25,007 - mls.api - INFO - Chat completion request: pid=41 id=req-1 prompt_chars=10\n";
    const START2: &str = "2026-01-05 23:13:26,007 - mls.api - INFO - Chat completion request: pid=42 id=req-2 prompt_chars=10\n";
    const DONE: &str = "2026-01-05 23:13:30,000 - mls.api - INFO - Chat completion: 12 tokens in 4.0s (3.0 tok/s) pid=41 id=req-1";

    fn open(o: &Outcome, pid: u32) -> usize {
        o.analysis
            .for_worker(None, pid, false, None, &|_| false)
            .in_flight
            .len()
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn appended_lines_fold_once_complete_and_match_a_whole_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mls.log");
        std::fs::write(&path, START).unwrap();
        let mut f = Follower::new(&path, Duration::ZERO);
        let o = f.update().unwrap();
        assert_eq!(o.format, "mls");
        assert_eq!(open(&o, 41), 1);
        // A completion still being written (no newline yet) is not folded.
        append(&path, DONE);
        assert_eq!(open(&f.update().unwrap(), 41), 1);
        append(&path, &format!("\n{START2}"));
        let o = f.update().unwrap();
        assert_eq!((open(&o, 41), open(&o, 42)), (0, 1));
        assert_eq!(o.sources[0].lines, 3);
        // The same as reading the whole file now.
        let whole = super::super::for_check(&path, Duration::ZERO).unwrap();
        let a = o.analysis.for_worker(None, 42, false, None, &|_| false);
        let b = whole.analysis.for_worker(None, 42, false, None, &|_| false);
        assert_eq!(a.in_flight.len(), b.in_flight.len());
        assert_eq!(
            a.in_flight[0].line, b.in_flight[0].line,
            "line numbers count from the start"
        );
        assert_eq!(a.in_flight[0].line, 3);
        assert_eq!(
            o.analysis
                .for_worker(None, 41, false, None, &|_| false)
                .completed,
            whole
                .analysis
                .for_worker(None, 41, false, None, &|_| false)
                .completed
        );
    }

    #[test]
    fn a_truncated_or_replaced_log_is_read_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mls.log");
        std::fs::write(&path, format!("{START}{START2}")).unwrap();
        let mut f = Follower::new(&path, Duration::ZERO);
        assert_eq!(open(&f.update().unwrap(), 42), 1);
        // copytruncate: the same file, now shorter.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&path, START);
        let o = f.update().unwrap();
        assert_eq!((open(&o, 41), open(&o, 42)), (1, 0));
        // Rotation by rename: a new file under the name.
        let fresh = dir.path().join("new.log");
        std::fs::write(&fresh, START2).unwrap();
        std::fs::rename(&fresh, &path).unwrap();
        let o = f.update().unwrap();
        assert_eq!((open(&o, 41), open(&o, 42)), (0, 1));
    }

    #[test]
    fn the_last_line_end_is_found_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut data = b"first\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 200 << 10));
        std::fs::write(&path, &data).unwrap();
        let mut f = std::fs::File::open(&path).unwrap();
        let len = data.len() as u64;
        assert_eq!(last_line_end(&mut f, 0, len).unwrap(), 6);
        assert_eq!(
            last_line_end(&mut f, 6, len).unwrap(),
            6,
            "no newline after 6"
        );
        assert_eq!(last_line_end(&mut f, 0, 3).unwrap(), 0);
    }

    #[test]
    fn a_missing_log_is_an_error_naming_it() {
        let mut f = Follower::new(Path::new("/nonexistent/mls.log"), Duration::ZERO);
        assert!(
            f.update()
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/mls.log")
        );
    }
}
