//! Discovery with no setup (#30): no `--pattern` finds the stock `mlx_lm.server` and any process
//! with MLX loaded; no registry means no orchestrator, so a server started by hand, by launchd
//! or systemd (re-parented to init) is standalone and healthy, never an orphan; and no mlsdiag
//! process is ever a worker, whatever its command line says. Real processes only; each is
//! ended by its guard, also when the test fails.

use std::process::Command;

use serde_json::Value;

use crate::util::{Background, bin, json, run, stdout};

fn workers(r: &Value) -> &Vec<Value> {
    r["workers"].as_array().unwrap()
}

fn worker(r: &Value, pid: u32) -> Option<&Value> {
    workers(r).iter().find(|w| w["pid"] == pid)
}

/// The exit code the workers' verdicts add up to (CRITICAL > UNKNOWN > WARNING > OK): what a
/// check with nothing else to say (no unreadable registry) exits with. Other tests may run MLX
/// processes at the same time, and automatic discovery finds those too.
fn code_of_verdicts(r: &Value) -> u64 {
    let rank = |c: u64| match c {
        2 => 3,
        3 => 2,
        c => c,
    };
    workers(r)
        .iter()
        .map(|w| match w["verdict"].as_str().unwrap() {
            "healthy" => 0,
            "orphan" | "leaking" => 1,
            "unknown" => 3,
            _ => 2,
        })
        .max_by_key(|&c| rank(c))
        .unwrap_or(0)
}

#[test]
fn no_mlsdiag_process_is_a_worker_whatever_its_command_line() {
    let tag = format!("zz-bg-watch-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    // A background watch with the pattern in its own command line, and mlsdiag's executable
    // under a known server's name (a symlink: the same file) with the pattern too.
    let mut watch = Command::new(bin());
    watch.args([
        "watch",
        "--pattern",
        &tag,
        "--no-registry",
        "--interval",
        "1s",
        "--window",
        "0s",
        "--no-snapshot",
    ]);
    let mut watch = Background::spawn(watch);
    let alias = dir.path().join("mlx_lm.server");
    std::os::unix::fs::symlink(bin(), &alias).unwrap();
    let mut aliased = Command::new(&alias);
    aliased.args([
        "watch",
        "--pattern",
        &tag,
        "--interval",
        "1s",
        "--window",
        "0s",
    ]);
    aliased.arg("--no-snapshot");
    let mut aliased = Background::spawn(aliased);

    for args in [
        vec![
            "check",
            "--json",
            "--window",
            "0s",
            "--no-registry",
            "--pattern",
            &tag,
        ],
        vec!["check", "--json", "--window", "0s", "--no-registry"],
    ] {
        let out = run(&args);
        let r = json(&out);
        for pid in [watch.child.id(), aliased.child.id()] {
            assert!(
                worker(&r, pid).is_none(),
                "{args:?}: PID {pid} listed: {r:#}"
            );
        }
        // Both were running while the check looked.
        assert!(watch.child.try_wait().unwrap().is_none());
        assert!(aliased.child.try_wait().unwrap().is_none());
        if args.contains(&"--pattern") {
            assert_eq!(out.status.code(), Some(0), "{r:#}");
            let notes = r["notes"].to_string();
            assert!(
                notes.contains("no workers found: no process matches --pattern")
                    && notes.contains("Leave out --pattern"),
                "{notes}"
            );
        }
    }
}

#[test]
fn nothing_found_says_what_was_searched_and_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg.json");
    std::fs::write(&reg, "[]").unwrap();
    let out = run(&[
        "check",
        "--window",
        "0s",
        "--pattern",
        "zz-nothing-runs-this",
        "--registry",
        reg.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("no process matches --pattern \"zz-nothing-runs-this\"")
            && text.contains("the registry")
            && text.contains("lists none")
            && text.contains("Leave out --pattern"),
        "{text}"
    );
    // The automatic search names what it looked for; --no-registry says there is no
    // orchestrator and exits OK.
    let out = run(&["check", "--json", "--window", "0s", "--no-registry"]);
    let r = json(&out);
    assert_eq!(r["registry"]["state"], "off", "{r:#}");
    let notes = r["notes"].to_string();
    assert!(notes.contains("--no-registry: no orchestrator"), "{notes}");
    if workers(&r).is_empty() {
        assert!(
            notes.contains("known MLX server (mlx_lm.server")
                && notes.contains("MLX loaded")
                && notes.contains("--pattern REGEX"),
            "{notes}"
        );
    }
    assert_eq!(
        out.status.code().map(|c| c as u64),
        Some(code_of_verdicts(&r))
    );
}

/// An orchestrator (#30): starts a worker whose stdout is a pipe and whose stderr a unix
/// socket, both read by the orchestrator; prints the worker's pid; then exits at once (`die`,
/// as a crash would: no cleanup) or lives on holding its ends. The worker is in the
/// orchestrator's process group, which the test's guard kills.
const ORCHESTRATOR: &str = r#"
import os, socket, subprocess, sys, time
mine, theirs = socket.socketpair()
w = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", sys.argv[1]],
                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=theirs.fileno())
print(w.pid, flush=True)
if sys.argv[2] == "die":
    os._exit(0)
time.sleep(600)
"#;

#[test]
fn a_worker_whose_orchestrator_died_is_an_orphan_without_a_registry() {
    let start = |tag: &str, fate: &str| {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", ORCHESTRATOR, tag, fate]);
        let orchestrator = Background::spawn(cmd);
        let (pid, _) = orchestrator.line(std::time::Duration::from_secs(60), |_| true);
        (orchestrator, pid.trim().parse::<u32>().unwrap())
    };
    let id = std::process::id();
    let (lost_tag, kept_tag) = (format!("zz-lost-{id}"), format!("zz-kept-{id}"));
    let (_lost_group, lost) = start(&lost_tag, "die");
    let (_kept_group, kept) = start(&kept_tag, "live");
    // The orchestrator has exited; wait until the worker is adopted.
    let parent_of = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("").to_string();
        after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
    };
    let gone = _lost_group.child.id();
    crate::util::wait_until(std::time::Duration::from_secs(30), "re-parenting", || {
        parent_of(lost).is_some_and(|p| p != gone)
    });
    let pattern = format!("zz-(lost|kept)-{id}");
    let out = run(&[
        "check",
        "--json",
        "--window",
        "0s",
        "--no-registry",
        "--pattern",
        &pattern,
    ]);
    let r = json(&out);
    let w = worker(&r, lost).unwrap_or_else(|| panic!("{r:#}"));
    assert_eq!(w["verdict"], "orphan", "{w:#}");
    let evidence = w["findings"][0]["evidence"].to_string();
    assert!(evidence.contains("which adopted it"), "{evidence}");
    assert!(evidence.contains("its stdout (fd 1, pipe:["), "{evidence}");
    assert!(
        evidence.contains("its stderr (fd 2, socket:["),
        "{evidence}"
    );
    // Its sibling's orchestrator lives and reads: not an orphan.
    let w = worker(&r, kept).unwrap_or_else(|| panic!("{r:#}"));
    assert_eq!(w["verdict"], "healthy", "{w:#}");
    assert_eq!(out.status.code(), Some(1), "one orphan: WARNING");
    // The table says it too.
    let text = stdout(&run(&[
        "check",
        "--window",
        "0s",
        "--no-registry",
        "--pattern",
        &lost_tag,
    ]));
    assert!(text.contains("is a pipe nothing reads any more"), "{text}");
}

#[cfg(feature = "mlx")]
mod mlx {
    use std::path::Path;
    use std::process::Stdio;
    use std::time::Duration;

    use super::*;
    use crate::util::{alive, mlx_lm_python, root, wait_until};

    /// A process that is not our child (double-forked), ended on drop: SIGTERM, then SIGKILL.
    struct Detached(u32);

    impl Drop for Detached {
        fn drop(&mut self) {
            let pid = self.0 as i32;
            // SAFETY: kill(2) on the PID this test started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while alive(self.0) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// The default registry path: it must not exist for "no registry" to be tested.
    const DEFAULT_REGISTRY: &str = "/tmp/mlx-server/worker_registry.json";

    /// `mlx_lm.server` on the tiny model, as `sh` would start it: output to a file.
    fn server_command(dir: &Path, port: u16) -> Command {
        let hub = dir.join("hub");
        std::fs::create_dir_all(&hub).unwrap();
        let mut cmd = Command::new(mlx_lm_python());
        cmd.args([
            "-m",
            "mlx_lm.server",
            "--model",
            &root("target/mlx-lm-tiny"),
        ])
        .args(["--port", &port.to_string(), "--log-level", "INFO"])
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .env("HF_HUB_CACHE", &hub);
        cmd
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn listening(port: u16) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    /// The parent PID of `pid`, from /proc.
    fn ppid(pid: u32) -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    #[test]
    fn a_stock_mlx_lm_server_is_found_with_no_flags_and_healthy_with_no_registry() {
        assert!(
            !Path::new(DEFAULT_REGISTRY).exists(),
            "this test needs no registry at {DEFAULT_REGISTRY}"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = server_command(dir.path(), port)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let server = Kill(child);
        let pid = server.0.id();
        wait_until(Duration::from_secs(120), "mlx_lm.server to listen", || {
            listening(port)
        });

        // Found with no flags, healthy throughout; idle once its start-up work is done.
        let mut last = None;
        wait_until(Duration::from_secs(60), "the server to be idle", || {
            let out = run(&["check", "--json", "--window", "1s"]);
            let r = json(&out);
            let w = worker(&r, pid).unwrap_or_else(|| panic!("PID {pid} not found: {r:#}"));
            assert_eq!(w["found_by"], "known server: mlx_lm.server", "{w:#}");
            assert_eq!(w["verdict"], "healthy", "{w:#}");
            let idle = w["activity"] == "idle";
            last = Some((out, r));
            idle
        });
        let (out, r) = last.unwrap();
        let w = worker(&r, pid).unwrap();
        assert_eq!(w["name"], "mlx_lm.server");
        assert!(w["findings"].as_array().unwrap().is_empty(), "{w:#}");
        // Output to a file, no channel to the parent: no orchestrator link to lose.
        assert!(
            w["ipc"]["warnings"].as_array().unwrap().is_empty(),
            "{:#}",
            w["ipc"]
        );
        assert_eq!(r["registry"]["state"], "missing");
        assert!(
            r["notes"].to_string().contains("judged standalone"),
            "{r:#}"
        );
        assert_eq!(
            out.status.code().map(|c| c as u64),
            Some(code_of_verdicts(&r)),
            "no registry adds no UNKNOWN: {r:#}"
        );
        if workers(&r).iter().all(|w| w["pid"] == pid) {
            assert_eq!(out.status.code(), Some(0), "{r:#}");
        }
        // The table says how it was found.
        let out = run(&[
            "check",
            "--window",
            "0s",
            "--pattern",
            &format!("port {port}"),
        ]);
        let text = stdout(&out);
        assert!(
            text.contains(&format!(
                "PID {pid} mlx_lm.server: HEALTHY (found by pattern)"
            )),
            "{text}"
        );
        assert_eq!(out.status.code(), Some(0), "{text}");
    }

    #[test]
    fn a_server_re_parented_to_init_is_standalone_not_an_orphan() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("server.log");
        // As launchd or systemd would: its own session, its launcher gone (double fork).
        let server = server_command(dir.path(), port);
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(r#"setsid "$@" >"$LOG" 2>&1 </dev/null & echo $!"#)
            .arg("sh")
            .arg(server.get_program())
            .args(server.get_args())
            .envs(server.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .env("LOG", &log);
        // SAFETY: setsid(2) in the child before exec: async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut sh, || {
                libc::setsid();
                Ok(())
            });
        }
        let out = sh.stdin(Stdio::null()).output().unwrap();
        let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let _server = Detached(pid);
        wait_until(Duration::from_secs(120), "mlx_lm.server to listen", || {
            listening(port)
        });
        let parent = ppid(pid).unwrap();
        assert_ne!(parent, std::process::id(), "re-parented");

        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, r#"{"workers": []}"#).unwrap();
        let port_pattern = format!("port {port}");
        for args in [
            // No registry: no orchestrator.
            vec!["check", "--json", "--window", "0.5s", "--no-registry"],
            // An empty registry lists no worker: nothing lost this one (was ORPHAN, exit 1).
            vec![
                "check",
                "--json",
                "--window",
                "0.5s",
                "--pattern",
                &port_pattern,
                "--registry",
                empty.to_str().unwrap(),
            ],
        ] {
            let out = run(&args);
            let r = json(&out);
            let w = worker(&r, pid).unwrap_or_else(|| panic!("{args:?}: {r:#}"));
            assert_eq!(w["ppid"], parent);
            assert_eq!(w["verdict"], "healthy", "{args:?}: {w:#}");
            assert!(
                w["ipc"]["warnings"].as_array().unwrap().is_empty(),
                "{args:?}: {:#}",
                w["ipc"]
            );
            assert_eq!(
                out.status.code().map(|c| c as u64),
                Some(code_of_verdicts(&r)),
                "{r:#}"
            );
        }
    }

    #[test]
    fn a_python_that_imports_mlx_is_found_as_mlx_loaded() {
        let mut cmd = Command::new(mlx_lm_python());
        cmd.args([
            "-c",
            "import mlx.core, time; print('ready', flush=True); time.sleep(600)",
        ]);
        let py = Background::spawn(cmd);
        py.line(Duration::from_secs(60), |l| l == "ready");
        let pid = py.child.id();
        let out = run(&["check", "--json", "--window", "0s", "--no-registry"]);
        let r = json(&out);
        let w = worker(&r, pid).unwrap_or_else(|| panic!("PID {pid} not found: {r:#}"));
        assert_eq!(w["found_by"], "mlx loaded", "{w:#}");
        assert_eq!(w["verdict"], "healthy", "{w:#}");
        // An explicit pattern searches only what it names.
        let out = run(&[
            "check",
            "--json",
            "--window",
            "0s",
            "--no-registry",
            "--pattern",
            "zz-not-this-python",
        ]);
        assert!(worker(&json(&out), pid).is_none());
    }
}
