//! `mlsdiag logs`: the incident's figures from its log, formats, robustness, streaming output.

use std::process::Command;

use crate::util::{bin, json, root, stderr, stdout};

/// TZ=UTC: the fixture's zone-less times are then read as UTC, so the JSON times are exact.
fn logs(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("logs")
        .args(args)
        .env("TZ", "UTC")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn the_seed_incident_figures_exactly() {
    let out = logs(&[&root("fixtures/seed/mls-incident.log"), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["format"], "mls");
    assert_eq!(r["format_detected"], true);
    let w = &r["workers"]["mlx-server-v3-1"];
    assert_eq!(w["completed"], 318);
    assert_eq!(w["tokens"], 126_549);
    assert_eq!(
        format!("{:.1}", w["mean_tokens_per_sec"].as_f64().unwrap()),
        "30.2"
    );
    assert_eq!(w["started"], 320);
    assert_eq!(w["timed_out"], 2);
    let h = &r["hang_triggers"][0];
    assert_eq!(h["worker"], "mlx-server-v3-1");
    assert_eq!(h["request"]["id"], "req-319");
    assert_eq!(h["request"]["started"], "2026-01-05T23:13:25.007Z");
    assert_eq!(h["request"]["prompt_chars"], 8489);
    assert_eq!(h["request"]["max_tokens"], 2000);
    assert_eq!(h["request"]["temperature"], 0.3);
    assert_eq!(h["last_completion"], "2026-01-05T23:12:40.117Z");
    assert_eq!(
        h["queued"][0]["prompt_chars"], 60214,
        "the 60 KB second request queued behind it"
    );
    let timeouts: Vec<&str> = r["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "timeout")
        .map(|a| a["time"].as_str().unwrap())
        .collect();
    assert_eq!(
        timeouts,
        ["2026-01-05T23:33:25.007Z", "2026-01-05T23:43:25.402Z"]
    );
    assert_eq!(r["in_flight"].as_array().unwrap().len(), 2);
    assert_eq!(
        r["last_successes"]["mlx-server-v3-1"]
            .as_array()
            .unwrap()
            .len(),
        5,
        "the seed's tail -5"
    );
    assert_eq!(r["totals"]["first"], "2026-01-05T18:17:02.117Z");
    // Bands: the normal 8–10 KB chunks dominate.
    let normal = r["bands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["label"] == "8K–10K")
        .unwrap();
    assert!(normal["completed"].as_u64().unwrap() > 290);

    let text = stdout(&logs(&[&root("fixtures/seed/mls-incident.log")]));
    for needle in [
        "format: mls (detected)",
        "Hang trigger [mlx-server-v3-1]: request req-319 (8489 chars",
        "queued behind it: request req-320",
        "Last successes:",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
}

#[test]
fn filters_and_jsonl() {
    let f = root("fixtures/seed/mls-incident.log");
    let r = json(&logs(&[
        &f,
        "--json",
        "--since",
        "2026-01-05T23:00:00Z",
        "--until",
        "2026-01-05T23:20:00Z",
    ]));
    let c = r["totals"]["completed"].as_u64().unwrap();
    assert!(c > 0 && c < 30, "{c}");
    let r = json(&logs(&[&f, "--json", "--worker", "nobody"]));
    assert_eq!(r["events"], 0);
    let out = logs(&[&f, "--jsonl"]);
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 641);
    assert_eq!(lines[0]["kind"], "start");
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["line"].as_u64() < w[1]["line"].as_u64()),
        "in log order"
    );
    assert_eq!(logs(&[&f, "--since", "yesterday"]).status.code(), Some(3));
}

#[test]
fn stdin_gzip_rotation_and_strict() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root("fixtures/seed/mls-incident.log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Rotated mid-request: the older part (gzip) ends between req-319's start and its timeout.
    let cut = lines
        .iter()
        .position(|l| l.contains("id=req-319 prompt_chars"))
        .unwrap()
        + 1;
    let older = dir.path().join("mls.log.1.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&older).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all((lines[..cut].join("\n") + "\n").as_bytes())
        .unwrap();
    gz.finish().unwrap();
    let newer = dir.path().join("mls.log");
    std::fs::write(&newer, lines[cut..].join("\n")).unwrap(); // no final newline
    let r = json(&logs(&[
        newer.to_str().unwrap(),
        older.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(
        r["sources"][0]["path"],
        older.to_str().unwrap(),
        "older file first"
    );
    assert_eq!(r["totals"]["completed"], 318);
    assert_eq!(r["hang_triggers"][0]["request"]["id"], "req-319");

    let mut cmd = Command::new(bin());
    cmd.args(["logs", "--json"]);
    let out = crate::util::feed(cmd, text.as_bytes());
    assert_eq!(json(&out)["totals"]["tokens"], 126_549);

    let bad = dir.path().join("bad.log");
    std::fs::write(&bad, b"2026-01-05 10:00:00 Chat completion request: worker=w\nnot a log line \xff\n2026-01-05 10:00:05 Chat completion: oops\n").unwrap();
    let out = logs(&[bad.to_str().unwrap(), "--strict"]);
    assert_eq!(out.status.code(), Some(3));
    let text = stdout(&out);
    assert!(
        text.contains("bad.log:2: no leading timestamp") && text.contains("bad.log:3:"),
        "{text}"
    );
    assert_eq!(
        logs(&[bad.to_str().unwrap()]).status.code(),
        Some(0),
        "without --strict it is only reported"
    );
    let out = logs(&["/nonexistent/mls.log"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("/nonexistent/mls.log"));
}

#[test]
fn mlx_lm_server_log_and_custom_formats() {
    let dir = tempfile::tempdir().unwrap();
    let mlx = dir.path().join("server.log");
    // The order mlx_lm.server 0.32 writes at INFO: the access line at send_response (before
    // prefill), then the prefill progress; nothing when a request ends.
    std::fs::write(
        &mlx,
        "2026-01-05 23:00:00,001 - INFO - Starting httpd at 127.0.0.1 on port 8080...\n\
         127.0.0.1 - - [05/Jan/2026 23:00:10] \"POST /v1/chat/completions HTTP/1.1\" 200 -\n\
         2026-01-05 23:00:10,000 - INFO - Prompt processing progress: 0/8192\n\
         2026-01-05 23:00:12,000 - INFO - Prompt processing progress: 4096/8192\n\
         2026-01-05 23:00:14,000 - INFO - Prompt processing progress: 8192/8192\n\
         127.0.0.1 - - [05/Jan/2026 23:01:00] \"POST /v1/chat/completions HTTP/1.1\" 200 -\n\
         2026-01-05 23:01:00,000 - INFO - Prompt processing progress: 0/22000\n\
         2026-01-05 23:01:09,000 - INFO - Prompt processing progress: 2048/22000\n\
         127.0.0.1 - - [05/Jan/2026 23:30:00] \"GET /v1/models HTTP/1.1\" 200 -\n",
    )
    .unwrap();
    let r = json(&logs(&[mlx.to_str().unwrap(), "--json"]));
    assert_eq!(r["format"], "mlx_lm.server");
    assert_eq!(
        (
            r["totals"]["started"].as_u64(),
            r["totals"]["completed"].as_u64()
        ),
        (Some(2), Some(0)),
        "no end is logged at INFO"
    );
    assert_eq!(
        r["in_flight"][0]["progress"],
        serde_json::json!([2048, 22000]),
        "the last request's prefill progress"
    );
    assert_eq!(r["proves_in_flight"], false);
    assert_eq!(r["hang_triggers"].as_array().unwrap().len(), 0);

    let fmt = dir.path().join("srv.toml");
    std::fs::write(
        &fmt,
        "name = \"srv\"\nprefilter = [\"Request\"]\n[start]\nregex = 'Request (?P<id>\\S+) from (?P<worker>\\S+)'\n\
         [end]\nregex = 'Request (?P<id>\\S+) done: (?P<tokens>\\d+) tokens in (?P<seconds>[\\d.]+)s'\n",
    )
    .unwrap();
    let log = dir.path().join("srv.log");
    std::fs::write(&log, "2026-01-05 10:00:00 Request a from w1\n2026-01-05 10:00:05 Request a done: 100 tokens in 5.0s\n").unwrap();
    let r = json(&logs(&[
        log.to_str().unwrap(),
        "--format-file",
        fmt.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(r["format"], "custom:srv");
    assert_eq!(r["workers"]["w1"]["mean_tokens_per_sec"], 20.0);
}

#[test]
fn check_uses_the_same_parser_for_mlx_lm_logs() {
    let sim = crate::util::Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let check = |log: &std::path::Path| {
        let out = Command::new(bin())
            .args([
                "check",
                "--json",
                "--window",
                "1s",
                "--hung-after",
                "200ms",
                "--pattern",
                &format!("{}hung", sim.pattern()),
                "--registry",
                "/nonexistent.json",
                "--log",
                log.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        json(&out)
    };
    // mlx_lm.server names no worker: with one worker the request is attributed to it. At INFO
    // it logs no ends, so a request that looks open proves nothing: idle, with a note.
    let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
    let access = chrono::Local::now().format("%d/%b/%Y %H:%M:%S");
    let info = dir.path().join("info.log");
    std::fs::write(
        &info,
        format!(
            "127.0.0.1 - - [{access}] \"POST /v1/chat/completions HTTP/1.1\" 200 -\n\
             {stamp} - INFO - Prompt processing progress: 512/24000\n"
        ),
    )
    .unwrap();
    let r = check(&info);
    assert_eq!(r["log"]["format"], "mlx_lm.server");
    let w = &r["workers"][0];
    assert_eq!(w["verdict"], "healthy", "{w:#}");
    assert!(
        w["notes"].to_string().contains("context only"),
        "{:#}",
        w["notes"]
    );
    // At DEBUG, non-streaming ends are logged: the same open request is now proof.
    let debug = dir.path().join("debug.log");
    std::fs::write(
        &debug,
        format!(
            "{stamp} - DEBUG - Outgoing Response: {{\n\
             127.0.0.1 - - [{access}] \"POST /v1/chat/completions HTTP/1.1\" 200 -\n\
             {stamp} - INFO - Prompt processing progress: 512/24000\n"
        ),
    )
    .unwrap();
    let r = check(&debug);
    assert_eq!(r["workers"][0]["verdict"], "hung", "{:#}", r["workers"][0]);
}

#[test]
fn lines_out_of_order_are_folded_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mls.log");
    std::fs::write(
        &log,
        "2026-01-05 12:00:10 Chat completion request: worker=w id=b\n\
         2026-01-05 12:00:00 Chat completion request: worker=w id=a\n\
         2026-01-05 11:59:00 Chat completion: 10 tokens in 1.0s (10.0 tok/s) worker=w id=a\n\
         2026-01-05 12:00:20 Chat completion: 20 tokens in 2.0s (10.0 tok/s) worker=w id=b\n",
    )
    .unwrap();
    let r = json(&logs(&[log.to_str().unwrap(), "--json"]));
    assert_eq!(r["totals"]["completed"], 2);
    assert_eq!(
        r["totals"]["first"], "2026-01-05T11:59:00Z",
        "first and last are the extremes, not the first line"
    );
    assert_eq!(r["totals"]["last"], "2026-01-05T12:00:20Z");
    assert_eq!(r["in_flight"].as_array().unwrap().len(), 0);
}

#[test]
fn a_dead_generation_thread_is_an_anomaly() {
    // The lines mlx-lm 0.31.3 wrote when #1472 killed its generation thread (tests/cli/run.rs
    // captured them; the traceback's first line has no time, and the line before gives it).
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    std::fs::write(
        &log,
        "2026-12-08 00:57:06,344 - INFO - Starting httpd at 127.0.0.1 on port 36461...\n\
         127.0.0.1 - - [08/Dec/2026 00:57:07] \"POST /v1/completions HTTP/1.1\" 200 -\n\
         2026-12-08 00:57:07,889 - INFO - Prompt processing progress: 1240/3001\n\
         Exception in thread Thread-1 (_generate):\n\
         Traceback (most recent call last):\n\
         TypeError: 'NoneType' object is not iterable\n",
    )
    .unwrap();
    let path = log.to_str().unwrap();
    let text = stdout(&logs(&[path]));
    assert!(
        text.contains("the generation thread died (Thread-1 (_generate)): every later request waits forever (line 4)"),
        "{text}"
    );
    let r = json(&logs(&["--json", path]));
    assert_eq!(r["anomalies"][0]["kind"], "died", "{r:#}");
}
