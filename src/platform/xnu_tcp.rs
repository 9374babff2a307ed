//! What macOS tells an unprivileged user about a TCP connection, decoded on every OS.
//!
//! Two sources, both without root for the user's own processes (docs/sockets.md):
//! - `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)` per descriptor: addresses, state and the bytes in
//!   each socket buffer (`soi_rcv.sbi_cc`: received and not read; `soi_snd.sbi_cc`: written and
//!   not acknowledged), and the socket's handle `soi_so`;
//! - the `net.inet.tcp.pcblist_n` sysctl (what `netstat` reads), every TCP control block of the
//!   machine: sequence numbers (so the bytes received and sent: `rcv_nxt - irs`,
//!   `snd_max - iss`) and `t_rcvtime`, the TCP clock when the last segment came in. The handle
//!   `xso_so` is the same hash as `soi_so`, which is how a block is matched to a descriptor.
//!
//! The TCP clock (`tcp_now`, milliseconds) starts at a random value; XNU publishes that value
//! and the uptime it was taken at (`net.inet.tcp.now_init`, `net.inet.tcp.microuptime_init`)
//! for user-space TCP to keep in step, which gives its value now, within the clock's update
//! granularity. There is no time of the last data *sent*: on macOS a connection's age is
//! since the last segment received, and whether anything was sent comes from the counters.

#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use crate::model::TcpConnection;

/// `xso_kind` values of `net.inet.tcp.pcblist_n` records (`sys/socketvar.h`).
pub const XSO_SOCKET: u32 = 0x001;
pub const XSO_RCVBUF: u32 = 0x002;
pub const XSO_SNDBUF: u32 = 0x004;
pub const XSO_INPCB: u32 = 0x010;
pub const XSO_TCPCB: u32 = 0x020;
/// `sizeof(struct xinpgen)` under `#pragma pack(4)`: the list's header and trailer.
pub const XINPGEN_LEN: usize = 24;

/// One TCP control block of `pcblist_n`, the fields mlsdiag reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PcbTcp {
    /// `xso_so`: the socket's handle, as `proc_pidfdinfo`'s `soi_so` gives it.
    pub so: u64,
    /// XNU TCP state (`tcp_fsm.h`: 1 listen, 4 established, 5 close-wait).
    pub state: i32,
    pub snd_una: u32,
    pub snd_max: u32,
    pub iss: u32,
    pub irs: u32,
    pub rcv_nxt: u32,
    /// `tcp_now` when the last segment was received.
    pub t_rcvtime: u32,
    pub rcv_cc: Option<u32>,
    pub snd_cc: Option<u32>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    u32_at(b, at).map(|v| v as i32)
}

/// Offsets in `struct xtcpcb_n` (`netinet/tcp_var.h`; the same packed or not: after the
/// 8-aligned `t_segq` every field is 4 bytes).
mod xtcpcb_n {
    pub const T_STATE: usize = 36;
    pub const SND_UNA: usize = 48;
    pub const SND_MAX: usize = 52;
    pub const ISS: usize = 72;
    pub const IRS: usize = 76;
    pub const RCV_NXT: usize = 80;
    pub const T_RCVTIME: usize = 112;
}

/// Parse the `net.inet.tcp.pcblist_n` buffer: after the `xinpgen` header, per connection a run
/// of records (`xinpcb_n`, `xsocket_n`, two `xsockbuf_n`, `xsockstat_n`, `xtcpcb_n`), each
/// starting with its length and kind and padded to 8 bytes; the `xinpgen` trailer ends it.
/// Malformed input ends the parse with what was read, never an out-of-bounds read.
pub fn parse_pcblist_n(buf: &[u8]) -> Vec<PcbTcp> {
    let mut out = Vec::new();
    let Some(head) = u32_at(buf, 0) else {
        return out;
    };
    let mut at = (head as usize).next_multiple_of(8);
    let mut cur: Option<PcbTcp> = None;
    while let (Some(len), Some(kind)) = (u32_at(buf, at), u32_at(buf, at + 4)) {
        let len = len as usize;
        if len < 8 || len == XINPGEN_LEN || at + len > buf.len() {
            break;
        }
        let rec = &buf[at..at + len];
        match kind {
            XSO_INPCB => {
                out.extend(cur.take().filter(|p| p.so != 0));
                cur = Some(PcbTcp::default());
            }
            XSO_SOCKET => {
                if let Some(p) = cur.as_mut() {
                    p.so = u64_at(rec, 8).unwrap_or(0);
                }
            }
            XSO_RCVBUF | XSO_SNDBUF => {
                if let Some(p) = cur.as_mut() {
                    let cc = u32_at(rec, 8);
                    if kind == XSO_RCVBUF {
                        p.rcv_cc = cc;
                    } else {
                        p.snd_cc = cc;
                    }
                }
            }
            XSO_TCPCB => {
                if let Some(p) = cur.as_mut() {
                    use xtcpcb_n::*;
                    let field = |o| u32_at(rec, o).unwrap_or(0);
                    p.state = i32_at(rec, T_STATE).unwrap_or(-1);
                    p.snd_una = field(SND_UNA);
                    p.snd_max = field(SND_MAX);
                    p.iss = field(ISS);
                    p.irs = field(IRS);
                    p.rcv_nxt = field(RCV_NXT);
                    p.t_rcvtime = field(T_RCVTIME);
                }
            }
            _ => {}
        }
        at += len.next_multiple_of(8);
    }
    out.extend(cur.filter(|p| p.so != 0));
    out
}

/// XNU TCP states (`netinet/tcp_fsm.h`), named as on Linux so the rules read one vocabulary.
pub fn state_name(state: i32) -> &'static str {
    match state {
        0 => "close",
        1 => "listen",
        2 => "syn_sent",
        3 => "syn_recv",
        4 => "established",
        5 => "close_wait",
        6 => "fin_wait1",
        7 => "closing",
        8 => "last_ack",
        9 => "fin_wait2",
        10 => "time_wait",
        _ => "unknown",
    }
}

/// The TCP clock now, from its published start (`now_init`, at uptime `microuptime_init` µs,
/// a 32-bit value) and the uptime now (`CLOCK_UPTIME_RAW`, which XNU's `microuptime` follows).
pub fn tcp_now(now_init: u32, microuptime_init: u32, uptime_us: u64) -> u32 {
    let ms = uptime_us.saturating_sub(u64::from(microuptime_init)) / 1000;
    now_init.wrapping_add(ms as u32)
}

/// Milliseconds from TCP-clock time `then` to `now`; a `then` a little ahead (the clock is
/// advanced lazily) is 0.
pub fn tcp_ms_since(now: u32, then: u32) -> u64 {
    let d = now.wrapping_sub(then);
    if d > u32::MAX / 2 { 0 } else { u64::from(d) }
}

/// What a control block adds to a connection read from `proc_pidfdinfo`: the bytes received and
/// sent (the SYN, and a FIN each way, take one sequence number), and the time since the last
/// segment received when the TCP clock is known.
pub fn fill_from_pcb(c: &mut TcpConnection, p: &PcbTcp, now: Option<u32>) {
    // States after the peer's FIN: close-wait, last-ack, closing, time-wait.
    let fin_in = matches!(p.state, 5 | 7 | 8 | 10);
    // States after our FIN: fin-wait-1/2, closing, last-ack, time-wait.
    let fin_out = matches!(p.state, 6..=10);
    if p.state >= 4 {
        let got = p
            .rcv_nxt
            .wrapping_sub(p.irs)
            .wrapping_sub(1 + u32::from(fin_in));
        let sent = p
            .snd_max
            .wrapping_sub(p.iss)
            .wrapping_sub(1 + u32::from(fin_out));
        c.bytes_received = Some(u64::from(got));
        c.bytes_sent = Some(u64::from(sent));
        c.last_recv_ms = now.map(|n| tcp_ms_since(n, p.t_rcvtime));
    }
    c.tx_queue = c.tx_queue.or(p.snd_cc.map(u64::from));
    c.rx_queue = c.rx_queue.or(p.rcv_cc.map(u64::from));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: u32, len: usize, fields: &[(usize, u32)], so: Option<u64>) -> Vec<u8> {
        let mut r = vec![0u8; len];
        r[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        r[4..8].copy_from_slice(&kind.to_ne_bytes());
        if let Some(so) = so {
            r[8..16].copy_from_slice(&so.to_ne_bytes());
        }
        for &(at, v) in fields {
            r[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }
        r.resize(len.next_multiple_of(8), 0);
        r
    }

    fn xinpgen() -> Vec<u8> {
        let mut g = vec![0u8; XINPGEN_LEN];
        g[0..4].copy_from_slice(&(XINPGEN_LEN as u32).to_ne_bytes());
        g[4..8].copy_from_slice(&1u32.to_ne_bytes());
        g
    }

    /// One connection as XNU lays it out: a server that received a 63-byte request and sent
    /// nothing (iss 1000, irs 5000), its last segment at TCP-clock 7000.
    fn waiting_pcb() -> Vec<u8> {
        use xtcpcb_n::*;
        let mut b = xinpgen();
        b.extend(rec(XSO_INPCB, 108, &[], None));
        b.extend(rec(XSO_SOCKET, 100, &[], Some(0xfeed)));
        b.extend(rec(XSO_RCVBUF, 32, &[(8, 0)], None));
        b.extend(rec(XSO_SNDBUF, 32, &[(8, 0)], None));
        b.extend(rec(0x008, 1220, &[], None));
        b.extend(rec(
            XSO_TCPCB,
            204,
            &[
                (T_STATE, 4),
                (SND_UNA, 1001),
                (SND_MAX, 1001),
                (ISS, 1000),
                (IRS, 5000),
                (RCV_NXT, 5064),
                (T_RCVTIME, 7000),
            ],
            None,
        ));
        b.extend(xinpgen());
        b
    }

    #[test]
    fn a_pcblist_n_record_run_gives_counters_and_the_receive_time() {
        let pcbs = parse_pcblist_n(&waiting_pcb());
        assert_eq!(pcbs.len(), 1, "{pcbs:?}");
        let p = &pcbs[0];
        assert_eq!((p.so, p.state, p.t_rcvtime), (0xfeed, 4, 7000));
        let mut c = TcpConnection {
            fd: Some(5),
            local: "127.0.0.1:8080".into(),
            peer: "127.0.0.1:50000".into(),
            state: state_name(p.state).into(),
            accepted: true,
            last_recv_ms: None,
            last_sent_ms: None,
            bytes_received: None,
            bytes_sent: None,
            rx_queue: Some(0),
            tx_queue: Some(0),
            server_reading: None,
            server_writing: None,
        };
        fill_from_pcb(&mut c, p, Some(9500));
        assert_eq!((c.bytes_received, c.bytes_sent), (Some(63), Some(0)));
        assert_eq!(c.last_recv_ms, Some(2500));
        assert_eq!(c.exchange(), crate::model::Exchange::AwaitingResponse);
        assert_eq!(c.waiting_ms(), Some(2500));
    }

    #[test]
    fn truncated_and_hostile_lists_end_the_parse() {
        let b = waiting_pcb();
        for cut in [0, 3, 24, 40, 200, b.len() - 30] {
            let _ = parse_pcblist_n(&b[..cut]);
        }
        let mut lying = b.clone();
        lying[24..28].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_pcblist_n(&lying).is_empty());
    }

    #[test]
    fn the_tcp_clock_is_estimated_from_its_published_start() {
        // Started at 0x3000_0000 at uptime 2 s; 10 s of uptime later it is 10,000 ms on.
        assert_eq!(
            tcp_now(0x3000_0000, 2_000_000, 12_000_000),
            0x3000_0000 + 10_000
        );
        // Wrapping: the clock started near the top of its range.
        assert_eq!(tcp_now(u32::MAX - 5, 0, 10_000), 4);
        assert_eq!(tcp_ms_since(4, u32::MAX - 5), 10);
        // A receive time just ahead of the estimate is now, not 49 days ago.
        assert_eq!(tcp_ms_since(1000, 1003), 0);
    }
}
