//! `mlsdiag check` on real processes: every verdict, with its evidence and exit code.

use crate::util::{Sim, json, run, stderr, stdout, write};

fn worker(report: &serde_json::Value, pid: u32) -> &serde_json::Value {
    report["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["pid"] == pid)
        .unwrap_or_else(|| panic!("PID {pid} missing: {report:#}"))
}

#[test]
fn every_verdict_on_the_simulation() {
    let sim = Sim::start();
    let out = sim.check(&["--json", "--window", "1.5s"]);
    assert_eq!(out.status.code(), Some(2), "CRITICAL: {}", stderr(&out));
    let r = json(&out);
    let expect = [
        ("working", "healthy", "working"),
        ("idle", "healthy", "idle"),
        ("hung", "hung", "stalled"),
        ("crashed", "crashed", "gone"),
        ("leaking", "leaking", ""),
        ("orphan", "orphan", ""),
    ];
    for (role, verdict, activity) in expect {
        let w = worker(&r, sim.pid(role));
        assert_eq!(w["verdict"], verdict, "{role}: {w:#}");
        if !activity.is_empty() {
            assert_eq!(w["activity"], activity, "{role}: {w:#}");
        }
    }
    assert_eq!(
        r["workers"].as_array().unwrap().len(),
        6,
        "the orchestrator is not a worker"
    );
    assert_eq!(r["orchestrators"][0]["pid"], sim.state["orchestrator_pid"]);

    let hung = worker(&r, sim.pid("hung"));
    let ev = hung["findings"][0]["evidence"].to_string();
    assert!(
        ev.contains("request req-319 (8489 chars, max_tokens 2000, temperature 0.3) in flight for"),
        "{ev}"
    );
    assert!(ev.contains("no thread running"), "{ev}");
    assert_eq!(hung["in_flight"][0]["id"], "req-319");
    // The previous incarnation's stuck request is reported as such, once, not as this hang.
    let notes = hung["notes"].to_string();
    assert!(
        notes.contains("request req-318 (8489 chars, max_tokens 2000, temperature 0.3) was in flight when the previous worker"),
        "{notes}"
    );
    assert!(!ev.contains("req-318"), "{ev}");
    // The hang is as old as the process, never older.
    let age = hung["elapsed_secs"].as_u64().unwrap();
    assert!(age < 120, "a fresh simulated worker: {age} s");

    let crashed = worker(&r, sim.pid("crashed"));
    assert!(
        crashed["findings"][0]["evidence"][0]
            .as_str()
            .unwrap()
            .contains("is gone")
    );

    let orphan = worker(&r, sim.pid("orphan"));
    assert!(
        orphan["findings"][0]["evidence"][0]
            .as_str()
            .unwrap()
            .contains("not listed in the registry")
    );
    assert_eq!(orphan["registered"], false);

    let leak = worker(&r, sim.pid("leaking"));
    assert!(
        leak["findings"][0]["evidence"][0]
            .as_str()
            .unwrap()
            .contains("MiB/min")
    );

    let working = worker(&r, sim.pid("working"));
    assert!(working["cpu_percent"].as_f64().unwrap() > 1.0);
    assert!(
        working["notes"].to_string().contains("working, not hung"),
        "an old request with CPU progress is not a hang"
    );

    // The IPC picture: pipes and a unix socket to the orchestrator, one shm segment.
    let idle = worker(&r, sim.pid("idle"));
    assert!(
        idle["ipc"]["channels_to_parent"].as_u64().unwrap() >= 3,
        "{:#}",
        idle["ipc"]
    );
    assert_eq!(idle["ipc"]["counts"]["shm"], 1);
}

#[test]
fn table_output_shows_evidence_and_status() {
    let sim = Sim::start();
    let out = sim.check(&["--window", "1s"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2));
    for needle in [
        "VERDICT",
        "hung",
        "crashed",
        "orphan",
        "leaking",
        "✗ [hung] request req-319",
        "→ CRITICAL (exit 2)",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(
        !text.contains('\x1b'),
        "no colour when NO_COLOR is set or stdout is not a terminal"
    );
}

#[test]
fn a_stall_younger_than_hung_after_is_not_a_hang() {
    let sim = Sim::start();
    let pattern = format!("{}hung", sim.pattern());
    let out = run(&[
        "check",
        "--json",
        "--window",
        "1s",
        "--hung-after",
        "1h",
        "--pattern",
        &pattern,
        "--registry",
        sim.registry(),
        "--log",
        sim.log(),
    ]);
    let r = json(&out);
    let hung = worker(&r, sim.pid("hung"));
    assert_eq!(hung["verdict"], "healthy");
    assert_eq!(hung["activity"], "stalled");
    assert!(
        hung["notes"]
            .to_string()
            .contains("hung if still so after 1h")
    );
}

#[test]
fn without_a_log_a_hang_cannot_be_proven() {
    let sim = Sim::start();
    let out = run(&[
        "check",
        "--json",
        "--window",
        "1s",
        "--pattern",
        sim.pattern(),
        "--registry",
        sim.registry(),
    ]);
    let r = json(&out);
    let hung = worker(&r, sim.pid("hung"));
    assert_eq!(hung["verdict"], "healthy");
    assert!(hung["notes"].to_string().contains("no --log given"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "CRITICAL only because of the crashed worker"
    );
    assert_eq!(r["summary"]["crashed"], 1);
    assert!(r["summary"].get("hung").is_none());
}

#[test]
#[cfg(target_os = "linux")] // waits for the zombie through /proc
fn pid_reuse_and_zombies_are_crashes() {
    let sim = Sim::start();
    // A live process that is not a worker, listed under a worker's name.
    let mut stranger = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    // A child of this test that exited and was not reaped: a zombie.
    let mut zombie = std::process::Command::new("true").spawn().unwrap();
    let zpid = zombie.id();
    crate::util::wait_until(std::time::Duration::from_secs(10), "the zombie", || {
        std::fs::read_to_string(format!("/proc/{zpid}/stat")).is_ok_and(|s| s.contains(") Z "))
    });
    let reg = sim.path("reused.json");
    write(
        &reg,
        &format!(
            r#"{{"workers":[
              {{"pid":{},"name":"w-stranger","spawned_at":"2020-01-01T00:00:00Z"}},
              {{"pid":{},"name":"w-idle-respawned","spawned_at":"2030-01-01T00:00:00Z"}},
              {{"pid":{zpid},"name":"w-zombie"}}]}}"#,
            stranger.id(),
            sim.pid("idle")
        ),
    );
    let out = run(&[
        "check",
        "--json",
        "--window",
        "0.5s",
        "--pattern",
        &format!("{}idle", sim.pattern()),
        "--registry",
        reg.to_str().unwrap(),
    ]);
    let r = json(&out);
    let ev = |pid: u32| worker(&r, pid)["findings"].to_string();
    assert_eq!(worker(&r, stranger.id())["verdict"], "crashed");
    assert!(
        ev(stranger.id()).contains("now runs `sleep 60`"),
        "{}",
        ev(stranger.id())
    );
    // Registered as spawned in 2030: the running process started before that. Not reuse.
    assert_eq!(worker(&r, sim.pid("idle"))["verdict"], "healthy");
    assert_eq!(worker(&r, zpid)["verdict"], "crashed");
    assert!(ev(zpid).contains("zombie"), "{}", ev(zpid));
    assert_eq!(out.status.code(), Some(2));

    // spawned_at before the process started: the PID now belongs to a newer process.
    write(
        &reg,
        &format!(
            r#"[{{"pid":{},"name":"w","spawned_at":1577836800}}]"#,
            sim.pid("idle")
        ),
    );
    let out = run(&[
        "check",
        "--json",
        "--window",
        "0s",
        "--pattern",
        &format!("{}idle", sim.pattern()),
        "--registry",
        reg.to_str().unwrap(),
    ]);
    let r = json(&out);
    assert_eq!(worker(&r, sim.pid("idle"))["verdict"], "crashed");
    assert!(
        worker(&r, sim.pid("idle"))["findings"]
            .to_string()
            .contains("started")
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
    zombie.wait().unwrap();
}

#[test]
fn malformed_registry_still_reports_by_pattern_and_exits_unknown() {
    let sim = Sim::start();
    let bad = sim.path("bad.json");
    write(&bad, "{\n  \"workers\": [\n    {\"pid\": 12,}\n  ]\n}\n");
    let out = run(&[
        "check",
        "--json",
        "--window",
        "0.5s",
        "--pattern",
        &format!("{}idle", sim.pattern()),
        "--registry",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "UNKNOWN");
    let r = json(&out);
    assert_eq!(r["registry"]["state"], "invalid");
    let err = r["registry"]["error"].as_str().unwrap();
    assert!(
        err.contains("bad.json") && err.contains("line 3, column"),
        "{err}"
    );
    assert_eq!(worker(&r, sim.pid("idle"))["verdict"], "healthy");
}

#[test]
fn nothing_found_is_ok_and_bad_input_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg.json");
    write(&reg, r#"{"workers": []}"#);
    let out = run(&[
        "check",
        "--window",
        "0s",
        "--pattern",
        "no-such-worker-zz9",
        "--registry",
        reg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("no workers found"));

    let out = run(&[
        "check",
        "--window",
        "0s",
        "--registry",
        reg.to_str().unwrap(),
        "--log",
        "/nonexistent/mls.log",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("/nonexistent/mls.log"),
        "{}",
        stderr(&out)
    );

    let out = run(&[
        "check",
        "--pattern",
        "(unclosed",
        "--registry",
        reg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("--pattern"));

    let out = run(&["check", "--window", "soon"]);
    assert_eq!(out.status.code(), Some(3), "usage errors are UNKNOWN");
    assert_eq!(run(&["--help"]).status.code(), Some(0));

    let missing = dir.path().join("absent.json");
    let out = run(&[
        "check",
        "--window",
        "0s",
        "--pattern",
        "no-such-worker-zz9",
        "--registry",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a registry that is not there: orphans cannot be judged"
    );
    assert!(stdout(&out).contains("absent.json does not exist"));
}

#[test]
fn environment_variables_set_pattern_and_registry() {
    let sim = Sim::start();
    let out = std::process::Command::new(crate::util::bin())
        .args(["check", "--json", "--window", "0s"])
        .env("MLSDIAG_PATTERN", format!("{}idle", sim.pattern()))
        .env("MLSDIAG_REGISTRY", sim.registry())
        .output()
        .unwrap();
    let r = json(&out);
    assert_eq!(r["pattern"], format!("{}idle", sim.pattern()));
    assert!(
        r["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["pid"] == sim.pid("idle"))
    );
}

#[test]
fn a_registered_heartbeat_file_decides_progress() {
    let sim = Sim::start();
    let stale = sim.path("working.beat");
    let fresh = sim.path("hung.beat");
    write(&stale, "");
    write(&fresh, "");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(20 * 60);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let reg = sim.path("beats.json");
    write(
        &reg,
        &format!(
            r#"[{{"pid":{},"name":"{}working","heartbeat":"{}"}},{{"pid":{},"name":"{}hung","heartbeat":"{}"}}]"#,
            sim.pid("working"),
            sim.pattern(),
            stale.display(),
            sim.pid("hung"),
            sim.pattern(),
            fresh.display()
        ),
    );
    // The log names workers by their demo names; the registry here uses the same names.
    let out = run(&[
        "check",
        "--json",
        "--window",
        "1s",
        "--pattern",
        &format!("{}(working|hung)", sim.pattern()),
        "--registry",
        reg.to_str().unwrap(),
        "--log",
        sim.log(),
    ]);
    let r = json(&out);
    let working = worker(&r, sim.pid("working"));
    // A stale heartbeat alone never makes a hang (#29): the CPU advances, so it is working.
    assert_eq!(
        (working["verdict"].as_str(), working["activity"].as_str()),
        (Some("healthy"), Some("working")),
        "burning CPU, the heartbeat 20 minutes stale: {working:#}"
    );
    assert!(working["notes"].to_string().contains("not touched for 20m"));
    let cpu_still = working["hung_rule"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["condition"] == "CPU still")
        .unwrap();
    assert_eq!(cpu_still["held"], false, "{working:#}");
    let hung = worker(&r, sim.pid("hung"));
    assert_eq!(
        hung["verdict"], "healthy",
        "a fresh heartbeat is progress: {hung:#}"
    );
    assert!(hung["notes"].to_string().contains("touched"));
}

/// `check` of the idle simulated worker against a log written by the test, as on a one-worker
/// Mac (the registry lists only it, so unnamed log lines are its).
fn check_idle_with(sim: &Sim, log: &str) -> serde_json::Value {
    let path = sim.path("attribution.log");
    write(&path, log);
    let pattern = format!("{}idle", sim.pattern());
    let registry = sim.path("one-worker.json");
    write(
        &registry,
        &format!(
            r#"{{"workers":[{{"pid":{},"name":"{pattern}"}}]}}"#,
            sim.pid("idle")
        ),
    );
    let out = run(&[
        "check",
        "--json",
        "--window",
        "500ms",
        "--hung-after",
        "1s",
        "--pattern",
        &pattern,
        "--registry",
        registry.to_str().unwrap(),
        "--log",
        path.to_str().unwrap(),
    ]);
    let r = json(&out);
    assert_eq!(r["workers"].as_array().unwrap().len(), 1, "{r:#}");
    worker(&r, sim.pid("idle")).clone()
}

fn stamp(t: chrono::DateTime<chrono::Local>) -> String {
    t.format("%Y-%m-%d %H:%M:%S,%3f").to_string()
}

#[test]
fn a_respawned_worker_is_not_hung_on_its_predecessors_request() {
    // The seed's remedy: the hung worker was killed and a fresh one spawned under its name.
    // The log still holds the old process's request, with only timeouts logged for it.
    let sim = Sim::start();
    let name = format!("{}idle", sim.pattern());
    let pid = sim.pid("idle");
    let t0 = chrono::Local::now() - chrono::Duration::hours(8);
    let t1 = t0 + chrono::Duration::minutes(10);
    for (label, tag) in [
        ("worker=", format!("worker={name}")),
        ("unnamed (one worker)", String::new()),
        ("pid= of the old process", format!("pid={}", pid + 100_000)),
        (
            "worker= and this pid (a reused PID)",
            format!("worker={name} pid={pid}"),
        ),
    ] {
        let w = check_idle_with(
            &sim,
            &format!(
                "{} - mls.api - INFO - Chat completion request: {tag} id=req-319 prompt_chars=8489\n\
                 {} - mls.api - ERROR - Worker timeout after 600s {tag} id=req-319\n",
                stamp(t0),
                stamp(t1)
            ),
        );
        assert_eq!(w["verdict"], "healthy", "{label}: {w:#}");
        assert_eq!(w["activity"], "idle", "{label}: {w:#}");
        assert!(w["in_flight"].as_array().unwrap().is_empty(), "{label}");
        let notes = w["notes"].to_string();
        if label != "pid= of the old process" {
            assert!(
                notes.contains("request req-319 (8489 chars) was in flight when the previous"),
                "{label}: {notes}"
            );
        }
    }
}

#[test]
fn a_timed_out_request_followed_by_completions_is_abandoned_not_hung() {
    let sim = Sim::start();
    let name = format!("{}idle", sim.pattern());
    // All after the process started: the worker timed out on one request, then served more.
    let now = chrono::Local::now();
    let at = |ms: i64| stamp(now + chrono::Duration::milliseconds(ms));
    for ids in [true, false] {
        let id = |i: &str| {
            if ids {
                format!(" id={i}")
            } else {
                String::new()
            }
        };
        let log = format!(
            "{} - mls.api - INFO - Chat completion request: worker={name}{}\n\
             {} - mls.api - ERROR - Worker timeout after 600s worker={name}{}\n\
             {} - mls.api - INFO - Chat completion request: worker={name}{}\n\
             {} - mls.api - INFO - Chat completion: 12 tokens in 0.1s (120.0 tok/s) worker={name}{}\n",
            at(1),
            id("a"),
            at(2),
            id("a"),
            at(3),
            id("b"),
            at(4),
            id("b"),
        );
        let w = check_idle_with(&sim, &log);
        assert_eq!(w["verdict"], "healthy", "ids {ids}: {w:#}");
        assert_eq!(w["activity"], "idle", "ids {ids}: {w:#}");
        let notes = w["notes"].to_string();
        assert!(notes.contains("abandoned: request"), "ids {ids}: {notes}");
        assert!(notes.contains("timed out at"), "ids {ids}: {notes}");
    }
}

#[test]
fn one_stuck_request_on_a_concurrent_worker_is_not_a_hung_worker() {
    let sim = Sim::start();
    let name = format!("{}idle", sim.pattern());
    let now = chrono::Local::now();
    let at = |ms: i64| stamp(now + chrono::Duration::milliseconds(ms));
    // b ends after the younger c: overlapping requests, served concurrently; a never ends.
    let line = |ms, what: &str| format!("{} - mls.api - INFO - {what} worker={name}\n", at(ms));
    let log = [
        line(1, "Chat completion request: id=a"),
        line(2, "Chat completion request: id=b"),
        line(3, "Chat completion request: id=c"),
        line(4, "Chat completion: 5 tokens in 0.1s (50.0 tok/s) id=c"),
        line(5, "Chat completion: 5 tokens in 0.1s (50.0 tok/s) id=b"),
    ]
    .concat();
    let w = check_idle_with(&sim, &log);
    assert_eq!(w["verdict"], "healthy", "{w:#}");
    let notes = w["notes"].to_string();
    assert!(
        notes.contains("request a in flight for") && notes.contains("concurrently"),
        "{notes}"
    );
}

#[test]
fn a_stopped_worker_is_said_stopped_not_healthy_idle() {
    // A real process stopped by SIGSTOP (#31, #32): it serves nothing, and the check says
    // why in words, with the command that resumes it; resumed, it is healthy again.
    let tag = format!("zz-stopped-{}", std::process::id());
    let mut cmd = std::process::Command::new("python3");
    cmd.args([
        "-c",
        "import time; print('ready', flush=True); time.sleep(600)",
        &tag,
    ]);
    let w = crate::util::Background::spawn(cmd);
    w.line(std::time::Duration::from_secs(30), |l| l == "ready");
    let pid = w.child.id() as i32;
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let check = || {
        crate::util::run(&[
            "check",
            "--json",
            "--no-registry",
            "--window",
            "0.3s",
            "--pattern",
            &tag,
        ])
    };
    let mut r = serde_json::Value::Null;
    crate::util::wait_until(std::time::Duration::from_secs(10), "the stop", || {
        r = json(&check());
        r["workers"][0]["state"] == "T"
    });
    let wk = &r["workers"][0];
    assert_eq!(wk["verdict"], "unknown", "{wk:#}");
    let ev = wk["findings"].to_string();
    assert!(
        ev.contains("stopped by a signal") && ev.contains("kill -CONT"),
        "{ev}"
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    crate::util::wait_until(std::time::Duration::from_secs(10), "the resume", || {
        json(&check())["workers"][0]["verdict"] == "healthy"
    });
}

#[test]
fn an_error_is_said_once_and_with_json_is_a_json_document() {
    let out = run(&["check", "--json", "--log", "/nonexistent/mlsdiag.log"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "said once: {err}"
    );
    let r = json(&out);
    assert_eq!(r["command"], "check");
    assert_eq!(r["exit_code"], 3);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/mlsdiag.log"),
        "{r:#}"
    );
}

#[test]
fn json_is_honoured_or_refused_by_top_once_record_and_postmortem() {
    // top --once --json: check's document for the round.
    let r = json(&run(&[
        "top",
        "--once",
        "--json",
        "--pattern",
        "zz-no-such-worker",
    ]));
    assert_eq!(r["command"], "check", "{r:#}");
    assert!(r["workers"].as_array().unwrap().is_empty());
    // record --json: what was written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    let r = json(&run(&[
        "record",
        "--json",
        "--pattern",
        "zz-no-such-worker",
        "-o",
        path.to_str().unwrap(),
    ]));
    assert_eq!(r["command"], "record");
    assert_eq!(r["path"], path.display().to_string());
    // postmortem writes Markdown: --json is refused, with a JSON error document.
    let out = run(&["postmortem", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(json(&out)["error"].as_str().unwrap().contains("Markdown"));
}
