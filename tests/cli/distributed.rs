//! An MLX distributed ring with a silent peer, by its real mechanism: two ranks of
//! `mlx.distributed` on the ring backend over TCP on this machine (MLX's CPU backend, the
//! pinned mlx from scripts/setup-mlx-lm), summing in a loop; one rank stopped by SIGSTOP. The
//! survivor busy-polls its sockets at ~100% CPU with no token record and no log, which read as
//! work before; it is hung, with the stopped peer named, and the stopped rank says it was
//! stopped. Resumed, both are healthy. On MLX 0.32.0 (scripts/setup-mlx-lm-series 0.32.0) a
//! killed peer leaves the survivor spinning forever: hung, the peer's closed end named. Every
//! process is killed by its guard.

use std::time::Duration;

use serde_json::Value;

use crate::util::{Background, json, mlx_0320_python, mlx_lm_python, run, wait_until};

const RANK: &str = r#"
import mlx.core as mx, sys, time
g = mx.distributed.init(backend="ring", strict=True)
i = 0
while True:
    mx.eval(mx.distributed.all_sum(mx.ones(1024)))
    i += 1
    if i % 50 == 0:
        print("step", i, flush=True)
    time.sleep(0.01)
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two ranks of `python` summing in a ring on this machine, each started and waited for until
/// it steps; their host file lives in `dir`. Returns the two guards and the tag in their
/// command lines.
fn ring(python: &str, dir: &std::path::Path) -> (Background, Background, String) {
    let hosts = dir.join("hosts.json");
    let (a, b) = (free_port(), free_port());
    std::fs::write(&hosts, format!(r#"[["127.0.0.1:{a}"], ["127.0.0.1:{b}"]]"#)).unwrap();
    let tag = format!("zz-ring-{}-{a}", std::process::id());
    let rank = |r: &str| {
        let mut cmd = std::process::Command::new(python);
        cmd.args(["-c", RANK, &tag])
            .env("MLX_RANK", r)
            .env("MLX_HOSTFILE", &hosts);
        Background::spawn(cmd)
    };
    let (r0, r1) = (rank("0"), rank("1"));
    for r in [&r0, &r1] {
        r.line(Duration::from_secs(120), |l| l.starts_with("step"));
    }
    (r0, r1, tag)
}

fn check(tag: &str) -> Value {
    json(&run(&[
        "check",
        "--json",
        "--no-registry",
        "--window",
        "1s",
        "--pattern",
        tag,
    ]))
}

fn worker(r: &Value, pid: u32) -> Value {
    r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["pid"] == pid)
        .cloned()
        .unwrap_or_else(|| panic!("PID {pid}: {r:#}"))
}

#[test]
fn a_ring_rank_whose_peer_is_stopped_is_hung_with_the_peer_named() {
    let dir = tempfile::tempdir().unwrap();
    let (r0, r1, tag) = ring(&mlx_lm_python(), dir.path());
    let (p0, p1) = (r0.child.id(), r1.child.id());
    let check = || check(&tag);
    // Both at work: healthy, each a rank with its peer.
    let r = check();
    for pid in [p0, p1] {
        let w = worker(&r, pid);
        assert_eq!(w["verdict"], "healthy", "{w:#}");
        assert!(w["distributed"]["rank"].is_u64(), "{w:#}");
    }
    assert_eq!(worker(&r, p0)["distributed"]["peers"][0]["pid"], p1);

    // SAFETY: kill(2) on a child this test started.
    unsafe { libc::kill(p1 as i32, libc::SIGSTOP) };
    let mut r = Value::Null;
    wait_until(Duration::from_secs(30), "rank 0 hung", || {
        r = check();
        worker(&r, p0)["verdict"] == "hung"
    });
    let w0 = worker(&r, p0);
    let ev = w0["findings"][0]["evidence"].to_string();
    assert!(
        ev.contains("MLX distributed rank 0")
            && ev.contains(&format!("(PID {p1}, rank 1) is stopped")),
        "{ev}"
    );
    let w1 = worker(&r, p1);
    assert_eq!(w1["verdict"], "unknown", "{w1:#}");
    assert!(
        w1["findings"].to_string().contains("stopped by a signal"),
        "{w1:#}"
    );

    // SAFETY: as above.
    unsafe { libc::kill(p1 as i32, libc::SIGCONT) };
    wait_until(Duration::from_secs(30), "both healthy again", || {
        let r = check();
        worker(&r, p0)["verdict"] == "healthy" && worker(&r, p1)["verdict"] == "healthy"
    });
}

#[test]
fn a_ring_rank_whose_peer_was_killed_spins_on_mlx_0_32_0_and_is_hung() {
    // MLX 0.32.0: the survivor of a killed peer polls its sockets forever (0.32.1 fixed it: the
    // survivor errors within a second). Its connection to the peer is in close_wait.
    let dir = tempfile::tempdir().unwrap();
    let (r0, mut r1, tag) = ring(&mlx_0320_python(), dir.path());
    let p0 = r0.child.id();
    r1.child.kill().unwrap();
    r1.child.wait().unwrap();
    let mut r = Value::Null;
    wait_until(Duration::from_secs(30), "rank 0 hung", || {
        r = check(&tag);
        worker(&r, p0)["verdict"] == "hung"
    });
    let w = worker(&r, p0);
    assert_eq!(w["activity"], "spinning", "{w:#}");
    let ev = w["findings"][0]["evidence"].to_string();
    assert!(
        ev.contains("closed its end of the connection (close_wait)"),
        "{ev}"
    );
}
