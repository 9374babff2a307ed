//! Threads grouped by what they wait on (a wait channel, a syscall, a lock address): many
//! threads on one lock is what a deadlock looks like from outside.

use std::collections::BTreeMap;

use super::process::{Syscall, ThreadInfo};
use super::stacks::WaitGroup;

/// What a sleeping thread waits on, and the lock address when it is a lock wait.
pub fn wait_of(t: &ThreadInfo) -> Option<(String, Option<u64>)> {
    if t.state == 'R' {
        return None;
    }
    let (sys_name, arg0) = match &t.syscall {
        Some(Syscall::Blocked { name, arg0, .. }) => (name.clone(), Some(*arg0)),
        _ => (None, None),
    };
    let is_lock = sys_name.as_deref().is_some_and(|n| n.starts_with("futex"));
    let label = t
        .wait_channel
        .clone()
        .or(sys_name)
        .unwrap_or_else(|| format!("state {}", t.state));
    Some((label, if is_lock { arg0 } else { None }))
}

/// Group sleeping threads by what they wait on, largest group first.
pub fn group(threads: &[ThreadInfo]) -> Vec<WaitGroup> {
    let mut by: BTreeMap<String, WaitGroup> = BTreeMap::new();
    for t in threads {
        let Some((wait, lock)) = wait_of(t) else {
            continue;
        };
        let g = by.entry(wait.clone()).or_insert_with(|| WaitGroup {
            wait,
            tids: vec![],
            locks: BTreeMap::new(),
        });
        g.tids.push(t.tid);
        if let Some(addr) = lock {
            g.locks.entry(format!("{addr:#x}")).or_default().push(t.tid);
        }
    }
    let mut groups: Vec<WaitGroup> = by.into_values().collect();
    groups.sort_by(|a, b| b.tids.len().cmp(&a.tids.len()).then(a.wait.cmp(&b.wait)));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tid: u64, state: char, wchan: Option<&str>, sys: Option<(&str, u64)>) -> ThreadInfo {
        ThreadInfo {
            tid,
            name: "python3".into(),
            state,
            cpu_user_ns: 0,
            cpu_system_ns: 0,
            wait_channel: wchan.map(Into::into),
            syscall: sys.map(|(n, a)| Syscall::Blocked {
                number: 202,
                name: Some(n.into()),
                arg0: a,
            }),
            sleep_secs: None,
        }
    }

    #[test]
    fn groups_lock_waiters_by_address() {
        let threads = [
            t(1, 'S', Some("futex_wait_queue"), Some(("futex", 0x10))),
            t(2, 'S', Some("futex_wait_queue"), Some(("futex", 0x10))),
            t(3, 'S', Some("futex_wait_queue"), Some(("futex", 0x20))),
            t(4, 'S', Some("do_epoll_wait"), Some(("epoll_wait", 3))),
            t(5, 'R', None, None),
        ];
        let g = group(&threads);
        assert_eq!(g[0].wait, "futex_wait_queue");
        assert_eq!(g[0].tids, [1, 2, 3]);
        assert_eq!(g[0].locks["0x10"], [1, 2]);
        assert_eq!(g[1].wait, "do_epoll_wait");
        assert!(g[1].locks.is_empty(), "epoll is not a lock");
        assert_eq!(
            g.iter().map(|g| g.tids.len()).sum::<usize>(),
            4,
            "running threads are not grouped"
        );
    }

    #[test]
    fn macos_threads_without_wchan_group_by_state() {
        let mut a = t(1, 'S', None, None);
        a.syscall = None;
        let g = group(&[a]);
        assert_eq!(g[0].wait, "state S");
    }
}
