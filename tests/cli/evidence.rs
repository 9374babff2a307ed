//! Snapshots, history, `check --history`, postmortem and the scheduling files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::util::{Sim, bin, json, root, run, stderr, stdout, write};

/// Snapshot the macOS seed recording into `dir` (TZ=UTC: file names from the capture time).
fn seed_snapshot(dir: &Path) -> std::process::Output {
    Command::new(bin())
        .args([
            "--fixture",
            &root("fixtures/macos/seed-incident.json"),
            "snapshot",
            "--window",
            "0.2s",
        ])
        .args([
            "--registry",
            &root("fixtures/seed/worker_registry.json"),
            "--log",
            &root("fixtures/seed/mls-incident.log"),
        ])
        .arg("--dir")
        .arg(dir)
        .env("TZ", "UTC")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn snapshot_files_are_private_named_like_the_seed_and_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    let out = seed_snapshot(&dir);
    assert_eq!(
        out.status.code(),
        Some(2),
        "hung is CRITICAL: {}",
        stderr(&out)
    );
    assert_eq!(
        names(&dir),
        [
            "worker_49387_20260106_070246.json",
            "worker_49387_20260106_070246.txt"
        ]
    );
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for n in names(&dir) {
        assert_eq!(
            std::fs::metadata(dir.join(&n))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600,
            "{n}"
        );
    }
    let snap: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("worker_49387_20260106_070246.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(snap["schema_version"], 1);
    assert_eq!(snap["kind"], "mlsdiag-snapshot");
    assert_eq!(snap["worker"]["verdict"], "hung");
    assert_eq!(snap["threads"].as_array().unwrap().len(), 18);
    assert_eq!(snap["fds"].as_array().unwrap().len(), 10);
    assert_eq!(
        snap["registry"]["model"],
        "mlx-community/Qwen2.5-14B-Instruct-4bit"
    );
    assert_eq!(snap["log"]["in_flight"][0]["id"], "req-319");
    assert_eq!(snap["log"]["tail"].as_array().unwrap().len(), 20);
    assert_eq!(snap["system_memory"]["pressure"], "normal");
    let sources = snap["stacks"]["sources"].to_string();
    assert!(
        sources.contains("\"kernel\"") && sources.contains("replaying a recording"),
        "{sources}"
    );
    let text = std::fs::read_to_string(dir.join("worker_49387_20260106_070246.txt")).unwrap();
    for needle in [
        "=== Worker Diagnostic Snapshot ===",
        "=== Verdict: HUNG",
        "=== Threads (18) ===",
        "=== File Descriptors (10) ===",
        "=== Worker Registry",
        "=== System Memory ===",
        "--- last 20 lines ---",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    // The same second again (the recording's clock does not move): a new name, nothing replaced.
    let before = std::fs::read(dir.join("worker_49387_20260106_070246.json")).unwrap();
    assert_eq!(seed_snapshot(&dir).status.code(), Some(2));
    assert_eq!(names(&dir).len(), 4);
    assert!(dir.join("worker_49387_20260106_070246_1.json").exists());
    assert_eq!(
        std::fs::read(dir.join("worker_49387_20260106_070246.json")).unwrap(),
        before
    );
}

#[test]
fn unsafe_or_unwritable_directories_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = seed_snapshot(&link);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert!(names(&real).is_empty());
    // /proc cannot hold directories, whoever we are (root ignores permission bits).
    let out = seed_snapshot(Path::new("/proc/mlsdiag-cannot-exist/snaps"));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("/proc/mlsdiag-cannot-exist"),
        "{}",
        stderr(&out)
    );
    let file = tmp.path().join("file");
    write(&file, "x");
    assert_eq!(seed_snapshot(&file).status.code(), Some(3));
}

#[test]
fn quiet_only_findings_and_retention() {
    let sim = Sim::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    // A registry that lists only the idle worker: everything found is healthy.
    let reg = sim.path("idle-only.json");
    write(
        &reg,
        &format!(r#"[{{"pid":{},"name":"idle"}}]"#, sim.pid("idle")),
    );
    let pattern = format!("{}idle", sim.pattern());
    let snap = |extra: &[&str]| {
        let mut args = vec![
            "snapshot",
            "--window",
            "0.2s",
            "--pattern",
            &pattern,
            "--registry",
            reg.to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = snap(&["--quiet"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "",
        "--quiet prints nothing when all is healthy"
    );
    assert_eq!(names(&dir).len(), 2, "but still snapshots");
    let out = snap(&["--only-findings"]);
    assert!(stdout(&out).contains("nothing to snapshot"));
    assert_eq!(
        names(&dir).len(),
        2,
        "--on-finding: nothing wrong, nothing saved"
    );
    write(&dir.join("README.txt"), "mine");
    for _ in 0..2 {
        crate::util::wait_until(std::time::Duration::from_secs(5), "the next second", || {
            !names(&dir)
                .iter()
                .any(|n| n.contains(&chrono::Local::now().format("%Y%m%d_%H%M%S").to_string()))
        });
        snap(&[]);
    }
    assert_eq!(names(&dir).len(), 7);
    let out = snap(&["--keep-newest", "1", "--json"]);
    let r = json(&out);
    assert_eq!(r["deleted"].as_array().unwrap().len(), 6, "{r:#}");
    assert_eq!(
        names(&dir).len(),
        3,
        "the newest pair and README.txt: {:?}",
        names(&dir)
    );
    assert!(dir.join("README.txt").exists());
}

#[test]
fn history_sees_leaks_frozen_cpu_and_restarts_and_check_uses_it() {
    let sim = Sim::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    let snap = |role: &str| {
        run(&[
            "snapshot",
            "--window",
            "0.3s",
            "--pattern",
            &format!("{}{role}", sim.pattern()),
            "--registry",
            sim.registry(),
            "--log",
            sim.log(),
            "--dir",
            dir.to_str().unwrap(),
            &sim.pid(role).to_string(),
        ])
    };
    for _ in 0..4 {
        // A 0.3 s window is too short to call the leak live; the history across snapshots is not.
        assert!(matches!(snap("leaking").status.code(), Some(0 | 1)));
        snap("hung");
    }
    // Seconds of snapshots are too short for the default leak rule, and it says so.
    let r = json(&run(&[
        "history",
        "--hung-after",
        "1s",
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]));
    let w = |name: &str| {
        r["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"].as_str().unwrap().ends_with(name))
            .unwrap()
            .clone()
    };
    assert_eq!(w("leaking")["memory_trend"]["outcome"], "too_short");
    assert_eq!(w("leaking")["verdict"], "healthy");
    // Beside history's own judgement, what the four snapshots of each said (each took 0.3 s
    // under the default --hung-after: healthy), and all four are this PID's (#32). History,
    // across them, finds the CPU frozen with a request in flight: hung.
    let hung = w("hung");
    assert_eq!(hung["snapshots_of_pid"], 4, "{hung:#}");
    assert_eq!(
        hung["snapshot_verdicts"][0]["verdict"], "healthy",
        "{hung:#}"
    );
    assert_eq!(hung["snapshot_verdicts"][0]["snapshots"], 4, "{hung:#}");
    assert_eq!(hung["verdict"], "hung", "{hung:#}");
    let text = stdout(&run(&[
        "history",
        "--hung-after",
        "1s",
        "--dir",
        dir.to_str().unwrap(),
    ]));
    assert!(
        text.contains("SNAPSHOTS SAID") && text.contains("healthy ×4") && text.contains("HISTORY"),
        "{text}"
    );
    // The simulated leak compresses minutes into seconds: so does the rule (the demo's).
    let r = json(&run(&[
        "history",
        "--hung-after",
        "1s",
        "--dir",
        dir.to_str().unwrap(),
        "--leak-min-span",
        "1s",
        "--leak-min-growth",
        "8",
        "--json",
    ]));
    let w = |name: &str| {
        r["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"].as_str().unwrap().ends_with(name))
            .unwrap()
            .clone()
    };
    let leak = w("leaking");
    assert_eq!(leak["verdict"], "leaking", "{leak:#}");
    assert!(leak["memory_trend"]["slope_mib_per_min"].as_f64().unwrap() > 10.0);
    assert_eq!(leak["memory_trend"]["basis"], "idle_readings", "{leak:#}");
    let hung = w("hung");
    assert_eq!(hung["verdict"], "hung", "{hung:#}");
    assert_eq!(hung["frozen_snapshots"], 4);
    assert_eq!(r["status"], "CRITICAL");

    // A restart: the same name under a new PID.
    let newest = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.to_string_lossy().contains(&sim.pid("hung").to_string())
                && p.extension().unwrap() == "json"
        })
        .max()
        .unwrap();
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&newest).unwrap()).unwrap();
    s["pid"] = 99_999.into();
    s["taken_at"] = "2099-01-01T00:00:00Z".into();
    write(
        &dir.join("worker_99999_20990101_000000.json"),
        &s.to_string(),
    );
    let r = json(&run(&[
        "history",
        "--hung-after",
        "1s",
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]));
    let hung = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"].as_str().unwrap().ends_with("hung"))
        .unwrap();
    assert_eq!(hung["restarts"][0]["new_pid"], 99_999);
    assert_eq!(
        hung["verdict"], "healthy",
        "the new process has one snapshot: no history yet"
    );
    std::fs::remove_file(dir.join("worker_99999_20990101_000000.json")).unwrap();

    // Without a log, check alone cannot prove the hang; with the history it can.
    let pattern = format!("{}hung", sim.pattern());
    let plain = json(&run(&[
        "check",
        "--json",
        "--window",
        "0.3s",
        "--pattern",
        &pattern,
        "--registry",
        sim.registry(),
    ]));
    let w0 = plain["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["pid"] == sim.pid("hung"))
        .unwrap()
        .clone();
    assert_eq!(w0["verdict"], "healthy");
    let with = json(&run(&[
        "check",
        "--json",
        "--window",
        "0.3s",
        "--pattern",
        &pattern,
        "--registry",
        sim.registry(),
        "--hung-after",
        "1s",
        "--history",
        dir.to_str().unwrap(),
    ]));
    let w1 = with["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["pid"] == sim.pid("hung"))
        .unwrap()
        .clone();
    assert_eq!(w1["verdict"], "hung", "{w1:#}");
    assert!(
        w1["findings"]
            .to_string()
            .contains("history: CPU time unchanged across 4 snapshots")
    );
}

#[test]
fn postmortem_from_the_incident_fixtures() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    assert_eq!(seed_snapshot(&dir).status.code(), Some(2));
    let out = Command::new(bin())
        .args([
            "postmortem",
            dir.to_str().unwrap(),
            "--log",
            &root("fixtures/seed/mls-incident.log"),
        ])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let md = stdout(&out);
    for needle in [
        "# Worker Hang Incident - 2026-01-05",
        "| **Worker PID** | 49387 (`mlx-server-v3-1`) |",
        "| **Model** | mlx-community/Qwen2.5-14B-Instruct-4bit |",
        "| **Hang duration** | 7h49m",
        "| **Prompt size** | 8,489 chars, 8.5 KB |",
        "| **Requests before hang** | 318 completed |",
        "| **Total runtime** | 8h49m",
        "- [x] Timeout error",
        "- [x] Deadlock (0% CPU)",
        "- [ ] Memory leak",
        "- [ ] Crash",
        "- [x] Thread state",
        "- [x] IPC state",
        "- [ ] Stack trace (no frames captured: py-spy, sample, faulthandler: not run: replaying a recording",
        "| 2026-01-05 23:13:25 | **Hang trigger**: `req-319` received, 8,489 chars, 8.5 KB, max_tokens 2000, temperature 0.3",
        "| 2026-01-05 23:33:25 | Worker timeout after 1200s (`req-319`) |",
        "| 2026-01-05 23:43:25 | Worker timeout after 600s (`req-320`) |",
        "126,549 tokens, 30.2 tok/s mean",
        "_TODO: fill in_",
    ] {
        assert!(md.contains(needle), "{needle:?} not in:\n{md}");
    }
    assert!(!md.contains("no stack capture yet"), "{md}");
    // CommonMark with tables: the expected headings, and the field table.
    use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
    let mut headings = Vec::new();
    let mut tables = 0;
    let mut in_heading = None;
    for ev in Parser::new_ext(&md, Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS) {
        match ev {
            Event::Start(Tag::Heading { level, .. }) => in_heading = Some((level, String::new())),
            Event::Text(t) if in_heading.is_some() => in_heading.as_mut().unwrap().1.push_str(&t),
            Event::End(TagEnd::Heading(_)) => headings.push(in_heading.take().unwrap()),
            Event::Start(Tag::Table(_)) => tables += 1,
            _ => {}
        }
    }
    let h2: Vec<&str> = headings
        .iter()
        .filter(|(l, _)| *l == HeadingLevel::H2)
        .map(|(_, t)| t.as_str())
        .collect();
    for want in [
        "Summary",
        "Impact",
        "Timeline",
        "Detection",
        "Root cause hypothesis",
        "Symptoms",
        "Data collected",
        "Files",
        "Action items",
        "Follow-up",
    ] {
        assert!(
            h2.iter().any(|h| h.starts_with(want)),
            "missing ## {want}: {h2:?}"
        );
    }
    assert!(tables >= 3, "field table, timeline and action items");

    // -o never replaces a file without --force.
    let report = tmp.path().join("pm.md");
    write(&report, "earlier");
    let args = [
        "postmortem",
        dir.to_str().unwrap(),
        "-o",
        report.to_str().unwrap(),
    ];
    assert_eq!(run(&args).status.code(), Some(3));
    assert_eq!(std::fs::read_to_string(&report).unwrap(), "earlier");
    let mut forced = args.to_vec();
    forced.push("--force");
    assert_eq!(run(&forced).status.code(), Some(0));
    assert!(
        std::fs::read_to_string(&report)
            .unwrap()
            .starts_with("# Worker Hang Incident")
    );
    // Only a regular file is replaced, even with --force; a dangling symlink is not replaced
    // without it.
    let fifo = tmp.path().join("pm.fifo");
    crate::util::mkfifo(&fifo);
    let o = run(&[
        "postmortem",
        dir.to_str().unwrap(),
        "-o",
        fifo.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        crate::util::stderr(&o).contains("not a regular file"),
        "{}",
        crate::util::stderr(&o)
    );
    let dangling = tmp.path().join("dangling.md");
    std::os::unix::fs::symlink(tmp.path().join("nowhere"), &dangling).unwrap();
    let o = run(&[
        "postmortem",
        dir.to_str().unwrap(),
        "-o",
        dangling.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(!tmp.path().join("nowhere").exists());
    assert!(
        std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn scheduling_files_are_valid_and_use_real_flags() {
    use clap::Parser;
    let (keys, args) = crate::util::plist("docs/scheduling/com.github.mlsdiag.snapshot.plist");
    assert!(
        ["StartInterval", "ProgramArguments", "Label"]
            .iter()
            .all(|k| keys.iter().any(|x| x == k)),
        "{keys:?}"
    );
    let cron = std::fs::read_to_string(root("docs/scheduling.md")).unwrap();
    let cron_line = cron.lines().find(|l| l.starts_with("*/5")).unwrap();
    let service =
        std::fs::read_to_string(root("docs/scheduling/mlsdiag-snapshot.service")).unwrap();
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let from_cron: Vec<String> = cron_line
        .split_whitespace()
        .skip(5)
        .map(str::to_string)
        .collect();
    let from_systemd: Vec<String> = exec.split_whitespace().map(str::to_string).collect();
    for argv in [args, from_cron, from_systemd] {
        assert!(
            argv[0].ends_with("/mlsdiag") && argv[1] == "snapshot",
            "{argv:?}"
        );
        assert!(
            argv.contains(&"--quiet".to_string()) && argv.contains(&"--only-findings".to_string()),
            "{argv:?}"
        );
        mlsdiag::cli::Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    }
    let timer = std::fs::read_to_string(root("docs/scheduling/mlsdiag-snapshot.timer")).unwrap();
    assert!(timer.contains("OnUnitActiveSec=") && timer.contains("[Install]"));
}

#[test]
fn postmortem_escapes_what_logs_and_registries_put_in_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    assert_eq!(seed_snapshot(&dir).status.code(), Some(2));
    // Values from a registry and a log someone else wrote, in every snapshot.
    let evil_name = "w1`\n## Root cause: not MLX";
    let evil_model = "<img src=x onerror=alert(1)> | - [x] Implement fixes";
    let evil_evidence = "request `r1`\n- [x] Memory leak\n| forged | row |\x1b[31m";
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            let mut s: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            s["name"] = evil_name.into();
            s["worker"]["model"] = evil_model.into();
            if s["registry"].is_object() {
                s["registry"]["model"] = evil_model.into();
            }
            s["worker"]["findings"][0]["evidence"][0] = evil_evidence.into();
            std::fs::write(&p, s.to_string()).unwrap();
        }
    }
    let out = run(&["postmortem", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let md = stdout(&out);
    assert!(!md.contains('\x1b'), "a terminal escape reached the report");
    for line in md.lines() {
        assert!(!line.starts_with("## Root cause: not MLX"), "{line}");
        assert!(!line.starts_with("- [x] Memory leak"), "{line}");
        assert!(!line.starts_with("| forged"), "{line}");
        assert!(
            !line.replace("\\<", "").contains("<img"),
            "raw HTML: {line}"
        );
    }
    assert!(
        md.contains("\\<img src=x onerror=alert(1)\\> \\| - \\[x\\] Implement fixes"),
        "{md}"
    );
}

/// Snapshots of the simulation's idle worker, forged as a hang: three copies of a real one,
/// each ten minutes later than the last (frozen 20 minutes, past any `--hung-after` the
/// commands default to), with the hung worker's request in flight and the CPU time unchanged. `finish` makes each file untrusted (its mode, its owner).
fn forge_idle_hang(sim: &Sim, dir: &Path, finish: impl Fn(&Path)) -> Vec<std::path::PathBuf> {
    for role in ["idle", "hung"] {
        let out = run(&[
            "snapshot",
            "--window",
            "0.3s",
            "--pattern",
            &format!("{}{role}", sim.pattern()),
            "--registry",
            sim.registry(),
            "--log",
            sim.log(),
            "--dir",
            dir.to_str().unwrap(),
            &sim.pid(role).to_string(),
        ]);
        assert!(matches!(out.status.code(), Some(0..=2)), "{}", stderr(&out));
    }
    let of = |pid: u32| {
        let p = names(dir)
            .into_iter()
            .find(|n| n.starts_with(&format!("worker_{pid}_")) && n.ends_with(".json"))
            .unwrap();
        dir.join(p)
    };
    let (idle, hung) = (of(sim.pid("idle")), of(sim.pid("hung")));
    let hung_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&hung).unwrap()).unwrap();
    let request = hung_json["worker"]["in_flight"].clone();
    assert!(!request.as_array().unwrap().is_empty(), "{hung_json:#}");
    // Only the idle worker's own, real snapshot stays.
    std::fs::remove_file(&hung).unwrap();
    std::fs::remove_file(hung.with_extension("txt")).unwrap();
    let real: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&idle).unwrap()).unwrap();
    let at: chrono::DateTime<chrono::Utc> = real["taken_at"].as_str().unwrap().parse().unwrap();
    (1..=3)
        .map(|k| {
            let mut s = real.clone();
            let when = at + chrono::Duration::minutes(10 * k);
            s["taken_at"] = when.to_rfc3339().into();
            // The monotonic clock moves with it, or the history would see no time pass.
            if let Some(secs) = s["clock"]["secs"].as_f64() {
                s["clock"]["secs"] = (secs + 60.0 * k as f64).into();
            }
            s["worker"]["in_flight"] = request.clone();
            s["worker"]["in_flight_known"] = true.into();
            let p = dir.join(format!(
                "worker_{}_{}.json",
                sim.pid("idle"),
                when.format("%Y%m%d_%H%M%S")
            ));
            write(&p, &s.to_string());
            finish(&p);
            p
        })
        .collect()
}

/// `history`, `check --history` and `watch --history --restart-hung` over the forged
/// snapshots: each file is listed as untrusted, none is read, and the idle worker lives.
fn forged_files_are_listed_and_never_acted_on(
    sim: &Sim,
    dir: &Path,
    forged: &[std::path::PathBuf],
    why: &str,
) {
    let idle = sim.pid("idle");
    let d = dir.to_str().unwrap();
    let r = json(&run(&[
        "history",
        "--hung-after",
        "1s",
        "--dir",
        d,
        "--json",
    ]));
    let untrusted = r["untrusted"].to_string();
    for f in forged {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(untrusted.contains(name), "{name} not listed: {r:#}");
    }
    assert!(untrusted.contains(why), "{r:#}");
    let w = &r["workers"][0];
    assert_eq!(
        (w["pid"].as_u64(), w["snapshots"].as_u64()),
        (Some(idle.into()), Some(1)),
        "{r:#}"
    );
    assert_eq!(w["verdict"], "healthy", "{r:#}");
    let text = stdout(&run(&["history", "--hung-after", "1s", "--dir", d]));
    assert!(
        text.contains("WARNING untrusted: ") && text.contains(why),
        "{text}"
    );

    let pattern = format!("{}idle", sim.pattern());
    let common = [
        "--window",
        "0.3s",
        "--pattern",
        &pattern,
        "--registry",
        sim.registry(),
        "--log",
        sim.log(),
        "--history",
        d,
    ];
    let mut args = vec!["check", "--json"];
    args.extend_from_slice(&common);
    let r = json(&run(&args));
    let w = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["pid"] == idle)
        .unwrap();
    assert_ne!(w["verdict"], "hung", "forged snapshots made a hang: {w:#}");
    assert!(!w["findings"].to_string().contains("history:"), "{w:#}");
    let listed: Vec<&str> = (r["untrusted"].as_array().unwrap().iter())
        .filter_map(|u| u.as_str())
        .filter(|u| u.starts_with("history: ") && u.contains(why))
        .collect();
    assert_eq!(listed.len(), forged.len(), "{r:#}");

    let snaps = tempfile::tempdir().unwrap();
    let mut args = vec![
        "watch",
        "--rounds",
        "1",
        "--hung-after",
        "200ms",
        "--restart-hung",
        "--grace",
        "1s",
        "--dir",
        snaps.path().to_str().unwrap(),
    ];
    args.extend_from_slice(&common);
    let out = run(&args);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("PID {idle} ")),
        "{text}\n{}",
        stderr(&out)
    );
    assert!(!text.contains("sent SIGTERM"), "{text}\n{}", stderr(&out));
    assert!(
        crate::util::alive(idle),
        "the idle worker was killed: {text}"
    );
}

#[test]
fn history_leaves_out_and_lists_snapshot_files_others_can_write() {
    let sim = Sim::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    // A directory of our own, trusted; only the files are not.
    let forged = forge_idle_hang(&sim, &dir, |p| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
    });
    forged_files_are_listed_and_never_acted_on(&sim, &dir, &forged, "writable by everyone");
    // The same files, private again: read, and the forgery shows (the rule above is the trust,
    // not the content).
    for f in &forged {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let r = json(&run(&[
        "history",
        "--hung-after",
        "1s",
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(r["untrusted"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["workers"][0]["verdict"], "hung", "{r:#}");
}

/// A throw-away local user, deleted on drop.
struct User {
    name: String,
    uid: u32,
}

impl User {
    fn add(name: &str) -> User {
        let _ = Command::new("userdel").arg(name).output();
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "useradd: {}", stderr(&out));
        let id = Command::new("id").args(["-u", name]).output().unwrap();
        let uid = stdout(&id).trim().parse().unwrap();
        User {
            name: name.into(),
            uid,
        }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

#[test]
#[ignore = "needs root: creates a throw-away user to own the snapshot files (scripts/test runs the ignored tests as root)"]
fn history_leaves_out_and_lists_snapshot_files_another_user_owns() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "needs root: creates a throw-away user to own the snapshot files: run as root with -- --ignored"
    );
    let user = User::add(&format!("mlsdiag-t{}", std::process::id()));
    let sim = Sim::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    // Private files in root's private directory, but another user's: root put them there
    // (restored from a backup, moved from their directory), and that user can rewrite them.
    let forged = forge_idle_hang(&sim, &dir, |p| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(p, Some(user.uid), None).unwrap();
    });
    let why = format!("owned by uid {}", user.uid);
    forged_files_are_listed_and_never_acted_on(&sim, &dir, &forged, &why);
}

#[test]
fn the_next_snapshot_removes_what_a_killed_write_left_and_keeps_its_lone_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snaps");
    seed_snapshot(&dir);
    let pair = dir.join("worker_49387_20260106_070246.json");
    // A write killed between its two links, an hour earlier: its .json landed, its .txt did
    // not, and both temporary files stayed; their writer is gone (no process has that PID).
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&pair).unwrap()).unwrap();
    s["taken_at"] = "2026-01-06T06:02:46Z".into();
    let lone = dir.join("worker_49387_20260106_060246.json");
    write(&lone, &s.to_string());
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(300);
    let temp = |name: &str, text: &str, when: std::time::SystemTime| {
        let p = dir.join(name);
        write(&p, text);
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(when).unwrap();
        p
    };
    let stale = [
        temp(".mlsdiag-999999999-0-111.tmp", &s.to_string(), old),
        temp(".mlsdiag-999999999-1-222.tmp", "text", old),
    ];
    // A write of a moment ago may still be going on: kept.
    let fresh = temp(
        ".mlsdiag-999999999-2-333.tmp",
        "x",
        std::time::SystemTime::now(),
    );
    let r = json(&run(&[
        "history",
        "--hung-after",
        "1s",
        "--dir",
        dir.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(
        r["workers"][0]["snapshots"], 2,
        "the lone .json is read: {r:#}"
    );
    assert_eq!(r["unreadable"], serde_json::json!([]), "{r:#}");

    let out = Command::new(bin())
        .args(["--fixture", &root("fixtures/macos/seed-incident.json")])
        .args([
            "snapshot",
            "--window",
            "0.2s",
            "--json",
            "--keep-newest",
            "2",
        ])
        .args(["--registry", &root("fixtures/seed/worker_registry.json")])
        .args(["--log", &root("fixtures/seed/mls-incident.log")])
        .arg("--dir")
        .arg(&dir)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let r = json(&out);
    let cleaned: Vec<String> = (r["cleaned"].as_array().unwrap().iter())
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = stale.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(cleaned, want, "{r:#}");
    assert!(fresh.exists());
    // The lone .json counts as a snapshot: with two newer ones, --keep-newest 2 deletes it.
    assert_eq!(
        r["deleted"],
        serde_json::json!([lone.display().to_string()]),
        "{r:#}"
    );
    assert_eq!(
        names(&dir).len(),
        5,
        "two pairs and the fresh temp file: {:?}",
        names(&dir)
    );
}
