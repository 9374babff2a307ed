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

#[test]
fn no_registry_is_not_read_by_snapshot_either() {
    // The sim's registry is there; `--no-registry` says there is no orchestrator, so the
    // snapshot records no registry entry for a worker the registry lists (#30).
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let hung = sim.pid("hung").to_string();
    let out = run(&[
        "snapshot",
        "--pattern",
        sim.pattern(),
        "--registry",
        sim.registry(),
        "--no-registry",
        "--window",
        "0s",
        "--dir",
        dir.path().to_str().unwrap(),
        &hung,
    ]);
    assert!(out.status.code().is_some(), "{}", stderr(&out));
    let snaps: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(snaps.len(), 1, "{}", stderr(&out));
    let snap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(snaps[0].path()).unwrap()).unwrap();
    assert!(snap["registry"].is_null(), "{:#}", snap["registry"]);
    assert_eq!(snap["registry_path"], "none (--no-registry)");
    assert_eq!(snap["worker"]["registered"], false);
}
