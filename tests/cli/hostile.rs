//! Hostile input and untrusted places (issue 14): FIFOs and devices where files are expected,
//! a gzip bomb, absurd durations, a registry others can write, and SIGUSR1 to a worker that
//! does not handle it. Every command here must finish, refuse with the file named, and never
//! act on someone else's word.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Sim, alive, bin, json, mkfifo, run_within, source, stderr, stdout, write};

/// `mlsdiag snapshot` of the simulation's idle worker into `dir`.
fn snapshot_idle(sim: &Sim, dir: &str) -> Output {
    let idle = sim.pid("idle").to_string();
    run_within(
        Duration::from_secs(30),
        &[
            "snapshot",
            "--window",
            "0s",
            "--pattern",
            sim.pattern(),
            "--registry",
            sim.registry(),
            "--dir",
            dir,
            &idle,
        ],
    )
}

#[test]
fn fifos_and_devices_where_files_belong_are_refused_without_hanging() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("planted");
    mkfifo(&fifo);
    let f = fifo.to_str().unwrap();
    let limit = Duration::from_secs(30);
    // The registry (its default lives in /tmp): reported, and the check goes on by pattern.
    let out = run_within(
        limit,
        &[
            "check",
            "--window",
            "0s",
            "--pattern",
            "zz-none",
            "--registry",
            f,
        ],
    );
    assert!(
        stdout(&out).contains("is a FIFO (named pipe), not a regular file"),
        "{}",
        stdout(&out)
    );
    for args in [
        vec!["logs", f],
        vec!["logs", "/dev/zero"],
        vec![
            "check",
            "--window",
            "0s",
            "--pattern",
            "zz-none",
            "--log",
            "/dev/zero",
        ],
        vec!["logs", "--format-file", f, "/dev/null"],
        vec!["--fixture", f, "check"],
        vec!["fleet", "--hosts", f],
        vec![
            "repro",
            "--endpoint",
            "http://127.0.0.1:9/v1",
            "--requests",
            f,
        ],
    ] {
        let out = run_within(limit, &args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("not a regular file") && (err.contains(f) || err.contains("/dev/")),
            "{args:?}: {err}"
        );
    }
    // A FIFO among the snapshots is skipped (only regular files are snapshots); history answers.
    let snaps = d.path().join("snaps");
    std::fs::create_dir(&snaps).unwrap();
    mkfifo(&snaps.join("worker_1_20260101_000000.json"));
    let out = run_within(
        limit,
        &["history", "--dir", snaps.to_str().unwrap(), "--json"],
    );
    assert!(json(&out)["workers"].as_array().unwrap().is_empty());
}

#[test]
fn an_endless_gzip_line_is_read_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let bomb = d.path().join("bomb.log.gz");
    // 600 MiB of one line between two events, compressed to a few MB.
    let py = r#"
import sys, zlib
c = zlib.compressobj(1, zlib.DEFLATED, 31)
out = open(sys.argv[1], "wb")
out.write(c.compress(b"2026-01-05 00:00:00,000 - mls.api - INFO - Chat completion request: worker=w1 id=r1\n"))
chunk = b"A" * (1 << 20)
for _ in range(600):
    out.write(c.compress(chunk))
out.write(c.compress(b"\n2026-01-05 00:00:01,000 - mls.api - INFO - Chat completion: 5 tokens in 1.0s (5.0 tok/s) worker=w1 id=r1\n"))
out.write(c.flush())
"#;
    assert!(
        Command::new("python3")
            .args(["-c", py, bomb.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    // Under a 512 MiB address-space limit: a line kept whole would not fit.
    let out = Command::new("sh")
        .args([
            "-c",
            "ulimit -v 524288; exec \"$0\" logs --json \"$1\"",
            bin().to_str().unwrap(),
            bomb.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = json(&out);
    assert_eq!(
        r["totals"]["completed"], 1,
        "both events around the endless line are read"
    );
}

#[test]
fn absurd_durations_are_a_clear_error_not_a_panic() {
    for flag in [
        "--window",
        "--hung-after",
        "--leak-window",
        "--leak-min-span",
    ] {
        let out = run_within(Duration::from_secs(10), &["check", flag, "1e20"]);
        assert_ne!(
            out.status.code(),
            Some(101),
            "{flag} panicked: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("at most 365d"),
            "{flag}: {}",
            stderr(&out)
        );
    }
}

/// A copy of the simulation's registry and log in a directory, made untrusted by `spoil`.
fn planted(sim: &Sim, spoil: impl Fn(&Path, &Path, &Path)) -> (tempfile::TempDir, String, String) {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = d.path().join("mlx-server");
    std::fs::create_dir(&dir).unwrap();
    let reg = dir.join("worker_registry.json");
    let log = dir.join("mls.log");
    std::fs::copy(sim.registry(), &reg).unwrap();
    std::fs::copy(sim.log(), &log).unwrap();
    spoil(&dir, &reg, &log);
    (d, reg.display().to_string(), log.display().to_string())
}

fn watch_restart(sim: &Sim, reg: &str, log: &str, snaps: &Path) -> String {
    let out = run_within(
        Duration::from_secs(60),
        &[
            "watch",
            "--pattern",
            sim.pattern(),
            "--registry",
            reg,
            "--log",
            log,
            "--rounds",
            "1",
            "--window",
            "300ms",
            "--hung-after",
            "200ms",
            "--restart-hung",
            "--grace",
            "2s",
            "--dir",
            snaps.to_str().unwrap(),
        ],
    );
    stdout(&out)
}

#[test]
fn watch_never_acts_on_evidence_others_can_write() {
    let sim = Sim::start();
    let hung = sim.pid("hung");
    let snaps = tempfile::tempdir().unwrap();
    // A registry and log anyone can rewrite: the hang is reported, the worker is not touched.
    let (_d, reg, log) = planted(&sim, |_, reg, log| {
        std::fs::set_permissions(reg, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::set_permissions(log, std::fs::Permissions::from_mode(0o666)).unwrap();
    });
    let out = watch_restart(&sim, &reg, &log, snaps.path());
    let line = out
        .lines()
        .find(|l| l.contains(&format!("PID {hung} ")))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("→ hung"), "{line}");
    assert!(
        line.contains("[restart: not done: the evidence is untrusted (registry:"),
        "{line}"
    );
    assert!(line.contains("writable by everyone"), "{line}");
    assert!(alive(hung));
    // check says so too.
    let r = json(&run_within(
        Duration::from_secs(30),
        &[
            "check",
            "--json",
            "--window",
            "300ms",
            "--hung-after",
            "200ms",
            "--pattern",
            sim.pattern(),
            "--registry",
            &reg,
            "--log",
            &log,
        ],
    ));
    assert_eq!(
        r["untrusted"].as_array().unwrap().len(),
        2,
        "{:#}",
        r["untrusted"]
    );
    assert!(
        r["notes"]
            .to_string()
            .contains("WARNING untrusted evidence")
    );

    // Another user's directory (as root, a real second uid owns it).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let (_d, reg, log) = planted(&sim, |dir, reg, log| {
            for p in [dir, reg, log] {
                std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
            }
        });
        let out = watch_restart(&sim, &reg, &log, snaps.path());
        assert!(out.contains("owned by uid 65534"), "{out}");
        assert!(!out.contains("sent SIGTERM"), "{out}");
        assert!(alive(hung));
    }
    // The same files, trusted: the restart happens.
    let (_d, reg, log) = planted(&sim, |_, _, _| {});
    let out = watch_restart(&sim, &reg, &log, snaps.path());
    assert!(
        out.contains(&format!("[restart: sent SIGTERM to PID {hung}")),
        "{out}"
    );
}

#[test]
fn an_untrusted_registry_cannot_point_at_a_heartbeat() {
    let sim = Sim::start();
    let d = tempfile::tempdir().unwrap();
    let reg = d.path().join("registry.json");
    write(
        &reg,
        &format!(
            r#"[{{"pid":{},"name":"{}idle","heartbeat":"/etc/hostname"}}]"#,
            sim.pid("idle"),
            sim.pattern()
        ),
    );
    std::fs::set_permissions(&reg, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = json(&run_within(
        Duration::from_secs(30),
        &[
            "check",
            "--json",
            "--window",
            "300ms",
            "--pattern",
            &format!("{}idle", sim.pattern()),
            "--registry",
            reg.to_str().unwrap(),
        ],
    ));
    let w = &r["workers"][0];
    assert_eq!(w["verdict"], "healthy", "{w:#}");
    assert!(
        w["notes"]
            .to_string()
            .contains("heartbeat /etc/hostname not followed: the registry is untrusted"),
        "{w:#}"
    );
}

#[test]
fn stacks_signal_never_sends_sigusr1_to_a_worker_without_a_handler() {
    let mut py = Command::new("python3")
        .args(["-c", "import time; print('up', flush=True); time.sleep(60)"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 3];
    std::io::Read::read_exact(py.stdout.as_mut().unwrap(), &mut first).unwrap();
    let pid = py.id();
    let d = tempfile::tempdir().unwrap();
    let dump = d.path().join("dump.txt");
    write(&dump, "");
    let out = run_within(
        Duration::from_secs(30),
        &[
            "stacks",
            &pid.to_string(),
            "--signal",
            "--faulthandler",
            dump.to_str().unwrap(),
            "--json",
        ],
    );
    let r = json(&out);
    let fh = source(&r, "faulthandler");
    let alive_after = alive(pid) && py.try_wait().unwrap().is_none();
    let _ = py.kill();
    let _ = py.wait();
    assert!(alive_after, "SIGUSR1's default action ended the worker");
    assert!(
        fh["detail"]
            .as_str()
            .unwrap()
            .contains("has no SIGUSR1 handler"),
        "{fh:#}"
    );
}

#[test]
fn output_directories_refuse_symlinks_with_a_trailing_slash_and_open_snapshot_dirs() {
    let sim = Sim::start();
    let d = tempfile::tempdir().unwrap();
    let real = d.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let slashed = format!("{}/", link.display());
    let snap = |dir: &str| snapshot_idle(&sim, dir);
    let o = snap(&slashed);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    let o = run_within(
        Duration::from_secs(30),
        &[
            "check",
            "--window",
            "0s",
            "--pattern",
            sim.pattern(),
            "--registry",
            sim.registry(),
            "--textfile",
            &slashed,
        ],
    );
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    assert!(
        std::fs::read_dir(&real).unwrap().next().is_none(),
        "nothing written through the link"
    );
    // A snapshot directory anyone can write is refused with the reason.
    let open = d.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = snap(open.to_str().unwrap());
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("writable by others (mode 777)"),
        "{}",
        stderr(&o)
    );
    // And a private one works.
    let private = d.path().join("private");
    let o = snap(private.to_str().unwrap());
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(&private).unwrap().count(),
        2,
        "a .json and its .txt"
    );
}

#[test]
fn terminal_escapes_in_a_log_never_reach_the_terminal() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("mls.log");
    write(
        &log,
        "2026-01-05 23:13:25,007 - mls.api - INFO - Chat completion request: worker=w1\x1b]0;pwned\x07 id=r\x1b[2J1 prompt_chars=9\n\
         2026-01-05 23:14:25,007 - mls.api - ERROR - Worker timeout after 60s worker=w1\x1b]0;pwned\x07 id=r\x1b[2J1\n\
         2026-01-05 23:15:25,007 - mls.api - INFO - Chat completion request: worker=w1 id=ok\x1b[31m prompt_chars=9\n\
         2026-01-05 23:15:26,007 - mls.api - INFO - Chat completion: 5 tokens in 1.0s (5.0 tok/s) worker=w1 id=ok\x1b[31m\n",
    );
    let out = run_within(Duration::from_secs(30), &["logs", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(text.contains("request r?[2J1"), "{text}");
}

/// A tiny tmpfs, unmounted on drop (root only: mounting needs CAP_SYS_ADMIN).
struct Tmpfs(std::path::PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root: mounts a tiny tmpfs (scripts/test runs the ignored tests as root)"]
fn on_a_full_disk_a_snapshot_lands_whole_or_not_at_all() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "needs root: mounts a tiny tmpfs: run as root with -- --ignored"
    );
    let sim = Sim::start();
    let d = tempfile::tempdir().unwrap();
    let mnt = d.path().join("full");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount a 64 KiB tmpfs");
    let _guard = Tmpfs(mnt.clone());
    let snaps = mnt.join("snaps");
    std::fs::create_dir(&snaps).unwrap();
    std::fs::set_permissions(&snaps, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Fill it to the last byte.
    let mut filler = std::fs::File::create(mnt.join("filler")).unwrap();
    while std::io::Write::write_all(&mut filler, &[0u8; 4096]).is_ok() {}
    drop(filler);
    let out = snapshot_idle(&sim, snaps.to_str().unwrap());
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
    let left: Vec<String> = std::fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        left.is_empty(),
        "half a snapshot or a temp file was left: {left:?}"
    );
    // With room again, both files land.
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let out = snapshot_idle(&sim, snaps.to_str().unwrap());
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&snaps).unwrap().count(), 2);
}

#[test]
#[ignore = "needs root: runs watch as a second user (scripts/test runs the ignored tests as root)"]
fn a_restart_without_the_right_to_signal_is_reported_as_not_done() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "needs root: runs watch as a second user: run as root with -- --ignored"
    );
    let sim = Sim::start();
    let hung = sim.pid("hung");
    // Evidence a second user may read and trust (root's, not writable by others), and a
    // snapshot directory of their own; the worker is root's, so their SIGTERM fails (EPERM).
    let (_d, reg, log) = planted(&sim, |dir, reg, log| {
        for p in [reg, log] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    });
    let snaps = tempfile::tempdir().unwrap();
    std::fs::set_permissions(snaps.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let own = snaps.path().join("nobody");
    std::fs::create_dir(&own).unwrap();
    std::os::unix::fs::chown(&own, Some(65534), Some(65534)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin())
        .args([
            "watch",
            "--pattern",
            sim.pattern(),
            "--registry",
            &reg,
            "--log",
            &log,
            "--rounds",
            "1",
            "--window",
            "300ms",
            "--hung-after",
            "200ms",
            "--restart-hung",
            "--grace",
            "1s",
            "--dir",
            own.to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("PID {hung} ")))
        .unwrap_or_else(|| panic!("{text}\n{}", stderr(&out)));
    assert!(line.contains("→ hung"), "{line}");
    assert!(
        line.contains(&format!("[restart: not done: SIGTERM to PID {hung} failed")),
        "{line}"
    );
    assert!(!line.contains("sent SIGTERM"), "{line}");
    assert!(alive(hung));
}

#[test]
fn a_faulthandler_path_that_is_a_fifo_cannot_hang_check() {
    let sim = Sim::start();
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("faulthandler.txt");
    mkfifo(&fifo);
    let reg = d.path().join("registry.json");
    write(
        &reg,
        &format!(
            r#"[{{"pid":{},"name":"{}hung","faulthandler":"{}"}}]"#,
            sim.pid("hung"),
            sim.pattern(),
            fifo.display()
        ),
    );
    let r = json(&run_within(
        Duration::from_secs(60),
        &[
            "check",
            "--json",
            "--window",
            "300ms",
            "--hung-after",
            "200ms",
            "--pattern",
            &format!("{}hung", sim.pattern()),
            "--registry",
            reg.to_str().unwrap(),
            "--log",
            sim.log(),
        ],
    ));
    assert_eq!(r["workers"][0]["verdict"], "hung", "{r:#}");
}

#[test]
fn a_hook_that_never_reads_a_large_finding_is_still_killed_on_time() {
    // A worker whose command line alone (100 KB) outgrows the pipe buffer: the finding written to
    // the hook's stdin cannot fit, and the hook below never reads it.
    let tag = format!("hookbig-{}", std::process::id());
    let long = format!("{tag}-{}", "x".repeat(100_000));
    let mut worker = Command::new("python3")
        .args(["-c", "import time; time.sleep(600)", &long])
        .spawn()
        .unwrap();
    // Once Python's start-up is over, its CPU time stands still.
    let cpu = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .skip(11)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
    };
    let pid = worker.id();
    let mut last = cpu(pid);
    crate::util::wait_until(Duration::from_secs(20), "the worker to sit still", || {
        std::thread::sleep(Duration::from_millis(300));
        let now = cpu(pid);
        let still = now == last;
        last = now;
        still
    });
    let d = tempfile::tempdir().unwrap();
    let reg = d.path().join("registry.json");
    write(
        &reg,
        &format!(r#"[{{"pid":{},"name":"w-big"}}]"#, worker.id()),
    );
    let log = d.path().join("mls.log");
    let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
    write(
        &log,
        &format!(
            "{now} - mls.api - INFO - Chat completion request: worker=w-big id=r1 prompt_chars=9\n"
        ),
    );
    let started = Instant::now();
    let out = run_within(
        Duration::from_secs(20),
        &[
            "watch",
            "--pattern",
            &tag,
            "--registry",
            reg.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--rounds",
            "1",
            "--window",
            "300ms",
            "--hung-after",
            "100ms",
            "--no-snapshot",
            "--on-finding",
            "sleep 25",
            "--hook-timeout",
            "1s",
        ],
    );
    let took = started.elapsed();
    let _ = worker.kill();
    let _ = worker.wait();
    let text = stdout(&out);
    assert!(text.contains("→ hung"), "{text}");
    assert!(text.contains("[hook: killed after 1s"), "{text}");
    assert!(took < Duration::from_secs(10), "the loop was held {took:?}");
}

#[test]
fn a_registry_name_of_megabytes_is_bounded_in_the_table_and_the_json() {
    // A live worker the registry names with 8 MiB (issue 29: 63 MiB took `check` 90 s, as
    // comfy-table split the cell a piece at a time; the time is in docs/benchmarks.md).
    let tag = format!("bigname-{}", std::process::id());
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import time; time.sleep(600)", &tag]);
    let worker = crate::util::Background::spawn(cmd);
    let d = tempfile::tempdir().unwrap();
    let reg = d.path().join("registry.json");
    let name = format!("{tag}-{}", "w".repeat(8 << 20));
    write(
        &reg,
        &serde_json::json!([{"pid": worker.child.id(), "name": name, "model": name}]).to_string(),
    );
    let run = |extra: &[&str]| {
        let mut args = vec![
            "check",
            "--window",
            "0s",
            "--pattern",
            &tag,
            "--registry",
            reg.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run_within(Duration::from_secs(120), &args)
    };
    let text = stdout(&run(&[]));
    assert!(text.len() < 16 << 10, "{} bytes of text", text.len());
    // The name is shown cut, with an ellipsis, in the table and in the worker's heading.
    let shown: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.starts_with(&tag))
        .map(|w| w.trim_end_matches(':'))
        .collect();
    assert_eq!(shown.len(), 2, "{text}");
    for s in shown {
        assert!(s.ends_with('…') && s.chars().count() <= 256, "{s}");
    }
    // JSON is not cut for a terminal, but the registry kept at most 4 KiB of each field (its
    // first bytes, `…` and a hash of the whole).
    let report = json(&run(&["--json"]));
    let kept = report["workers"][0]["name"].as_str().unwrap();
    assert!(kept.starts_with(&format!("{tag}-www")), "{kept:.80}");
    assert!(
        kept.len() <= 4096 + 19 && kept.contains('…'),
        "{}",
        kept.len()
    );
    drop(worker);
}
