//! Unix-socket peers through `NETLINK_SOCK_DIAG`, the interface `ss -xp` uses.
//!
//! `/proc/net/unix` lists sockets but not which socket is connected to which; the kernel only
//! tells that through sock_diag, without privileges. One dump request returns every unix socket
//! of the caller's network namespace with its name, state and peer inode. The request is small
//! and fixed, so it is written here on libc rather than pulling in a netlink stack; the parser
//! takes bytes and is unit-tested.

use std::collections::HashMap;
use std::io;

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

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_PEER: u32 = 0x04;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;

/// Dump every unix socket of this network namespace: inode -> details.
pub fn unix_sockets() -> io::Result<HashMap<u64, UnixDiag>> {
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
    let request = build_request();
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
    let mut out = HashMap::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: buf is a writable allocation of buf.len() bytes.
        let n = unsafe { libc::recv(guard.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        if parse_unix_diag_dump(&buf[..n as usize], &mut out)? {
            break;
        }
    }
    Ok(out)
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

/// Parse one datagram of a sock_diag dump into `out`. Returns `Ok(true)` at the end of the dump.
/// Malformed input ends the parse with an error instead of reading out of bounds.
pub fn parse_unix_diag_dump(mut b: &[u8], out: &mut HashMap<u64, UnixDiag>) -> io::Result<bool> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag reply");
    while b.len() >= 16 {
        let len = u32_at(b, 0).ok_or_else(bad)? as usize;
        let kind = u16_at(b, 4).ok_or_else(bad)?;
        if len < 16 || len > b.len() {
            return Err(bad());
        }
        let payload = &b[16..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(payload, 0).ok_or_else(bad)? as i32;
                // The kernel sends -errno; a hostile reply's i32::MIN must not overflow.
                return Err(io::Error::from_raw_os_error(errno.wrapping_neg()));
            }
            _ => {
                // struct unix_diag_msg: family, type, state, pad, ino, cookie[2]
                if payload.len() < 16 {
                    return Err(bad());
                }
                let state = payload[2];
                let ino = u32_at(payload, 4).ok_or_else(bad)?;
                let mut diag = UnixDiag {
                    state,
                    name: None,
                    peer: None,
                };
                let mut attrs = &payload[16..];
                while attrs.len() >= 4 {
                    let alen = u16_at(attrs, 0).ok_or_else(bad)? as usize;
                    let atype = u16_at(attrs, 2).ok_or_else(bad)?;
                    if alen < 4 || alen > attrs.len() {
                        return Err(bad());
                    }
                    let data = &attrs[4..alen];
                    match atype {
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
                    }
                    attrs = &attrs[align4(alen).min(attrs.len())..];
                }
                out.insert(u64::from(ino), diag);
            }
        }
        b = &b[align4(len).min(b.len())..];
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
