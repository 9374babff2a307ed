//! `threads`, `fds` and `mem` on real processes, and what happens without permission.

use crate::util::{Sim, json, run, stderr, stdout};

#[test]
#[cfg(target_os = "linux")] // wait channels and futex addresses are Linux-only
fn threads_of_the_deadlocked_worker_group_by_lock() {
    let sim = Sim::start();
    let pid = sim.pid("hung").to_string();
    let out = run(&["threads", &pid, "--json", "--window", "300ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["all_blocked"], true, "{r:#}");
    let threads = r["threads"].as_array().unwrap();
    assert_eq!(
        threads.len(),
        4,
        "main, ipc-link and the two deadlocked threads"
    );
    let names: Vec<&str> = threads
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"generate") && names.contains(&"kv-cache"),
        "{names:?}"
    );
    // The three lock waiters share one wait channel; each waits on its own lock word (the
    // addresses need the syscall file, which Yama's ptrace_scope >= 1 may deny).
    let locks = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["wait"].as_str().unwrap().starts_with("futex"))
        .unwrap_or_else(|| panic!("no futex group: {r:#}"));
    assert_eq!(locks["tids"].as_array().unwrap().len(), 3, "{locks:#}");
    if threads[0]["syscall"]["kind"] != "unavailable" {
        assert_eq!(locks["locks"].as_object().unwrap().len(), 3, "{locks:#}");
    }
    for t in threads {
        assert_eq!(t["state"], "S");
        assert_eq!(t["cpu_percent"].as_f64(), Some(0.0), "{t:#}");
    }
    let table = stdout(&run(&["threads", &pid, "--window", "0s"]));
    assert!(
        table.contains("all blocked, none running") && table.contains("3 thread(s) in"),
        "{table}"
    );
}

#[test]
fn fds_show_pipes_socket_peer_and_shm() {
    let sim = Sim::start();
    let orch = sim.state["orchestrator_pid"].as_u64().unwrap();
    let out = run(&["fds", &sim.pid("idle").to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    let fds = r["fds"].as_array().unwrap();
    let by_fd = |n: i64| {
        fds.iter()
            .find(|f| f["fd"] == n)
            .unwrap_or_else(|| panic!("fd {n}: {r:#}"))
    };
    assert_eq!(by_fd(0)["kind"], "pipe");
    assert_eq!(by_fd(1)["kind"], "pipe");
    assert!(
        by_fd(0)["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == orch),
        "stdin's writer is the orchestrator"
    );
    let unix: Vec<_> = fds.iter().filter(|f| f["kind"] == "unix_socket").collect();
    assert!(!unix.is_empty());
    assert!(unix.iter().all(|u| u["state"] == "connected"));
    assert!(
        unix[0]["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == orch),
        "{:#}",
        unix[0]
    );
    let shm: Vec<_> = fds.iter().filter(|f| f["kind"] == "shm").collect();
    assert_eq!(shm.len(), 1);
    assert!(shm[0]["target"].as_str().unwrap().starts_with("/mlsdiag-"));
    assert!(
        r["ipc"]["warnings"].as_array().unwrap().is_empty(),
        "{:#}",
        r["ipc"]
    );

    // The orphan lost its orchestrator: the summary says so.
    let out = run(&["fds", &sim.pid("orphan").to_string()]);
    let text = stdout(&out);
    assert!(
        text.contains("WARNING parent is init/launchd") || text.contains("IPC failure"),
        "{text}"
    );
}

#[test]
fn mem_series_and_trend_of_the_leaking_worker() {
    let sim = Sim::start();
    let out = run(&[
        "mem",
        &sim.pid("leaking").to_string(),
        "--samples",
        "6",
        "--interval",
        "200ms",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert!(r["system"]["total_bytes"].as_u64().unwrap() > 0);
    assert!(["normal", "warning", "critical"].contains(&r["system"]["pressure"].as_str().unwrap()));
    let w = &r["workers"][0];
    assert_eq!(w["samples"].as_array().unwrap().len(), 6);
    assert!(
        w["trend"]["slope_mib_per_min"].as_f64().unwrap() > 10.0,
        "{w:#}"
    );

    // Without PIDs: every worker found by pattern and registry.
    let out = run(&[
        "mem",
        "--pattern",
        sim.pattern(),
        "--registry",
        sim.registry(),
    ]);
    let text = stdout(&out);
    assert!(text.contains("pressure:"), "{text}");
    assert!(text.contains(&sim.pid("orphan").to_string()), "{text}");
}

#[test]
fn a_vanished_pid_is_reported_as_gone() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    for cmd in ["threads", "fds"] {
        let out = run(&[cmd, &pid.to_string()]);
        assert_eq!(out.status.code(), Some(3));
        assert!(
            stderr(&out).contains(&format!("process {pid} is gone")),
            "{}",
            stderr(&out)
        );
    }
}

/// Another user's process: fds are denied, with the remedy; nothing crashes.
#[test]
#[cfg(target_os = "linux")] // uses setpriv and the Linux permission model
fn another_users_process_is_denied_with_a_remedy() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let sim = Sim::start();
    let (target, wrap): (String, Vec<&str>) = if root {
        // Inspect a root-owned worker as `nobody`.
        (
            sim.pid("idle").to_string(),
            vec![
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
            ],
        )
    } else {
        ("1".to_string(), vec![])
    };
    let bin = crate::util::bin();
    let run_as = |args: &[&str]| {
        let mut all: Vec<&str> = wrap.clone();
        all.push(bin.to_str().unwrap());
        all.extend_from_slice(args);
        std::process::Command::new(all[0])
            .args(&all[1..])
            .output()
            .unwrap()
    };
    let out = run_as(&["fds", &target]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("permission denied") && err.contains("sudo"),
        "{err}"
    );

    let out = run_as(&["threads", &target, "--window", "0s"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stat and wchan are world-readable: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("syscall details unavailable") && text.contains("sudo"),
        "{text}"
    );
}

#[test]
fn fds_show_tcp_addresses_and_deleted_files() {
    // This test process holds the descriptors: a TCP listener, a connection to it, and a file
    // that was deleted while open.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (_server, _) = listener.accept().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let doomed = dir.path().join("kv-cache.bin");
    let _held = std::fs::File::create(&doomed).unwrap();
    std::fs::remove_file(&doomed).unwrap();

    let out = run(&[
        "fds",
        &std::process::id().to_string(),
        "--json",
        "--no-peers",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    let fds = r["fds"].as_array().unwrap();
    let tcp: Vec<_> = fds.iter().filter(|f| f["kind"] == "tcp").collect();
    assert!(
        tcp.iter().any(|f| f["state"] == "listen"
            && f["target"]
                .as_str()
                .unwrap()
                .starts_with(&format!("127.0.0.1:{port} "))),
        "{tcp:#?}"
    );
    assert_eq!(
        tcp.iter().filter(|f| f["state"] == "established").count(),
        2,
        "{tcp:#?}"
    );
    assert!(
        fds.iter().any(|f| f["kind"] == "deleted_file"
            && f["target"].as_str().unwrap().contains("kv-cache.bin")),
        "{fds:#?}"
    );
}
