//! The seed incident, replayed from fixtures through the real parsers and the real Linux
//! backend: PID 49387 frozen on request req-319 must come out `hung`, with the evidence.
#![cfg(target_os = "linux")]

use std::path::Path;

use mlsdiag::diagnose::assess::{Observation, RegistryView, Thresholds, assess};
use mlsdiag::logs::{for_check, parse_timestamp};
use mlsdiag::model::Verdict;
use mlsdiag::platform::Platform;
use mlsdiag::platform::linux::Linux;
use mlsdiag::sample::Series;

fn fixture(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(p)
}

/// The `ps` line of the seed: pid, rss KiB, vsz KiB, %cpu, %mem, elapsed, state.
fn ps_numbers() -> (u32, u64, u64, char) {
    let text = std::fs::read_to_string(fixture("seed/ps.txt")).unwrap();
    let line = text.lines().nth(1).unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[6].chars().next().unwrap(),
    )
}

#[test]
fn recorded_proc_tree_reads_as_the_ps_numbers() {
    let linux = Linux::with_root(fixture("linux/proc-seed"));
    let (pid, rss_kib, vsz_kib, state) = ps_numbers();
    let p = linux.process(pid).unwrap();
    assert_eq!(p.state, state);
    assert_eq!(p.rss_bytes, rss_kib * 1024);
    assert_eq!(p.vsz_bytes, vsz_kib * 1024);
    assert_eq!(p.threads, 18);
    assert_eq!(p.threads_running, 0);
    assert_eq!(p.cpu_user_ns, 257_030_000_000, "4:17.03 of user time");
    assert_eq!(p.start_time.timestamp(), 1_767_651_203);
    assert_eq!(p.cmdline[4], "mlx-server-v3-1");
    let threads = linux.threads(pid).unwrap();
    assert_eq!(threads.len(), 18);
    assert!(threads.iter().all(|t| t.state == 'S'));
    let groups = mlsdiag::model::waits::group(&threads);
    assert_eq!(groups[0].wait, "futex_wait_queue");
    assert_eq!(groups[0].tids.len(), 14);
    assert_eq!(
        groups[0].locks.len(),
        1,
        "all fourteen wait on one lock word"
    );
    let mem = linux.system_memory().unwrap();
    assert_eq!(mem.total_bytes, 128 << 30);
}

#[test]
fn the_seed_incident_is_diagnosed_hung() {
    let linux = Linux::with_root(fixture("linux/proc-seed"));
    let reading = linux.process(49387).unwrap();
    // Frozen: ten identical readings over two seconds.
    let series = Series {
        pid: 49387,
        readings: (0..10).map(|i| (i as f64 * 0.2, reading.clone())).collect(),
        error: None,
    };
    let registry = mlsdiag::registry::parse(
        &std::fs::read_to_string(fixture("seed/worker_registry.json")).unwrap(),
    )
    .unwrap();
    let log = for_check(
        &fixture("seed/mls.log"),
        std::time::Duration::from_secs(300),
    )
    .unwrap();
    assert_eq!(log.format, "mls");
    let worker_log = log.analysis.for_worker(
        Some("mlx-server-v3-1"),
        49387,
        true,
        Some(reading.start_time),
        &|_| false,
    );
    assert_eq!(worker_log.completed, 2);
    assert_eq!(
        worker_log.in_flight.len(),
        2,
        "req-319 and the 60 KB req-320 behind it"
    );
    let pattern = regex::Regex::new("mlx-server-v3").unwrap();
    let a = assess(
        &Observation {
            series: &series,
            entry: Some(&registry[0]),
            registry: RegistryView::Loaded {
                path: "fixtures/seed/worker_registry.json",
                entries: 1,
                lists: &pattern,
            },
            pattern: &pattern,
            log: Some(&worker_log),
            parent: Some((4120, "python3.12".into())),
            parent_started: None,
            unread_output: vec![],
            now: parse_timestamp("2026-01-06 07:02:46,000").unwrap(),
            heartbeat: None,
            tokens: None,
            gpu: None,
            connections: None,
            probe: None,
            distributed: None,
        },
        &Thresholds::default(),
    );
    assert_eq!(a.verdict, Verdict::Hung, "{a:#?}");
    let evidence = a.findings[0].evidence.join("\n");
    for needle in [
        "request req-319 (8489 chars, max_tokens 2000, temperature 0.3) in flight for 7h49m",
        "CPU time advanced 0 ms",
        "no thread running: 18 threads, process state S",
        "orchestrator timed out waiting at 2026-01-05 23:23:25, 2026-01-05 23:33:25",
        "1 more request(s) queued behind it",
    ] {
        assert!(evidence.contains(needle), "{needle:?} not in:\n{evidence}");
    }
}
