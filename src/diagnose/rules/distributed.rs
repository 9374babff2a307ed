//! A distributed peer stalled: the worker is an MLX distributed rank (`MLX_RANK`), and a rank
//! it is connected to is stopped (state `T` or `t`) or closed its end of the connection
//! (`close_wait`). A collective (`all_sum`, `all_gather`, a ring step) waits on every rank, so
//! the worker makes no progress until that peer does, however busy its own CPU is: the ring
//! backend busy-polls its non-blocking sockets at ~100% of a core in a native thread, which
//! without this rule reads as work. Hung, with the peer named; the stopped peer itself is
//! judged on its own (a stopped process).

use crate::model::{Distributed, DistributedPeer, Finding, Verdict};

/// The finding for a worker whose distributed peer is stopped or gone, if one is.
pub fn peer_stalled(d: &Distributed, cpu_fact: &str) -> Option<Finding> {
    // One line per peer process (a ring keeps a connection each way to its neighbour).
    let mut seen = Vec::new();
    let stalled: Vec<String> = (d.peers.iter())
        .filter(|p| {
            p.pid.is_none()
                || !seen.contains(&p.pid) && {
                    seen.push(p.pid);
                    true
                }
        })
        .filter_map(why_stalled)
        .collect();
    if stalled.is_empty() {
        return None;
    }
    let rank = d.rank.map_or_else(
        || "an MLX distributed rank".to_string(),
        |r| format!("MLX distributed rank {r}"),
    );
    let mut evidence = vec![format!(
        "{rank}{}: a collective waits on every rank of its group, and a peer cannot take part",
        d.hostfile
            .as_deref()
            .map(|h| format!(" (host file {h})"))
            .unwrap_or_default()
    )];
    evidence.extend(stalled);
    evidence.push(format!(
        "{cpu_fact}: busy CPU here is the backend polling its sockets for the peer, not progress"
    ));
    Some(Finding {
        verdict: Verdict::Hung,
        evidence,
    })
}

/// Why one peer cannot take part, if it cannot.
fn why_stalled(p: &DistributedPeer) -> Option<String> {
    let who = match (p.pid, p.rank) {
        (Some(pid), Some(r)) => format!("peer {} (PID {pid}, rank {r})", p.address),
        (Some(pid), None) => format!("peer {} (PID {pid})", p.address),
        _ => format!("peer {}", p.address),
    };
    match p.process_state {
        Some(s @ 'T') => Some(format!(
            "{who} is stopped (state {s}: a signal stopped it; `kill -CONT {}` resumes it)",
            p.pid.unwrap_or_default()
        )),
        Some(s @ 't') => Some(format!("{who} is held by a debugger (state {s})")),
        _ if p.state == "close_wait" => Some(format!(
            "{who} closed its end of the connection (close_wait): the peer exited or dropped out"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(state: &str, process_state: Option<char>) -> DistributedPeer {
        DistributedPeer {
            address: "127.0.0.1:45512".into(),
            state: state.into(),
            pid: Some(4242),
            rank: Some(1),
            process_state,
        }
    }

    fn ring(peers: Vec<DistributedPeer>) -> Distributed {
        Distributed {
            rank: Some(0),
            hostfile: Some("/tmp/hosts.json".into()),
            peers,
        }
    }

    #[test]
    fn a_stopped_or_closed_peer_stalls_the_rank_a_running_one_does_not() {
        let cpu = "CPU time advanced 1900 ms over 2.0 s (95.0%)";
        let both_ways = vec![
            peer("established", Some('T')),
            peer("established", Some('T')),
        ];
        let f = peer_stalled(&ring(both_ways), cpu).unwrap();
        assert_eq!(f.verdict, Verdict::Hung);
        assert_eq!(f.evidence.len(), 3, "one line per peer process: {f:?}");
        let ev = f.evidence.join("\n");
        assert!(
            ev.contains("MLX distributed rank 0 (host file /tmp/hosts.json)"),
            "{ev}"
        );
        assert!(
            ev.contains("peer 127.0.0.1:45512 (PID 4242, rank 1) is stopped"),
            "{ev}"
        );
        assert!(
            ev.contains("kill -CONT 4242") && ev.contains("not progress"),
            "{ev}"
        );
        let f = peer_stalled(&ring(vec![peer("close_wait", None)]), cpu).unwrap();
        assert!(f.evidence.join(" ").contains("closed its end"));
        assert!(peer_stalled(&ring(vec![peer("established", Some('t'))]), cpu).is_some());
        // Peers at work (or asleep between steps), or none seen: nothing to say.
        for s in ['R', 'S'] {
            assert!(peer_stalled(&ring(vec![peer("established", Some(s))]), cpu).is_none());
        }
        assert!(peer_stalled(&ring(vec![]), cpu).is_none());
    }
}
