//! Parser for Python's `faulthandler` dumps, the unprivileged way to get Python frames.
//!
//! A worker that ran `faulthandler.register(signal.SIGUSR1, file=f, all_threads=True)` writes,
//! on SIGUSR1, blocks like `Thread 0x00007f… (most recent call first):` followed by
//! `  File "worker.py", line 12 in generate`. The ident is Python's (pthread) id, not the OS
//! thread id, so these threads are listed beside the OS threads rather than merged into them.

use crate::model::{Frame, ThreadStack};

/// Threads of the last dump in `text` (a file may hold several dumps; the newest wins).
pub fn parse(text: &str) -> Vec<ThreadStack> {
    let mut dumps: Vec<Vec<ThreadStack>> = vec![vec![]];
    for l in text.lines() {
        let header = l
            .strip_prefix("Current thread ")
            .or_else(|| l.strip_prefix("Thread "));
        if let Some(rest) = header {
            let Some(id) = rest.split_whitespace().next() else {
                continue;
            };
            let ident = u64::from_str_radix(id.trim_start_matches("0x"), 16).unwrap_or(0);
            let current = dumps.last_mut().expect("non-empty");
            // A thread id seen again starts a new dump.
            if current.iter().any(|t| t.tid == ident) {
                dumps.push(vec![]);
            }
            let name = l
                .starts_with("Current")
                .then(|| "current thread".to_string());
            dumps.last_mut().expect("non-empty").push(ThreadStack {
                tid: ident,
                name,
                ..ThreadStack::default()
            });
            continue;
        }
        if let Some(rest) = l.trim_start().strip_prefix("File \"") {
            let Some((file, tail)) = rest.split_once('"') else {
                continue;
            };
            let line = tail
                .split("line ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|n| n.parse().ok());
            let function = tail.rsplit(" in ").next().unwrap_or("?").trim().to_string();
            if let Some(t) = dumps.last_mut().and_then(|d| d.last_mut()) {
                // Most recent call first in the dump; stored outermost first.
                t.python.insert(
                    0,
                    Frame {
                        function,
                        location: Some(file.to_string()),
                        line,
                    },
                );
            }
        }
    }
    dumps
        .into_iter()
        .rev()
        .find(|d| !d.is_empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_and_frames_outermost_first() {
        let dump = "Thread 0x00007f1e2b7fe700 (most recent call first):\n  File \"/usr/lib/python3.11/threading.py\", line 320 in wait\n  File \"/srv/mls/worker.py\", line 88 in generate\n\nCurrent thread 0x00007f1e2d3b3740 (most recent call first):\n  File \"/srv/mls/worker.py\", line 12 in <module>\n";
        let t = parse(dump);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].tid, 0x7f1e2b7fe700);
        assert_eq!(t[0].python[0].function, "generate");
        assert_eq!(t[0].python[1].function, "wait");
        assert_eq!(t[0].python[1].line, Some(320));
        assert_eq!(t[1].name.as_deref(), Some("current thread"));
    }

    #[test]
    fn the_newest_dump_wins() {
        let one = "Thread 0x1 (most recent call first):\n  File \"a.py\", line 1 in old\n";
        let two = "Thread 0x1 (most recent call first):\n  File \"a.py\", line 2 in new\n";
        let t = parse(&format!("{one}{two}"));
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].python[0].function, "new");
        assert!(parse("garbage\n").is_empty());
    }
}
