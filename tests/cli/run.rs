//! `mlsdiag run` on the real `mlx_lm.server` from the Python package index (mlx-lm 0.32.2 on
//! MLX's CPU backend, scripts/setup-mlx-lm's tiny model): the stock server, unedited, keeps a
//! token record that `check` finds with no registry; the tokens are those delivered to the
//! client (the completion's `usage.completion_tokens`); a long generation reads working; the
//! watchdog dumps every stack when delivery stalls; an unusable state directory is a warning;
//! and mlx-lm 0.31.3's dead generation thread (scripts/setup-mlx-lm-0.31) is hung by the record.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{bin, json, mlx_lm_031_python, mlx_lm_python, root, run, stdout, wait_until};

/// A stock server started by `mlsdiag run`, killed on drop.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `mlsdiag run RUN_ARGS -- SERVER --model tiny --port P`.
    fn start(run_args: &[&str], server: &[&str]) -> Server {
        Server::start_with(run_args, server, &root("target/mlx-lm-tiny"))
    }

    /// The same with another model directory.
    fn start_with(run_args: &[&str], server: &[&str], model: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("server.log");
        let file = std::fs::File::create(&log).unwrap();
        let hub = dir.path().join("hub");
        std::fs::create_dir(&hub).unwrap();
        let child = Command::new(bin())
            .arg("run")
            .args(run_args)
            .arg("--")
            .args(server)
            .args(["--model", model])
            .args(["--port", &port.to_string()])
            .env("HF_HUB_OFFLINE", "1")
            .env("TRANSFORMERS_OFFLINE", "1")
            .env("HF_HUB_CACHE", &hub)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("mlsdiag run");
        let s = Server {
            child,
            port,
            log,
            _dir: dir,
        };
        wait_until(Duration::from_secs(120), "mlx_lm.server to listen", || {
            s.log_text().contains("Starting httpd")
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        s
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `check --json` of this server alone, with no registry: its report.
    fn check(&self, extra: &[&str]) -> Value {
        let pattern = format!(r"mlx_lm.server.* --port {}$", self.port);
        let mut args = vec![
            "check",
            "--json",
            "--pattern",
            &pattern,
            "--registry",
            "/nonexistent/mlsdiag-test/registry.json",
            "--window",
            "1s",
        ];
        args.extend_from_slice(extra);
        let r = json(&run(&args));
        let ws = r["workers"].as_array().unwrap();
        assert_eq!(ws.len(), 1, "{r:#}");
        ws[0].clone()
    }

    /// A file of this server's in the per-user directory (`{}` stands for its PID).
    fn user_file(&self, name: &str) -> PathBuf {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        PathBuf::from(format!(
            "/tmp/mlsdiag-{uid}/{}",
            name.replace("{}", &self.pid().to_string())
        ))
    }
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
    let s = Server::start(
        &["--state-dir", shared.path().to_str().unwrap()],
        &[&venv_server],
    );
    let log = s.log_text();
    assert!(log.contains("is not usable"), "{log}");
    let record = s.user_file("progress-{}");
    assert!(
        log.contains(&format!("token record {}", record.display())),
        "{log}"
    );

    // Idle: found by PID in the per-user directory, no generation in progress.
    let idle = s.check(&[]);
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
    let after = s.check(&[]);
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
        s.check(&[])["progress"]["request_tokens"]
            .as_u64()
            .unwrap_or(0)
            > 50
    });
    std::thread::sleep(Duration::from_secs(3));
    let busy = s.check(&["--hung-after", "2s"]);
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

/// A client that asks for a long stream and never reads it, with a small receive buffer so
/// that the server's writes block within a minute (the kernel's send buffer fills).
fn stalled_reader(port: u16) -> TcpStream {
    // SAFETY: a fresh socket, configured and connected before it is handed to TcpStream.
    let s = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let small: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    };
    let body = r#"{"messages":[{"role":"user","content":"Go"}],"max_tokens":200000,"stream":true}"#;
    let mut w = &s;
    write!(
        w,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

#[test]
fn the_watchdog_dumps_every_stack_once_when_delivery_stalls() {
    let python = mlx_lm_python();
    let s = Server::start(&["--watchdog", "3s"], &[&python, "-m", "mlx_lm.server"]);
    assert!(s.log_text().contains("watchdog 3 s"), "{}", s.log_text());
    let dump = s.user_file("faulthandler-{}.txt");
    let _client = stalled_reader(s.port);
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
    let w = s.check(&["--hung-after", "2s"]);
    assert_ne!(w["verdict"], "hung", "{w:#}");
    assert!(w["progress"]["waiting_since"].is_string(), "{w:#}");
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
    // mlx-lm 0.31 loads the model in its generation thread (`_generate`), unguarded: weights
    // that fail to load kill that thread while the HTTP side serves on, /health says ok and
    // every request waits forever (mlx-lm #1505's shape; #1472's TypeError kills it the same
    // way, but only when two prefills meet in one step). No log format is read.
    let python = mlx_lm_031_python();
    let model = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(root("target/mlx-lm-tiny")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, model.path().join(f.file_name().unwrap())).unwrap();
    }
    let weights = model.path().join("model.safetensors");
    let len = std::fs::metadata(&weights).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let s = Server::start_with(
        &["--watchdog", "2s"],
        &[&python, "-m", "mlx_lm.server"],
        model.path().to_str().unwrap(),
    );
    assert!(
        s.log_text()
            .contains("Exception in thread Thread-1 (_generate)"),
        "{}",
        s.log_text()
    );
    // Idle and dead: the record says no generation, so nothing is hung yet.
    assert_ne!(s.check(&["--hung-after", "2s"])["verdict"], "hung");
    let mut health = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(health, "GET /health HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = health.read_to_string(&mut text);
    assert!(text.contains(" 200 "), "0.31 says healthy: {text}");

    // A request: queued, never answered.
    let mut client = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let body = r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":5}"#;
    write!(
        client,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut w = Value::Null;
    wait_until(Duration::from_secs(60), "a hung verdict", || {
        w = s.check(&["--hung-after", "2s"]);
        w["verdict"] == "hung"
    });
    let ev = w["findings"][0]["evidence"].to_string();
    assert!(ev.contains("no token or prefill progress"), "{w:#}");
    assert!(ev.contains("request chatcmpl-"), "{w:#}");
    assert_eq!(w["progress"]["request_tokens"], 0, "{w:#}");
    // The watchdog's dump: the handler waits on its queue, no `_generate` thread.
    // faulthandler's timer writes the stacks first; the watchdog's own line follows them.
    let mut dump = String::new();
    wait_until(
        Duration::from_secs(30),
        "the watchdog's line under the dump",
        || {
            dump = std::fs::read_to_string(s.user_file("faulthandler-{}.txt")).unwrap_or_default();
            dump.contains("mlsdiag watchdog: no progress")
        },
    );
    assert!(dump.contains("0 tokens, 1 in flight"), "{dump}");
    assert!(dump.contains("in get"), "{dump}");
    assert!(!dump.contains("in _generate"), "{dump}");
}
