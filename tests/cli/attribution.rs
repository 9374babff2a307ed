//! Evidence belongs to one process, and the hung rule needs every condition (#29): real
//! processes that share a worker's name (a forked helper, another user's impostor, the two
//! sides of a rolling restart), and a busy worker whose heartbeat went stale while it idled.
//! Each must keep its own verdict, and `watch --restart-hung` must signal only the worker
//! that is really hung.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Background, alive, json, run_within, stdout, wait_until, write};

/// The Python interpreter itself (not a pyenv shim, which would run it as a child).
fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits until processes started at `since` are old enough that a request logged now starts
/// after them, beyond the log's clock slack (a request older than a process is its
/// predecessor's).
fn settle(since: std::time::Instant) {
    wait_until(
        Duration::from_secs(10),
        "the processes to be 1.5 s old",
        || since.elapsed() > Duration::from_millis(1500),
    );
}

/// Sets `path`'s modification time, as a worker's heartbeat touch would.
fn touch(path: &Path, at: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

/// A name no other test's process carries.
fn unique(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("mlx-server-v3-attr{}x{n}-{tag}", std::process::id())
}

/// An MLS log line stamped `secs_ago` seconds before now (UTC, milliseconds).
fn line(secs_ago: i64, message: &str) -> String {
    let t = chrono::Utc::now() - chrono::Duration::seconds(secs_ago);
    format!("{} {message}\n", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

fn request(secs_ago: i64, worker: &str, pid: Option<u32>, id: &str) -> String {
    let pid = pid.map(|p| format!(" pid={p}")).unwrap_or_default();
    line(
        secs_ago,
        &format!(
            "Chat completion request: worker={worker}{pid} id={id} prompt_chars=90000 max_tokens=2000 temperature=0.3"
        ),
    )
}

/// `bash -c 'exec -a NAME sleep 1000'`: a sleeping process whose whole command line starts
/// with `name`, optionally as another uid (setpriv, root only).
fn sleeper(name: &str, uid: Option<u32>) -> Background {
    let script = format!("exec -a {name} sleep 1000");
    let cmd = match uid {
        None => {
            let mut c = Command::new("bash");
            c.args(["-c", &script]);
            c
        }
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={u}"),
                &format!("--regid={u}"),
                "--clear-groups",
                "bash",
                "-c",
                &script,
            ]);
            c
        }
    };
    let b = Background::spawn(cmd);
    let pid = b.child.id();
    wait_until(
        Duration::from_secs(20),
        "the process to take its name",
        || {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(name.as_bytes()))
        },
    );
    b
}

fn worker(r: &Value, pid: u32) -> Value {
    r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["pid"] == pid)
        .unwrap_or_else(|| panic!("no worker {pid} in {r:#}"))
        .clone()
}

fn condition(w: &Value, name: &str) -> bool {
    w["hung_rule"]
        .as_array()
        .unwrap_or_else(|| panic!("no hung_rule: {w:#}"))
        .iter()
        .find(|c| c["condition"] == name)
        .unwrap_or_else(|| panic!("no condition {name}: {w:#}"))["held"]
        .as_bool()
        .unwrap()
}

fn check(pattern: &str, reg: &Path, log: &Path, hung_after: &str) -> Value {
    json(&run_within(
        Duration::from_secs(60),
        &[
            "check",
            "--json",
            "--window",
            "1s",
            "--hung-after",
            hung_after,
            "--pattern",
            pattern,
            "--registry",
            reg.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
    ))
}

fn watch_restart(pattern: &str, reg: &Path, log: &Path, hung_after: &str, dir: &Path) -> String {
    stdout(&run_within(
        Duration::from_secs(90),
        &[
            "watch",
            "--rounds",
            "1",
            "--window",
            "1s",
            "--hung-after",
            hung_after,
            "--pattern",
            pattern,
            "--registry",
            reg.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--restart-hung",
            "--grace",
            "2s",
            "--dir",
            dir.to_str().unwrap(),
        ],
    ))
}

#[test]
fn a_busy_worker_whose_heartbeat_went_stale_while_idle_is_working_and_never_restarted() {
    let d = tempfile::tempdir().unwrap();
    let name = unique("busy");
    // A worker at 100% CPU on a request that came 3 s ago, after 10 idle minutes without a
    // beat (nothing to beat for): the issue's false kill.
    let mut cmd = Command::new(python());
    cmd.args(["-c", "while True: pass", &name]);
    let spawned = std::time::Instant::now();
    let w = Background::spawn(cmd);
    let pid = w.child.id();
    wait_until(Duration::from_secs(20), "the busy worker", || {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&name))
    });
    let beat = d.path().join("w.beat");
    write(&beat, "");
    touch(
        &beat,
        std::time::SystemTime::now() - Duration::from_secs(600),
    );
    let reg = d.path().join("registry.json");
    write(
        &reg,
        &format!(
            r#"[{{"pid":{pid},"name":"{name}","heartbeat":"{}"}}]"#,
            beat.display()
        ),
    );
    let log = d.path().join("mls.log");
    settle(spawned);
    write(&log, &request(0, &name, None, "req-fresh"));

    let r = check(&name, &reg, &log, "5m");
    let w0 = worker(&r, pid);
    assert_eq!(
        (w0["verdict"].as_str(), w0["activity"].as_str()),
        (Some("healthy"), Some("working")),
        "{w0:#}"
    );
    assert!(condition(&w0, "no fresh heartbeat"), "{w0:#}");
    assert!(!condition(&w0, "older than --hung-after"), "{w0:#}");
    assert!(!condition(&w0, "CPU still"), "{w0:#}");

    // The request older than --hung-after: the CPU still advances, so still no hang.
    let r = check(&name, &reg, &log, "500ms");
    let w1 = worker(&r, pid);
    assert_eq!(w1["verdict"], "healthy", "{w1:#}");
    assert!(condition(&w1, "older than --hung-after"), "{w1:#}");
    assert!(!condition(&w1, "CPU still"), "{w1:#}");

    let snaps = tempfile::tempdir().unwrap();
    let out = watch_restart(&name, &reg, &log, "500ms", snaps.path());
    assert!(!out.contains("sent SIGTERM"), "{out}");
    assert!(alive(pid), "the busy worker was signalled: {out}");
}

#[test]
fn a_forked_helper_is_not_judged_on_its_parents_request() {
    let d = tempfile::tempdir().unwrap();
    let name = unique("forking");
    // The worker forks a helper (same command line) that idles, and works on the request.
    let code =
        "import os, time\nif os.fork() == 0:\n    while True: time.sleep(1)\nwhile True: pass";
    let mut cmd = Command::new(python());
    cmd.args(["-c", code, &name]);
    let spawned = std::time::Instant::now();
    let w = Background::spawn(cmd);
    let parent = w.child.id();
    let mut child = 0;
    wait_until(Duration::from_secs(20), "the forked helper", || {
        child = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
            .unwrap_or(0);
        child != 0
    });
    let log = d.path().join("mls.log");
    settle(spawned);
    write(&log, &request(0, &name, None, "req-1"));
    let reg = d.path().join("no-registry.json");
    let r = check(&name, &reg, &log, "500ms");
    let p = worker(&r, parent);
    let c = worker(&r, child);
    assert_eq!(
        (p["verdict"].as_str(), p["activity"].as_str()),
        (Some("healthy"), Some("working")),
        "{p:#}"
    );
    assert_eq!(
        c["verdict"], "healthy",
        "the helper got its parent's request: {c:#}"
    );
    assert!(c["in_flight"].as_array().unwrap().is_empty(), "{c:#}");
    assert!(
        c["notes"]
            .to_string()
            .contains(&format!("are PID {parent}'s")),
        "{c:#}"
    );
    let snaps = tempfile::tempdir().unwrap();
    let out = watch_restart(&name, &reg, &log, "500ms", snaps.path());
    assert!(!out.contains("sent SIGTERM"), "{out}");
    assert!(alive(parent) && alive(child), "{out}");
}

#[test]
fn two_unrelated_processes_under_one_name_without_pids_are_ambiguous_and_never_acted_on() {
    let d = tempfile::tempdir().unwrap();
    let name = unique("twins");
    let spawned = std::time::Instant::now();
    let a = sleeper(&name, None);
    let b = sleeper(&name, None);
    let log = d.path().join("mls.log");
    settle(spawned);
    write(&log, &request(0, &name, None, "req-1"));
    let reg = d.path().join("no-registry.json");
    let r = check(&name, &reg, &log, "500ms");
    for pid in [a.child.id(), b.child.id()] {
        let w = worker(&r, pid);
        assert_eq!(w["verdict"], "healthy", "{w:#}");
        assert!(w["in_flight"].as_array().unwrap().is_empty(), "{w:#}");
    }
    assert!(
        r["notes"]
            .to_string()
            .contains("attribution ambiguous: 2 processes"),
        "{:#}",
        r["notes"]
    );
    let snaps = tempfile::tempdir().unwrap();
    let out = watch_restart(&name, &reg, &log, "500ms", snaps.path());
    assert!(!out.contains("sent SIGTERM"), "{out}");
    assert!(alive(a.child.id()) && alive(b.child.id()));
}

/// A throw-away user for the other-user cases, created once (root only).
fn throwaway_user() -> u32 {
    static USER: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *USER.get_or_init(|| {
        let name = "mlsdiag-attr";
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output();
        let out = Command::new("id").args(["-u", name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("useradd {name} failed"))
    })
}

#[test]
#[ignore = "needs root: runs a worker and an impostor as two other users"]
fn another_users_process_under_the_workers_name_is_never_the_worker() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "run as root (cargo test -- --ignored)");
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let name = unique("impostor");
    let user = throwaway_user();
    // The impostor (nobody) starts first, then the real worker (the service user), which
    // sleeps on the request its log shows in flight: really hung.
    let spawned = std::time::Instant::now();
    let impostor = sleeper(&name, Some(65534));
    let real = sleeper(&name, Some(user));
    let log = d.path().join("mls.log");
    settle(spawned);
    write(&log, &request(0, &name, None, "req-1"));
    std::os::unix::fs::chown(&log, Some(user), Some(user)).unwrap();
    let reg = d.path().join("no-registry.json");
    let r = check(&name, &reg, &log, "500ms");
    let w = worker(&r, real.child.id());
    assert_eq!(w["verdict"], "hung", "{w:#}");
    let i = worker(&r, impostor.child.id());
    assert_eq!(i["verdict"], "healthy", "{i:#}");
    assert!(i["in_flight"].as_array().unwrap().is_empty(), "{i:#}");
    // root's watch: the service user's log may not make root act (see Security), and the
    // impostor is never the one.
    let snaps = tempfile::tempdir().unwrap();
    let out = watch_restart(&name, &reg, &log, "500ms", snaps.path());
    assert!(!out.contains("sent SIGTERM"), "{out}");
    assert!(
        alive(real.child.id()) && alive(impostor.child.id()),
        "{out}"
    );
    // With a registry naming the worker and a log root may trust: root's watch restarts the
    // hung worker, and only it (the impostor is an unregistered orphan, never signalled).
    std::os::unix::fs::chown(&log, Some(0), Some(0)).unwrap();
    let reg = d.path().join("registry.json");
    write(
        &reg,
        &format!(r#"[{{"pid":{},"name":"{name}"}}]"#, real.child.id()),
    );
    let out = watch_restart(&name, &reg, &log, "500ms", snaps.path());
    assert!(
        out.contains(&format!("sent SIGTERM to PID {}", real.child.id())),
        "{out}"
    );
    assert!(
        !out.contains(&format!("SIGTERM to PID {}", impostor.child.id())),
        "{out}"
    );
    assert!(alive(impostor.child.id()), "{out}");
}

#[test]
fn times_from_the_future_are_clock_skew_never_progress() {
    let d = tempfile::tempdir().unwrap();
    let name = unique("skewed");
    let spawned = std::time::Instant::now();
    let w = sleeper(&name, None);
    let pid = w.child.id();
    let reg = d.path().join("registry.json");
    let beat = d.path().join("w.beat");
    write(&beat, "");
    // A heartbeat an hour ahead (another host's clock on a shared disk): never "fresh".
    touch(
        &beat,
        std::time::SystemTime::now() + Duration::from_secs(3600),
    );
    write(
        &reg,
        &format!(
            r#"[{{"pid":{pid},"name":"{name}","heartbeat":"{}"}}]"#,
            beat.display()
        ),
    );
    // The request waits past --hung-after, and the heartbeat is no progress: hung, the skew said.
    let log = d.path().join("mls.log");
    settle(spawned);
    write(&log, &request(0, &name, None, "req-old"));
    let r = check(&name, &reg, &log, "500ms");
    let w0 = worker(&r, pid);
    assert_eq!(w0["verdict"], "hung", "{w0:#}");
    assert!(condition(&w0, "no fresh heartbeat"), "{w0:#}");
    assert!(
        w0["findings"].to_string().contains("clock skew: heartbeat"),
        "{w0:#}"
    );
    // A log written in a zone an hour ahead: its request is not "in flight for 0s" on a
    // healthy worker; the verdict is unknown, with the skew said.
    write(&log, &request(-3600, &name, None, "req-ahead"));
    touch(
        &beat,
        std::time::SystemTime::now() - Duration::from_secs(3600),
    );
    let r = check(&name, &reg, &log, "500ms");
    let w1 = worker(&r, pid);
    assert_eq!(w1["verdict"], "unknown", "{w1:#}");
    assert!(!condition(&w1, "older than --hung-after"), "{w1:#}");
    assert!(
        w1["findings"].to_string().contains("in the future")
            || w1["findings"]
                .to_string()
                .contains("ahead of this machine's clock"),
        "{w1:#}"
    );
    assert_eq!(r["exit_code"], 3, "{r:#}");
}

#[test]
fn a_heartbeat_or_token_record_others_can_write_is_listed_and_never_followed() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let name = unique("forged");
    let spawned = std::time::Instant::now();
    let w = sleeper(&name, None);
    let pid = w.child.id();
    // Fresh, but writable by everyone: anyone could keep it fresh to hide a hang, or fake
    // a record's tokens. Neither is followed; the worker's notes say why.
    let beat = d.path().join("w.beat");
    let record = d.path().join("w.progress");
    write(&beat, "");
    write(&record, "{}");
    for p in [&beat, &record] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let reg = d.path().join("registry.json");
    write(
        &reg,
        &format!(
            r#"[{{"pid":{pid},"name":"{name}","heartbeat":"{}","progress":"{}"}}]"#,
            beat.display(),
            record.display()
        ),
    );
    let log = d.path().join("mls.log");
    settle(spawned);
    write(&log, &request(0, &name, None, "req-1"));
    let r = check(&name, &reg, &log, "500ms");
    let w0 = worker(&r, pid);
    let notes = w0["notes"].to_string();
    for p in [&beat, &record] {
        assert!(
            notes.contains(&format!(
                "{} not followed: it is not the worker's own file",
                p.display()
            )),
            "{w0:#}"
        );
    }
    assert!(w0["progress"].is_null(), "{w0:#}");
    assert_eq!(w0["verdict"], "hung", "{w0:#}");
    assert!(condition(&w0, "no fresh heartbeat"), "{w0:#}");
}

#[test]
fn a_rolling_restarts_two_live_processes_are_two_workers_each_with_its_requests() {
    let d = tempfile::tempdir().unwrap();
    let name = unique("rolling");
    let spawned = std::time::Instant::now();
    let mut a = sleeper(&name, None);
    let b = sleeper(&name, None);
    let (pa, pb) = (a.child.id(), b.child.id());
    settle(spawned);
    // The old process took a request and sleeps on it; the new one took one and answered it.
    let log = d.path().join("mls.log");
    write(
        &log,
        &[
            request(0, &name, Some(pa), "req-a"),
            request(0, &name, Some(pb), "req-b"),
            line(
                0,
                &format!(
                    "Chat completion: 12 tokens in 0.4s (30.0 tok/s) worker={name} pid={pb} id=req-b"
                ),
            ),
        ]
        .concat(),
    );
    let reg = d.path().join("no-registry.json");
    let r = check(&name, &reg, &log, "500ms");
    let wa = worker(&r, pa);
    assert_eq!(wa["verdict"], "hung", "A's own request is A's: {wa:#}");
    assert_eq!(wa["in_flight"][0]["id"], "req-a", "{wa:#}");
    let wb = worker(&r, pb);
    assert_eq!(wb["verdict"], "healthy", "{wb:#}");
    assert!(wb["in_flight"].as_array().unwrap().is_empty(), "{wb:#}");
    // Once A is gone, what it left open is the previous incarnation's, context for B.
    // SAFETY: kill(2) on the test's own child, then reaped.
    unsafe { libc::kill(pa as i32, libc::SIGKILL) };
    let _ = a.child.wait();
    let r = check(&name, &reg, &log, "500ms");
    let wb = worker(&r, pb);
    assert_eq!(wb["verdict"], "healthy", "{wb:#}");
    assert!(
        wb["notes"]
            .to_string()
            .contains(&format!("req-a (90000 chars, max_tokens 2000, temperature 0.3) was in flight when the previous PID {pb} ended (PID {pa}, gone")),
        "{wb:#}"
    );
}
