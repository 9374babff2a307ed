//! Token progress on real MLX: a worker (tests/workers/token_worker.py) generating with
//! mlx-lm 0.32.2 on MLX's CPU backend (scripts/setup-mlx-lm's venv and tiny checkpoint),
//! through the mlsdiag Python module, which keeps its token progress record. The record is read
//! first: tokens advancing is working even where the CPU threshold cannot show it; tokens
//! frozen mid-generation is hung, stalled in a real deadlock and spinning in a busy loop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Background, json, mlx_lm_python, root, run_within, wait_until};

/// A token worker in MODE, killed on drop (its process group), with its state directory.
struct Worker {
    _proc: Background,
    dir: tempfile::TempDir,
    tag: String,
}

impl Worker {
    fn start(mode: &str) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let tag = format!("tokentest-{mode}-{}", std::process::id());
        let mut cmd = Command::new(mlx_lm_python());
        cmd.arg(root("tests/workers/token_worker.py"))
            .arg(root("target/mlx-lm-tiny"))
            .arg(dir.path())
            .args([mode, &tag])
            .env("HF_HUB_OFFLINE", "1")
            .env("TRANSFORMERS_OFFLINE", "1");
        let proc = Background::spawn(cmd);
        let w = Worker {
            _proc: proc,
            dir,
            tag,
        };
        wait_until(Duration::from_secs(120), "the worker's registry", || {
            w.path("worker_registry.json").exists()
        });
        w
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn check(&self, extra: &[&str]) -> Value {
        let reg = self.path("worker_registry.json");
        let mut args = vec![
            "check",
            "--json",
            "--pattern",
            &self.tag,
            "--registry",
            reg.to_str().unwrap(),
            "--window",
            "1s",
        ];
        args.extend_from_slice(extra);
        json(&run_within(Duration::from_secs(60), &args))
    }
}

fn worker(report: &Value) -> &Value {
    let ws = report["workers"].as_array().unwrap();
    assert_eq!(ws.len(), 1, "one worker: {report:#}");
    &ws[0]
}

fn tokens(dir: &Path) -> u64 {
    let b = std::fs::read(dir.join(format!("progress-{}", pid(dir)))).unwrap_or_default();
    b.get(32..40)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .unwrap_or(0)
}

/// Seconds since the record's last progress (its `last_progress_ns`).
fn quiet_secs(dir: &Path) -> f64 {
    let b = std::fs::read(dir.join(format!("progress-{}", pid(dir)))).unwrap_or_default();
    let last = b
        .get(80..88)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    now.saturating_sub(last) as f64 / 1e9
}

fn pid(dir: &Path) -> u32 {
    let reg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("worker_registry.json")).unwrap())
            .unwrap();
    reg["workers"][0]["pid"].as_u64().unwrap() as u32
}

#[test]
fn tokens_advancing_are_work_even_where_cpu_cannot_show_it() {
    let w = Worker::start("working");
    wait_until(Duration::from_secs(60), "tokens", || {
        tokens(w.dir.path()) > 40
    });
    // A CPU threshold no process reaches: only the tokens can show the work.
    let r = w.check(&["--progress-cpu", "1000", "--hung-after", "3s"]);
    let wr = worker(&r);
    assert_eq!(wr["verdict"], "healthy", "{wr:#}");
    assert_eq!(wr["activity"], "working", "{wr:#}");
    let p = &wr["progress"];
    assert!(p["generating_since"].is_string(), "{p:#}");
    assert_eq!(p["request"], "req-2");
    assert!(p["window_tokens"].as_u64().unwrap() > 0, "{p:#}");
    assert!(p["tokens_per_sec"].as_f64().unwrap() > 0.0, "{p:#}");
    let notes = wr["notes"].to_string();
    assert!(notes.contains("tokens advancing"), "{notes}");
}

/// Waits for the injection, then for the tokens to stay frozen past --hung-after.
fn hung_after_injection(mode: &str) -> Value {
    let w = Worker::start(mode);
    wait_until(Duration::from_secs(60), "the injection", || {
        w.path("injected").exists()
    });
    let frozen = tokens(w.dir.path());
    let mut last = Value::Null;
    wait_until(Duration::from_secs(60), "a hung verdict", || {
        last = w.check(&["--hung-after", "2s"]);
        worker(&last)["verdict"] == "hung"
    });
    assert_eq!(tokens(w.dir.path()), frozen, "tokens stayed frozen");
    worker(&last).clone()
}

#[test]
fn a_deadlock_mid_generation_is_hung_and_stalled() {
    let wr = hung_after_injection("deadlock");
    assert_eq!(wr["activity"], "stalled", "{wr:#}");
    let ev = wr["findings"][0]["evidence"].to_string();
    assert!(ev.contains("generation of request req-2"), "{ev}");
    assert!(ev.contains("no token or prefill progress"), "{ev}");
}

#[test]
fn a_busy_loop_mid_generation_is_hung_and_spinning_at_full_cpu() {
    let wr = hung_after_injection("spin");
    assert_eq!(wr["activity"], "spinning", "{wr:#}");
    assert!(wr["cpu_percent"].as_f64().unwrap() > 50.0, "{wr:#}");
    let ev = wr["findings"][0]["evidence"].to_string();
    assert!(ev.contains("spinning"), "{ev}");
}

#[test]
fn watch_reports_the_frozen_generation_as_a_hang_with_its_token_evidence() {
    let w = Worker::start("deadlock");
    wait_until(Duration::from_secs(60), "the injection", || {
        w.path("injected").exists()
    });
    let reg = w.path("worker_registry.json");
    let mut event = Value::Null;
    wait_until(Duration::from_secs(60), "a hung event", || {
        let out = run_within(
            Duration::from_secs(60),
            &[
                "watch",
                "--json",
                "--rounds",
                "1",
                "--no-snapshot",
                "--pattern",
                &w.tag,
                "--registry",
                reg.to_str().unwrap(),
                "--window",
                "1s",
                "--hung-after",
                "2s",
            ],
        );
        event = serde_json::from_str(crate::util::stdout(&out).lines().next().unwrap_or("null"))
            .unwrap_or(Value::Null);
        event["to"] == "hung"
    });
    let ev = event["evidence"].to_string();
    assert!(ev.contains("no token or prefill progress"), "{event:#}");
}

#[test]
fn a_consumer_that_stops_asking_is_not_a_hang_by_the_record() {
    let w = Worker::start("consumer");
    wait_until(Duration::from_secs(60), "the consumer to stop", || {
        w.path("injected").exists()
    });
    let frozen = tokens(w.dir.path());
    // Past --hung-after with the generation suspended at its consumer: no log, so only the
    // record could call it hung, and it does not.
    wait_until(
        Duration::from_secs(30),
        "the record quiet past 2.5 s",
        || quiet_secs(w.dir.path()) > 2.5,
    );
    let r = w.check(&["--hung-after", "2s"]);
    let wr = worker(&r);
    assert_eq!(tokens(w.dir.path()), frozen, "the consumer stopped");
    assert_eq!(wr["verdict"], "healthy", "{wr:#}");
    assert_eq!(wr["activity"], "waiting_on_client", "{wr:#}");
    assert!(wr["progress"]["waiting_since"].is_string(), "{wr:#}");
    let notes = wr["notes"].to_string();
    assert!(
        notes.contains("waiting on its client, never hung: the token record"),
        "{notes}"
    );
}
