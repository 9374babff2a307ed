//! Known MLX hang signatures: data, not code paths. docs/hang-signatures.md lists them.
//!
//! Each entry names the report it comes from, what the stacks look like, and what it means.
//! Matching is by substrings of frame names, so it works on `sample` output (macOS), on
//! symbolized native frames and on Python frames alike.

use crate::model::Frame;
use crate::model::{Match, ThreadStack};

pub enum Rule {
    /// One thread's native frames contain every `all` and at least one `any` (substrings; an
    /// empty string matches any frame, so `&[""]` means "no further condition").
    Native {
        all: &'static [&'static str],
        any: &'static [&'static str],
    },
    /// Python frames were read, some thread waits in one of `waiting` (among its innermost
    /// three frames: a `Queue.get` waits in `Condition.wait` under it, and py-spy and
    /// faulthandler show the lock's own frames innermost), and no thread runs `missing`.
    PythonMissing {
        missing: &'static [&'static str],
        waiting: &'static [&'static str],
    },
    /// One thread in any of `a` (native or Python) while another is in any of `b`.
    TwoThreads {
        a: &'static [&'static str],
        b: &'static [&'static str],
    },
}

pub struct Signature {
    pub id: &'static str,
    pub url: &'static str,
    pub title: &'static str,
    pub meaning: &'static str,
    pub rule: Rule,
}

pub const SIGNATURES: &[Signature] = &[
    Signature {
        id: "mlx-lm#1834",
        url: "https://github.com/ml-explore/mlx-lm/issues/1834",
        title: "eval_impl waiting on a condition variable",
        meaning: "generation blocked inside mlx::core::eval_impl on a condition variable that is never signalled (seen with a full prompt cache under concurrent load; no Python exception)",
        rule: Rule::Native {
            all: &["eval_impl"],
            any: &[
                "condition_variable::wait",
                "__psynch_cvwait",
                "pthread_cond_wait",
                "futex_wait",
            ],
        },
    },
    Signature {
        id: "mlx#1976",
        url: "https://github.com/ml-explore/mlx/pull/1976",
        title: "waiting for a Metal command buffer (waitUntilCompleted)",
        meaning: "a thread waits for the GPU to finish a command buffer; under memory pressure eval waits for memory (malloc-or-wait) and the GPU work never completes",
        rule: Rule::Native {
            all: &["waitUntilCompleted"],
            any: &[""],
        },
    },
    Signature {
        id: "mlx#3830",
        url: "https://github.com/ml-explore/mlx/issues/3830",
        title: "GPU spinning in fence_wait (MLX_METAL_FAST_SYNCH)",
        meaning: "with MLX_METAL_FAST_SYNCH=1 a cross-stream fence is never signalled: CPU idle, GPU busy at low power; unset the variable",
        rule: Rule::Native {
            all: &["fence_wait"],
            any: &[""],
        },
    },
    Signature {
        id: "mlx-swift#410",
        url: "https://github.com/ml-explore/mlx-swift/pull/410",
        title: "waiting on a Metal shared event with no timeout",
        meaning: "a thread waits in IOSurfaceSharedEvent/Event::wait for a signal value that never arrives (thread-safety race between streams)",
        rule: Rule::Native {
            all: &[""],
            any: &["waitUntilSignaledValue", "Event::wait"],
        },
    },
    Signature {
        id: "rMLX#398",
        url: "https://github.com/Pushkinist/rMLX/issues/398",
        title: "stuck in get_command_encoder",
        meaning: "race on the global command-encoder map (MLX 0.31.2), fixed in 0.32.0 with a thread-local map: upgrade MLX",
        rule: Rule::Native {
            all: &["get_command_encoder"],
            any: &[""],
        },
    },
    Signature {
        id: "mlx-lm#1505",
        url: "https://github.com/ml-explore/mlx-lm/issues/1505",
        title: "generation thread gone, requests waiting forever",
        meaning: "an exception killed the generation thread (_generate); request threads wait on their queues forever while /health still answers",
        rule: Rule::PythonMissing {
            // The generation thread's target: `_generate` before mlx-lm 0.32, `_run_generate`
            // after (matched by the last part of the name: mlsdiag's own `_server_generate`
            // wrapper, which runs in request threads, is not it).
            missing: &["_generate", "_run_generate"],
            waiting: &["get"],
        },
    },
    Signature {
        id: "mlx#4413",
        url: "https://github.com/ml-explore/mlx/pull/4413",
        title: "GIL held while waiting on a stream whose callback needs the GIL",
        meaning: "one thread holds the GIL waiting for a stream (clear_streams/synchronize) while the stream's callback waits to take the GIL",
        rule: Rule::TwoThreads {
            a: &["clear_streams", "synchronize"],
            b: &["take_gil", "PyGILState_Ensure", "PyEval_RestoreThread"],
        },
    },
];

/// A Python function's own name: py-spy qualifies methods and closures
/// (`Queue.get`, `_server_generate.<locals>.generate`), faulthandler does not.
fn last_part(function: &str) -> &str {
    function.rsplit('.').next().unwrap_or(function)
}

fn has(frames: &[Frame], needle: &str) -> bool {
    frames.iter().any(|f| f.function.contains(needle))
}

fn any_frame(t: &ThreadStack, needles: &[&str]) -> bool {
    needles
        .iter()
        .any(|n| has(&t.native, n) || has(&t.python, n))
}

/// Every signature the threads match.
pub fn matches(threads: &[ThreadStack]) -> Vec<Match> {
    let mut out = Vec::new();
    for s in SIGNATURES {
        let hit: Vec<u64> = match &s.rule {
            Rule::Native { all, any } => threads
                .iter()
                .filter(|t| {
                    !t.native.is_empty()
                        && all.iter().all(|n| has(&t.native, n))
                        && any.iter().any(|n| has(&t.native, n))
                })
                .map(|t| t.tid)
                .collect(),
            Rule::PythonMissing { missing, waiting } => {
                let read = threads.iter().any(|t| !t.python.is_empty());
                let gone = !threads.iter().any(|t| {
                    t.python
                        .iter()
                        .any(|f| missing.contains(&last_part(&f.function)))
                });
                let waiters: Vec<u64> = threads
                    .iter()
                    .filter(|t| {
                        (t.python.iter().rev().take(3))
                            .any(|f| waiting.contains(&last_part(&f.function)))
                    })
                    .map(|t| t.tid)
                    .collect();
                if read && gone { waiters } else { vec![] }
            }
            Rule::TwoThreads { a, b } => {
                let ta: Vec<u64> = threads
                    .iter()
                    .filter(|t| any_frame(t, a))
                    .map(|t| t.tid)
                    .collect();
                let tb: Vec<u64> = threads
                    .iter()
                    .filter(|t| any_frame(t, b))
                    .map(|t| t.tid)
                    .collect();
                if !ta.is_empty() && tb.iter().any(|x| !ta.contains(x)) {
                    ta.into_iter().chain(tb).collect()
                } else {
                    vec![]
                }
            }
        };
        if !hit.is_empty() {
            out.push(Match {
                id: s.id.into(),
                url: s.url.into(),
                title: s.title.into(),
                meaning: s.meaning.into(),
                threads: hit,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Frame;

    fn f(name: &str) -> Frame {
        Frame {
            function: name.into(),
            location: None,
            line: None,
        }
    }

    #[test]
    fn the_documented_table_lists_every_signature() {
        let doc = include_str!("../../docs/hang-signatures.md");
        for s in SIGNATURES {
            assert!(
                doc.contains(s.id) && doc.contains(s.title),
                "docs/hang-signatures.md lacks {}",
                s.id
            );
        }
    }

    #[test]
    fn eval_impl_cv_wait() {
        let t = ThreadStack {
            tid: 1,
            native: vec![
                f("start"),
                f("mlx::core::eval_impl(std::vector<mlx::core::array>, bool)"),
                f("std::condition_variable::wait"),
                f("__psynch_cvwait"),
            ],
            ..ThreadStack::default()
        };
        let m = matches(&[t]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].id, "mlx-lm#1834");
        assert!(
            matches(&[ThreadStack {
                tid: 2,
                native: vec![f("__psynch_cvwait")],
                ..ThreadStack::default()
            }])
            .is_empty()
        );
    }

    #[test]
    fn missing_generation_thread_matches_a_real_queue_wait() {
        // A handler's stack in the faulthandler dump the watchdog wrote for mlx-lm 0.31.3
        // after #1472 killed its generation thread (tests/cli/run.rs; frames abridged),
        // outermost first: the queue's `get` is not the innermost frame, the condition's
        // `wait` is.
        let handler = ThreadStack {
            tid: 11,
            python: [
                "_bootstrap",
                "run",
                "serve_forever",
                "do_POST",
                "handle_completion",
                "get",
                "wait",
            ]
            .into_iter()
            .map(f)
            .collect(),
            ..ThreadStack::default()
        };
        let m = matches(std::slice::from_ref(&handler));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].id, "mlx-lm#1505");
        // py-spy's qualified names for the same stack.
        let qualified = ThreadStack {
            tid: 13,
            python: [
                "do_POST",
                "handle_completion",
                "Queue.get",
                "Condition.wait",
            ]
            .into_iter()
            .map(f)
            .collect(),
            ..ThreadStack::default()
        };
        assert_eq!(
            matches(std::slice::from_ref(&qualified))[0].id,
            "mlx-lm#1505"
        );
        // mlsdiag's own wrapper in a request thread is not the generation thread; 0.32's
        // `ResponseGenerator._run_generate` is.
        let wrapper = ThreadStack {
            tid: 14,
            python: vec![f("_server_generate.<locals>.generate"), f("Queue.get")],
            ..ThreadStack::default()
        };
        assert_eq!(matches(&[qualified.clone(), wrapper])[0].id, "mlx-lm#1505");
        let alive = ThreadStack {
            tid: 15,
            python: vec![f("ResponseGenerator._run_generate"), f("step")],
            ..ThreadStack::default()
        };
        assert!(matches(&[qualified, alive]).is_empty());
        // A thread that merely called `get` long ago, deeper than the innermost three: no.
        let busy = ThreadStack {
            tid: 12,
            python: ["get", "step", "forward", "matmul"]
                .into_iter()
                .map(f)
                .collect(),
            ..ThreadStack::default()
        };
        assert!(matches(&[busy]).is_empty());
    }

    #[test]
    fn missing_generation_thread_needs_python_frames() {
        let waiter = ThreadStack {
            tid: 5,
            python: vec![f("do_POST"), f("get")],
            ..ThreadStack::default()
        };
        assert_eq!(matches(std::slice::from_ref(&waiter))[0].id, "mlx-lm#1505");
        let alive = ThreadStack {
            tid: 6,
            python: vec![f("_generate"), f("step")],
            ..ThreadStack::default()
        };
        assert!(matches(&[waiter, alive]).is_empty());
        assert!(
            matches(&[ThreadStack {
                tid: 7,
                ..ThreadStack::default()
            }])
            .is_empty(),
            "no frames read, no claim"
        );
    }

    #[test]
    fn gil_vs_stream_needs_two_threads() {
        let a = ThreadStack {
            tid: 1,
            native: vec![f("mlx::core::clear_streams")],
            ..ThreadStack::default()
        };
        let b = ThreadStack {
            tid: 2,
            native: vec![f("take_gil")],
            ..ThreadStack::default()
        };
        assert_eq!(matches(&[a.clone(), b])[0].id, "mlx#4413");
        assert!(matches(&[a]).is_empty());
    }
}
