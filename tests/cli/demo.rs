//! `mlsdiag demo`: the first command of the README works, and leaves nothing behind.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{bin, group_alive, json, run, stdout, wait_until};

fn demo_dirs(tmp: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("mlsdiag-demo-")
        })
        .collect()
}

/// `mlsdiag demo ARGS` with its temporary directories under `tmp`, without colour.
fn demo(tmp: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("demo")
        .args(args)
        .env("TMPDIR", tmp)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn demo_diagnoses_every_worker_as_designed_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let out = demo(tmp.path(), &["--json", "--window", "1.5s"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(r["as_designed"], true, "{:#}", r["expectations"]);
    assert_eq!(r["expectations"].as_array().unwrap().len(), 6);
    assert_eq!(r["check"]["status"], "CRITICAL");
    let pgid = r["check"]["orchestrators"][0]["pid"].as_i64().unwrap() as i32;
    wait_until(
        Duration::from_secs(10),
        "the demo's processes to end",
        || !group_alive(pgid),
    );
    assert!(demo_dirs(tmp.path()).is_empty(), "demo directory removed");
}

#[test]
fn a_short_window_still_waits_until_the_hang_is_provable() {
    // The hung worker's request is logged as the simulation starts; a check whose window ends
    // before `--hung-after` has passed would find it not hung yet.
    let tmp = tempfile::tempdir().unwrap();
    let out = demo(tmp.path(), &["--json", "--window", "0.2s"]);
    let r = json(&out);
    let hung: Vec<_> = r["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["expected"] == "hung")
        .collect();
    assert_eq!(hung.len(), 1, "{:#}", r["expectations"]);
    assert_eq!(hung[0]["found"], "hung", "{:#}", r["expectations"]);
}

#[test]
fn keep_then_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let out = demo(tmp.path(), &["--keep", "--window", "0.5s"]);
    let text = stdout(&out);
    let dirs = demo_dirs(tmp.path());
    assert_eq!(dirs.len(), 1, "{text}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dirs[0].join("state.json")).unwrap())
            .unwrap();
    let pgid = state["pgid"].as_i64().unwrap() as i32;
    // Whatever happens below, the kept simulation is ended.
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: the demo's own process group.
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
    let _guard = Kill(pgid);
    assert!(text.contains("demo --stop"), "{text}");
    assert!(group_alive(pgid), "--keep leaves it running");
    let stop = run(&["demo", "--stop", dirs[0].to_str().unwrap()]);
    assert_eq!(stop.status.code(), Some(0));
    wait_until(Duration::from_secs(10), "the kept demo to stop", || {
        !group_alive(pgid)
    });
    assert!(!dirs[0].exists());
}

#[test]
fn ctrl_c_ends_every_process_and_removes_the_directory() {
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = Reap(
        Command::new(bin())
            .args(["demo", "--window", "60s"])
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut state_file = None;
    wait_until(Duration::from_secs(60), "the demo to start", || {
        state_file = demo_dirs(tmp.path())
            .into_iter()
            .map(|d| d.join("state.json"))
            .find(|p| p.exists());
        state_file.is_some()
    });
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state_file.unwrap()).unwrap()).unwrap();
    let pgid = state["pgid"].as_i64().unwrap() as i32;
    // SAFETY: SIGINT to the demo process this test started.
    unsafe { libc::kill(demo.0.id() as i32, libc::SIGINT) };
    let mut status = None;
    wait_until(
        Duration::from_secs(20),
        "the demo to exit on Ctrl-C",
        || {
            status = demo.0.try_wait().unwrap();
            status.is_some()
        },
    );
    assert_eq!(status.unwrap().code(), Some(130));
    wait_until(
        Duration::from_secs(10),
        "the demo's processes to end",
        || !group_alive(pgid),
    );
    assert!(demo_dirs(tmp.path()).is_empty());
}
