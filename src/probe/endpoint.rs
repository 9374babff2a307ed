//! One streamed request against an OpenAI-compatible server, with a stall watchdog: the client
//! of `repro --endpoint` and of `--probe` (whose request is one token with an absolute deadline).
//!
//! The watchdog is the socket's read timeout: any bytes from the server (a token, or the SSE
//! keepalive comments `mlx_lm.server` sends during prefill) reset it; `--stall` seconds of
//! silence is a hang, and the connection is dropped. A minimal HTTP/1.1 client is used for
//! exactly that reason: per-read timeouts and closing the socket at will. Plain `http://` only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Endpoint {
    /// `http://host[:port]/path` (the path defaults to `/v1/chat/completions`).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!(
                "{url}: only http:// endpoints are supported (put a local proxy in front of https)"
            )
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("{url}: bad port {p:?}"))?,
            ),
            None => (authority.to_string(), 80),
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let path = if path.is_empty() || path == "/" {
            "/v1/chat/completions".to_string()
        } else {
            path.to_string()
        };
        Ok(Endpoint { host, port, path })
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Outcome {
    /// Content chunks received (servers stream one per token).
    pub tokens: u64,
    pub stalled: bool,
    pub error: Option<String>,
    pub seconds: f64,
    pub first_token_secs: Option<f64>,
}

/// Bounds on what a server may send: nothing it says can make the client allocate without
/// limit, index out of range or wait forever.
const MAX_LINE: usize = 16 << 10;
const MAX_HEADERS: usize = 100;
const MAX_CHUNK: usize = 16 << 20;
/// The most of a partial SSE line kept while waiting for its newline.
const MAX_SSE_LINE: usize = 4 << 20;

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// One line (a status line, a header, a chunk size) of at most [`MAX_LINE`] bytes.
fn read_line(r: &mut impl BufRead, out: &mut String) -> std::io::Result<usize> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if buf.len() > MAX_LINE {
        return Err(invalid(format!(
            "the server sent a line longer than {} KiB",
            MAX_LINE >> 10
        )));
    }
    out.push_str(&String::from_utf8_lossy(&buf));
    Ok(n)
}

/// Read one chunked-encoding chunk into `out`; false at the last chunk.
fn read_chunk(r: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut size = String::new();
    if read_line(r, &mut size)? == 0 {
        return Ok(false);
    }
    let field = size.trim().split(';').next().unwrap_or("0").trim();
    let n = usize::from_str_radix(field, 16)
        .ok()
        .filter(|n| *n <= MAX_CHUNK)
        .ok_or_else(|| {
            invalid(format!(
                "bad chunk size {:?} (at most {} MiB)",
                field.chars().take(32).collect::<String>(),
                MAX_CHUNK >> 20
            ))
        })?;
    if n == 0 {
        return Ok(false);
    }
    let start = out.len();
    out.resize(start + n, 0);
    r.read_exact(&mut out[start..])?;
    let mut crlf = [0u8; 2];
    match r.read_exact(&mut crlf) {
        Ok(()) => Ok(true),
        // A server that closes right after its last chunk: the chunk still counts.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// A socket whose every read times out at the stall deadline, `last` progress + `stall`: a
/// server that trickles a byte at a time (a header, a chunk it never finishes) cannot keep a
/// run alive without progress.
struct Paced<'a> {
    sock: TcpStream,
    last: &'a std::cell::Cell<Instant>,
    stall: Duration,
}

impl std::io::Read for Paced<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = (self.last.get() + self.stall).saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "stall"));
        }
        self.sock.set_read_timeout(Some(left))?;
        self.sock.read(buf)
    }
}

/// Count the tokens in complete SSE lines of `buf`, leaving a partial line in place. A
/// token, or a comment line that differs from the last one (mlx_lm.server's `: keepalive a/b`
/// prefill progress), is progress: it moves `last` to now (`keepalive` holds the last comment).
/// Returns true when `[DONE]` was seen.
fn consume_sse(
    buf: &mut Vec<u8>,
    out: &mut Outcome,
    started: Instant,
    last: &std::cell::Cell<Instant>,
    keepalive: &mut String,
) -> bool {
    let mut done = false;
    // Lines are read in place and the buffer shifted once at the end (per line would be
    // quadratic in a chunk of many short lines).
    let mut from = 0;
    while let Some(nl) = memchr::memchr(b'\n', &buf[from..]) {
        let line = String::from_utf8_lossy(&buf[from..from + nl + 1]).into_owned();
        from += nl + 1;
        if let Some(comment) = line.trim().strip_prefix(':') {
            if comment != keepalive {
                last.set(Instant::now());
                *keepalive = comment.to_string();
            }
            continue;
        }
        let Some(data) = line.trim().strip_prefix("data:") else {
            continue;
        };
        let data = data.trim();
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
            continue;
        };
        let choice = &v["choices"][0];
        let text = choice["delta"]["content"]
            .as_str()
            .or_else(|| choice["text"].as_str())
            .unwrap_or("");
        if !text.is_empty() {
            out.tokens += 1;
            out.first_token_secs
                .get_or_insert(started.elapsed().as_secs_f64());
            last.set(Instant::now());
        }
    }
    buf.drain(..from);
    done
}

/// Read an HTTP response with an SSE body from `r` (a socket, or bytes in a test or a fuzzer),
/// counting tokens into `out`. `Err("stall")` when `stall` passed without progress.
pub fn read_response(
    r: &mut impl BufRead,
    stall: Duration,
    started: Instant,
    out: &mut Outcome,
    last: &std::cell::Cell<Instant>,
) -> Result<(), String> {
    let timed_out = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    };
    let mut status = String::new();
    if let Err(e) = read_line(r, &mut status) {
        if timed_out(&e) {
            return Err("stall".into());
        }
        return Err(format!("receive: {e}"));
    }
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {:?}", status.trim()))?;
    let mut chunked = false;
    for n in 0.. {
        if n == MAX_HEADERS {
            return Err(format!("receive: more than {MAX_HEADERS} header lines"));
        }
        let mut h = String::new();
        match read_line(r, &mut h) {
            Ok(0) => break,
            Ok(_) if h.trim().is_empty() => break,
            Ok(_) => {
                chunked |= h.to_ascii_lowercase().starts_with("transfer-encoding:")
                    && h.to_ascii_lowercase().contains("chunked")
            }
            Err(e) if timed_out(&e) => return Err("stall".into()),
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
    if !(200..300).contains(&code) {
        let mut rest = String::new();
        let _ = r.by_ref().take(500).read_to_string(&mut rest);
        return Err(format!("HTTP {code}: {}", rest.trim()));
    }
    let mut buf = Vec::new();
    // One clock, the reader's: from the request (or the last progress) on.
    let mut keepalive = String::new();
    loop {
        if last.get().elapsed() >= stall {
            return Err("stall".into());
        }
        let more = if chunked {
            read_chunk(r, &mut buf)
        } else {
            let mut tmp = [0u8; 8192];
            r.read(&mut tmp).map(|n| {
                buf.extend_from_slice(&tmp[..n]);
                n > 0
            })
        };
        match more {
            Ok(more) => {
                if consume_sse(&mut buf, out, started, last, &mut keepalive) || !more {
                    return Ok(());
                }
                if buf.len() > MAX_SSE_LINE {
                    return Err(format!(
                        "receive: an event line longer than {} MiB",
                        MAX_SSE_LINE >> 20
                    ));
                }
            }
            Err(e) if timed_out(&e) => return Err("stall".into()),
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}

/// POST `body` (with `"stream": true`) and count streamed tokens until `[DONE]`, the end of the
/// response, an error, or `stall` without progress: no byte at all, or bytes that carry no
/// token and no new keepalive (a stream of identical keepalives is a stall, not work).
pub fn stream(ep: &Endpoint, body: &serde_json::Value, stall: Duration) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome::default();
    let result = (|| -> Result<(), String> {
        let addr = (ep.host.as_str(), ep.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}:{}: {e}", ep.host, ep.port))?
            .next()
            .ok_or_else(|| format!("{}: no address", ep.host))?;
        let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        // A server that accepted and never reads cannot hold the upload either.
        sock.set_write_timeout(Some(stall.max(Duration::from_millis(1))))
            .map_err(|e| e.to_string())?;
        let payload = body.to_string();
        write!(
            sock,
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
            ep.path,
            ep.host,
            ep.port,
            payload.len()
        )
        .map_err(|e| match e.kind() {
            // A server that stopped reading the request is stalled, not broken.
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "stall".to_string(),
            _ => format!("send: {e}"),
        })?;
        let last = std::cell::Cell::new(Instant::now());
        let mut r = BufReader::new(Paced {
            sock,
            last: &last,
            stall,
        });
        read_response(&mut r, stall, started, &mut out, &last)
    })();
    match result {
        Ok(()) => {}
        Err(e) if e == "stall" => out.stalled = true,
        Err(e) => out.error = Some(e),
    }
    out.seconds = started.elapsed().as_secs_f64();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("http://127.0.0.1:8080/v1/chat/completions").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 8080, "/v1/chat/completions")
        );
        assert_eq!(
            Endpoint::parse("http://localhost").unwrap().path,
            "/v1/chat/completions"
        );
        assert!(
            Endpoint::parse("https://x")
                .unwrap_err()
                .contains("only http://")
        );
        assert!(Endpoint::parse("http://h:port/").is_err());
    }

    #[test]
    fn sse_lines_and_done() {
        let mut out = Outcome::default();
        let (last, mut k) = (std::cell::Cell::new(Instant::now()), String::new());
        let mut buf = b": keepalive 10/100\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[{\"delta\":{}}]}\ndata: {\"choices\":[{\"text\":\" there\"}]}\ndata: [DO".to_vec();
        assert!(!consume_sse(
            &mut buf,
            &mut out,
            Instant::now(),
            &last,
            &mut k
        ));
        assert_eq!(out.tokens, 2);
        assert_eq!(k, " keepalive 10/100");
        assert_eq!(buf, b"data: [DO", "a partial line waits for the rest");
        buf.extend_from_slice(b"NE]\n");
        assert!(consume_sse(
            &mut buf,
            &mut out,
            Instant::now(),
            &last,
            &mut k
        ));
    }

    #[test]
    fn repeated_keepalives_are_not_progress_but_new_ones_are() {
        let mut out = Outcome::default();
        let long_ago = Instant::now() - Duration::from_secs(60);
        let (last, mut k) = (
            std::cell::Cell::new(long_ago),
            " keepalive 5/100".to_string(),
        );
        let mut buf = b": keepalive 5/100\n\n: keepalive 5/100\n\n".to_vec();
        consume_sse(&mut buf, &mut out, Instant::now(), &last, &mut k);
        assert_eq!(
            last.get(),
            long_ago,
            "the same keepalive again is no progress"
        );
        buf.extend_from_slice(b": keepalive 6/100\n\n");
        consume_sse(&mut buf, &mut out, Instant::now(), &last, &mut k);
        assert!(last.get() > long_ago);
    }

    #[test]
    fn hostile_chunk_sizes_and_lines_are_errors_not_panics() {
        let mut out = Vec::new();
        for size in [
            "ffffffffffffffff\r\n",
            "fffffffffffffffff\r\n",
            "100000000\r\n",
            "zz\r\n",
        ] {
            let mut r = std::io::Cursor::new(size.as_bytes().to_vec());
            let e = read_chunk(&mut r, &mut out).unwrap_err();
            assert!(e.to_string().contains("bad chunk size"), "{size}: {e}");
        }
        let mut r = std::io::Cursor::new(vec![b'x'; MAX_LINE * 2]);
        let mut line = String::new();
        assert!(
            read_line(&mut r, &mut line)
                .unwrap_err()
                .to_string()
                .contains("longer than")
        );
        // Found by fuzzing (scripts/fuzz endpoint): a size line of non-ASCII bytes was cut in the
        // middle of a character for the error message, a panic.
        let mut r = std::io::Cursor::new(
            b"\"}}]}\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\r\n".to_vec(),
        );
        assert!(
            read_chunk(&mut r, &mut out)
                .unwrap_err()
                .to_string()
                .contains("bad chunk size")
        );
        // A chunk that says more than it sends ends in an error, not a hang or a panic.
        let mut r = std::io::Cursor::new(b"10\r\nshort".to_vec());
        assert!(read_chunk(&mut r, &mut out).is_err());
    }
}
