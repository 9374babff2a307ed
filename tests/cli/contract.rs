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
