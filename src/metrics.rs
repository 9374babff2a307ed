//! Publishing the Prometheus exposition ([`crate::render::prometheus`]): the file that
//! node_exporter's textfile collector reads (`check --textfile`, `watch --textfile`), and the
//! `/metrics` endpoint `watch --listen` serves. Operators alert on these with the rules in
//! docs/alerting-rules.yml instead of running a home-made alert server.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::InputError;

/// The file name node_exporter's textfile collector picks up (`*.prom`).
pub const TEXTFILE: &str = "mlsdiag.prom";

/// Writes `DIR/mlsdiag.prom` atomically (a temp file in DIR, then rename), so the collector
/// never reads half a file. DIR must exist and not be a symlink.
pub fn write_textfile(dir: &Path, text: &str) -> Result<PathBuf, InputError> {
    // Opened once, no symlink (trailing slash or not); replaced by rename inside it. The temp
    // file's name does not end in .prom, so node_exporter never reads it early.
    let handle = crate::output::Dir::open(dir, "metrics")?.ok_or_else(|| InputError::BadFile {
        path: dir.to_path_buf(),
        message: "does not exist (the textfile collector's directory)".into(),
    })?;
    handle.replace(TEXTFILE, text.as_bytes(), 0o644)?;
    Ok(dir.join(TEXTFILE))
}

/// `--listen ADDR`: a port alone, or `:PORT`, binds 127.0.0.1; a host must be given to listen
/// wider.
pub fn listen_addr(s: &str) -> Result<String, String> {
    let s = s.trim();
    let addr = if let Ok(port) = s.trim_start_matches(':').parse::<u16>() {
        format!("127.0.0.1:{port}")
    } else {
        s.to_string()
    };
    addr.parse::<std::net::SocketAddr>()
        .map(|a| a.to_string())
        .map_err(|_| format!("{s:?}: expected PORT, :PORT or HOST:PORT (e.g. 127.0.0.1:9464)"))
}

/// Connections served at once; more are closed as they arrive until one ends.
const MAX_CONNECTIONS: usize = 32;
/// The whole life of one connection: reading the request, writing the response.
const CONNECTION_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
/// The most of a request read (its line and headers; a scrape sends a few hundred bytes).
const MAX_REQUEST: usize = 8 << 10;

/// Serves the latest exposition on `/metrics` from a background thread, until the process
/// ends. Returns the bound address (port 0 picks a free one).
///
/// Built so that no client can silence it: each connection gets its own thread, one request
/// and [`CONNECTION_DEADLINE`] in all (a client that pipelines requests and never reads, or
/// trickles bytes, only holds its own connection, and not for long); at most
/// [`MAX_CONNECTIONS`] are served at once; and an accept error (no descriptors left) is logged
/// and retried, never the end of the listener.
pub fn serve(addr: &str, latest: Arc<Mutex<String>>) -> anyhow::Result<std::net::SocketAddr> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("--listen {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    std::thread::spawn(move || {
        let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut last_logged: Option<std::time::Instant> = None;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    use std::sync::atomic::Ordering;
                    if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                        active.fetch_sub(1, Ordering::AcqRel);
                        drop(stream);
                        continue;
                    }
                    let (mine, latest) = (Arc::clone(&active), Arc::clone(&latest));
                    let spawned = std::thread::Builder::new().spawn(move || {
                        let _ = respond(stream, &latest);
                        mine.fetch_sub(1, Ordering::AcqRel);
                    });
                    if spawned.is_err() {
                        active.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                Err(e) => {
                    // EMFILE and friends: say so (at most once a minute) and go on.
                    if last_logged.is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(60))
                    {
                        eprintln!("mlsdiag watch: /metrics: accept failed: {e}; still listening");
                        last_logged = Some(std::time::Instant::now());
                    }
                    // Out of descriptors or memory: give connections time to end. Anything else
                    // (a peer that aborted before the accept) is retried at once.
                    match e.raw_os_error() {
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                            std::thread::sleep(std::time::Duration::from_millis(100))
                        }
                        Some(libc::ECONNABORTED | libc::EPROTO | libc::EINTR | libc::EAGAIN) => {}
                        // Anything that persists must not spin a core.
                        _ => std::thread::sleep(std::time::Duration::from_millis(10)),
                    }
                }
            }
        }
    });
    Ok(bound)
}

/// One request on one connection, then close.
fn respond(mut stream: std::net::TcpStream, latest: &Mutex<String>) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + CONNECTION_DEADLINE;
    let left = || deadline.saturating_duration_since(std::time::Instant::now());
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let t = left();
        if t.is_zero() || head.len() > MAX_REQUEST {
            return Ok(());
        }
        stream.set_read_timeout(Some(t))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, kind, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            latest.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        ),
        ("GET", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "mlsdiag watch: metrics on /metrics\n".to_string(),
        ),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // Written against the same deadline: a client that reads a byte at a time cannot hold
    // the connection past it.
    let mut rest = response.as_bytes();
    while !rest.is_empty() {
        let t = left();
        if t.is_zero() {
            return Ok(());
        }
        stream.set_write_timeout(Some(t))?;
        match stream.write(rest) {
            Ok(0) => return Ok(()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_defaults_to_loopback() {
        assert_eq!(listen_addr("9464").unwrap(), "127.0.0.1:9464");
        assert_eq!(listen_addr(":9464").unwrap(), "127.0.0.1:9464");
        assert_eq!(listen_addr("0.0.0.0:9464").unwrap(), "0.0.0.0:9464");
        assert!(listen_addr("localhost").is_err());
    }

    #[test]
    fn the_textfile_is_replaced_whole_and_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_textfile(dir.path(), "mlsdiag_up 1\n").unwrap();
        write_textfile(dir.path(), "mlsdiag_up 0\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "mlsdiag_up 0\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left behind");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(
            write_textfile(&link, "x")
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
    }
}
