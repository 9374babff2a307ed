//! The stock `mlx_lm.server` whose generation thread died, proven hung with no log and no
//! module: by the socket table (requests that arrived and got nothing back, the CPU idle) and
//! by `--probe` (a one-token completion with no answer). mlx-lm 0.31.3
//! (scripts/setup-mlx-lm-0.31), killed by its real mechanism (mlx-lm #1472/#1505): a request
//! with `repetition_penalty` is still in its prefill when a plain one joins the prompt batch,
//! and the merge gives the plain one `None` for logits processors; it starts generating first,
//! and when the other follows it into the generation batch, `_step` iterates that `None` and
//! the thread dies (`TypeError`). `/health` still answers 200, and every later request waits
//! forever. A small `--prefill-step-size` (a server flag) keeps the first request in its prefill
//! long enough for the second to join it every time.
//!
//! The pinned mlx-lm 0.32.2 survives the same two requests, and its server stays healthy and
//! working through both long generations, with the probe answered; an idle one is healthy,
//! and says why: no request waits in the socket table.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::stock_server::{Launch, RACE, StockServer};
use crate::util::{mlx_lm_029_python, mlx_lm_031_python, mlx_lm_python, run, wait_until};

fn start(python: &str) -> StockServer {
    Launch::module(python).extra(RACE).start()
}

/// `check --json` with no log, the worker's report; `extra` adds flags.
fn check(server: &StockServer, hung_after: &str, extra: &[&str]) -> Value {
    let registry = server.registry.to_str().unwrap();
    let mut args = vec!["--registry", registry, "--hung-after", hung_after];
    args.extend_from_slice(extra);
    server.check(&args)
}

/// The condition of the hung rule named `name`: whether it held, and its fact.
fn condition(w: &Value, name: &str) -> (bool, String) {
    let c = w["hung_rule"]
        .as_array()
        .and_then(|r| r.iter().find(|c| c["condition"] == name))
        .unwrap_or_else(|| panic!("no condition {name}: {w:#}"));
    (c["held"].as_bool().unwrap(), c["fact"].to_string())
}

fn hang_evidence(w: &Value) -> String {
    w["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["verdict"] == "hung")
        .unwrap_or_else(|| panic!("no hung finding: {w:#}"))["evidence"]
        .to_string()
}

#[test]
fn the_dead_generation_thread_of_mlx_lm_0_31_is_hung_by_the_socket_table_and_by_the_probe() {
    let server = start(&mlx_lm_031_python());
    let (_a, _b) = server.two_requests();
    wait_until(
        Duration::from_secs(120),
        "the generation thread to die",
        || {
            server
                .log_text()
                .contains("TypeError: 'NoneType' object is not iterable")
        },
    );
    let died = Instant::now();
    // The server still says it is healthy.
    assert!(server.health().contains(" 200"), "{}", server.health());
    // Its log says otherwise, at once: the traceback of the generation thread, read with no
    // format help and no request old enough for the other rules (--hung-after 5m).
    let log = server.log.to_str().unwrap().to_string();
    let w = check(&server, "5m", &["--log", &log]);
    let lines: Vec<String> = (server.log_text().lines())
        .filter(|l| l.contains("generate") || l.contains("Exception"))
        .map(str::to_string)
        .collect();
    assert_eq!(w["verdict"], "hung", "{lines:#?}\n{w:#}");
    let ev = hang_evidence(&w);
    assert!(
        ev.contains("the server's generation thread died at") && ev.contains("(_generate)"),
        "{ev}"
    );
    wait_until(
        Duration::from_secs(10),
        "the requests to wait past --hung-after",
        || died.elapsed() > Duration::from_secs(3),
    );

    // The socket table alone: two requests in, nothing out, the CPU idle. No log given.
    let w = check(&server, "2s", &[]);
    assert_eq!(w["verdict"], "hung", "{w:#}");
    assert_eq!(w["activity"], "stalled", "{w:#}");
    let ev = hang_evidence(&w);
    assert!(
        ev.contains(&format!("to 127.0.0.1:{}", server.port))
            && ev.contains("nothing was sent back since (the socket table")
            && ev.contains("1 more connection(s) awaiting a response"),
        "{ev}"
    );
    let (held, fact) = condition(&w, "work in flight");
    assert!(held && fact.contains("(socket table)"), "{fact}");
    assert!(
        w["hung_rule"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["held"] == true),
        "{w:#}"
    );
    let conns = w["connections"]["accepted"].as_array().unwrap();
    assert!(
        conns
            .iter()
            .filter(|c| c["bytes_sent"] == 0 && c["bytes_received"].as_u64() > Some(0))
            .count()
            >= 2,
        "{w:#}"
    );

    // The probe: no answer within --hung-after, the CPU idle while it waited (the default
    // 1%: the server's parsing of the probe, before it settled, is not counted).
    let w = check(&server, "2s", &["--probe", &server.probe_url()]);
    assert_eq!(w["verdict"], "hung", "{w:#}");
    assert_eq!(w["probe"]["state"], "no_answer", "{w:#}");
    assert!(w["probe"]["age_secs"].as_f64().unwrap() >= 2.0, "{w:#}");
    let (held, fact) = condition(&w, "no answer to the probe");
    assert!(
        held && fact.contains("got no answer within its deadline of 2s"),
        "{fact}"
    );
    let ev = hang_evidence(&w);
    assert!(ev.contains("got no answer within its deadline"), "{ev}");
    // The probe's own connection is not counted as one more waiting request.
    let probe_local = w["probe"]["local"].as_str().unwrap().to_string();
    assert!(!ev.contains(&probe_local), "{ev}");

    // watch --probe: one probe a round at most, the hang reported with it.
    let snaps = tempfile::tempdir().unwrap();
    let pattern = server.pattern();
    let out = run(&[
        "watch",
        "--json",
        "--pattern",
        &pattern,
        "--registry",
        server.registry.to_str().unwrap(),
        "--hung-after",
        "2s",
        "--interval",
        "1s",
        "--window",
        "0.5s",
        "--rounds",
        "3",
        "--dir",
        snaps.path().to_str().unwrap(),
        "--probe",
        &server.probe_url(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let hung: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .filter(|e| e["to"] == "hung")
        .collect();
    assert_eq!(hung.len(), 1, "{text}");
    assert!(
        hung[0]["evidence"]
            .to_string()
            .contains(&format!("the probe {}", server.probe_url())),
        "{text}"
    );
}

#[test]
fn mlx_lm_0_32_survives_the_same_requests_and_stays_healthy_idle_and_through_long_generations() {
    let server = start(&mlx_lm_python());
    // Idle (once its start-up work is over): healthy, and the socket table says no request
    // waits; the probe is answered.
    let mut w = Value::Null;
    wait_until(Duration::from_secs(60), "the server to settle", || {
        w = check(&server, "1s", &[]);
        w["activity"] == "idle"
    });
    assert_eq!(w["verdict"], "healthy", "{w:#}");
    assert!(
        w["notes"]
            .to_string()
            .contains("no request waiting for a response in the socket table"),
        "{w:#}"
    );
    // The probe's own generation may show as CPU over the window (activity working): it is
    // healthy either way, and never stalled or spinning.
    let w = check(&server, "5s", &["--probe", &server.probe_url()]);
    assert_eq!(w["verdict"], "healthy", "{w:#}");
    assert!(
        w["activity"] == "idle" || w["activity"] == "working",
        "{w:#}"
    );
    assert_eq!(w["probe"]["state"], "answered", "{w:#}");
    assert!(w["probe"]["first_byte_secs"].as_f64().is_some(), "{w:#}");

    // The requests that kill 0.31.3's generation thread: here both generate, for minutes.
    let (_a, _b) = server.two_requests();
    let sent = Instant::now();
    wait_until(
        Duration::from_secs(60),
        "both requests to wait past --hung-after",
        || sent.elapsed() > Duration::from_secs(2),
    );
    // Healthy throughout: the requests wait past --hung-after (socket table), the CPU works.
    for _ in 0..3 {
        let w = check(&server, "1s", &[]);
        assert_eq!(
            (&w["verdict"], &w["activity"]),
            (&"healthy".into(), &"working".into()),
            "{w:#}"
        );
        let (held, fact) = condition(&w, "work in flight");
        assert!(held && fact.contains("(socket table)"), "{fact}");
        assert!(!condition(&w, "CPU still").0, "{w:#}");
    }
    // A probe beside them joins the batch and is answered.
    let w = check(&server, "30s", &["--probe", &server.probe_url()]);
    assert_eq!(w["verdict"], "healthy", "{w:#}");
    assert_eq!(w["probe"]["state"], "answered", "{w:#}");
    let log = server.log_text();
    assert!(!log.contains("Exception in thread"), "{log}");
    assert!(server.health().contains(" 200"));
}

#[test]
fn a_client_that_stops_reading_its_stream_is_waited_on_never_hung_without_a_record() {
    // The stock server, no module: a client asks for a long stream and reads nothing. The
    // kernel's send buffer fills and the handler thread blocks in its write; the socket table
    // (bytes queued to that client) and the thread's system call say the server waits on its
    // client: never hung, with the log's request open past --hung-after. (0.32 keeps
    // generating into the request's queue meanwhile, so the CPU may read working.)
    let server = Launch::module(&mlx_lm_python())
        .extra(&["--log-level", "INFO"])
        .start();
    let _client = server.stalled_reader();
    let log = server.log.to_str().unwrap().to_string();
    let mut w = Value::Null;
    let blocked = |w: &Value| {
        w["connections"]["accepted"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["server_writing"] == true))
    };
    wait_until(
        Duration::from_secs(180),
        "the server blocked writing to its client",
        || {
            w = check(&server, "2s", &["--log", &log]);
            blocked(&w)
        },
    );
    for _ in 0..2 {
        assert_eq!(w["verdict"], "healthy", "{w:#}");
        assert!(
            w["activity"] == "waiting_on_client" || w["activity"] == "working",
            "{w:#}"
        );
        let notes = w["notes"].to_string();
        assert!(
            notes.contains("waiting on its client, never hung")
                && notes.contains("a server thread is blocked writing to it"),
            "{notes}"
        );
        // Still so later, past --hung-after.
        std::thread::sleep(Duration::from_secs(3));
        w = check(&server, "2s", &["--log", &log]);
        assert!(blocked(&w), "{w:#}");
    }
}

#[test]
fn a_long_legitimate_prefill_is_working_past_hung_after_never_hung() {
    // The known false kill: a prompt of ~10,000 tokens prefilled 4 tokens a step takes
    // thousands of steps, much longer than --hung-after here, with no token delivered yet and
    // no end logged at INFO. The CPU and the log's progress lines say working throughout.
    let server = start(&mlx_lm_python());
    let prompt = "hello world ".repeat(5000);
    let _a = server.send(
        "/v1/completions",
        &format!(r#"{{"prompt":"{prompt}","max_tokens":5}}"#),
    );
    wait_until(Duration::from_secs(60), "the prefill", || {
        server
            .log_text()
            .contains("Prompt processing progress: 400/")
    });
    let log = server.log.to_str().unwrap().to_string();
    let started = Instant::now();
    let mut checks = 0;
    // Checked while the prefill lasts (at least one check, then as long as it goes on).
    loop {
        let text = server.log_text();
        let last = text
            .lines()
            .rev()
            .find(|l| l.contains("Prompt processing progress: "))
            .unwrap_or_default()
            .to_string();
        let done = last
            .rsplit("progress: ")
            .next()
            .and_then(|p| p.split_once('/'))
            .is_some_and(|(a, b)| {
                a.trim().parse::<u64>().ok() >= b.trim().parse::<u64>().ok().map(|b| b - 8)
            });
        if checks > 0 && (done || started.elapsed() > Duration::from_secs(60)) {
            break;
        }
        let w = check(&server, "1s", &["--log", &log]);
        assert_eq!(w["verdict"], "healthy", "{last}: {w:#}");
        // Working while the request waits; once it is answered (its end is near) the server
        // may read busy with no connection left, still healthy.
        let answered = w["connections"]["accepted"]
            .as_array()
            .is_none_or(|a| a.is_empty());
        assert!(
            w["activity"] == "working" || (answered && w["activity"] == "busy"),
            "{last}: {w:#}"
        );
        checks += 1;
    }
    assert!(checks >= 1);
}

#[test]
fn an_idle_server_pinning_a_core_is_busy_not_working_nor_hung() {
    // mlx-lm #1500 by its real mechanism: 0.29.1's generation loop polls the request queue
    // with get_nowait() when idle and pins a core. No request, no connection: busy, healthy.
    let server = Launch::module(&mlx_lm_029_python())
        .extra(&["--log-level", "INFO"])
        .start();
    let mut w = Value::Null;
    wait_until(Duration::from_secs(60), "the idle loop", || {
        w = check(&server, "1s", &[]);
        w["activity"] == "busy"
    });
    assert_eq!(w["verdict"], "healthy", "{w:#}");
    assert!(w["cpu_percent"].as_f64().unwrap() > 50.0, "{w:#}");
    assert!(w["notes"].to_string().contains("mlx-lm #1500"), "{w:#}");
}
