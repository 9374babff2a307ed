//! Unix-socket peers and TCP connection state through `NETLINK_SOCK_DIAG`, the interface
//! `ss -xp` and `ss -ti` use.
//!
//! `/proc/net/unix` lists sockets but not which socket is connected to which; the kernel only
//! tells that through sock_diag, without privileges. One dump request returns every unix socket
//! of the caller's network namespace with its name, state and peer inode. For TCP, an
//! `INET_DIAG` dump with `INET_DIAG_INFO` gives each socket's queues and its `struct tcp_info`:
//! how long ago data was last received and sent, and the bytes of each way, which is how
//! mlsdiag sees a request that arrived and got no response (docs/sockets.md). The requests are
//! small and fixed, so they are written here on libc rather than pulling in a netlink stack; the
//! parsers take bytes and are unit-tested, on bytes recorded from a real kernel.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::model::TcpConnection;

/// What sock_diag says about one unix socket.
#[derive(Debug, Clone, PartialEq)]
pub struct UnixDiag {
    /// TCP-style state constant (1 connected, 7 unconnected, 10 listening).
    pub state: u8,
    /// Bound path; abstract names start with `@`.
    pub name: Option<String>,
    /// Inode of the connected peer socket.
    pub peer: Option<u32>,
}

/// What sock_diag says about one TCP socket.
#[derive(Debug, Clone, PartialEq)]
pub struct InetDiag {
    /// TCP state (1 established, 8 close-wait, 10 listening).
    pub state: u8,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// Listening: connections waiting to be accepted; else bytes received and not yet read.
    pub rqueue: u32,
    /// Listening: the backlog; else bytes sent and not yet acknowledged.
    pub wqueue: u32,
    pub inode: u64,
    pub info: Option<TcpInfo>,
}

/// The fields of `struct tcp_info` (linux/tcp.h) mlsdiag reads; those a kernel is too old to
/// send are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TcpInfo {
    /// Milliseconds since data was last sent (for a connection that never sent, since its
    /// creation).
    pub last_data_sent_ms: u32,
    /// Milliseconds since data was last received.
    pub last_data_recv_ms: u32,
    /// Since Linux 4.1.
    pub bytes_received: Option<u64>,
    /// Since Linux 4.6.
    pub data_segs_out: Option<u32>,
    /// Since Linux 4.19.
    pub bytes_sent: Option<u64>,
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_PEER: u32 = 0x04;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
const INET_DIAG_INFO: u16 = 2;
const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE_WAIT: u8 = 8;
const TCP_LISTEN: u8 = 10;

/// Dump every unix socket of this network namespace: inode -> details.
pub fn unix_sockets() -> io::Result<HashMap<u64, UnixDiag>> {
    let mut out = HashMap::new();
    dump(&build_request(), |b| parse_unix_diag_dump(b, &mut out))?;
    Ok(out)
}

/// Every TCP socket of this network namespace in the listening, established or close-wait
/// state (IPv4 and IPv6), with its `tcp_info`. Unprivileged: sock_diag answers any user for
/// the sockets of its network namespace.
pub fn tcp_sockets() -> io::Result<Vec<InetDiag>> {
    let mut out = Vec::new();
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        dump(&build_inet_request(family), |b| {
            parse_inet_diag_dump(b, &mut out)
        })?;
    }
    Ok(out)
}

/// Send one sock_diag dump request and feed each reply datagram to `parse` until it reports
/// the end of the dump.
fn dump(request: &[u8], mut parse: impl FnMut(&[u8]) -> io::Result<bool>) -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let guard = Fd(fd);
    // Never block forever on the kernel: a receive timeout of one second.
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: `tv` is a valid timeval and its size is passed; fd is an open socket.
    unsafe {
        libc::setsockopt(
            guard.0,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value (kernel address).
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: buffer pointer and length describe `request`; addr is a valid sockaddr_nl.
    let sent = unsafe {
        libc::sendto(
            guard.0,
            request.as_ptr().cast(),
            request.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: buf is a writable allocation of buf.len() bytes.
        let n = unsafe { libc::recv(guard.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 || parse(&buf[..n as usize])? {
            return Ok(());
        }
    }
}

struct Fd(i32);
impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by us and is closed exactly once.
        unsafe { libc::close(self.0) };
    }
}

fn build_request() -> Vec<u8> {
    let mut req = Vec::with_capacity(40);
    let total: u32 = 16 + 24;
    req.extend_from_slice(&total.to_ne_bytes()); // nlmsg_len
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes()); // nlmsg_type
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req.extend_from_slice(&flags.to_ne_bytes()); // nlmsg_flags
    req.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
    // struct unix_diag_req
    req.push(libc::AF_UNIX as u8); // sdiag_family
    req.push(0); // sdiag_protocol
    req.extend_from_slice(&0u16.to_ne_bytes()); // pad
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // udiag_states: all
    req.extend_from_slice(&0u32.to_ne_bytes()); // udiag_ino
    req.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER).to_ne_bytes()); // udiag_show
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // udiag_cookie[0]
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // udiag_cookie[1]
    req
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag reply")
}

/// Each netlink message of one sock_diag datagram, its payload handed to `each`. Returns
/// `Ok(true)` at the end of the dump; an error reply is the kernel's errno, and malformed input
/// an error, never an out-of-bounds read.
fn for_each_message(
    mut b: &[u8],
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<bool> {
    while b.len() >= 16 {
        let len = u32_at(b, 0).ok_or_else(malformed)? as usize;
        let kind = u16_at(b, 4).ok_or_else(malformed)?;
        if len < 16 || len > b.len() {
            return Err(malformed());
        }
        let payload = &b[16..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(payload, 0).ok_or_else(malformed)? as i32;
                // The kernel sends -errno; a hostile reply's i32::MIN must not overflow.
                return Err(io::Error::from_raw_os_error(errno.wrapping_neg()));
            }
            _ => each(payload)?,
        }
        b = &b[align4(len).min(b.len())..];
    }
    Ok(false)
}

/// Each netlink attribute (`struct rtattr`) in `attrs`, as `(type, data)`.
fn for_each_attr(mut attrs: &[u8], mut each: impl FnMut(u16, &[u8])) -> io::Result<()> {
    while attrs.len() >= 4 {
        let alen = u16_at(attrs, 0).ok_or_else(malformed)? as usize;
        let atype = u16_at(attrs, 2).ok_or_else(malformed)?;
        if alen < 4 || alen > attrs.len() {
            return Err(malformed());
        }
        each(atype, &attrs[4..alen]);
        attrs = &attrs[align4(alen).min(attrs.len())..];
    }
    Ok(())
}

/// Parse one datagram of a sock_diag dump into `out`. Returns `Ok(true)` at the end of the dump.
/// Malformed input ends the parse with an error instead of reading out of bounds.
pub fn parse_unix_diag_dump(b: &[u8], out: &mut HashMap<u64, UnixDiag>) -> io::Result<bool> {
    for_each_message(b, |payload| {
        // struct unix_diag_msg: family, type, state, pad, ino, cookie[2]
        if payload.len() < 16 {
            return Err(malformed());
        }
        let ino = u32_at(payload, 4).ok_or_else(malformed)?;
        let mut diag = UnixDiag {
            state: payload[2],
            name: None,
            peer: None,
        };
        for_each_attr(&payload[16..], |atype, data| match atype {
            UNIX_DIAG_NAME if !data.is_empty() => {
                let name = if data[0] == 0 {
                    format!("@{}", String::from_utf8_lossy(&data[1..]))
                } else {
                    String::from_utf8_lossy(data)
                        .trim_end_matches('\0')
                        .to_string()
                };
                diag.name = Some(name);
            }
            UNIX_DIAG_PEER => diag.peer = u32_at(data, 0).filter(|&p| p != 0),
            _ => {}
        })?;
        out.insert(u64::from(ino), diag);
        Ok(())
    })
}

fn build_inet_request(family: u8) -> Vec<u8> {
    let mut req = Vec::with_capacity(72);
    let total: u32 = 16 + 56;
    req.extend_from_slice(&total.to_ne_bytes()); // nlmsg_len
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes()); // nlmsg_type
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req.extend_from_slice(&flags.to_ne_bytes()); // nlmsg_flags
    req.extend_from_slice(&2u32.to_ne_bytes()); // nlmsg_seq
    req.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
    // struct inet_diag_req_v2
    req.push(family); // sdiag_family
    req.push(libc::IPPROTO_TCP as u8); // sdiag_protocol
    req.push(1 << (INET_DIAG_INFO - 1)); // idiag_ext: tcp_info
    req.push(0); // pad
    let states: u32 = (1 << TCP_ESTABLISHED) | (1 << TCP_CLOSE_WAIT) | (1 << TCP_LISTEN);
    req.extend_from_slice(&states.to_ne_bytes()); // idiag_states
    req.extend_from_slice(&[0; 48]); // struct inet_diag_sockid: no filter
    req
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// `struct tcp_info` from its bytes; fields past the end (an older kernel) are `None`. Too short
/// for the data times (before Linux 2.6.x): `None`.
pub fn parse_tcp_info(b: &[u8]) -> Option<TcpInfo> {
    Some(TcpInfo {
        last_data_sent_ms: u32_at(b, 44)?,
        last_data_recv_ms: u32_at(b, 52)?,
        bytes_received: u64_at(b, 128),
        data_segs_out: u32_at(b, 156),
        bytes_sent: u64_at(b, 200),
    })
}

/// An address of `struct inet_diag_sockid`: the port in network order, the address in the
/// family's first 4 or all 16 bytes.
fn sock_addr(family: u8, port: &[u8], addr: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes(port.try_into().ok()?);
    let ip = if i32::from(family) == libc::AF_INET {
        IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(addr.get(..4)?).ok()?))
    } else {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(addr.get(..16)?).ok()?))
    };
    Some(SocketAddr::new(ip, port))
}

/// Parse one datagram of an INET_DIAG dump into `out`. Returns `Ok(true)` at the end of the
/// dump; malformed input is an error, never an out-of-bounds read.
pub fn parse_inet_diag_dump(b: &[u8], out: &mut Vec<InetDiag>) -> io::Result<bool> {
    for_each_message(b, |payload| {
        // struct inet_diag_msg: family, state, timer, retrans, sockid (48 bytes),
        // expires, rqueue, wqueue, uid, inode.
        if payload.len() < 72 {
            return Err(malformed());
        }
        let family = payload[0];
        let local = sock_addr(family, &payload[4..6], &payload[8..24]).ok_or_else(malformed)?;
        let peer = sock_addr(family, &payload[6..8], &payload[24..40]).ok_or_else(malformed)?;
        let mut diag = InetDiag {
            state: payload[1],
            local,
            peer,
            rqueue: u32_at(payload, 56).ok_or_else(malformed)?,
            wqueue: u32_at(payload, 60).ok_or_else(malformed)?,
            inode: u64::from(u32_at(payload, 68).ok_or_else(malformed)?),
            info: None,
        };
        for_each_attr(&payload[72..], |atype, data| {
            if atype == INET_DIAG_INFO {
                diag.info = parse_tcp_info(data);
            }
        })?;
        out.push(diag);
        Ok(())
    })
}

/// `ss`-style state names.
fn tcp_state(state: u8) -> &'static str {
    match state {
        1 => "established",
        2 => "syn_sent",
        3 => "syn_recv",
        4 => "fin_wait1",
        5 => "fin_wait2",
        6 => "time_wait",
        7 => "close",
        8 => "close_wait",
        9 => "last_ack",
        10 => "listen",
        11 => "closing",
        _ => "unknown",
    }
}

/// `a.b.c.d:port`, `[v6]:port`; an IPv4-mapped IPv6 address as `[::ffff:a.b.c.d]:port`.
fn addr_text(a: &SocketAddr) -> String {
    a.to_string()
}

/// The TCP sockets among `diags` that a process holds (its socket descriptors `(fd, inode)`), in
/// the neutral form: listening ones, and the others marked accepted when they are on one of its
/// listening ports.
pub fn connections_of(fds: &[(i32, u64)], diags: &[InetDiag]) -> Vec<TcpConnection> {
    let by_inode: HashMap<u64, i32> = fds.iter().map(|&(fd, ino)| (ino, fd)).collect();
    let mine: Vec<(&InetDiag, i32)> = diags
        .iter()
        .filter_map(|d| by_inode.get(&d.inode).map(|&fd| (d, fd)))
        .collect();
    let listening: Vec<String> = mine
        .iter()
        .filter(|(d, _)| d.state == TCP_LISTEN)
        .map(|(d, _)| addr_text(&d.local))
        .collect();
    mine.iter()
        .map(|&(d, fd)| {
            let listen = d.state == TCP_LISTEN;
            let local = addr_text(&d.local);
            let info = d.info.as_ref();
            TcpConnection {
                fd: Some(fd),
                accepted: !listen && crate::model::on_listening_port(&local, &listening),
                local,
                peer: addr_text(&d.peer),
                state: tcp_state(d.state).to_string(),
                last_recv_ms: info.map(|i| u64::from(i.last_data_recv_ms)),
                last_sent_ms: info.map(|i| u64::from(i.last_data_sent_ms)),
                bytes_received: info.and_then(|i| i.bytes_received),
                // Before Linux 4.19: no data segment out is nothing sent.
                bytes_sent: info.and_then(|i| {
                    i.bytes_sent
                        .or_else(|| (i.data_segs_out == Some(0)).then_some(0))
                }),
                rx_queue: (!listen).then_some(u64::from(d.rqueue)),
                tx_queue: (!listen).then_some(u64::from(d.wqueue)),
                server_reading: None,
                server_writing: None,
            }
        })
        .collect()
}

/// The TCP sockets of `pid`, given its socket descriptors `(fd, inode)`. sock_diag shows the
/// sockets of mlsdiag's own network namespace: a process in another one (a container) is
/// unsupported, said as such, rather than shown without connections.
pub fn process_connections(
    pid: u32,
    sockets: &[(i32, u64)],
) -> Result<Vec<TcpConnection>, crate::error::InspectError> {
    use crate::error::InspectError;
    if sockets.is_empty() {
        return Ok(vec![]);
    }
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/net")).ok();
    if let (Some(mine), Some(theirs)) = (ns("self"), ns(&pid.to_string()))
        && mine != theirs
    {
        return Err(InspectError::Unsupported(format!(
            "PID {pid} is in another network namespace ({}; mlsdiag is in {}): its sockets are not in this namespace's socket table",
            theirs.display(),
            mine.display()
        )));
    }
    let diags = tcp_sockets().map_err(|e| {
        InspectError::Unsupported(format!(
            "the socket table (sock_diag) could not be read: {e}"
        ))
    })?;
    Ok(connections_of(sockets, &diags))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An INET_DIAG dump recorded from Linux 6.18: a Python script opened a listener on
    /// 127.0.0.1:44311; a client sent a 63-byte request that the server read and never answered
    /// (inode 227653), and a second client got a 19-byte response to its 18-byte request (inode
    /// 227698); then the script sent this module's request (filtered on the listening port) and
    /// saved the kernel's reply.
    const RECORDED: &str = concat!(
        "980100001400020007000000a3120000020a0000ad1700007f0000010000000000000000000000000000000000000000",
        "000000000000000000000000141300000000000000000000000000000400000000000000437903000500080000000000",
        "08000f00000000000c001500010000000000000006001600520000001c0102000a000000000000000000000000000000",
        "000000000000000000000000040000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000a0000000000000003000000000000000000000000000000ffffffffffffffff",
        "ffffffffffffffff00000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000980100001400020007000000a312000002010000ad179366",
        "7f0000010000000000000000000000007f00000100000000000000000000000000000000151300000000000000000000",
        "00000000000000000000000072790300050008000000000008000f00000000000c001500010000000000000006001600",
        "520000001c010200010000000007aa01e01c0300409c0000008000001802000000000000000000000000000000000000",
        "00000000f40100000000000084030000f4010000ffff0000cbff00001b0000000c000000ffffff7f0b000000cbff0000",
        "0300000000000000cbff00000000000062ced26208000000ffffffffffffffff13000000000000001200000000000000",
        "0200000004000000000000001a00000001000000010000008ee340360000000000000000000000000000000000000000",
        "000000000000000002000000000000001300000000000000000000000000000000000000000000000000000000000100",
        "000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "980100001400020007000000a312000002010000ad1793627f0000010000000000000000000000007f00000100000000",
        "000000000000000000000000161300000000000000000000000000000000000000000000457903000500080000000000",
        "08000f00000000000c001500010000000000000006001600520000001c010200010000000007aa01400d0300409c0000",
        "0080000018020000000000000000000000000000000000000000000064090000000000006409000064090000ffff0000",
        "cbff0000140000000a000000ffffff7f0a000000cbff00000300000000000000cbff00000000000000e4dee60a000000",
        "ffffffffffffffff00000000000000003f00000000000000010000000300000000000000140000000100000000000000",
        "000000000000000000000000000000000000000000000000000000000000000001000000000000000000000000000000",
        "000000000000000000000000000000000000000000000100000001000000000000000000000000000000000000000000",
        "000000000000000000000000000000000000000000000000140000000300020007000000a312000000000000",
    );

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn msg(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn diag_msg(state: u8, ino: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![1, 1, state, 0];
        p.extend_from_slice(&ino.to_ne_bytes());
        p.extend_from_slice(&[0; 8]);
        for a in attrs {
            p.extend_from_slice(a);
        }
        msg(SOCK_DIAG_BY_FAMILY, &p)
    }

    #[test]
    fn parses_names_peers_and_done() {
        let mut buf = diag_msg(10, 100, &[attr(UNIX_DIAG_NAME, b"/tmp/mls.sock")]);
        buf.extend(diag_msg(
            1,
            101,
            &[attr(UNIX_DIAG_PEER, &102u32.to_ne_bytes())],
        ));
        buf.extend(diag_msg(1, 103, &[attr(UNIX_DIAG_NAME, b"\0abstract")]));
        buf.extend(msg(NLMSG_DONE, &[0; 4]));
        let mut out = HashMap::new();
        assert!(parse_unix_diag_dump(&buf, &mut out).unwrap());
        assert_eq!(out[&100].name.as_deref(), Some("/tmp/mls.sock"));
        assert_eq!(out[&100].state, 10);
        assert_eq!(out[&101].peer, Some(102));
        assert_eq!(out[&103].name.as_deref(), Some("@abstract"));
    }

    #[test]
    fn truncated_or_lying_lengths_are_errors() {
        let mut buf = diag_msg(1, 5, &[attr(UNIX_DIAG_PEER, &6u32.to_ne_bytes())]);
        buf[0] = 200; // nlmsg_len larger than the datagram
        assert!(parse_unix_diag_dump(&buf, &mut HashMap::new()).is_err());
        let err = msg(NLMSG_ERROR, &(-13i32).to_ne_bytes());
        let e = parse_unix_diag_dump(&err, &mut HashMap::new()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(13));
        // Found by the os_decoders fuzz target: an error code of i32::MIN overflowed its negation.
        let err = msg(NLMSG_ERROR, &i32::MIN.to_ne_bytes());
        assert!(parse_unix_diag_dump(&err, &mut HashMap::new()).is_err());
    }

    #[test]
    fn live_dump_sees_a_socketpair_and_its_peer() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::unix::fs::MetadataExt;
        let ino_a = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&a)
        ))
        .unwrap()
        .ino();
        let ino_b = std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&b)
        ))
        .unwrap()
        .ino();
        let all = unix_sockets().expect("sock_diag dump");
        assert_eq!(all[&ino_a].peer.map(u64::from), Some(ino_b));
        assert_eq!(all[&ino_b].peer.map(u64::from), Some(ino_a));
    }
    #[test]
    fn a_recorded_inet_dump_gives_queues_and_tcp_info() {
        let mut out = Vec::new();
        assert!(parse_inet_diag_dump(&unhex(RECORDED), &mut out).unwrap());
        assert_eq!(out.len(), 3, "{out:#?}");
        let listener = &out[0];
        assert_eq!(
            (listener.state, listener.local.to_string(), listener.inode),
            (10, "127.0.0.1:44311".to_string(), 227651)
        );
        let waiting = out.iter().find(|d| d.inode == 227653).unwrap();
        assert_eq!(waiting.peer.to_string(), "127.0.0.1:37730");
        assert_eq!(
            waiting.info,
            Some(TcpInfo {
                last_data_sent_ms: 2404,
                last_data_recv_ms: 2404,
                bytes_received: Some(63),
                data_segs_out: Some(0),
                bytes_sent: Some(0),
            })
        );
        let answered = out.iter().find(|d| d.inode == 227698).unwrap();
        let info = answered.info.as_ref().unwrap();
        assert_eq!(
            (
                info.last_data_recv_ms,
                info.last_data_sent_ms,
                info.bytes_sent
            ),
            (900, 500, Some(19))
        );
        // In the neutral form: the two connections are accepted on the listening port; the
        // unanswered one waits (equal times, told apart by the byte counts), the other responded.
        let conns = connections_of(&[(3, 227651), (4, 227653), (5, 227698)], &out);
        let c = |ino_fd: i32| conns.iter().find(|c| c.fd == Some(ino_fd)).unwrap();
        assert!(!c(3).accepted && c(3).state == "listen");
        assert!(c(4).accepted && c(5).accepted);
        assert_eq!(c(4).exchange(), crate::model::Exchange::AwaitingResponse);
        assert_eq!(c(4).waiting_ms(), Some(2404));
        assert_eq!(c(5).exchange(), crate::model::Exchange::Responded);
        assert_eq!((c(4).rx_queue, c(4).tx_queue), (Some(0), Some(0)));
        // A socket the process does not hold is not its connection.
        assert_eq!(connections_of(&[(4, 227653)], &out).len(), 1);
        assert!(
            !connections_of(&[(4, 227653)], &out)[0].accepted,
            "no listener held"
        );
    }

    #[test]
    fn old_kernels_short_tcp_info_and_lying_lengths() {
        let mut b = unhex(RECORDED);
        // A tcp_info of 104 bytes (Linux 3.x): times, no byte counters.
        let info = parse_tcp_info(&b[16 + 72 + 4..16 + 72 + 4 + 104]).unwrap();
        assert_eq!(
            (info.bytes_received, info.bytes_sent, info.data_segs_out),
            (None, None, None)
        );
        assert!(parse_tcp_info(&[0; 40]).is_none());
        b[0] = 0xff; // nlmsg_len past the datagram
        assert!(parse_inet_diag_dump(&b, &mut Vec::new()).is_err());
        let short = msg(SOCK_DIAG_BY_FAMILY, &[2, 1, 0, 0]);
        assert!(parse_inet_diag_dump(&short, &mut Vec::new()).is_err());
    }

    #[test]
    fn live_dump_sees_a_request_waiting_for_its_response() {
        use std::io::{Read, Write};
        use std::os::unix::fs::MetadataExt;
        let ino = |fd: i32| {
            std::fs::metadata(format!("/proc/self/fd/{fd}"))
                .unwrap()
                .ino()
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = [0u8; 64];
        let n = server.read(&mut buf).unwrap();
        assert!(n > 0);
        use std::os::fd::AsRawFd;
        let fds = [
            (listener.as_raw_fd(), ino(listener.as_raw_fd())),
            (server.as_raw_fd(), ino(server.as_raw_fd())),
        ];
        let conns = connections_of(&fds, &tcp_sockets().expect("sock_diag dump"));
        let s = conns
            .iter()
            .find(|c| c.fd == Some(server.as_raw_fd()))
            .expect("the accepted socket");
        assert!(s.accepted, "{conns:#?}");
        assert_eq!(
            s.exchange(),
            crate::model::Exchange::AwaitingResponse,
            "{s:#?}"
        );
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        let conns = connections_of(&fds, &tcp_sockets().unwrap());
        let s = conns
            .iter()
            .find(|c| c.fd == Some(server.as_raw_fd()))
            .unwrap();
        assert_ne!(
            s.exchange(),
            crate::model::Exchange::AwaitingResponse,
            "{s:#?}"
        );
    }
}
