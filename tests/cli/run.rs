//! `mlsdiag run` on the real `mlx_lm.server` from the Python package index (mlx-lm 0.32.2 on
//! MLX's CPU backend, scripts/setup-mlx-lm's tiny model): the stock server, unedited, keeps a
//! token record that `check` finds with no registry; the tokens are those delivered to the
//! client (the completion's `usage.completion_tokens`); a long generation reads working; the
//! watchdog dumps every stack when delivery stalls; an unusable state directory is a warning;
//! and mlx-lm 0.31.3's dead generation thread (scripts/setup-mlx-lm-0.31) is hung by the record.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::stock_server::{Launch, RACE, StockServer};
use crate::util::{mlx_lm_031_python, mlx_lm_python, root, run, stdout, wait_until};

/// `mlsdiag run RUN_ARGS -- SERVER --model tiny --port P EXTRA`.
fn start(run_args: &[&str], server: &[&str], extra: &[&str]) -> StockServer {
    Launch {
        server: server.iter().map(|s| s.to_string()).collect(),
        under_run: Some(run_args),
        model: None,
        extra,
    }
    .start()
}

/// `check --json` of this server alone, with no registry: its report.
fn check(s: &StockServer, extra: &[&str]) -> Value {
    let mut args = vec![
        "--registry",
        "/nonexistent/mlsdiag-test/registry.json",
        "--window",
        "1s",
    ];
    args.extend_from_slice(extra);
    s.check(&args)
}

/// A file of this server's in the per-user directory (`{}` stands for its PID).
fn user_file(s: &StockServer, name: &str) -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    PathBuf::from(format!(
        "/tmp/mlsdiag-{uid}/{}",
        name.replace("{}", &s.pid().to_string())
    ))
}

/// POST a chat completion (Connection: close) and return the body's JSON documents: the
/// response, or each `data:` event of a stream.
fn chat(port: u16, body: &str) -> Vec<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let (head, rest) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    assert!(head.contains(" 200 "), "{resp}");
    if head.contains("text/event-stream") {
        rest.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    } else {
        vec![serde_json::from_str(rest).unwrap()]
    }
}

fn completion_tokens(docs: &[Value]) -> u64 {
    let usage = docs.iter().rev().find(|d| d["usage"].is_object()).unwrap();
    usage["usage"]["completion_tokens"].as_u64().unwrap()
}

#[test]
fn a_stock_server_under_run_keeps_a_record_of_delivered_tokens_found_without_a_registry() {
    // A state directory mlsdiag would not trust: a warning, and the per-user one instead.
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let venv_server = root("target/mlx-lm-venv/bin/mlx_lm.server");
    let s = start(
        &["--state-dir", shared.path().to_str().unwrap()],
        &[&venv_server],
        &[],
    );
    let log = s.log_text();
    assert!(log.contains("is not usable"), "{log}");
    let record = user_file(&s, "progress-{}");
    assert!(
        log.contains(&format!("token record {}", record.display())),
        "{log}"
    );

    // Idle: found by PID in the per-user directory, no generation in progress.
    let idle = check(&s, &[]);
    assert_eq!(idle["pid"], s.pid(), "run executes the server in its place");
    assert_eq!(idle["progress"]["source"], record.display().to_string());
    assert!(idle["progress"]["generating_since"].is_null(), "{idle:#}");

    // Tokens delivered, as the client counts them: a response and a stream.
    let whole = chat(
        s.port,
        r#"{"messages":[{"role":"user","content":"Hello"}],"max_tokens":40}"#,
    );
    let streamed = chat(
        s.port,
        r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":33,"stream":true,"stream_options":{"include_usage":true}}"#,
    );
    let delivered = completion_tokens(&whole) + completion_tokens(&streamed);
    assert_eq!(delivered, 73, "the tiny model never stops early");
    let after = check(&s, &[]);
    let p = &after["progress"];
    assert_eq!(p["tokens"], delivered, "{p:#}");
    assert_eq!(p["generations"], 2, "{p:#}");

    // A long generation reads working past --hung-after, by its tokens.
    let port = s.port;
    std::thread::spawn(move || {
        chat(
            port,
            r#"{"messages":[{"role":"user","content":"Go"}],"max_tokens":20000}"#,
        )
    });
    wait_until(Duration::from_secs(60), "the long generation", || {
        check(&s, &[])["progress"]["request_tokens"]
            .as_u64()
            .unwrap_or(0)
            > 50
    });
    std::thread::sleep(Duration::from_secs(3));
    let busy = check(&s, &["--hung-after", "2s"]);
    assert_eq!(busy["verdict"], "healthy", "{busy:#}");
    assert_eq!(busy["activity"], "working", "{busy:#}");
    assert!(busy["progress"]["window_tokens"].as_u64().unwrap() > 0);
    let req = busy["progress"]["request"].as_str().unwrap_or_default();
    assert!(
        req.starts_with("chatcmpl-"),
        "the server's request id: {req}"
    );

    // Signals reach the server itself, and its status is run's.
    let mut s = s;
    // SAFETY: the server this test started.
    unsafe { libc::kill(s.pid() as i32, libc::SIGTERM) };
    let status = s.child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

#[test]
fn the_watchdog_dumps_every_stack_once_when_delivery_stalls() {
    let python = mlx_lm_python();
    let s = start(
        &["--watchdog", "3s"],
        &[&python, "-m", "mlx_lm.server"],
        &[],
    );
    assert!(s.log_text().contains("watchdog 3 s"), "{}", s.log_text());
    let dump = user_file(&s, "faulthandler-{}.txt");
    let _client = s.stalled_reader();
    let read = || std::fs::read_to_string(&dump).unwrap_or_default();
    wait_until(Duration::from_secs(240), "the watchdog's dump", || {
        read().contains("mlsdiag watchdog: no progress")
    });
    let text = read();
    // Every thread: the handler blocked writing to its client, the generation thread.
    assert!(text.contains("Timeout ("), "{text}");
    assert!(text.contains("in handle_completion"), "{text}");
    assert!(text.contains("_run_generate"), "{text}");
    assert!(text.contains("waiting on its consumer"), "{text}");
    // The record says why: handed to a client that stopped reading, not a hang in MLX.
    // (mlx-lm 0.32 keeps generating into the request's queue meanwhile, so the CPU may read
    // working; with the CPU idle the activity is `waiting_on_client`.)
    let waits = |w: &Value| {
        w["verdict"] == "healthy"
            && (w["activity"] == "waiting_on_client" || w["activity"] == "working")
            && w["notes"]
                .to_string()
                .contains("waiting on its client, never hung")
    };
    let w = check(&s, &["--hung-after", "2s"]);
    assert!(waits(&w), "{w:#}");
    assert!(w["progress"]["waiting_since"].is_string(), "{w:#}");
    // With the server's log too (its request logged, no end at INFO): the log's rule respects
    // it (it called this hung).
    let log = s.log.to_str().unwrap().to_string();
    let w = check(&s, &["--hung-after", "2s", "--log", &log]);
    assert!(waits(&w), "{w:#}");
    // `stacks` finds the dump by PID.
    let out = run(&["stacks", &s.pid().to_string(), "--no-native"]);
    let text = stdout(&out);
    assert!(text.contains(&dump.display().to_string()), "{text}");
    // Once per stall: still one dump a few seconds later.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(read().matches("mlsdiag watchdog: no progress").count(), 1);
}

#[test]
fn a_dead_generation_thread_of_mlx_lm_0_31_is_hung_under_run_with_its_stacks_dumped() {
    // mlx-lm #1472 by its real mechanism (tests/cli/mlx_lm_hang.rs tells it): two requests,
    // one with `repetition_penalty`, meet in one prefill and the generation thread dies of a
    // TypeError while the HTTP side serves on, /health says ok, and every request waits
    // forever. No log format is read: the token record and the watchdog prove it.
    let python = mlx_lm_031_python();
    let s = start(
        &["--watchdog", "2s"],
        &[&python, "-m", "mlx_lm.server"],
        RACE,
    );
    // Idle: the record says no generation, so nothing is hung.
    assert_ne!(check(&s, &["--hung-after", "2s"])["verdict"], "hung");
    let (_a, _b) = s.two_requests();
    wait_until(
        Duration::from_secs(120),
        "the generation thread to die",
        || {
            s.log_text()
                .contains("TypeError: 'NoneType' object is not iterable")
        },
    );
    // (The traceback's first line may be interleaved with the prefill's progress lines.)
    assert!(
        s.log_text().contains("Thread-1 (_generate)"),
        "{}",
        s.log_text()
    );
    assert!(
        s.health().contains(" 200"),
        "0.31 says healthy: {}",
        s.health()
    );

    // A request after the death: queued, never answered.
    let _c = s.send(
        "/v1/chat/completions",
        r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":5}"#,
    );
    let mut w = Value::Null;
    wait_until(Duration::from_secs(60), "a hung verdict", || {
        w = check(&s, &["--hung-after", "2s"]);
        w["verdict"] == "hung"
    });
    let ev = w["findings"][0]["evidence"].to_string();
    assert!(ev.contains("no token or prefill progress"), "{w:#}");
    // The watchdog's dump: handlers wait on their queues, no `_generate` thread left.
    // faulthandler's timer writes the stacks first; the watchdog's own line follows them.
    let mut dump = String::new();
    wait_until(
        Duration::from_secs(30),
        "the watchdog's line under the dump",
        || {
            dump =
                std::fs::read_to_string(user_file(&s, "faulthandler-{}.txt")).unwrap_or_default();
            dump.contains("mlsdiag watchdog: no progress")
        },
    );
    assert!(dump.contains("in get"), "{dump}");
    assert!(!dump.contains("in _generate"), "{dump}");
    // `stacks` reads that dump and names the signature: handlers waiting on their queues, no
    // generation thread.
    let out = run(&["stacks", &s.pid().to_string(), "--no-native"]);
    let text = stdout(&out);
    assert!(text.contains("mlx-lm#1505"), "{text}\n{dump}");
}
