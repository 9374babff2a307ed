//! `mlsdiag stacks` on a real Python process deadlocked on two `threading.Lock`s.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::util::{json, run, stderr};

const DEADLOCK: &str = r#"
import faulthandler, signal, sys, threading
faulthandler.register(signal.SIGUSR1, file=open(sys.argv[1], "w"), all_threads=True)
a, b = threading.Lock(), threading.Lock()
both = threading.Barrier(3)
def generate():
    with a:
        both.wait()
        with b:
            pass
def kv_cache():
    with b:
        both.wait()
        with a:
            pass
threading.Thread(target=generate, name="generate").start()
threading.Thread(target=kv_cache, name="kv-cache").start()
both.wait()  # each thread holds its first lock
print("ready", flush=True)
threading.Event().wait()
"#;

/// The deadlocked interpreter, killed on drop.
struct Py(Child);
impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dump: &std::path::Path) -> Py {
    let mut py = Py(Command::new("python3")
        .args(["-c", DEADLOCK])
        .arg(dump)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is part of this project's test machines"));
    let mut line = String::new();
    BufReader::new(py.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    // Both threads are past their first lock; wait until each also blocks on the other's.
    #[cfg(target_os = "linux")]
    crate::util::wait_until(
        std::time::Duration::from_secs(10),
        "both threads to block",
        || {
            std::fs::read_dir(format!("/proc/{}/task", py.0.id()))
                .map(|d| {
                    d.flatten()
                        .filter(|t| {
                            std::fs::read_to_string(t.path().join("wchan"))
                                .is_ok_and(|w| w.contains("futex"))
                        })
                        .count()
                        >= 3
                })
                .unwrap_or(false)
        },
    );
    py
}

#[test]
#[cfg(target_os = "linux")]
fn python_frames_and_lock_grouping_of_a_real_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let py = start(&dir.path().join("dump.txt"));
    let out = run(&["stacks", &py.0.id().to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    let threads = r["threads"].as_array().unwrap();
    let by_name = |n: &str| {
        threads
            .iter()
            .find(|t| t["name"] == n)
            .unwrap_or_else(|| panic!("no thread {n}: {r:#}"))
    };
    let innermost = |t: &serde_json::Value| {
        t["python"].as_array().unwrap().last().unwrap()["function"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(innermost(by_name("generate")), "generate");
    assert_eq!(innermost(by_name("kv-cache")), "kv_cache");
    let source = |n: &str| {
        r["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(source("py-spy")["ok"], true, "{:#}", r["sources"]);
    assert_eq!(source("kernel")["ok"], true);
    assert_eq!(source("faulthandler")["ok"], false, "not asked for");
    // The lock grouping: all three threads wait on futexes, each on its own lock word.
    let futex = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["wait"].as_str().unwrap().starts_with("futex"))
        .unwrap();
    assert_eq!(futex["tids"].as_array().unwrap().len(), 3, "{futex:#}");
    // Nothing was stopped: the process is still there and still deadlocked.
    assert!(std::path::Path::new(&format!("/proc/{}", py.0.id())).exists());
}

#[test]
fn faulthandler_dump_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump.txt");
    let py = start(&dump);
    let pid = py.0.id().to_string();
    let out = run(&[
        "stacks",
        &pid,
        "--json",
        "--no-native",
        "--faulthandler",
        dump.to_str().unwrap(),
        "--signal",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    let fh = crate::util::source(&r, "faulthandler");
    assert_eq!(fh["ok"], true, "{fh:#}");
    let functions: Vec<String> = r["python_threads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| {
            t["python"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["function"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(
        functions.contains(&"generate".to_string()) && functions.contains(&"kv_cache".to_string()),
        "{functions:?}"
    );
    // Without --signal the worker is not disturbed; the existing dump is read.
    let again = json(&run(&[
        "stacks",
        &pid,
        "--json",
        "--no-native",
        "--faulthandler",
        dump.to_str().unwrap(),
    ]));
    assert!(again["sources"].to_string().contains("from the last dump"));
    // The registry names the dump file: --signal finds it there (#32).
    let reg = dir.path().join("registry.json");
    std::fs::write(
        &reg,
        format!(
            r#"{{"workers": [{{"pid": {pid}, "name": "w", "faulthandler": "{}"}}]}}"#,
            dump.display()
        ),
    )
    .unwrap();
    let out = run(&[
        "stacks",
        &pid,
        "--json",
        "--no-native",
        "--registry",
        reg.to_str().unwrap(),
        "--signal",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fh = crate::util::source(&json(&out), "faulthandler");
    assert_eq!(fh["ok"], true, "{fh:#}");
    // No dump file known anywhere: --signal refuses, naming what it needs; nothing is sent.
    let out = run(&[
        "stacks",
        &pid,
        "--no-native",
        "--registry",
        "/nonexistent/registry.json",
        "--signal",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("no dump file is known") && stderr(&out).contains("--faulthandler"),
        "{}",
        stderr(&out)
    );
}

/// A process py-spy cannot read (not CPython) is not asked again by the next round of a watch
/// or top (check's signature lookup): the refusal is remembered for that process, and said to
/// be remembered.
#[test]
#[cfg(target_os = "linux")]
fn py_spy_refusal_is_remembered_per_process() {
    use mlsdiag::stacks::collect::{Collect, collect};
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Kill(Command::new("sleep").arg("300").spawn().unwrap());
    let pid = child.0.id();
    let platform = mlsdiag::platform::native();
    let py = |r: &mlsdiag::model::StacksReport| {
        r.sources
            .iter()
            .find(|s| s.name == "py-spy")
            .map(|s| (s.ok, s.detail.clone()))
            .unwrap()
    };
    let memo = Collect {
        reuse_refusal: true,
        ..Collect::default()
    };
    let first = py(&collect(platform.as_ref(), pid, &memo));
    assert!(!first.0, "{first:?}");
    assert!(!first.1.contains("s ago)"), "{first:?}");
    let second = py(&collect(platform.as_ref(), pid, &memo));
    assert!(!second.0 && second.1.contains("s ago)"), "{second:?}");
    // An explicit request (`stacks PID`, `s` in top) asks py-spy again.
    let fresh = py(&collect(platform.as_ref(), pid, &Collect::default()));
    assert!(!fresh.0 && !fresh.1.contains("s ago)"), "{fresh:?}");
}
