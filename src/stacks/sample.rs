//! Parser for the text report of macOS `/usr/bin/sample` (`sample PID 1 -mayDie`).
//!
//! The report's "Call graph:" section is a tree per thread: `<count> Thread_<id>[ …: name]`
//! then indented frames `<count> <symbol>  (in <image>) + <offset>  [<address>]` under tree
//! glyphs (`+ ! : |`). For a hang the interesting path is the one every sample took: from the
//! root, the frames whose count equals the thread's total, down to the innermost such frame.

use crate::model::{Frame, ThreadStack};

struct Line<'a> {
    depth: usize,
    count: u32,
    text: &'a str,
}

fn parse_line(l: &str) -> Option<Line<'_>> {
    let body = l.trim_start_matches(|c: char| c == ' ' || "+!:|".contains(c));
    let depth = l.len() - body.len();
    let (count, text) = body.split_once(' ')?;
    Some(Line {
        depth,
        count: count.parse().ok()?,
        text: text.trim(),
    })
}

/// `symbol  (in image) + 12  [0x1]` → frame.
fn frame(text: &str) -> Frame {
    let (function, rest) = match text.find("  (in ") {
        Some(i) => (&text[..i], &text[i + 6..]),
        None => (text.split("  [").next().unwrap_or(text), ""),
    };
    let location = rest
        .split(')')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Frame {
        function: function.trim().to_string(),
        location,
        line: None,
    }
}

/// Threads and their all-samples path, from a `sample` report.
pub fn parse(report: &str) -> Vec<ThreadStack> {
    let mut threads = Vec::new();
    let mut in_graph = false;
    let mut current: Option<(ThreadStack, u32, usize)> = None; // (thread, total, depth of last kept frame)
    for l in report.lines() {
        if l.starts_with("Call graph:") {
            in_graph = true;
            continue;
        }
        if !in_graph {
            continue;
        }
        if l.trim().is_empty() || !l.starts_with(' ') {
            // The call graph ends at the first unindented line ("Total number in stack …").
            if !l.trim().is_empty() {
                in_graph = false;
            }
            continue;
        }
        let Some(line) = parse_line(l) else { continue };
        if let Some(rest) = line.text.strip_prefix("Thread_") {
            if let Some((t, _, _)) = current.take() {
                threads.push(t);
            }
            let id_end = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            let id = &rest[..id_end];
            let tid = id
                .strip_prefix("0x")
                .map_or_else(|| id.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
                .unwrap_or(0);
            let name = rest[id_end..]
                .rsplit(": ")
                .next()
                .map(|n| n.trim().trim_end_matches("(serial)").trim().to_string())
                .filter(|n| !n.is_empty() && !rest[id_end..].trim().is_empty());
            current = Some((
                ThreadStack {
                    tid,
                    name,
                    ..ThreadStack::default()
                },
                line.count,
                line.depth,
            ));
            continue;
        }
        if let Some((t, total, depth)) = current.as_mut() {
            // Follow the all-samples path: a child of the last kept frame with the full count.
            if line.count == *total && line.depth > *depth {
                t.native.push(frame(line.text));
                *depth = line.depth;
                t.samples = Some([line.count, *total]);
            }
        }
    }
    if let Some((t, _, _)) = current.take() {
        threads.push(t);
    }
    threads
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Analysis of sampling python3.12 (pid 49387) every 1 millisecond
Process:         python3.12 [49387]

Call graph:
    2170 Thread_5905455   DispatchQueue_1: com.apple.main-thread  (serial)
    + 2170 start  (in dyld) + 1942  [0x18c9f20e0]
    +   2170 _PyEval_EvalFrameDefault  (in Python) + 500  [0x1]
    +     2170 mlx::core::eval_impl(std::vector<mlx::core::array>, bool)  (in libmlx.dylib) + 1400  [0x2]
    +       2170 std::condition_variable::wait(std::unique_lock<std::mutex>&)  (in libc++.1.dylib) + 28  [0x3]
    +         2170 __psynch_cvwait  (in libsystem_kernel.dylib) + 8  [0x4]
    2170 Thread_5905472: mlx-generation
    + 2170 thread_start  (in libsystem_pthread.dylib) + 8  [0x5]
    +   1500 busy  (in x) + 1  [0x6]
    +   670 other  (in x) + 1  [0x7]

Total number in stack (recursive counted multiple, when >=5):
";

    #[test]
    fn threads_and_the_all_samples_path() {
        let t = parse(REPORT);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].tid, 5_905_455);
        assert_eq!(t[0].name.as_deref(), Some("com.apple.main-thread"));
        let names: Vec<&str> = t[0].native.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names.last(), Some(&"__psynch_cvwait"));
        assert!(names.iter().any(|n| n.starts_with("mlx::core::eval_impl")));
        assert_eq!(t[0].native[0].location.as_deref(), Some("dyld"));
        assert_eq!(t[0].samples, Some([2170, 2170]));
        // The second thread splits: only the common root is on the all-samples path.
        assert_eq!(t[1].name.as_deref(), Some("mlx-generation"));
        assert_eq!(t[1].native.len(), 1);
    }

    #[test]
    fn garbage_is_empty_not_a_panic() {
        assert!(parse("").is_empty());
        assert!(parse("Call graph:\n    x Thread_\n    + nonsense\n").is_empty());
    }
}

#[cfg(test)]
mod fixture_tests {
    /// The recorded incident report (fixtures/macos/sample-hung.txt, written in `sample`'s
    /// format; see fixtures/README.md) parses into its threads and matches mlx-lm#1834.
    #[test]
    fn the_seed_incident_sample_report() {
        let report = include_str!("../../fixtures/macos/sample-hung.txt");
        let threads = super::parse(report);
        assert_eq!(threads.len(), 3);
        let main = &threads[0];
        assert_eq!(
            (main.tid, main.name.as_deref()),
            (5_905_455, Some("com.apple.main-thread"))
        );
        assert_eq!(main.native.last().unwrap().function, "__psynch_cvwait");
        assert_eq!(main.samples, Some([843, 843]));
        assert_eq!(threads[1].name.as_deref(), Some("mlx-generation"));
        // The heartbeat thread did not sit still: only the common part is on the all-samples path.
        assert_eq!(threads[2].native.len(), 2);
        let m = crate::stacks::signatures::matches(&threads);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].id, "mlx-lm#1834");
        assert_eq!(m[0].threads, [5_905_455]);
    }
}
