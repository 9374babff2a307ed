//! The JSON contract of `check`: deserialised into strict structs, so a renamed or added field
//! fails here before it breaks a user's script. Bump `schema_version` when this must change.

use serde::Deserialize;

use crate::util::{Sim, run};

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    schema_version: u32,
    command: String,
    generated_at: String,
    status: String,
    exit_code: u8,
    pattern: String,
    registry: Registry,
    log: Option<Log>,
    window_secs: f64,
    workers: Vec<Worker>,
    orchestrators: Vec<Orchestrator>,
    summary: std::collections::BTreeMap<String, usize>,
    notes: Vec<String>,
    untrusted: Vec<String>,
    /// Present where the platform has a GPU source (absent for recordings).
    #[serde(default)]
    gpu: Option<GpuSource>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GpuSource {
    source: String,
    error: Option<String>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Gpu {
    source: String,
    busy_percent: Option<f64>,
    gpu_seconds: Option<f64>,
    memory_bytes: Option<u64>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Progress {
    source: String,
    pid: u32,
    created: String,
    tokens: u64,
    last_token: Option<String>,
    generating_since: Option<String>,
    waiting_since: Option<String>,
    request_tokens: u64,
    prompt: Option<[u64; 2]>,
    last_progress: Option<String>,
    generations: u64,
    request: Option<String>,
    read_at: String,
    window_tokens: Option<u64>,
    tokens_per_sec: Option<f64>,
    secs_since_progress: Option<f64>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registry {
    path: String,
    state: String,
    error: Option<String>,
    entries: usize,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Log {
    path: String,
    format: String,
    events: u64,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Orchestrator {
    pid: u32,
    workers: usize,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Worker {
    pid: u32,
    name: String,
    registered: bool,
    /// How discovery found it: `registry`, `pattern`, `known server: NAME`, `mlx loaded`.
    found_by: String,
    model: Option<String>,
    ppid: Option<u32>,
    state: Option<char>,
    cpu_percent: Option<f64>,
    cpu_seconds: Option<f64>,
    rss_bytes: Option<u64>,
    vsz_bytes: Option<u64>,
    footprint_bytes: Option<u64>,
    elapsed_secs: Option<u64>,
    started_at: Option<String>,
    threads: Option<u32>,
    command: Option<String>,
    verdict: String,
    activity: String,
    findings: Vec<Finding>,
    notes: Vec<String>,
    /// Only for a worker with a request in flight: the hung rule's conditions.
    #[serde(default)]
    hung_rule: Vec<Condition>,
    in_flight: Vec<InFlight>,
    #[allow(dead_code)]
    in_flight_known: bool,
    ipc: Option<Ipc>,
    /// Only for workers whose registry entry names a token progress record.
    #[serde(default)]
    progress: Option<Progress>,
    /// Only where the OS's GPU source knows the worker.
    #[serde(default)]
    gpu: Option<Gpu>,
    /// Only for a worker that listens on a TCP port, or whose socket table could not be read.
    #[serde(default)]
    connections: Option<Connections>,
    /// Only with --probe, on the worker listening on the probe's port.
    #[serde(default)]
    probe: Option<Probe>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Connections {
    listening: Vec<String>,
    accepted: Vec<Connection>,
    #[serde(default)]
    left_out: usize,
    #[serde(default)]
    error: Option<String>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Connection {
    fd: Option<i32>,
    local: String,
    peer: String,
    state: String,
    accepted: bool,
    last_recv_ms: Option<u64>,
    last_sent_ms: Option<u64>,
    bytes_received: Option<u64>,
    bytes_sent: Option<u64>,
    rx_queue: Option<u64>,
    tx_queue: Option<u64>,
    #[serde(default)]
    server_reading: Option<bool>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    url: String,
    sent_at: String,
    state: String,
    age_secs: f64,
    deadline_secs: f64,
    first_byte_secs: Option<f64>,
    first_token_secs: Option<f64>,
    seconds: Option<f64>,
    error: Option<String>,
    #[serde(default)]
    local: Option<String>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    condition: String,
    held: bool,
    fact: String,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Finding {
    verdict: String,
    evidence: Vec<String>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InFlight {
    started: String,
    line: u64,
    source: usize,
    worker: Option<String>,
    pid: Option<u32>,
    id: Option<String>,
    prompt_chars: Option<u64>,
    prompt_tokens: Option<u64>,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    progress: Option<[u64; 2]>,
    timeouts: Vec<String>,
    end_logged: bool,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ipc {
    counts: std::collections::BTreeMap<String, usize>,
    shm_objects: Vec<String>,
    channels_to_parent: Option<usize>,
    warnings: Vec<String>,
}

#[test]
fn check_json_matches_the_documented_schema() {
    let sim = Sim::start();
    let out = sim.check(&["--json", "--window", "0.5s"]);
    let r: Check = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(r.schema_version, 1);
    assert_eq!(r.command, "check");
    assert_eq!(r.exit_code, 2);
    assert_eq!(out.status.code(), Some(r.exit_code.into()));
    assert_eq!(r.workers.len(), 6);
    assert_eq!(r.summary.values().sum::<usize>(), 6);
    let verdicts = ["healthy", "orphan", "leaking", "unknown", "hung", "crashed"];
    assert!(
        r.workers
            .iter()
            .all(|w| verdicts.contains(&w.verdict.as_str()))
    );
}

/// A plain HTTP server as the worker (Python's `http.server`, which answers a POST with 501):
/// its listening socket in `connections`, and a `--probe` that failed in `probe`.
#[test]
fn a_worker_serving_tcp_has_its_connections_and_the_probe_in_the_schema() {
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Killed(
        std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 is part of this project's test machines"),
    );
    crate::util::wait_until(
        std::time::Duration::from_secs(30),
        "http.server to listen",
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let out = run(&[
        "check",
        "--json",
        "--pattern",
        &format!(r"http\.server {port} "),
        "--registry",
        dir.path().join("none.json").to_str().unwrap(),
        "--window",
        "0.2s",
        "--probe",
        &url,
    ]);
    let r: Check = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(r.workers.len(), 1);
    let w = &r.workers[0];
    let c = w.connections.as_ref().expect("its connections");
    assert_eq!(c.listening, [format!("127.0.0.1:{port}")]);
    let p = w.probe.as_ref().expect("the probe");
    assert_eq!((p.url.as_str(), p.state.as_str()), (url.as_str(), "failed"));
    assert!(
        p.error.as_deref().unwrap_or("").contains("HTTP 501"),
        "{:?}",
        p.error
    );
    assert_eq!(w.verdict, "unknown");
}

#[test]
fn every_subcommand_has_schema_version_1() {
    let sim = Sim::start();
    let pid = sim.pid("idle").to_string();
    for args in [
        vec!["threads", &pid, "--window", "0s", "--json"],
        vec!["fds", &pid, "--json"],
        vec!["mem", &pid, "--json"],
        vec![
            "registry",
            "--json",
            "--registry",
            sim.registry(),
            "--pattern",
            sim.pattern(),
        ],
    ] {
        let out = run(&args);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(v["schema_version"], 1, "{args:?}");
        assert_eq!(v["command"], args[0], "{args:?}");
    }
}
