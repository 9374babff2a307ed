//! `--probe URL`: an opt-in active check of a server's generation path.
//!
//! One OpenAI-compatible completion of one token (`max_tokens` 1, a two-character prompt,
//! streamed), sent to the server being judged, with a deadline of `--hung-after`. A complete
//! answer proves the generation path works; no answer by the deadline while the server's CPU
//! and GPU stay idle proves a hang (the hung rule judges that, with the probe as work in
//! flight). It costs the server one generation of one token, a connection and a place in its
//! queue, so it is never a default, and at most one probe per server is in flight: `watch`
//! starts the next one only after the last one's outcome was reported.
//!
//! The HTTP client is `repro --endpoint`'s ([`endpoint`], kept here so that the diagnosis may
//! use it), with an absolute deadline and the time of the first byte recorded.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

pub mod endpoint;

use crate::model::{ProbeReport, ProbeState};
use endpoint::{Endpoint, Outcome, read_response};

/// The prompt: short, so the probe costs one prefill of a few tokens and one decode step.
pub const PROMPT: &str = "Hi";

/// A probe target: the URL as given and where it goes. A URL without a path gets
/// `/v1/completions`; a path ending in `chat/completions` gets a chat request.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub endpoint: Endpoint,
    /// The `model` the request names; `None`: none, the server's own (mlx_lm.server loads any
    /// model a request names, so the probe names none unless told).
    pub model: Option<String>,
}

impl Target {
    pub fn parse(url: &str, model: Option<&str>) -> Result<Target, String> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let with_path = if rest.trim_end_matches('/').contains('/') {
            url.to_string()
        } else {
            format!("{}/v1/completions", url.trim_end_matches('/'))
        };
        Ok(Target {
            url: url.to_string(),
            endpoint: Endpoint::parse(&with_path)?,
            model: model.map(str::to_string),
        })
    }

    /// The request body: one streamed token, greedy.
    pub fn body(&self) -> serde_json::Value {
        let mut body = if self.endpoint.path.ends_with("chat/completions") {
            serde_json::json!({
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": 1,
                "temperature": 0,
                "stream": true,
            })
        } else {
            serde_json::json!({
                "prompt": PROMPT,
                "max_tokens": 1,
                "temperature": 0,
                "stream": true,
            })
        };
        if let Some(m) = &self.model {
            body["model"] = m.clone().into();
        }
        body
    }
}

/// What one probe has seen so far.
#[derive(Debug, Clone)]
struct Seen {
    sent_at: DateTime<Utc>,
    sent: Instant,
    deadline: Duration,
    first_byte: Option<Duration>,
    first_token: Option<Duration>,
    ended: Option<(Duration, ProbeState)>,
    error: Option<String>,
    local: Option<String>,
    /// Whether its outcome was handed to a report (`watch` starts the next one only then).
    reported: bool,
}

#[derive(Debug)]
struct Shared {
    seen: Mutex<Seen>,
    done: Condvar,
}

impl Shared {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The probes of one `check` or of a whole `watch`: at most one in flight per URL.
#[derive(Debug, Default)]
pub struct Probes {
    by_url: Mutex<HashMap<String, Arc<Shared>>>,
}

impl Probes {
    pub fn new() -> Probes {
        Probes::default()
    }

    /// Sends a probe to `target` unless one is in flight there or the last one's outcome was
    /// not reported yet. Returns whether a probe was sent.
    pub fn start(&self, target: &Target, deadline: Duration) -> bool {
        let mut map = self.by_url.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(&target.url) {
            let seen = s.seen();
            if seen.ended.is_none() || !seen.reported {
                return false;
            }
        }
        let shared = Arc::new(Shared {
            seen: Mutex::new(Seen {
                sent_at: Utc::now(),
                sent: Instant::now(),
                deadline,
                first_byte: None,
                first_token: None,
                ended: None,
                error: None,
                local: None,
                reported: false,
            }),
            done: Condvar::new(),
        });
        map.insert(target.url.clone(), shared.clone());
        let target = target.clone();
        std::thread::spawn(move || run(&target, deadline, &shared));
        true
    }

    /// Waits until the probe of `url` ends or `until` passes.
    pub fn wait(&self, url: &str, until: Instant) {
        let Some(s) = self.get(url) else { return };
        let mut seen = s.seen();
        while seen.ended.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            seen = s
                .done
                .wait_timeout(seen, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Whether the probe of `url` has ended.
    pub fn ended(&self, url: &str) -> bool {
        self.get(url).is_some_and(|s| s.seen().ended.is_some())
    }

    /// The probe of `url` as it stands; an ended probe's outcome counts as reported from then on.
    pub fn report(&self, url: &str) -> Option<ProbeReport> {
        let s = self.get(url)?;
        let mut seen = s.seen();
        let secs = |d: Duration| d.as_secs_f64();
        let (state, age) = match seen.ended {
            Some((at, state)) => {
                seen.reported = true;
                (state, at)
            }
            None => (ProbeState::InFlight, seen.sent.elapsed()),
        };
        Some(ProbeReport {
            url: url.to_string(),
            sent_at: seen.sent_at,
            state,
            age_secs: secs(age),
            deadline_secs: secs(seen.deadline),
            first_byte_secs: seen.first_byte.map(secs),
            first_token_secs: seen.first_token.map(secs),
            seconds: seen.ended.map(|(at, _)| secs(at)),
            error: seen.error.clone(),
            local: seen.local.clone(),
        })
    }

    fn get(&self, url: &str) -> Option<Arc<Shared>> {
        let map = self.by_url.lock().unwrap_or_else(|e| e.into_inner());
        map.get(url).cloned()
    }
}

/// A socket read against an absolute deadline that notes when the first byte came.
struct Timed<'a> {
    sock: TcpStream,
    deadline: Instant,
    shared: &'a Shared,
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "deadline",
            ));
        }
        self.sock.set_read_timeout(Some(left))?;
        let n = self.sock.read(buf)?;
        if n > 0 {
            let mut seen = self.shared.seen();
            if seen.first_byte.is_none() {
                seen.first_byte = Some(seen.sent.elapsed());
            }
        }
        Ok(n)
    }
}

/// Sends the probe and reads its answer until the deadline; the outcome goes into `shared`.
fn run(target: &Target, deadline: Duration, shared: &Shared) {
    let sent = shared.seen().sent;
    let until = sent + deadline;
    let mut out = Outcome::default();
    let result = (|| -> Result<(), String> {
        let ep = &target.endpoint;
        let addr = (ep.host.as_str(), ep.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}:{}: {e}", ep.host, ep.port))?
            .next()
            .ok_or_else(|| format!("{}: no address", ep.host))?;
        let mut sock = TcpStream::connect_timeout(&addr, deadline.max(Duration::from_millis(1)))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        shared.seen().local = sock.local_addr().ok().map(|a| a.to_string());
        sock.set_write_timeout(Some(deadline.max(Duration::from_millis(1))))
            .map_err(|e| e.to_string())?;
        let payload = target.body().to_string();
        // One write: the request arrives whole, as a client's usually does.
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: mlsdiag-probe\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
            ep.path,
            ep.host,
            ep.port,
            payload.len()
        );
        sock.write_all(request.as_bytes())
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    "stall".to_string()
                }
                _ => format!("send: {e}"),
            })?;
        let last = Cell::new(sent);
        let mut r = BufReader::new(Timed {
            sock,
            deadline: until,
            shared,
        });
        read_response(&mut r, deadline, sent, &mut out, &last)
    })();
    let mut seen = shared.seen();
    seen.first_token = out.first_token_secs.map(Duration::from_secs_f64);
    let state = match result {
        Ok(()) => ProbeState::Answered,
        Err(e) if e == "stall" => ProbeState::NoAnswer,
        Err(e) => {
            seen.error = Some(e);
            ProbeState::Failed
        }
    };
    // A probe given up at its deadline is as old as the deadline.
    let at = if state == ProbeState::NoAnswer {
        sent.elapsed().max(deadline)
    } else {
        sent.elapsed()
    };
    seen.ended = Some((at, state));
    drop(seen);
    shared.done.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn targets_default_to_completions_and_chat_paths_get_messages() {
        let t = Target::parse("http://127.0.0.1:8080", None).unwrap();
        assert_eq!(t.endpoint.path, "/v1/completions");
        assert_eq!(t.body()["max_tokens"], 1);
        assert_eq!(t.body()["prompt"], PROMPT);
        let t = Target::parse("http://127.0.0.1:8080/", None).unwrap();
        assert_eq!(t.endpoint.path, "/v1/completions");
        let t = Target::parse("http://h:1/v1/chat/completions", None).unwrap();
        assert!(t.body()["messages"].is_array());
        assert!(Target::parse("https://h:1", None).is_err());
        assert!(t.body().get("model").is_none(), "the server's own model");
        let t = Target::parse("http://h:1", Some("qwen")).unwrap();
        assert_eq!(t.body()["model"], "qwen");
    }

    /// A server that accepts and then answers with `reply` (or never, for `None`), counting
    /// the connections it accepted.
    fn server(reply: Option<&'static str>) -> (String, Arc<Mutex<u32>>, TcpListener) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let count = Arc::new(Mutex::new(0));
        let (c, l2) = (count.clone(), l.try_clone().unwrap());
        std::thread::spawn(move || {
            for s in l2.incoming() {
                let Ok(mut s) = s else { return };
                *c.lock().unwrap() += 1;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                match reply {
                    Some(r) => {
                        let _ = s.write_all(r.as_bytes());
                    }
                    // Hold the connection open and silent until the client leaves.
                    None => while s.read(&mut buf).is_ok_and(|n| n > 0) {},
                }
            }
        });
        (url, count, l)
    }

    const SSE: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {\"choices\":[{\"text\":\"a\",\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n";

    #[test]
    fn an_answer_a_silence_and_an_error() {
        let deadline = Duration::from_millis(600);
        let probes = Probes::new();
        let (url, _, _l) = server(Some(SSE));
        let t = Target::parse(&url, None).unwrap();
        assert!(probes.start(&t, deadline));
        probes.wait(&url, Instant::now() + Duration::from_secs(10));
        let r = probes.report(&url).unwrap();
        assert_eq!(r.state, ProbeState::Answered, "{r:?}");
        assert!(r.first_byte_secs.is_some() && r.first_token_secs.is_some());

        let (url, _, _l) = server(None);
        let t = Target::parse(&url, None).unwrap();
        let sent = Instant::now();
        assert!(probes.start(&t, deadline));
        assert_eq!(probes.report(&url).unwrap().state, ProbeState::InFlight);
        probes.wait(&url, Instant::now() + Duration::from_secs(10));
        assert!(sent.elapsed() >= deadline);
        let r = probes.report(&url).unwrap();
        assert_eq!(r.state, ProbeState::NoAnswer, "{r:?}");
        assert!(r.age_secs >= 0.6 && r.first_byte_secs.is_none(), "{r:?}");
        assert!(r.local.is_some());

        let (url, _, _l) = server(Some(
            "HTTP/1.1 404 Not Found\r\n\r\n{\"error\": \"generation thread died\"}",
        ));
        let t = Target::parse(&url, None).unwrap();
        assert!(probes.start(&t, deadline));
        probes.wait(&url, Instant::now() + Duration::from_secs(10));
        let r = probes.report(&url).unwrap();
        assert_eq!(r.state, ProbeState::Failed, "{r:?}");
        assert!(r.error.unwrap().contains("HTTP 404"));
    }

    #[test]
    fn one_probe_in_flight_per_server_and_the_next_after_its_outcome_was_reported() {
        let deadline = Duration::from_millis(400);
        let probes = Probes::new();
        let (url, count, _l) = server(None);
        let t = Target::parse(&url, None).unwrap();
        assert!(probes.start(&t, deadline));
        // In flight: no second probe.
        assert!(!probes.start(&t, deadline));
        probes.wait(&url, Instant::now() + Duration::from_secs(10));
        // Ended, but its outcome not reported yet: still none (a watch round must see it).
        assert!(probes.ended(&url));
        assert!(!probes.start(&t, deadline));
        assert_eq!(probes.report(&url).unwrap().state, ProbeState::NoAnswer);
        assert!(probes.start(&t, deadline));
        probes.wait(&url, Instant::now() + Duration::from_secs(10));
        wait_for(|| *count.lock().unwrap() == 2);
    }

    /// Waits (with a deadline) for a condition another thread makes true.
    fn wait_for(mut cond: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < until, "timed out");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
