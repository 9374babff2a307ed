//! The worker module's own unit tests (python/tests, standard library only): the state
//! directory fallbacks, the watchdog, and the import hooks of `mlsdiag run` on a fake mlx-lm.

use std::process::Command;

use crate::util::root;

#[test]
fn the_python_module_unit_tests_pass() {
    let out = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            &root("python/tests"),
            "-v",
        ])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK"), "{text}");
}

/// A worker that keeps its record in the per-user directory (as under `mlsdiag run`) is read
/// by `check` with no registry; a record there that is not the worker's own is refused.
#[test]
fn check_finds_a_record_by_pid_in_the_per_user_directory_without_a_registry() {
    let tag = format!("mlsdiag-userdir-test-{}", std::process::id());
    let code = format!(
        "import sys, time; sys.path.insert(0, {:?}); import mlsdiag\n\
         d = mlsdiag.enable(state_dir=None, stacks=False)\n\
         g = d.begin('req-7'); [d.token(g) for _ in range(5)]\n\
         print(d.progress_path, flush=True); time.sleep(60)  # {tag}",
        root("python")
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &code]);
    let proc = crate::util::Background::spawn(cmd);
    let (path, _) = proc.line(std::time::Duration::from_secs(30), |l| {
        l.contains("progress-")
    });
    let check = || {
        crate::util::json(&crate::util::run(&[
            "check",
            "--json",
            "--pattern",
            &tag,
            "--registry",
            "/nonexistent/mlsdiag-test/registry.json",
            "--window",
            "500ms",
        ]))
    };
    let r = check();
    let w = &r["workers"][0];
    assert_eq!(w["progress"]["source"], path.trim(), "{r:#}");
    assert_eq!(w["progress"]["tokens"], 5, "{r:#}");
    assert_eq!(w["progress"]["request"], "req-7", "{r:#}");
    // Writable by others: not the worker's own file, not followed.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path.trim(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = check();
    let w = &r["workers"][0];
    assert!(w["progress"].is_null(), "{r:#}");
    assert!(
        w["notes"].to_string().contains("not the worker's own file"),
        "{r:#}"
    );
}

/// `mlsdiag run` with no mlx-lm at all: the command runs in its place with the hook installed,
/// its exit status is run's, and a command that cannot start is 127 (not found) as for `env`.
#[test]
fn run_executes_the_command_with_the_hook_and_keeps_its_exit_status() {
    let child = Command::new(crate::util::bin())
        .args(["run", "--watchdog", "90s", "--", "python3", "-c"])
        .arg(
            "import os, sys, mlsdiag._auto as a\n\
             print(a._state['installed'], os.environ['MLSDIAG_WATCHDOG'], os.getpid())\n\
             print(os.path.dirname(os.path.dirname(a.__file__)))\n\
             sys.exit(7)",
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{text}");
    let mut lines = text.lines();
    // Executed in run's place: the same PID.
    assert_eq!(
        lines.next(),
        Some(format!("True 90 {pid}").as_str()),
        "{text}"
    );
    let dir = lines.next().unwrap();
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert!(
        dir.starts_with(&format!("/tmp/mlsdiag-{uid}/python-")),
        "{dir}"
    );
    let out = Command::new(crate::util::bin())
        .args(["run", "--", "/nonexistent/mlsdiag-test/server"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run"));
}
