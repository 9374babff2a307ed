//! Names for the system calls a blocked worker thread is usually found in.
//!
//! `/proc/PID/task/TID/syscall` gives only a number, and the numbering differs per architecture.
//! The table covers the calls that matter for "what is this thread waiting on" (locks, I/O,
//! polling, sleeping); anything else is shown by number.

#[cfg(target_arch = "x86_64")]
const TABLE: &[(i64, &str)] = &[
    (0, "read"),
    (1, "write"),
    (7, "poll"),
    (23, "select"),
    (24, "sched_yield"),
    (34, "pause"),
    (35, "nanosleep"),
    (42, "connect"),
    (43, "accept"),
    (44, "sendto"),
    (45, "recvfrom"),
    (46, "sendmsg"),
    (47, "recvmsg"),
    (61, "wait4"),
    (202, "futex"),
    (230, "clock_nanosleep"),
    (232, "epoll_wait"),
    (247, "waitid"),
    (270, "pselect6"),
    (271, "ppoll"),
    (281, "epoll_pwait"),
    (288, "accept4"),
    (299, "recvmmsg"),
    (441, "epoll_pwait2"),
    (449, "futex_waitv"),
];

#[cfg(target_arch = "aarch64")]
const TABLE: &[(i64, &str)] = &[
    (22, "epoll_pwait"),
    (63, "read"),
    (64, "write"),
    (72, "pselect6"),
    (73, "ppoll"),
    (98, "futex"),
    (101, "nanosleep"),
    (115, "clock_nanosleep"),
    (124, "sched_yield"),
    (202, "accept"),
    (203, "connect"),
    (206, "sendto"),
    (207, "recvfrom"),
    (211, "sendmsg"),
    (212, "recvmsg"),
    (242, "accept4"),
    (243, "recvmmsg"),
    (260, "wait4"),
    (441, "epoll_pwait2"),
    (449, "futex_waitv"),
];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const TABLE: &[(i64, &str)] = &[];

/// The name of system call `number` on this architecture, when known.
pub fn syscall_name(number: i64) -> Option<&'static str> {
    TABLE
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown() {
        assert!(
            TABLE.windows(2).all(|w| w[0].0 < w[1].0),
            "table sorted and unique"
        );
        assert_eq!(syscall_name(-5), None);
        assert_eq!(syscall_name(99_999), None);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(syscall_name(202), Some("futex"));
    }
}
