//! `mlsdiag repro --endpoint` against a real streaming HTTP server (Python's stdlib server
//! speaking the OpenAI chat-completions SSE protocol) that stalls on some requests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::util::{json, run, stderr, write};

const SERVER: &str = r#"
import json, sys, time, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        def send(text):
            data = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data)); self.wfile.flush()
        send(": keepalive 10/10\n\n")
        for i in range(5):
            send("data: " + json.dumps({"choices": [{"delta": {"content": "tok%d " % i}}]}) + "\n\n")
            if i == 2 and "HANG" in prompt:
                time.sleep(3600)
        send("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

struct Server(Child, u16);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start a Python `script` (argument `name`) that prints its port, then serves.
fn start(script: &str, name: &str) -> Server {
    let mut child = Command::new("python3")
        .args(["-c", script, name])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("server did not start: {line:?}"));
    Server(child, port)
}

#[test]
fn a_campaign_counts_stalls_snapshots_the_server_and_reports_the_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("mls-fake-server-{}", std::process::id());
    let server = start(SERVER, &name);
    let reqs = tmp.path().join("requests.jsonl");
    write(
        &reqs,
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],\"max_tokens\":5}\n\
         {\"messages\":[{\"role\":\"user\",\"content\":\"HANG please\"}],\"max_tokens\":5,\"temperature\":0.3}\n\
         {\"messages\":[{\"role\":\"user\",\"content\":\"again\"}]}\n",
    );
    let out_dir = tmp.path().join("out");
    let out = run(&[
        "repro",
        "--json",
        "--endpoint",
        &format!("http://127.0.0.1:{}/v1/chat/completions", server.1),
        "--requests",
        reqs.to_str().unwrap(),
        "-n",
        "6",
        "--parallel",
        "2",
        "--stall",
        "1s",
        "--out",
        out_dir.to_str().unwrap(),
        "--pattern",
        &name,
        "--registry",
        "/nonexistent/registry.json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a hang is CRITICAL: {}",
        stderr(&out)
    );
    let r = json(&out);
    assert_eq!(
        (
            r["runs"].as_u64(),
            r["completed"].as_u64(),
            r["hangs"].as_u64(),
            r["errors"].as_u64()
        ),
        (Some(6), Some(4), Some(2), Some(0)),
        "{r:#}"
    );
    assert_eq!(r["tokens"], 4 * 5 + 2 * 3);
    let hangs = r["hang_details"].as_array().unwrap();
    assert!(
        hangs
            .iter()
            .all(|h| h["request"] == 1 && h["after_tokens"] == 3)
    );
    // The server's process was snapshotted at each stall.
    for h in hangs {
        let snap = h["snapshots"][0]
            .as_str()
            .unwrap_or_else(|| panic!("no snapshot: {h:#}"));
        assert!(std::path::Path::new(snap).exists());
    }
    let i = &r["hang_rate_95"];
    assert!(
        i["low"].as_f64().unwrap() > 0.04 && i["high"].as_f64().unwrap() < 0.8,
        "{i:#}"
    );
    assert_eq!(r["runs_still_needed_to_see_a_hang"], 0);
}

#[test]
fn no_hang_says_how_many_runs_it_would_take() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(SERVER, "mls-fake-server-clean");
    let prompt = tmp.path().join("prompt.txt");
    write(&prompt, "a normal 8.5 KB chunk");
    let out = run(&[
        "repro",
        "--json",
        "--endpoint",
        &format!("http://127.0.0.1:{}", server.1),
        "--prompt",
        prompt.to_str().unwrap(),
        "-n",
        "3",
        "--stall",
        "5s",
        "--out",
        tmp.path().join("o").to_str().unwrap(),
        "--registry",
        "/nonexistent.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["hangs"], 0);
    assert_eq!(
        r["runs_still_needed_to_see_a_hang"],
        952 - 3,
        "the incident's 1-in-318 at 95%"
    );
    assert_eq!(r["hang_rate_95"]["low"], 0.0);
    // A server that is not there is an error per run, not a hang.
    let out = run(&[
        "repro",
        "--json",
        "--endpoint",
        "http://127.0.0.1:9/v1/chat/completions",
        "--prompt",
        prompt.to_str().unwrap(),
        "-n",
        "2",
        "--stall",
        "2s",
        "--registry",
        "/nonexistent.json",
    ]);
    let r = json(&out);
    assert_eq!(
        (r["errors"].as_u64(), r["hangs"].as_u64()),
        (Some(2), Some(0))
    );
    // Refused connections are neither clean runs nor hangs: nothing is judged, and the runs
    // still needed are counted from none (#32).
    assert_eq!(r["judged"], 0, "{r:#}");
    assert_eq!(r["hang_rate_95"], serde_json::Value::Null, "{r:#}");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        run(&[
            "repro",
            "--endpoint",
            "https://example.invalid",
            "--prompt",
            prompt.to_str().unwrap()
        ])
        .status
        .code()
            == Some(3)
    );
}

/// A checkpoint directory whose files pass the parent's checks (the weights are never read
/// here: no runner gets that far).
fn checkpoint_files(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let config = r#"{"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2,
        "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 320, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "tie_word_embeddings": true}"#;
    for (name, text) in [
        ("config.json", config),
        ("model.safetensors", ""),
        ("tokenizer.json", "{}"),
        ("tokenizer_config.json", "{}"),
    ] {
        write(&dir.join(name), text);
    }
}

#[test]
fn model_mode_names_a_missing_or_failing_runner() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    checkpoint_files(&model);
    let prompt = dir.path().join("p.txt");
    write(&prompt, "hello");
    let repro = |runner: &str| {
        std::process::Command::new(crate::util::bin())
            .args(["repro", "--model", model.to_str().unwrap(), "-n", "2"])
            .args(["--prompt", prompt.to_str().unwrap()])
            .args(["--out", dir.path().join("out").to_str().unwrap()])
            .env("MLSDIAG_RUNNER", runner)
            .output()
            .unwrap()
    };
    let o = repro("/nonexistent/mlsdiag-runner");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("MLSDIAG_RUNNER=/nonexistent/mlsdiag-runner: no such file"),
        "{}",
        stderr(&o)
    );
    // A runner that exits at start: its death is reported, not waited on.
    let o = repro("/bin/false");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("could not load") && e.contains("exit status: 1"),
        "{e}"
    );
    // Neither --endpoint nor --model: a usage error.
    let o = run(&["repro", "--prompt", prompt.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("--endpoint <URL>|--model <DIR>"));
}

/// A server that lies: chunk sizes that overflow, a header line that never ends, a stream of
/// identical keepalives with no token. Each is one bad run; the campaign and its report survive.
const HOSTILE: &str = r#"
import json, sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        try:
            if prompt == "TRICKLE":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(240):
                    self.wfile.write(b"a"); self.wfile.flush()
                    time.sleep(0.5)
                return
            if prompt == "HEADER":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
                for _ in range(200):
                    self.wfile.write(b"a" * 8192)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if prompt == "HUGE":
                self.wfile.write(b"ffffffffffffffff\r\n")
            elif prompt == "WRAP":
                self.wfile.write(b"fffffffffffffff0\r\nxx")
            elif prompt == "KEEPALIVE":
                for _ in range(600):
                    data = b": keepalive 0/100\n\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data)); self.wfile.flush()
                    time.sleep(0.1)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

#[test]
fn a_hostile_server_makes_bad_runs_not_a_lost_campaign() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(HOSTILE, "hostile");
    let reqs = tmp.path().join("requests.jsonl");
    let body = |p: &str| format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"{p}\"}}]}}\n");
    write(
        &reqs,
        &["HUGE", "WRAP", "HEADER", "KEEPALIVE", "TRICKLE"]
            .map(body)
            .concat(),
    );
    let out = run(&[
        "repro",
        "--json",
        "--endpoint",
        &format!("http://127.0.0.1:{}/v1/chat/completions", server.1),
        "--requests",
        reqs.to_str().unwrap(),
        "-n",
        "5",
        "--stall",
        "1s",
        "--out",
        tmp.path().join("out").to_str().unwrap(),
        "--pattern",
        "no-such-server-zz9",
        "--registry",
        "/nonexistent/registry.json",
    ]);
    assert_ne!(out.status.code(), Some(101), "panicked: {}", stderr(&out));
    let r = json(&out);
    assert_eq!(r["runs"], 5, "{r:#}");
    // A byte every half second of a header that never ends is a stall, not work.
    assert_eq!(
        (r["errors"].as_u64(), r["hangs"].as_u64()),
        (Some(3), Some(2)),
        "{r:#}"
    );
}
