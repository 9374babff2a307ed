//! `mlsdiag fleet` over real OpenSSH: a private `sshd` on a loopback port with a temporary
//! host key and authorized key (Debian `openssh-server`), stopped by the test. The "remote"
//! host is this machine, running the demo's real workers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::{Background, Sim, bin, json, stderr, stdout, wait_until, write};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn keygen(path: &Path) {
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A running sshd and an ssh client config naming it `studio` (and `ghost`, a closed port).
struct Sshd {
    _server: Background,
    dir: tempfile::TempDir,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        // SAFETY: getuid has no preconditions.
        let root = unsafe { libc::getuid() } == 0;
        if root {
            // sshd's privilege separation directory (normally made by its init script).
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        write(
            &d.join("sshd_config"),
            &format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 LogLevel ERROR\n",
                d = d.display()
            ),
        );
        let mut cmd = Command::new("/usr/sbin/sshd");
        cmd.args(["-D", "-e", "-f"]).arg(d.join("sshd_config"));
        let server = Background::spawn(cmd);
        wait_until(Duration::from_secs(20), "sshd to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        write(
            &d.join("known_hosts"),
            &format!("[127.0.0.1]:{port} {}\n", host_pub.join(" ")),
        );
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| if root { "root".into() } else { whoami() });
        write(
            &d.join("ssh_config"),
            &format!(
                "Host studio\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n\
                 \x20 IdentityFile {d}/client_key\n  IdentitiesOnly yes\n\
                 \x20 UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n\
                 Host ghost\n  HostName 127.0.0.1\n  Port {closed}\n  User {user}\n\
                 \x20 IdentityFile {d}/client_key\n  UserKnownHostsFile {d}/known_hosts\n",
                d = d.display(),
                closed = free_port(),
            ),
        );
        Sshd {
            _server: server,
            dir,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }
}

fn whoami() -> String {
    let o = Command::new("id").arg("-un").output().unwrap();
    stdout(&o).trim().to_string()
}

fn fleet(args: &[impl AsRef<std::ffi::OsStr>]) -> std::process::Output {
    Command::new(bin())
        .arg("fleet")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn fleet_merges_hosts_and_reports_the_unreachable_one() {
    let sim = Sim::start();
    let sshd = Sshd::start();
    let config = sshd.config();
    let me = bin();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--ssh-config".into(),
            config.display().to_string(),
            "--connect-timeout".into(),
            "5".into(),
            "--remote-command".into(),
            me.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(
            [
                "studio",
                "ghost",
                "--",
                "--pattern",
                sim.pattern(),
                "--registry",
                sim.registry(),
                "--log",
                sim.log(),
                "--window",
                "300ms",
                // The simulated hung worker is as old as its request: seconds.
                "--hung-after",
                "200ms",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        v
    };
    let a = args(&["--json"]);
    let o = fleet(&a);
    // The demo has a hung and a crashed worker: CRITICAL, worse than the unreachable host.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let r = json(&o);
    let hosts = r["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    let studio = &hosts[0];
    assert_eq!(studio["host"], "studio");
    assert_eq!(studio["status"], "CRITICAL", "{studio:#}");
    let hung = sim.pid("hung");
    let w = studio["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["pid"] == hung)
        .unwrap_or_else(|| panic!("{studio:#}"));
    assert_eq!(w["verdict"], "hung");
    assert_eq!(studio["check"]["command"], "check");
    let ghost = &hosts[1];
    assert_eq!(ghost["status"], "UNKNOWN");
    let reason = ghost["reason"].as_str().unwrap();
    assert!(reason.starts_with("unreachable:"), "{reason}");
    assert!(reason.contains("refused"), "{reason}");
    // The table: one row per worker, one row for the host that could not be checked.
    let o = fleet(&args(&[]));
    let t = stdout(&o);
    assert!(
        t.lines().any(|l| l.starts_with(" studio")
            && l.contains(&hung.to_string())
            && l.contains("hung")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with(" ghost") && l.contains("UNKNOWN") && l.contains("unreachable")),
        "{t}"
    );
    assert!(
        t.contains("2 host(s)") && t.contains("CRITICAL (exit 2)"),
        "{t}"
    );
    // A host without mlsdiag is UNKNOWN with that reason.
    let o = fleet(&[
        "--ssh-config",
        config.to_str().unwrap(),
        "--remote-command",
        "/nonexistent/mlsdiag",
        "--json",
        "studio",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let r = json(&o);
    let reason = r["hosts"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("/nonexistent/mlsdiag not found on studio"),
        "{reason}"
    );
}

#[test]
fn the_timeout_covers_a_proxy_command_that_never_answers_or_exits() {
    // A ProxyCommand that ignores SIGTERM and never answers: ssh waits on it, and it holds the
    // pipes open after ssh is gone. --timeout must still end the host, and all it started.
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("proxy.pid");
    let proxy = format!(
        "ProxyCommand=sh -c 'echo $$ > {}; trap \"\" TERM HUP; while :; do sleep 1; done'",
        marker.display()
    );
    let started = std::time::Instant::now();
    // Bounded here too, so a regression fails instead of hanging the suite.
    let out = crate::util::run_within(
        std::time::Duration::from_secs(20),
        &[
            "fleet",
            "--timeout",
            "2s",
            "--connect-timeout",
            "30",
            "--ssh-option",
            &proxy,
            "--json",
            "stalled.invalid",
        ],
    );
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["hosts"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no answer within 2s"),
        "{r:#}"
    );
    let pid: u32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    crate::util::wait_until(
        std::time::Duration::from_secs(5),
        "the ProxyCommand to be gone",
        || !crate::util::alive(pid),
    );
}
