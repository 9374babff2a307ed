//! The real `mlx_lm.server` from the Python package index (scripts/setup-mlx-lm: mlx-lm 0.32.2
//! on MLX's CPU backend, serving a tiny random Llama made locally), at INFO and at DEBUG, idle
//! and busy. An idle server is never hung; a busy one is working; and the evidence says what each
//! log level can prove (INFO logs no request ends; DEBUG logs them, except for streams).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::stock_server::{Launch, StockServer};
use crate::util::{mlx_lm_python, wait_until};

fn check(server: &StockServer) -> serde_json::Value {
    server.check(&[
        "--registry",
        server.registry.to_str().unwrap(),
        "--log",
        server.log.to_str().unwrap(),
        "--hung-after",
        "1s",
    ])
}

fn chat(port: u16, max_tokens: u32, stream: bool) -> String {
    let body = format!(
        r#"{{"messages":[{{"role":"user","content":"Hello there"}}],"max_tokens":{max_tokens},"stream":{stream}}}"#
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp
}

/// Three requests served, then idle past --hung-after; then one long request in flight.
fn idle_then_busy(level: &str, last_streams: bool) -> (serde_json::Value, serde_json::Value) {
    let server = Launch::module(&mlx_lm_python())
        .extra(&["--log-level", level])
        .start();
    for i in 0..3 {
        let r = chat(server.port, 20, last_streams && i == 2);
        assert!(
            r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"),
            "{r}"
        );
    }
    let done = Instant::now();
    wait_until(
        Duration::from_secs(10),
        "the last request to age past --hung-after",
        || done.elapsed() > Duration::from_millis(1500),
    );
    let idle = check(&server);

    // A request that runs for minutes at this size; the server is killed after the check.
    let port = server.port;
    std::thread::spawn(move || chat(port, 20_000, false));
    let lines = server.log_text().lines().count();
    wait_until(
        Duration::from_secs(60),
        "the long request to start generating",
        || {
            let text = server.log_text();
            text.lines().count() > lines + 3
                && text.lines().skip(lines).any(|l| l.contains("progress"))
        },
    );
    let busy = check(&server);
    (idle, busy)
}

#[test]
fn an_idle_mlx_lm_server_at_info_is_not_hung_and_a_busy_one_is_working() {
    let (idle, busy) = idle_then_busy("INFO", false);
    assert_eq!(idle["verdict"], "healthy", "{idle:#}");
    assert_eq!(idle["in_flight_known"], false);
    let notes = idle["notes"].to_string();
    assert!(
        notes.contains("context only; this log records no request ends"),
        "{notes}"
    );
    assert_eq!(busy["verdict"], "healthy", "{busy:#}");
    assert_eq!(busy["activity"], "working", "{busy:#}");
}

#[test]
fn at_debug_ends_are_logged_streams_are_context_and_a_busy_server_is_working() {
    let (idle, busy) = idle_then_busy("DEBUG", true);
    assert_eq!(idle["verdict"], "healthy", "{idle:#}");
    assert_eq!(idle["in_flight_known"], true);
    assert!(idle["in_flight"].as_array().unwrap().is_empty(), "{idle:#}");
    let notes = idle["notes"].to_string();
    assert!(
        notes.contains("streaming since") && notes.contains("logs no end for a streamed response"),
        "the last request streamed: {notes}"
    );
    assert_eq!(busy["verdict"], "healthy", "{busy:#}");
    assert_eq!(busy["activity"], "working", "{busy:#}");
    assert_eq!(busy["in_flight"].as_array().unwrap().len(), 1, "{busy:#}");
    assert!(
        busy["notes"].to_string().contains("working, not hung"),
        "{busy:#}"
    );
}
