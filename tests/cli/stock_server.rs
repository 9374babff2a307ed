//! The real `mlx_lm.server` from the Python package index, as the tests start it: one harness
//! for every test that needs the stock server (mlx_lm_server, mlx_lm_hang, run). The server
//! serves scripts/setup-mlx-lm's tiny model from a private hub directory, offline, on a free
//! port, with its output in a log file; it is started directly or under `mlsdiag run`, and
//! killed on drop, also when the test fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{bin, root, wait_until, write};

/// A running stock server.
pub struct StockServer {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    /// A registry listing this server alone (for the tests that judge with one).
    pub registry: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for StockServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start it.
pub struct Launch<'a> {
    /// The command that is the server, before `--model`: e.g. `[python, "-m", "mlx_lm.server"]`.
    pub server: Vec<String>,
    /// `Some(args)`: started as `mlsdiag run ARGS -- SERVER …`.
    pub under_run: Option<&'a [&'a str]>,
    /// The model directory (default: the tiny model).
    pub model: Option<&'a Path>,
    /// Flags after `--model M --port P`.
    pub extra: &'a [&'a str],
}

impl<'a> Launch<'a> {
    /// `PYTHON -m mlx_lm.server`, directly.
    pub fn module(python: &str) -> Launch<'a> {
        Launch {
            server: vec![python.to_string(), "-m".into(), "mlx_lm.server".into()],
            under_run: None,
            model: None,
            extra: &[],
        }
    }

    pub fn extra(self, extra: &'a [&'a str]) -> Launch<'a> {
        Launch { extra, ..self }
    }

    /// Start it and wait until it listens.
    pub fn start(self) -> StockServer {
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
        let model = self
            .model
            .map_or_else(|| root("target/mlx-lm-tiny"), |m| m.display().to_string());
        let mut cmd = match self.under_run {
            Some(args) => {
                let mut c = Command::new(bin());
                c.arg("run").args(args).arg("--").args(&self.server);
                c
            }
            None => {
                let mut c = Command::new(&self.server[0]);
                c.args(&self.server[1..]);
                c
            }
        };
        let child = cmd
            .args(["--model", &model, "--port", &port.to_string()])
            .args(self.extra)
            .env("HF_HUB_OFFLINE", "1")
            .env("TRANSFORMERS_OFFLINE", "1")
            .env("HF_HUB_CACHE", &hub)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start mlx_lm.server");
        let registry = dir.path().join("registry.json");
        write(
            &registry,
            &format!(r#"[{{"pid":{},"name":"mlx-lm"}}]"#, child.id()),
        );
        let s = StockServer {
            child,
            port,
            log,
            registry,
            _dir: dir,
        };
        wait_until(Duration::from_secs(120), "mlx_lm.server to listen", || {
            s.log_text().contains("Starting httpd")
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        s
    }
}

impl StockServer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// This server's report in a `check --json` report. The pattern may also find a child it
    /// forked that has not exec'd yet (a subprocess start-up: the same command line for a
    /// moment); the server is the one with its PID.
    pub fn report_in(&self, r: &serde_json::Value) -> serde_json::Value {
        r["workers"]
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w["pid"] == self.pid()))
            .unwrap_or_else(|| panic!("PID {} not in {r:#}", self.pid()))
            .clone()
    }

    /// `check --json --pattern <this server> ARGS…`: this server's report.
    pub fn check(&self, args: &[&str]) -> serde_json::Value {
        let pattern = self.pattern();
        let mut all = vec!["check", "--json", "--pattern", &pattern];
        all.extend_from_slice(args);
        self.report_in(&crate::util::json(&crate::util::run(&all)))
    }

    /// The pattern that finds this server.
    pub fn pattern(&self) -> String {
        format!(r"mlx_lm\.server.* --port {}( |$)", self.port)
    }

    pub fn probe_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// POST `body` to `path` and return the connection without reading the answer: the
    /// request stays in flight for as long as the test holds it.
    pub fn send(&self, path: &str, body: &str) -> TcpStream {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).unwrap();
        s
    }

    /// The two requests of mlx-lm #1472: one with `repetition_penalty` and a prompt of about
    /// 3000 tokens (hundreds of prefill steps at `--prefill-step-size 4`), and a plain one sent
    /// once the first is in its prefill. Both ask for 20,000 tokens: minutes of generation
    /// here. On 0.31.3 they kill the generation thread; 0.32 serves both.
    pub fn two_requests(&self) -> (TcpStream, TcpStream) {
        let prompt = "hello world ".repeat(750);
        let a = self.send(
            "/v1/completions",
            &format!(r#"{{"prompt":"{prompt}","max_tokens":20000,"repetition_penalty":1.1}}"#),
        );
        wait_until(
            Duration::from_secs(60),
            "the first request's prefill",
            || self.log_text().contains("Prompt processing progress: 4/"),
        );
        let b = self.send("/v1/completions", r#"{"prompt":"hi","max_tokens":20000}"#);
        (a, b)
    }

    /// A client that asks for a long stream and never reads it, with a small receive buffer so
    /// that the server's writes block within a minute (the kernel's send buffer fills).
    pub fn stalled_reader(&self) -> TcpStream {
        let port = self.port;
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
        let body =
            r#"{"messages":[{"role":"user","content":"Go"}],"max_tokens":200000,"stream":true}"#;
        let mut w = &s;
        write!(
            w,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        s
    }

    /// `GET /health`: the status line.
    pub fn health(&self) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.lines().next().unwrap_or_default().to_string()
    }
}

/// Flags that make #1472's race certain: the first request stays in its prefill long enough
/// for the second to join it.
pub const RACE: &[&str] = &["--prefill-step-size", "4", "--log-level", "INFO"];
