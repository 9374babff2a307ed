//! A worker's TCP connections as the kernel's socket table shows them, and what each one says
//! about work in flight.
//!
//! An HTTP server that accepted a connection, received a request on it and sent nothing since
//! owes that client a response: work in flight, seen without a log and without the worker's
//! cooperation. The socket table cannot read the bytes, so some shapes look alike; each
//! [`Exchange`] names what it cannot tell apart ([docs/sockets.md](../../docs/sockets.md)).

use serde::{Deserialize, Serialize};

/// One TCP socket of a process, from the kernel (Linux sock_diag with `tcp_info`; macOS
/// `proc_pidfdinfo` and `net.inet.tcp.pcblist_n`). Times are milliseconds before the reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpConnection {
    /// The descriptor the process holds it as, where known.
    pub fd: Option<i32>,
    /// `address:port` of this end.
    pub local: String,
    /// `address:port` of the other end (the client, for an accepted connection).
    pub peer: String,
    /// TCP state: `established`, `close_wait`, `listen`, ...
    pub state: String,
    /// Accepted on a port this process listens on: the process is the server of it.
    pub accepted: bool,
    /// Since the last data segment was received (Linux `tcpi_last_data_recv`; macOS: since the
    /// last segment of any kind, `t_rcvtime`).
    pub last_recv_ms: Option<u64>,
    /// Since the last data segment was sent (Linux `tcpi_last_data_sent`; not on macOS).
    pub last_sent_ms: Option<u64>,
    /// Payload bytes received and sent over the connection's life.
    pub bytes_received: Option<u64>,
    pub bytes_sent: Option<u64>,
    /// Bytes received that the process has not read yet.
    pub rx_queue: Option<u64>,
    /// Bytes the process wrote that the peer has not acknowledged yet.
    pub tx_queue: Option<u64>,
    /// A thread of the process is blocked reading this very socket (Linux, from the threads'
    /// system calls): the server waits for the rest of the request, not the client for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_reading: Option<bool>,
    /// A thread of the process is blocked writing to this very socket with bytes queued that
    /// the client has not taken (Linux, from the threads' system calls): the client does not
    /// read, and the server waits on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_writing: Option<bool>,
}

/// What an accepted connection's data times say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exchange {
    /// Data came in and nothing went out since: a request waiting for its response, or a
    /// request the client has not finished sending (see [`TcpConnection::server_reading`]).
    AwaitingResponse,
    /// Data went out after the last data came in: a response in progress or done. A keep-alive
    /// connection at rest, a stream between two tokens and a streamed response that stopped all
    /// look like this.
    Responded,
    /// Nothing received yet: a connection opened ahead of its request.
    NoRequest,
    /// The OS gave no data times or counters for it.
    Unknown,
}

impl TcpConnection {
    /// The data exchange, judged on the counters first (exact: nothing sent at all), then on the
    /// times (the last receive later than the last send; equal times say nothing).
    pub fn exchange(&self) -> Exchange {
        let received = self.bytes_received.map(|n| n > 0);
        let sent = self.bytes_sent.map(|n| n > 0);
        match (received, sent) {
            (Some(false), _) => return Exchange::NoRequest,
            (Some(true), Some(false)) => return Exchange::AwaitingResponse,
            _ => {}
        }
        match (self.last_recv_ms, self.last_sent_ms) {
            (Some(r), Some(s)) if r < s => Exchange::AwaitingResponse,
            (Some(r), Some(s)) if s < r => Exchange::Responded,
            // Equal: both in the same millisecond, or a connection that never sent (its send
            // time is its creation) — only the counters above tell.
            (Some(_), Some(_)) if sent == Some(true) => Exchange::Responded,
            _ => Exchange::Unknown,
        }
    }

    /// How long the request has been waiting, when it is one: since its last byte came in.
    pub fn waiting_ms(&self) -> Option<u64> {
        (self.exchange() == Exchange::AwaitingResponse)
            .then_some(self.last_recv_ms)
            .flatten()
    }

    /// `connection from PEER to LOCAL` with its queues.
    pub fn describe(&self) -> String {
        let q = |n: Option<u64>| n.map_or_else(|| "?".to_string(), |n| format!("{n} B"));
        format!(
            "connection from {} to {} ({}{}, queues rx {} tx {})",
            self.peer,
            self.local,
            self.state,
            self.fd.map(|f| format!(", fd {f}")).unwrap_or_default(),
            q(self.rx_queue),
            q(self.tx_queue)
        )
    }
}

/// A worker's accepted connections, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connections {
    /// Ports the worker listens on.
    pub listening: Vec<String>,
    /// Its accepted connections (outgoing ones are left out), the longest waiting first; a
    /// report keeps the first [`Connections::KEPT`].
    pub accepted: Vec<TcpConnection>,
    /// Accepted connections left out of a report beyond [`Connections::KEPT`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub left_out: usize,
    /// Why the socket table could not be read (another network namespace, no sock_diag); the
    /// connections are then unknown, not absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Connections {
    /// The accepted connections a report keeps (the longest waiting first).
    pub const KEPT: usize = 64;

    /// For a report: the first [`Connections::KEPT`] accepted connections, the rest counted.
    pub fn for_report(mut self) -> Connections {
        if self.accepted.len() > Self::KEPT {
            self.left_out += self.accepted.len() - Self::KEPT;
            self.accepted.truncate(Self::KEPT);
        }
        self
    }

    /// From every TCP socket of a process: its listening ports, and the connections accepted on
    /// them, those waiting longest first.
    pub fn from_sockets(all: Vec<TcpConnection>) -> Connections {
        let listening: Vec<String> = all
            .iter()
            .filter(|c| c.state == "listen")
            .map(|c| c.local.clone())
            .collect();
        let mut accepted: Vec<TcpConnection> = all.into_iter().filter(|c| c.accepted).collect();
        accepted.sort_by_key(|c| {
            std::cmp::Reverse((c.waiting_ms().is_some(), c.waiting_ms().or(c.last_recv_ms)))
        });
        Connections {
            listening,
            accepted,
            left_out: 0,
            error: None,
        }
    }

    /// Why the connections are unknown.
    pub fn unknown(why: String) -> Connections {
        Connections {
            listening: vec![],
            accepted: vec![],
            left_out: 0,
            error: Some(why),
        }
    }

    /// Whether `port` is one the worker listens on.
    pub fn listens_on(&self, port: u16) -> bool {
        self.listening
            .iter()
            .any(|l| l.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) == Some(port))
    }
}

/// Whether `local` (`addr:port`) is on one of `listening`'s ports, for the same address or a
/// wildcard one (`0.0.0.0`, `[::]`, which also accepts IPv4 as `::ffff:a.b.c.d`).
pub fn on_listening_port(local: &str, listening: &[String]) -> bool {
    let Some((addr, port)) = local.rsplit_once(':') else {
        return false;
    };
    listening.iter().any(|l| {
        let Some((laddr, lport)) = l.rsplit_once(':') else {
            return false;
        };
        lport == port
            && (laddr == addr
                || laddr == "0.0.0.0"
                || laddr == "[::]"
                || addr
                    .strip_prefix("[::ffff:")
                    .map(|a| a.trim_end_matches(']'))
                    == Some(laddr))
    })
}

/// Where a `--probe` request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeState {
    /// Sent, no answer yet, its deadline not reached.
    InFlight,
    /// A complete response: the generation path works.
    Answered,
    /// No answer within its deadline (`--hung-after`).
    NoAnswer,
    /// An error came back or the connection failed: an answer, not a hang.
    Failed,
}

/// One `--probe` request (an OpenAI-compatible completion of one token) and its timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub url: String,
    pub sent_at: chrono::DateTime<chrono::Utc>,
    pub state: ProbeState,
    /// Seconds from sending to now (in flight) or to its end.
    pub age_secs: f64,
    /// Its deadline, `--hung-after`.
    pub deadline_secs: f64,
    /// Seconds to the first byte of the response, to the first token, and to its end.
    pub first_byte_secs: Option<f64>,
    pub first_token_secs: Option<f64>,
    pub seconds: Option<f64>,
    pub error: Option<String>,
    /// The probe's own end of its connection, so the socket table does not count it twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
}

impl ProbeReport {
    /// Whether it is work in flight: sent and not answered.
    pub fn waiting(&self) -> bool {
        matches!(self.state, ProbeState::InFlight | ProbeState::NoAnswer)
    }

    /// Its timings in words.
    pub fn timings(&self) -> String {
        let s = |v: Option<f64>| v.map_or_else(|| "none".to_string(), |v| format!("{v:.2}s"));
        format!(
            "first byte {}, first token {}, {} {:.2}s",
            s(self.first_byte_secs),
            s(self.first_token_secs),
            match self.state {
                ProbeState::InFlight => "waiting for",
                ProbeState::NoAnswer => "given up after",
                ProbeState::Answered | ProbeState::Failed => "ended after",
            },
            self.age_secs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(
        recv: Option<u64>,
        sent: Option<u64>,
        rx: Option<u64>,
        tx: Option<u64>,
    ) -> TcpConnection {
        TcpConnection {
            fd: Some(7),
            local: "127.0.0.1:8080".into(),
            peer: "127.0.0.1:50000".into(),
            state: "established".into(),
            accepted: true,
            last_recv_ms: recv,
            last_sent_ms: sent,
            bytes_received: rx,
            bytes_sent: tx,
            rx_queue: Some(0),
            tx_queue: Some(0),
            server_reading: None,
            server_writing: None,
        }
    }

    #[test]
    fn the_exchange_is_read_from_counters_then_times() {
        // Request in, nothing out: the times are equal (created and received in one ms).
        let c = conn(Some(2404), Some(2404), Some(63), Some(0));
        assert_eq!(c.exchange(), Exchange::AwaitingResponse);
        assert_eq!(c.waiting_ms(), Some(2404));
        // A response went out after the request: keep-alive at rest or a quiet stream.
        let c = conn(Some(900), Some(500), Some(18), Some(19));
        assert_eq!(c.exchange(), Exchange::Responded);
        assert_eq!(c.waiting_ms(), None);
        // A second request on a kept-alive connection: received after the last send.
        let c = conn(Some(100), Some(5000), Some(36), Some(19));
        assert_eq!(c.exchange(), Exchange::AwaitingResponse);
        // Nothing received.
        assert_eq!(
            conn(Some(9), Some(9), Some(0), Some(0)).exchange(),
            Exchange::NoRequest
        );
        // Old kernels without counters: the times alone, and equal times say nothing.
        assert_eq!(
            conn(Some(5), Some(9), None, None).exchange(),
            Exchange::AwaitingResponse
        );
        assert_eq!(
            conn(Some(9), Some(9), None, None).exchange(),
            Exchange::Unknown
        );
        // macOS: counters and no send time.
        assert_eq!(
            conn(Some(9), None, Some(40), Some(0)).exchange(),
            Exchange::AwaitingResponse
        );
        assert_eq!(
            conn(Some(9), None, Some(40), Some(10)).exchange(),
            Exchange::Unknown
        );
    }

    #[test]
    fn accepted_means_on_a_listening_port() {
        let l = vec!["0.0.0.0:8080".to_string(), "127.0.0.1:9000".to_string()];
        assert!(on_listening_port("127.0.0.1:8080", &l));
        assert!(on_listening_port("127.0.0.1:9000", &l));
        assert!(!on_listening_port("10.0.0.2:9000", &l));
        assert!(!on_listening_port("127.0.0.1:50000", &l));
        let l6 = vec!["[::]:8080".to_string()];
        assert!(on_listening_port("[::ffff:127.0.0.1]:8080", &l6));
        let l4 = vec!["127.0.0.1:8080".to_string()];
        assert!(on_listening_port("[::ffff:127.0.0.1]:8080", &l4));
    }
}
