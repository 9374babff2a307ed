//! Publishing the Prometheus exposition ([`crate::render::prometheus`]): the file that
//! node_exporter's textfile collector reads (`check --textfile`, `watch --textfile`), and the
//! `/metrics` endpoint `watch --listen` serves. Operators alert on these with the rules in
//! docs/alerting-rules.yml instead of running a home-made alert server.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// The most connections held open at once (fewer where `RLIMIT_NOFILE` is low: see
/// [`connection_cap`]). An idle one costs a descriptor and at most [`MAX_REQUEST`] bytes.
const MAX_CONNECTIONS: usize = 512;
/// A connection must have sent its request (line and headers) this soon after it was accepted.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// The whole life of one connection: reading the request, writing the response.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// The most of a request read (its line and headers; a scrape sends a few hundred bytes).
const MAX_REQUEST: usize = 8 << 10;
/// Connections accepted in one turn of the loop before the others are served again.
const ACCEPT_BATCH: usize = 256;

/// Serves the latest exposition on `/metrics` from a background thread, until the process
/// ends. Returns the bound address (port 0 picks a free one).
///
/// Built so that no client can silence it. One thread serves every connection, non-blocking,
/// and a connection is served one request and then closed:
/// - a request sent with the connection is answered as it is accepted;
/// - a connection must deliver its request within [`REQUEST_DEADLINE`], and is closed
///   [`CONNECTION_DEADLINE`] after it was accepted whatever it is doing (a client that trickles
///   bytes, or reads the response a byte at a time, holds its connection only that long);
/// - at most [`connection_cap`] connections are held. A new connection beyond that is kept,
///   and the oldest connection of the peer address holding the most is closed for it: a client
///   that holds every connection it can loses its own oldest one to each fresh scrape, and a
///   scraper at another address never loses one to it;
/// - an accept error (no descriptors left) closes a held connection the same way, is logged
///   at most once a minute and retried, never the end of the listener.
///
/// Memory is bounded too: [`MAX_REQUEST`] bytes per connection, and one copy of the response
/// shared by every connection that is sent it.
pub fn serve(addr: &str, latest: Arc<Mutex<String>>) -> anyhow::Result<std::net::SocketAddr> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("--listen {addr}: {e}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let server = Server {
        listener,
        latest,
        cap: connection_cap(),
        conns: Vec::new(),
        cached: None,
        last_logged: None,
        accept_paused_until: None,
    };
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || server.run())?;
    Ok(bound)
}

/// How many connections the listener holds at most: [`MAX_CONNECTIONS`], or a quarter of the
/// process's descriptor limit where that is less (at least 4), so that idle clients never take
/// the descriptors `watch`'s rounds need.
fn connection_cap() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        256
    };
    (soft / 4).clamp(4, MAX_CONNECTIONS)
}

/// One client connection: its request as read so far, then the response as written so far.
struct Conn {
    stream: TcpStream,
    peer: IpAddr,
    accepted: Instant,
    head: Vec<u8>,
    /// The response and how much of it is written; `None` while the request is read.
    reply: Option<(Arc<[u8]>, usize)>,
}

/// What a turn on a connection left it as.
#[derive(PartialEq)]
enum Next {
    /// Waiting for the socket: to read more of the request, or to take more of the response.
    Wait,
    /// Done, failed or out of time: close it.
    Close,
}

struct Server {
    listener: TcpListener,
    latest: Arc<Mutex<String>>,
    cap: usize,
    /// Held connections, oldest first.
    conns: Vec<Conn>,
    /// The last exposition served and its whole response, shared by the connections sent it.
    cached: Option<(String, Arc<[u8]>)>,
    last_logged: Option<Instant>,
    /// After an accept error with no connection to close for it: when to try again.
    accept_paused_until: Option<Instant>,
}

impl Server {
    fn run(mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        loop {
            let now = Instant::now();
            let listen = self.accept_paused_until.is_none_or(|t| now >= t);
            fds.clear();
            fds.push(libc::pollfd {
                fd: if listen {
                    self.listener.as_raw_fd()
                } else {
                    -1
                },
                events: libc::POLLIN,
                revents: 0,
            });
            fds.extend(self.conns.iter().map(|c| libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: if c.reply.is_some() {
                    libc::POLLOUT
                } else {
                    libc::POLLIN
                },
                revents: 0,
            }));
            // Wake for the nearest deadline (a connection's, or the end of an accept pause).
            let wake = self
                .conns
                .iter()
                .map(Conn::deadline)
                .chain(self.accept_paused_until.filter(|_| !listen))
                .min();
            let timeout = wake.map_or(-1, |t| {
                let ms = t.saturating_duration_since(now).as_millis() + 1;
                i32::try_from(ms).unwrap_or(i32::MAX)
            });
            // SAFETY: `fds` is a live, initialised array of `fds.len()` pollfd structs.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                // EINTR; anything else must not spin a core.
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            // Serve the connections that are ready, and close those out of time.
            let now = Instant::now();
            let mut ready = fds[1..].iter().map(|f| f.revents != 0);
            let mut conns = std::mem::take(&mut self.conns);
            conns.retain_mut(|c| {
                let turn = ready.next().unwrap_or(false);
                if now >= c.deadline() {
                    return false;
                }
                !turn || self.serve_turn(c) == Next::Wait
            });
            self.conns = conns;
            if listen && fds[0].revents != 0 {
                self.accept_all();
            }
        }
    }

    /// Accepts what is waiting (up to [`ACCEPT_BATCH`]), answering at once what it can.
    fn accept_all(&mut self) {
        self.accept_paused_until = None;
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let mut c = Conn {
                        stream,
                        peer: peer.ip(),
                        accepted: Instant::now(),
                        head: Vec::new(),
                        reply: None,
                    };
                    // A scrape usually arrives with its connection: answered here, it never
                    // takes a place.
                    if self.serve_turn(&mut c) == Next::Close {
                        continue;
                    }
                    if self.conns.len() >= self.cap {
                        self.evict();
                    }
                    self.conns.push(c);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // EMFILE and friends: say so (at most once a minute) and go on.
                    if self
                        .last_logged
                        .is_none_or(|t| t.elapsed() > Duration::from_secs(60))
                    {
                        eprintln!("mlsdiag watch: /metrics: accept failed: {e}; still listening");
                        self.last_logged = Some(Instant::now());
                    }
                    match e.raw_os_error() {
                        // A peer that aborted before the accept: go on at once.
                        Some(libc::ECONNABORTED | libc::EPROTO | libc::EINTR) => {}
                        // Out of descriptors or memory: free one of ours for the next, or, with
                        // none to free, give the rest of the process time to free some.
                        _ => {
                            if self.conns.is_empty() {
                                self.accept_paused_until =
                                    Some(Instant::now() + Duration::from_millis(100));
                            } else {
                                self.evict();
                            }
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Closes the oldest connection of the peer address that holds the most.
    fn evict(&mut self) {
        let peers: Vec<IpAddr> = self.conns.iter().map(|c| c.peer).collect();
        if let Some(i) = victim(&peers) {
            self.conns.remove(i);
        }
    }

    /// Reads what the connection has sent and, once its request is whole, writes what the
    /// socket takes of the response. Never blocks.
    fn serve_turn(&mut self, c: &mut Conn) -> Next {
        if c.reply.is_none() {
            match read_request(c) {
                Ok(true) => {
                    let reply = self.reply(&c.head);
                    c.head = Vec::new();
                    c.reply = Some((reply, 0));
                }
                Ok(false) => return Next::Wait,
                Err(()) => return Next::Close,
            }
        }
        let Some((reply, written)) = &mut c.reply else {
            return Next::Close;
        };
        while *written < reply.len() {
            match c.stream.write(&reply[*written..]) {
                Ok(0) => return Next::Close,
                Ok(n) => *written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Next::Wait,
                Err(_) => return Next::Close,
            }
        }
        Next::Close
    }

    /// The whole HTTP response to a request head.
    fn reply(&mut self, head: &[u8]) -> Arc<[u8]> {
        let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = String::from_utf8_lossy(line);
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        match (method, path) {
            ("GET", "/metrics") => {
                let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
                match &self.cached {
                    Some((text, reply)) if *text == *latest => Arc::clone(reply),
                    _ => {
                        let reply = response(
                            "200 OK",
                            "text/plain; version=0.0.4; charset=utf-8",
                            &latest,
                        );
                        self.cached = Some((latest.clone(), Arc::clone(&reply)));
                        reply
                    }
                }
            }
            ("GET", "/") => response(
                "200 OK",
                "text/plain; charset=utf-8",
                "mlsdiag watch: metrics on /metrics\n",
            ),
            _ => response("404 Not Found", "text/plain; charset=utf-8", "not found\n"),
        }
    }
}

/// Which of the held connections (their peers' addresses, oldest first) to close for a new one:
/// the oldest of the address that holds the most.
fn victim(peers: &[IpAddr]) -> Option<usize> {
    let mut per_peer: std::collections::HashMap<IpAddr, usize> = std::collections::HashMap::new();
    for p in peers {
        *per_peer.entry(*p).or_default() += 1;
    }
    let most = per_peer.values().copied().max()?;
    peers.iter().position(|p| per_peer[p] == most)
}

impl Conn {
    /// When the connection is closed, whatever it is doing.
    fn deadline(&self) -> Instant {
        self.accepted
            + if self.reply.is_some() {
                CONNECTION_DEADLINE
            } else {
                REQUEST_DEADLINE
            }
    }
}

/// Reads what is there: `Ok(true)` once the request's head is whole (or the client has
/// finished sending), `Ok(false)` to wait for more, `Err` to close (too long, or failed).
fn read_request(c: &mut Conn) -> Result<bool, ()> {
    let mut buf = [0u8; 2048];
    loop {
        match c.stream.read(&mut buf) {
            // The client has finished sending: answer what it sent, if anything.
            Ok(0) => return if c.head.is_empty() { Err(()) } else { Ok(true) },
            Ok(n) => {
                if c.head.len() + n > MAX_REQUEST {
                    return Err(());
                }
                // Only the new bytes and the three before them can complete the terminator.
                let from = c.head.len().saturating_sub(3);
                c.head.extend_from_slice(&buf[..n]);
                let tail = &c.head[from..];
                if tail.windows(4).any(|w| w == b"\r\n\r\n")
                    || tail.windows(2).any(|w| w == b"\n\n")
                {
                    return Ok(true);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(_) => return Err(()),
        }
    }
}

fn response(status: &str, kind: &str, body: &str) -> Arc<[u8]> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
    .into()
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
    fn a_flood_loses_its_own_oldest_connection_never_another_peers() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (scraper, flood) = (ip("10.0.0.2"), ip("10.0.0.9"));
        // The scraper connected first; the flood holds the rest.
        let mut peers = vec![scraper];
        peers.extend(std::iter::repeat_n(flood, 5));
        assert_eq!(victim(&peers), Some(1));
        // One address: its oldest goes, so the newest connection (a fresh scrape) is the last.
        assert_eq!(victim(&[flood; 3]), Some(0));
        assert_eq!(victim(&[]), None);
    }

    #[test]
    fn the_connection_cap_leaves_most_descriptors_to_the_rounds() {
        let cap = connection_cap();
        assert!((4..=MAX_CONNECTIONS).contains(&cap), "{cap}");
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
