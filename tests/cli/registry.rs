//! `mlsdiag registry`: entries joined with the process table.

use crate::util::{Sim, json, run, stderr, write};

#[test]
fn alive_dead_and_unlisted() {
    let sim = Sim::start();
    let out = run(&[
        "registry",
        "--json",
        "--pattern",
        sim.pattern(),
        "--registry",
        sim.registry(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a dead entry is CRITICAL: {}",
        stderr(&out)
    );
    let r = json(&out);
    let entries = r["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5, "the orphan is not registered");
    for e in entries {
        let expect = if e["pid"] == sim.pid("crashed") {
            "dead"
        } else {
            "alive"
        };
        assert_eq!(e["liveness"], expect, "{e:#}");
        assert_eq!(e["model"], "mlx-community/Qwen2.5-14B-Instruct-4bit");
        assert_eq!(e["extra"]["status"], "ready", "unknown fields are kept");
    }
    let unlisted = r["unlisted"].as_array().unwrap();
    assert_eq!(unlisted.len(), 1);
    assert_eq!(unlisted[0]["pid"], sim.pid("orphan"));
}

#[test]
fn malformed_registry_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("worker_registry.json");
    write(&bad, "[\n  {\"pid\": 1}\n  {\"pid\": 2}\n]");
    let out = run(&["registry", "--registry", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("worker_registry.json") && err.contains("line 3, column 3"),
        "{err}"
    );

    write(&bad, r#"{"workers":[{"name":"no-pid"}]}"#);
    let err = stderr(&run(&["registry", "--registry", bad.to_str().unwrap()]));
    assert!(err.contains("worker #1: missing \"pid\""), "{err}");

    let missing = dir.path().join("nope.json");
    let err = stderr(&run(&["registry", "--registry", missing.to_str().unwrap()]));
    assert!(err.contains("nope.json: registry does not exist"), "{err}");
}
