//! Recordings replayed with `--fixture`: the seed incident as macOS reports it, diagnosed and
//! rendered on whatever OS runs the tests; and `record` → replay on live processes.

use std::process::Command;

use crate::util::{Sim, bin, json, root, run, stderr, stdout};

const SEED: &str = "fixtures/macos/seed-incident.json";

/// mlsdiag on a recording; TZ=UTC so the log's zone-less times line up with the capture time.
fn replay(fixture: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("--fixture")
        .arg(root(fixture))
        .args(args)
        .env("TZ", "UTC")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `check` on the seed incident's recording, with its registry and log.
fn check_seed(extra: &[&str]) -> std::process::Output {
    let reg = root("fixtures/seed/worker_registry.json");
    let log = root("fixtures/seed/mls.log");
    let mut args = vec![
        "check",
        "--registry",
        &reg,
        "--log",
        &log,
        "--window",
        "0.2s",
    ];
    args.extend_from_slice(extra);
    replay(SEED, &args)
}

#[test]
fn the_macos_seed_incident_is_hung() {
    let out = check_seed(&["--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let r = json(&out);
    let w = &r["workers"][0];
    assert_eq!(r["workers"].as_array().unwrap().len(), 1);
    assert_eq!(w["pid"], 49387);
    assert_eq!(w["verdict"], "hung");
    assert_eq!(w["state"], "S");
    assert_eq!(w["threads"], 18);
    assert_eq!(w["rss_bytes"], 8_386_464u64 * 1024);
    assert_eq!(
        w["footprint_bytes"], 9_126_805_504u64,
        "macOS reports phys_footprint"
    );
    assert_eq!(
        w["elapsed_secs"],
        8 * 3600 + 49 * 60 + 23,
        "the seed's ELAPSED 08:49:23, judged at capture time"
    );
    assert!(
        w["findings"][0]["evidence"][0]
            .as_str()
            .unwrap()
            .contains("req-319 (8489 chars")
    );
    assert!(
        w["notes"].to_string().contains("footprint"),
        "the memory trend uses footprint on macOS"
    );
    assert_eq!(
        w["ipc"]["channels_to_parent"], 7,
        "pipes 0-2 and 5-7 and the unix socket on fd 13"
    );
    assert_eq!(w["ipc"]["shm_objects"][0], "/mls_kv_49387");
    assert_eq!(r["orchestrators"][0]["pid"], 4120);

    let text = stdout(&check_seed(&[]));
    assert!(
        text.contains("✗ [hung] request req-319") && text.contains("→ CRITICAL (exit 2)"),
        "{text}"
    );
}

#[test]
fn macos_threads_fds_and_memory_render() {
    let r = json(&replay(
        SEED,
        &["threads", "49387", "--window", "0s", "--json"],
    ));
    assert_eq!(r["threads"].as_array().unwrap().len(), 18);
    assert_eq!(
        r["states"]["I"], 17,
        "asleep for hours: idle, as ps prints it"
    );
    assert_eq!(r["states"]["S"], 1);
    assert_eq!(r["all_blocked"], true);
    assert!(
        r["threads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["sleep_secs"].is_u64() && t["wait_channel"].is_null())
    );

    let r = json(&replay(SEED, &["fds", "49387", "--json"]));
    let fds = r["fds"].as_array().unwrap();
    let pipes: Vec<i64> = fds
        .iter()
        .filter(|f| f["kind"] == "pipe")
        .map(|f| f["fd"].as_i64().unwrap())
        .collect();
    assert_eq!(pipes, [0, 1, 2, 5, 6, 7]);
    let unix = fds.iter().find(|f| f["kind"] == "unix_socket").unwrap();
    assert_eq!(
        (unix["fd"].as_i64(), unix["peers"][0]["pid"].as_u64()),
        (Some(13), Some(4120))
    );
    assert!(
        fds.iter()
            .any(|f| f["kind"] == "shm" && f["target"] == "/mls_kv_49387")
    );

    let text = stdout(&replay(SEED, &["mem", "49387"]));
    assert!(
        text.contains("8.5 GiB")
            && text.contains("pressure: normal (kernel memory pressure level 1"),
        "{text}"
    );
}

#[test]
fn footprint_reveals_the_leak_rss_hides() {
    let reg = root("fixtures/seed/worker_registry.json");
    let out = replay(
        "fixtures/macos/footprint-leak.json",
        // The recording's twelve readings (150 MB apart) are replayed over the 1 s window.
        &[
            "check",
            "--registry",
            &reg,
            "--window",
            "1s",
            "--leak-min-span",
            "500ms",
            "--json",
        ],
    );
    let r = json(&out);
    let w = &r["workers"][0];
    assert_eq!(w["verdict"], "leaking", "{w:#}");
    let ev = w["findings"][0]["evidence"][0].as_str().unwrap();
    assert!(ev.starts_with("footprint "), "{ev}");
    // The same recording's RSS never moves: an RSS-based check would call this healthy.
    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root("fixtures/macos/footprint-leak.json")).unwrap(),
    )
    .unwrap();
    let rss: Vec<u64> = rec["processes"][0]["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rss_bytes"].as_u64().unwrap())
        .collect();
    assert!(rss.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn record_then_replay_live_processes() {
    let sim = Sim::start();
    let file = sim.path("idle.recording.json");
    let pid = sim.pid("idle").to_string();
    let out = run(&[
        "record",
        &pid,
        "-o",
        file.to_str().unwrap(),
        "--samples",
        "3",
        "--interval",
        "100ms",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(rec["os"], std::env::consts::OS);
    let pids: Vec<u64> = rec["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert!(
        pids.contains(&sim.state["orchestrator_pid"].as_u64().unwrap()),
        "the parent is recorded too"
    );
    // Replay: the same answers without the live process.
    let live = json(&run(&["fds", &pid, "--json"]));
    let replayed = json(
        &Command::new(bin())
            .args(["--fixture", file.to_str().unwrap(), "fds", &pid, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        live["fds"].as_array().unwrap().len(),
        replayed["fds"].as_array().unwrap().len()
    );
    assert_eq!(replayed["ipc"]["counts"], live["ipc"]["counts"]);

    // Never overwrite an earlier recording.
    let before = std::fs::read(&file).unwrap();
    let again = run(&[
        "record",
        &pid,
        "-o",
        file.to_str().unwrap(),
        "--samples",
        "1",
    ]);
    assert_eq!(again.status.code(), Some(3));
    assert!(
        stderr(&again).contains("idle.recording.json"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

#[test]
fn a_bad_recording_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("rec.json");
    std::fs::write(&bad, r#"{"schema_version": 1, "kind": "something-else"}"#).unwrap();
    let out = Command::new(bin())
        .args(["--fixture", bad.to_str().unwrap(), "mem"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("rec.json") && stderr(&out).contains("not a recording"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_macos_seed_incident_as_metrics_has_the_footprint_and_the_hang() {
    let dir = tempfile::tempdir().unwrap();
    let out = check_seed(&["--textfile", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("mlsdiag.prom")).unwrap();
    // The worker by name; its PID is on mlsdiag_worker_info only.
    let worker = "worker=\"mlx-server-v3-1\"";
    assert!(
        (text.lines()).any(|l| l
            .starts_with("mlsdiag_worker_info{worker=\"mlx-server-v3-1\",pid=\"49387\",")
            && l.ends_with(" 1")),
        "{text}"
    );
    for line in [
        format!("mlsdiag_worker_verdict{{{worker},verdict=\"hung\"}} 1"),
        // The leak signal on macOS is phys_footprint, exported beside RSS.
        format!("mlsdiag_worker_footprint_bytes{{{worker}}} 9126805504"),
        format!(
            "mlsdiag_worker_resident_bytes{{{worker}}} {}",
            8_386_464u64 * 1024
        ),
        format!("mlsdiag_worker_threads{{{worker}}} 18"),
        // req-319, and req-320 queued behind it after the orchestrator's timeout.
        format!("mlsdiag_worker_in_flight_requests{{{worker}}} 2"),
        "mlsdiag_status 2".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    let (ok, why) = crate::util::promtool(&text);
    assert!(ok, "{why}");
}
