//! `mlsdiag watch` and `check --textfile` on the demo's real processes: how soon the hung
//! worker is flagged, the snapshot and hook at first detection (once), `--restart-hung`, and
//! the Prometheus output as `promtool check metrics` judges it.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{Background, Sim, bin, promtool, run, stderr, stdout, wait_until, write};

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The `host:port` of `watch --listen`, from the line it prints first on stderr.
fn metrics_addr(watch: &Background) -> String {
    let url = watch
        .stderr
        .recv_timeout(Duration::from_secs(30))
        .expect("the metrics address on stderr");
    url.split("http://")
        .nth(1)
        .and_then(|u| u.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{url}"))
        .to_string()
}

fn log_line(message: &str) -> String {
    format!(
        "{} - mls.api - INFO - {message}\n",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f")
    )
}

#[test]
fn watch_flags_a_fresh_hang_within_hung_after_plus_one_interval_and_alerts_once() {
    let sim = Sim::start();
    let hung = sim.pid("hung");
    let dir = tempfile::tempdir().unwrap();
    let (snaps, prom, hooks) = (
        dir.path().join("snaps"),
        dir.path().join("prom"),
        dir.path().join("hooks.log"),
    );
    std::fs::create_dir(&prom).unwrap();
    // The hung worker is handed a request now: it deadlocked at start, so from here on this
    // request is work in flight without progress.
    let log = dir.path().join("mls.log");
    let t0 = Instant::now();
    write(
        &log,
        &log_line(&format!(
            "Chat completion request: pid={hung} id=fresh-1 prompt_chars=8489 max_tokens=2000 temperature=0.3"
        )),
    );
    let (hung_after, interval, window) = (3.0, 1.0, 0.3);
    let mut cmd = Command::new(bin());
    cmd.args(["watch", "--pattern", sim.pattern(), "--registry", sim.registry()])
        .arg("--log")
        .arg(&log)
        .args(["--interval", "1s", "--window", "300ms", "--hung-after", "3s"])
        .arg("--dir")
        .arg(&snaps)
        .arg("--textfile")
        .arg(&prom)
        .args(["--listen", "127.0.0.1:0", "--on-finding"])
        .arg(format!(
            "cat > {dir}/hook-$MLSDIAG_PID.json; echo \"$MLSDIAG_PID $MLSDIAG_VERDICT $MLSDIAG_WORKER\" >> {hooks}",
            dir = dir.path().display(),
            hooks = hooks.display()
        ))
        .env("NO_COLOR", "1");
    let watch = Background::spawn(cmd);
    let addr = metrics_addr(&watch);
    let me = format!("PID {hung} ");
    // Not hung at first: its request is younger than --hung-after.
    let (first, _) = watch.line(Duration::from_secs(30), |l| l.contains(&me));
    assert!(first.contains("new → healthy"), "{first}");
    let (flagged, _) = watch.line(Duration::from_secs(30), |l| l.contains(&me));
    let elapsed = t0.elapsed().as_secs_f64();
    assert!(flagged.contains("healthy → hung"), "{flagged}");
    assert!(flagged.contains("fresh-1"), "{flagged}");
    // Flagged no sooner than --hung-after, and within one interval (plus the sampling window
    // and scheduling slack on a busy machine) after it.
    assert!(elapsed >= hung_after, "flagged after {elapsed:.2} s");
    assert!(
        elapsed <= hung_after + interval + window + 2.5,
        "flagged after {elapsed:.2} s, more than --hung-after + one interval"
    );
    // The snapshot was on disk, stacks included, before the hook ran.
    let snap_path = flagged
        .split("[snapshot: ")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap_or_else(|| panic!("{flagged}"));
    let snap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(snap_path).unwrap()).unwrap();
    assert_eq!(snap["pid"], hung);
    assert!(snap["stacks"].is_object(), "{snap:#}");
    assert!(flagged.contains("[hook: ok]"), "{flagged}");
    let input: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(format!("hook-{hung}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(input["worker"]["verdict"], "hung");
    assert_eq!(input["from"], "healthy");
    assert_eq!(input["snapshot"], snap_path);
    // Three more rounds: no second alert for the same worker and verdict.
    let textfile = prom.join("mlsdiag.prom");
    // Series name the worker, not its PID (that is on mlsdiag_worker_info).
    let wlabel = format!("worker=\"{}\"", snap["name"].as_str().unwrap());
    // Seconds from the worker's last progress to the round's check, by the timestamps.
    let since = |text: &str| -> f64 {
        let value = |family: &str, labels: &str| -> Option<f64> {
            text.lines()
                .find(|l| l.starts_with(family) && l.contains(labels))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
        };
        let check = value("mlsdiag_check_timestamp_seconds ", "");
        let last = value("mlsdiag_worker_last_progress_timestamp_seconds{", &wlabel);
        check.zip(last).map_or(0.0, |(c, l)| c - l)
    };
    let hung_since = || {
        std::fs::read_to_string(&textfile)
            .ok()
            .filter(|t| t.contains(&format!("{{{wlabel},verdict=\"hung\"}} 1")))
            .map(|t| since(&t))
    };
    let mut s0 = 0.0;
    wait_until(Duration::from_secs(30), "the hung round's metrics", || {
        hung_since().inspect(|s| s0 = *s).is_some()
    });
    wait_until(Duration::from_secs(30), "three more rounds", || {
        hung_since().is_some_and(|s| s >= s0 + 3.0 * interval - 0.5)
    });
    let hook_lines = std::fs::read_to_string(&hooks).unwrap();
    let for_hung: Vec<&str> = hook_lines
        .lines()
        .filter(|l| l.starts_with(&format!("{hung} ")))
        .collect();
    assert_eq!(
        for_hung,
        [format!("{hung} hung {}", snap["name"].as_str().unwrap())]
    );
    // Metrics: the textfile and /metrics agree, and promtool accepts both.
    let text = std::fs::read_to_string(&textfile).unwrap();
    let verdict = "verdict=\"hung\"} 1";
    assert!(
        text.lines()
            .any(|l| l.contains(&wlabel) && l.ends_with(verdict)),
        "{text}"
    );
    let info = format!("mlsdiag_worker_info{{{wlabel},pid=\"{hung}\",");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&info) && l.ends_with(" 1")),
        "{text}"
    );
    assert!(text.contains("mlsdiag_up 1"), "{text}");
    let (ok, why) = promtool(&text);
    assert!(ok, "promtool check metrics: {why}\n{text}");
    let response = http_get(&addr, "/metrics");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("text/plain; version=0.0.4"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(body.contains("mlsdiag_worker_verdict{"), "{body}");
    let (ok, why) = promtool(body);
    assert!(ok, "promtool check metrics (/metrics): {why}");
    assert!(http_get(&addr, "/nope").starts_with("HTTP/1.1 404"));
    // The log is followed across rounds: a completion appended now is seen, and the worker is
    // no longer hung; a new request that stalls is a new hang, and alerts again.
    let append = |line: String| {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(line.as_bytes()).unwrap();
    };
    append(log_line(&format!(
        "Chat completion: 5 tokens in 9.0s (0.6 tok/s) pid={hung} id=fresh-1"
    )));
    let (recovered, _) = watch.line(Duration::from_secs(30), |l| l.contains(&me));
    assert!(recovered.contains("hung → healthy"), "{recovered}");
    append(log_line(&format!(
        "Chat completion request: pid={hung} id=fresh-2 prompt_chars=100 max_tokens=20 temperature=0"
    )));
    let (again, _) = watch.line(Duration::from_secs(30), |l| l.contains(&me));
    assert!(
        again.contains("healthy → hung") && again.contains("fresh-2"),
        "{again}"
    );
    assert!(again.contains("[hook: ok]"), "{again}");
    let hook_lines = std::fs::read_to_string(&hooks).unwrap();
    assert_eq!(
        hook_lines
            .lines()
            .filter(|l| l.starts_with(&format!("{hung} hung")))
            .count(),
        2,
        "{hook_lines}"
    );
    // SIGTERM ends it between rounds.
    // SAFETY: kill(2) on the watch child this test started.
    unsafe { libc::kill(watch.child.id() as i32, libc::SIGTERM) };
    let mut watch = watch;
    let mut status = None;
    wait_until(Duration::from_secs(20), "watch to exit on SIGTERM", || {
        status = watch.child.try_wait().unwrap();
        status.is_some()
    });
    // 128 + the signal, not the last round's status (#32).
    assert_eq!(status.unwrap().code(), Some(128 + libc::SIGTERM));
}

#[test]
fn ctrl_c_ends_watch_with_130() {
    let mut cmd = std::process::Command::new(crate::util::bin());
    cmd.args([
        "watch",
        "--pattern",
        "zz-no-such-worker",
        "--no-registry",
        "--interval",
        "1s",
        "--window",
        "0s",
        "--no-snapshot",
    ]);
    let mut watch = crate::util::Background::spawn(cmd);
    // Once its SIGINT handler is set (the kernel's caught-signal mask says so).
    wait_until(Duration::from_secs(20), "the SIGINT handler", || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", watch.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .is_some_and(|m| m & (1 << (libc::SIGINT - 1)) != 0)
    });
    // SAFETY: kill(2) on the watch child this test started.
    unsafe { libc::kill(watch.child.id() as i32, libc::SIGINT) };
    let mut status = None;
    wait_until(Duration::from_secs(20), "watch to exit on SIGINT", || {
        status = watch.child.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(130));
}

#[test]
fn restart_hung_ends_the_hung_worker_after_its_snapshot_and_nothing_else() {
    let sim = Sim::start();
    let hung = sim.pid("hung");
    let dir = tempfile::tempdir().unwrap();
    let o = run(&[
        "watch",
        "--pattern",
        sim.pattern(),
        "--registry",
        sim.registry(),
        "--log",
        sim.log(),
        "--rounds",
        "1",
        "--window",
        "300ms",
        // The simulated hung worker's request is as old as the worker: under a second here.
        "--hung-after",
        "200ms",
        "--restart-hung",
        "--grace",
        "5s",
        "--on-finding",
        "sleep 30",
        "--hook-timeout",
        "500ms",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = out
        .lines()
        .find(|l| l.contains(&format!("PID {hung} ")))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("→ hung"), "{line}");
    assert!(line.contains("[snapshot: "), "{line}");
    // A hook that outlives --hook-timeout is killed, with everything it started.
    assert!(line.contains("[hook: killed after 500ms"), "{line}");
    assert!(
        line.contains(&format!("[restart: sent SIGTERM to PID {hung}")),
        "{line}"
    );
    let gone = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
    };
    wait_until(Duration::from_secs(10), "the hung worker to end", || {
        gone(hung)
    });
    // Only the hung worker was touched.
    for role in ["working", "idle", "leaking"] {
        assert!(!gone(sim.pid(role)), "{role} worker was ended");
        assert!(!out.contains(&format!("restart: sent SIGTERM to PID {}", sim.pid(role))));
    }
    // Its snapshot is on disk.
    let snaps: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("worker_{hung}_"))
        })
        .collect();
    assert_eq!(snaps.len(), 2, "json and txt");
}

#[test]
fn check_textfile_writes_metrics_promtool_accepts() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let o = sim.check(&[
        "--window",
        "300ms",
        "--textfile",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.path().join("mlsdiag.prom")).unwrap();
    let (ok, why) = promtool(&text);
    assert!(ok, "{why}\n{text}");
    for family in [
        "mlsdiag_up 1",
        "mlsdiag_scrape_duration_seconds ",
        "mlsdiag_worker_verdict{",
        "mlsdiag_worker_cpu_seconds_total{",
        "mlsdiag_worker_resident_bytes{",
        "mlsdiag_worker_threads{",
        "mlsdiag_worker_in_flight_requests{",
        "mlsdiag_worker_last_progress_timestamp_seconds{",
        "mlsdiag_worker_info{",
        "mlsdiag_build_info{version=",
        "mlsdiag_check_timestamp_seconds ",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    // One series per verdict and worker, exactly one of them 1; no PID on them.
    let working = sim.pid("working");
    let info = (text.lines())
        .find(|l| {
            l.starts_with("mlsdiag_worker_info{") && l.contains(&format!("pid=\"{working}\""))
        })
        .unwrap_or_else(|| panic!("no info for {working}:\n{text}"));
    let wlabel = info["mlsdiag_worker_info{".len()..]
        .split(",pid=")
        .next()
        .unwrap()
        .to_string();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("mlsdiag_worker_verdict{{{wlabel},")))
        .collect();
    assert!(
        !text
            .lines()
            .any(|l| !l.starts_with("mlsdiag_worker_info") && l.contains("pid=")),
        "{text}"
    );
    assert_eq!(series.len(), 6, "{series:?}");
    assert_eq!(series.iter().filter(|l| l.ends_with(" 1")).count(), 1);
    // A symlinked directory is refused, naming it.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let o = sim.check(&["--window", "0s", "--textfile", link.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
}

#[test]
fn the_alerting_rules_pass_their_promtool_unit_tests() {
    // docs/alerting-rules.test.yml: a worker hung for two rounds fires MlsWorkerHung (naming
    // its PID), a recovered one stops it, a worker restarted under its name (a new PID) is one
    // alert, not two; and MlsdiagDown.
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let args = ["test", "rules", "alerting-rules.test.yml"].map(std::ffi::OsStr::new);
    let (ok, why) = crate::util::promtool_in(&docs, &args);
    assert!(ok, "{why}");
}

#[test]
fn the_alerting_rules_in_docs_pass_promtool() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerting-rules.yml");
    let args = ["check".as_ref(), "rules".as_ref(), rules.as_os_str()];
    let (ok, why) = crate::util::promtool_in(Path::new("."), &args);
    assert!(ok, "{why}");
    let text = std::fs::read_to_string(&rules).unwrap();
    for alert in [
        "MlsWorkerHung",
        "MlsWorkerLeaking",
        "MlsWorkerCrashed",
        "MlsdiagDown",
    ] {
        assert!(text.contains(&format!("alert: {alert}")), "{alert}");
    }
}

#[test]
fn the_watch_service_files_use_real_flags() {
    use clap::Parser;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scheduling");
    let service = std::fs::read_to_string(root.join("mlsdiag-watch.service")).unwrap();
    let exec: Vec<String> = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(service.contains("Restart=always") && service.contains("[Install]"));
    let (keys, args) = crate::util::plist("docs/scheduling/com.github.mlsdiag.watch.plist");
    assert!(
        ["KeepAlive", "Label", "ProgramArguments"]
            .iter()
            .all(|k| keys.iter().any(|x| x == k)),
        "{keys:?}"
    );
    for argv in [exec, args] {
        assert_eq!(argv[1], "watch", "{argv:?}");
        mlsdiag::cli::Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    }
}

#[test]
fn restart_hung_against_a_respawning_orchestrator_acts_once_and_spares_the_fresh_worker() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let tag = format!("respawn-{}", std::process::id());
    let mut cmd = std::process::Command::new("python3");
    cmd.args([
        &crate::util::root("tests/workers/respawning_orchestrator.py"),
        "serve",
        d.to_str().unwrap(),
        &tag,
    ]);
    let orch = crate::util::Background::spawn(cmd);
    orch.line(Duration::from_secs(30), |l| l == "ready");
    let reg = d.join("worker_registry.json");
    let registry: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&reg).unwrap()).unwrap();
    let pid_of = |name: &str| {
        registry["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap()["pid"]
            .as_u64()
            .unwrap() as u32
    };
    let (old, idle) = (pid_of("w-hung"), pid_of("w-idle"));
    let snaps = d.join("snaps");
    // About six seconds of rounds: the hang is found, the worker restarted, the orchestrator
    // respawns it under its name, and the log still holds req-1 open with fresh timeouts.
    let o = run(&[
        "watch",
        "--pattern",
        &format!("respawning_orchestrator.py worker {tag} "),
        "--registry",
        reg.to_str().unwrap(),
        "--log",
        d.join("mls.log").to_str().unwrap(),
        "--rounds",
        "12",
        "--interval",
        "500ms",
        "--window",
        "300ms",
        "--hung-after",
        "1s",
        "--restart-hung",
        "--grace",
        "5s",
        "--dir",
        snaps.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert_eq!(
        out.matches("restart: sent SIGTERM").count(),
        1,
        "one restart, never the fresh worker:\n{out}"
    );
    assert!(
        out.contains(&format!("[restart: sent SIGTERM to PID {old}")),
        "{out}"
    );
    let (line, _) = orch.line(Duration::from_secs(10), |l| {
        l.starts_with("respawned w-hung")
    });
    let new: u32 = line.split(' ').nth(3).unwrap().parse().unwrap();
    assert_ne!(new, old);
    for pid in [new, idle] {
        assert!(crate::util::alive(pid), "PID {pid} was ended");
    }
    // The fresh worker was watched and never called hung: req-1 predates it.
    let fresh: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(&format!("PID {new} ")))
        .collect();
    assert!(
        !fresh.is_empty(),
        "watch never saw the respawned worker:\n{out}"
    );
    assert!(fresh.iter().all(|l| !l.contains("→ hung")), "{fresh:#?}");
}

/// `watch --listen` on no worker, under `ulimit -n NOFILE` when given, and its address once it
/// answers a first scrape.
fn metrics_watch(nofile: Option<u32>) -> (Background, String) {
    let limit = nofile.map_or(String::new(), |n| format!("ulimit -n {n}; "));
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!(
            "{limit}exec \"$0\" watch --pattern no-such-worker-zz9 --registry /dev/null --interval 1s --window 0s --no-snapshot --listen 127.0.0.1:0"
        ),
        bin().to_str().unwrap(),
    ]);
    let watch = Background::spawn(cmd);
    let addr = metrics_addr(&watch);
    wait_until(Duration::from_secs(20), "a first scrape", || {
        scrape(&addr, Duration::from_secs(3)).is_ok()
    });
    (watch, addr)
}

/// One scrape of `/metrics` on a fresh connection, answered whole within `limit`: how long it
/// took, or why it failed.
fn scrape(addr: &str, limit: Duration) -> Result<Duration, String> {
    let t = Instant::now();
    let sock: std::net::SocketAddr = addr.parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&sock, limit).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(limit)).unwrap();
    s.set_write_timeout(Some(limit)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    let took = t.elapsed();
    if !(body.starts_with("HTTP/1.1 200") && body.contains("mlsdiag_up")) {
        return Err(format!("not a scrape: {body:?}"));
    }
    if took > limit {
        return Err(format!("answered after {took:?}"));
    }
    Ok(took)
}

/// Whether the server has closed `s` (end of stream or an error), waiting at most `wait`.
fn closed_by_server(s: &mut std::net::TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Waits until the server has closed every connection in `conns`, within `limit`.
fn all_closed_by_server(conns: &mut Vec<std::net::TcpStream>, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while let Some(s) = conns.last_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{} {what} still open after {limit:?}",
            conns.len()
        );
        if closed_by_server(s, left) {
            conns.pop();
        }
    }
}

#[test]
fn metrics_answer_fresh_scrapes_while_one_client_holds_hundreds_of_idle_connections() {
    let (_watch, addr) = metrics_watch(None);
    // One client opens 200 connections and sends nothing on them.
    let mut idle: Vec<_> = (0..200)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // Scrapes from fresh connections are answered (within 5 s; in practice a millisecond, see
    // docs/benchmarks.md) while it holds them.
    for i in 0..20 {
        if let Err(e) = scrape(&addr, Duration::from_secs(5)) {
            panic!("scrape {i} with 200 idle connections held: {e}");
        }
    }
    // Slowloris: 20 requests that are never finished, one byte at a time. Scrapes go on being
    // answered, and each slow connection is closed by the server within its request deadline
    // (2 s from its accept).
    let partial = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut slow: Vec<_> = (0..20)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.write_all(partial.as_bytes()).unwrap();
            s
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !slow.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} slow requests still open after 10 s",
            slow.len()
        );
        if let Err(e) = scrape(&addr, Duration::from_secs(5)) {
            panic!("scrape with {} slow requests trickling: {e}", slow.len());
        }
        // One more byte on each slow connection still open; the wait for the first one's
        // close paces the trickle.
        slow.retain_mut(|s| s.write_all(b"a").is_ok());
        if let Some(first) = slow.first_mut()
            && closed_by_server(first, Duration::from_millis(200))
        {
            slow.remove(0);
        }
        slow.retain_mut(|s| !closed_by_server(s, Duration::ZERO));
    }
    // The idle connections were closed by the server too (their request never came).
    all_closed_by_server(&mut idle, Duration::from_secs(10), "idle connections");
}

#[test]
fn the_metrics_listener_survives_a_pipelining_client_and_descriptor_exhaustion() {
    // Few descriptors on purpose (8): a handful of connections exhaust them.
    let (watch, addr) = metrics_watch(Some(8));
    // One client pipelines thousands of requests and never reads a byte.
    let mut greedy = std::net::TcpStream::connect(&addr).unwrap();
    greedy.set_nonblocking(true).unwrap();
    let flood = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    let _ = greedy.write_all(flood.as_bytes());
    if let Err(e) = scrape(&addr, Duration::from_secs(3)) {
        panic!("a pipelining client silenced the scrape: {e}");
    }
    // Hundreds of idle connections, far past the descriptor limit: accepts fail, which is
    // logged, and a held connection is closed for each, so scrapes are still answered while
    // the client holds as many as it can.
    let mut idle: Vec<_> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    for i in 0..10 {
        if let Err(e) = scrape(&addr, Duration::from_secs(3)) {
            panic!("scrape {i} with {} idle connections held: {e}", idle.len());
        }
    }
    // Rounds may fail for want of descriptors too, and say so: the accept error is among the
    // lines.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("accept failed") && l.contains("still listening"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match watch.stderr.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no accept error logged; stderr: {seen:#?}"),
        }
    }
    all_closed_by_server(&mut idle, Duration::from_secs(10), "idle connections");
    drop(greedy);
    wait_until(Duration::from_secs(20), "scrapes after the flood", || {
        scrape(&addr, Duration::from_secs(3)).is_ok()
    });
}
