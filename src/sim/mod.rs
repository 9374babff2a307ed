//! A simulated MLS made of real, misbehaving processes: the demo and the integration tests.
//!
//! The orchestrator and every worker are this binary in hidden modes, so no Python or model is
//! needed, yet each failure is real: the hung worker is a true two-lock deadlock, the crashed
//! worker dies by SIGABRT after being registered, the orphan is re-parented to init, the leaking
//! worker's memory really grows. Like MLS, every worker holds pipes to the orchestrator, a
//! connected unix socket and a POSIX shared-memory segment, and the orchestrator writes the
//! registry and a server log in MLS's format.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, Utc};
pub mod demo;

use serde::{Deserialize, Serialize};

use crate::model::Status;

/// The roles of the simulated workers, in the order they are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Burns CPU on a request that started long ago: healthy, working.
    Working,
    /// Waits for requests: healthy, idle.
    Idle,
    /// Two threads deadlocked on two locks while a request is in flight: hung.
    Hung,
    /// Registered, then killed by SIGABRT: crashed.
    Crashed,
    /// Allocates memory steadily: leaking.
    Leaking,
    /// Alive, re-parented to init, never registered: orphan.
    Orphan,
    /// Starts the orphan and exits at once (internal).
    OrphanLauncher,
}

impl Role {
    pub const DEMO: [Role; 6] = [
        Role::Working,
        Role::Idle,
        Role::Hung,
        Role::Crashed,
        Role::Leaking,
        Role::Orphan,
    ];

    /// The role a label names (the inverse of [`Role::label`]).
    pub fn from_label(s: &str) -> Option<Role> {
        Role::DEMO
            .into_iter()
            .chain([Role::OrphanLauncher])
            .find(|r| r.label() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Working => "working",
            Role::Idle => "idle",
            Role::Hung => "hung",
            Role::Crashed => "crashed",
            Role::Leaking => "leaking",
            Role::Orphan => "orphan",
            Role::OrphanLauncher => "orphan-launcher",
        }
    }
}

/// The simulated orchestrator's settings (the hidden `demo-orchestrator` command's flags).
#[derive(Debug, Clone)]
pub struct OrchestratorArgs {
    /// Private directory for the socket, registry, log and state file.
    pub dir: PathBuf,
    /// Unique tag in every process name of this simulation.
    pub tag: String,
    /// The orchestrator's own name, so that it matches the discovery pattern like MLS's does.
    pub name: String,
    /// Keep running when the process that started it exits (demo --keep).
    pub detached: bool,
}

/// A simulated worker's settings (the hidden `demo-worker` command's flags).
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    pub role: Role,
    pub name: String,
    pub socket: PathBuf,
    pub shm: String,
    /// For the orphan launcher: the orphan's own name.
    pub orphan_name: Option<String>,
}

/// What the orchestrator tells whoever started it, once everything is in place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub orchestrator_pid: u32,
    pub pgid: u32,
    pub pattern: String,
    pub registry: PathBuf,
    pub log: PathBuf,
    pub workers: Vec<(Role, u32, String)>,
}

pub const STATE_FILE: &str = "state.json";
pub const REGISTRY_FILE: &str = "worker_registry.json";
pub const LOG_FILE: &str = "mls.log";
pub const MODEL: &str = "mlx-community/Qwen2.5-14B-Instruct-4bit";

/// The name of a simulated process: matches both `mlx-server-v3` and the demo's own pattern.
pub fn process_name(tag: &str, what: &str) -> String {
    format!("mlx-server-v3-demo-{tag}-{what}")
}

/// A POSIX shm name for a worker; short, because macOS limits names to 31 bytes.
pub fn shm_name(tag: &str, role: Role) -> String {
    let code = match role {
        Role::Working => "w",
        Role::Idle => "i",
        Role::Hung => "h",
        Role::Crashed => "c",
        Role::Leaking => "l",
        Role::Orphan | Role::OrphanLauncher => "o",
    };
    let tag: String = tag.chars().take(12).collect();
    format!("/mlsdiag-{tag}-{code}")
}

/// The discovery pattern that matches exactly one simulation's processes.
pub fn pattern_for(tag: &str) -> String {
    format!("mlx-server-v3-demo-{tag}-")
}

/// Write `bytes` to `path` atomically: a new temp file in the same directory, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn log_line(t: DateTime<Utc>, level: &str, msg: &str) -> (DateTime<Utc>, String) {
    let local = t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S,%3f");
    (t, format!("{local} - mls.api - {level} - {msg}\n"))
}

/// The server log history that makes each worker's verdict provable, on a timeline that obeys
/// the attribution rules: what happened before a worker's process started belongs to its
/// previous incarnation (another pid, ended by `Worker exited`, replaced by `Worker spawned`),
/// and only what was logged since is evidence about the live process.
fn history(now: DateTime<Utc>, workers: &[(Role, u32, String)]) -> String {
    let m = |mins: i64| now - chrono::Duration::minutes(mins);
    let mut lines = Vec::new();
    for (i, (role, pid, name)) in workers.iter().enumerate() {
        if *role == Role::Orphan {
            continue; // the orchestrator does not know it
        }
        // The previous incarnation: a pid that is not this process's.
        let old = format!("worker={name} pid={}", 90_000 + i);
        for k in 0..3 {
            let start = m(40 - k * 5) + chrono::Duration::seconds(i as i64);
            let id = format!("{}-{k}", role.label());
            lines.push(log_line(start, "INFO", &format!("Chat completion request: {old} id={id} prompt_chars=8912 max_tokens=2000 temperature=0.3")));
            lines.push(log_line(
                start + chrono::Duration::seconds(14),
                "INFO",
                &format!("Chat completion: 421 tokens in 13.9s (30.3 tok/s) {old} id={id}"),
            ));
        }
        if *role == Role::Hung {
            // The incident before this one: the old process hung on req-318 and was replaced.
            lines.push(log_line(m(24), "INFO", &format!("Chat completion request: {old} id=req-318 prompt_chars=8489 max_tokens=2000 temperature=0.3")));
            lines.push(log_line(
                m(14),
                "ERROR",
                &format!("Worker timeout after 600s waiting on shared memory {old} id=req-318"),
            ));
            lines.push(log_line(
                m(1),
                "WARNING",
                &format!("Worker exited {old} signal=SIGKILL"),
            ));
        }
        let tag = format!("worker={name} pid={pid}");
        lines.push(log_line(now, "INFO", &format!("Worker spawned {tag}")));
        let at = |ms: i64| now + chrono::Duration::milliseconds(ms);
        match role {
            Role::Working => lines.push(log_line(at(1), "INFO", &format!("Chat completion request: {tag} id=big-1 prompt_chars=104857 max_tokens=4000 temperature=0.7"))),
            Role::Idle => {
                lines.push(log_line(at(1), "INFO", &format!("Chat completion request: {tag} id=idle-9 prompt_chars=8489 max_tokens=2000 temperature=0.3")));
                lines.push(log_line(at(2), "INFO", &format!("Chat completion: 398 tokens in 0.1s (3980.0 tok/s) {tag} id=idle-9")));
            }
            Role::Hung => lines.push(log_line(at(1), "INFO", &format!("Chat completion request: {tag} id=req-319 prompt_chars=8489 max_tokens=2000 temperature=0.3"))),
            Role::Crashed => {
                lines.push(log_line(at(1), "INFO", &format!("Chat completion request: {tag} id=crash-1 prompt_chars=9120 max_tokens=2000 temperature=0.3")));
                lines.push(log_line(at(2), "ERROR", &format!("Chat completion failed: worker exited with signal 6 (SIGABRT) {tag} id=crash-1")));
            }
            _ => {}
        }
    }
    lines.sort_by_key(|(t, _)| *t);
    lines.into_iter().map(|(_, l)| l).collect()
}

fn spawn_worker(
    role: Role,
    name: &str,
    args: &OrchestratorArgs,
    errlog: &std::fs::File,
    extra: &[&str],
) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("__demo-worker")
        .args(["--role", role.label(), "--name", name])
        .arg("--socket")
        .arg(args.dir.join("mls.sock"))
        .args(["--shm", &shm_name(&args.tag, role)])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(errlog.try_clone()?);
    Ok(cmd.spawn()?)
}

/// Hidden mode `__demo-orchestrator`.
pub fn orchestrator(args: &OrchestratorArgs) -> anyhow::Result<Status> {
    let parent_at_start = std::os::unix::process::parent_id();
    let listener = UnixListener::bind(args.dir.join("mls.sock"))?;
    let errlog = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.dir.join("workers.stderr"))?;
    let mut children = spawn_all(args, &errlog)?;
    // The links stay open for as long as the orchestrator runs, like MLS's channels.
    let mut links: Vec<UnixStream> = Vec::new();
    let mut hello = await_hello(&listener, &mut links)?;
    hello.sort();
    let registry = write_registry(args, &children)?;
    crash_and_reap(&mut children)?;
    let log = args.dir.join(LOG_FILE);
    write_atomic(&log, history(Utc::now(), &hello).as_bytes())?;
    let state = State {
        orchestrator_pid: std::process::id(),
        // SAFETY: getpgrp(2) takes no arguments and cannot fail.
        pgid: unsafe { libc::getpgrp() } as u32,
        pattern: pattern_for(&args.tag),
        registry,
        log,
        workers: hello,
    };
    write_atomic(
        &args.dir.join(STATE_FILE),
        serde_json::to_string_pretty(&state)?.as_bytes(),
    )?;
    serve(args, parent_at_start, state.pgid, &mut children)
}

/// Starts one worker of each demo role (the orphan through its launcher), noting when.
fn spawn_all(
    args: &OrchestratorArgs,
    errlog: &std::fs::File,
) -> anyhow::Result<Vec<(Role, Child, DateTime<Utc>)>> {
    let mut children: Vec<(Role, Child, DateTime<Utc>)> = Vec::new();
    for role in Role::DEMO {
        let spawned = Utc::now();
        let child = if role == Role::Orphan {
            let orphan = process_name(&args.tag, "orphan");
            spawn_worker(
                Role::OrphanLauncher,
                &process_name(&args.tag, "orphan-launcher"),
                args,
                errlog,
                &["--orphan-name", &orphan],
            )?
        } else {
            spawn_worker(
                role,
                &process_name(&args.tag, role.label()),
                args,
                errlog,
                &[],
            )?
        };
        children.push((role, child, spawned));
    }
    Ok(children)
}

/// Accepts the workers' connections into `links` until each has said hello (30 s at most);
/// gives, for each hello, the worker's role, PID and name.
fn await_hello(
    listener: &UnixListener,
    links: &mut Vec<UnixStream>,
) -> anyhow::Result<Vec<(Role, u32, String)>> {
    // Every worker (the orphan included) connects and says hello once it is in its final shape.
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut hello: Vec<(Role, u32, String)> = Vec::new();
    while hello.len() < Role::DEMO.len() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "demo workers did not all start within 30 s"
        );
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut line = String::new();
                BufReader::new(stream.try_clone()?).read_line(&mut line)?;
                let mut it = line.split_whitespace();
                if let (Some("hello"), Some(role), Some(pid), Some(name)) =
                    (it.next(), it.next(), it.next(), it.next())
                {
                    let role = Role::from_label(role)
                        .ok_or_else(|| anyhow::anyhow!("bad hello {line:?}: unknown role"))?;
                    hello.push((role, pid.parse()?, name.to_string()));
                }
                stream.set_read_timeout(None)?;
                links.push(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(hello)
}

/// Writes the registry file and gives its path.
fn write_registry(
    args: &OrchestratorArgs,
    children: &[(Role, Child, DateTime<Utc>)],
) -> anyhow::Result<PathBuf> {
    // The registry lists every worker the orchestrator started itself (not the orphan).
    let entries: Vec<serde_json::Value> = children
        .iter()
        .filter(|(role, _, _)| *role != Role::Orphan)
        .enumerate()
        .map(|(i, (role, child, spawned))| {
            serde_json::json!({
                "pid": child.id(),
                "name": process_name(&args.tag, role.label()),
                "model": MODEL,
                "spawned_at": spawned.to_rfc3339(),
                "port": 8101 + i,
                "status": "ready",
            })
        })
        .collect();
    let registry = args.dir.join(REGISTRY_FILE);
    write_atomic(
        &registry,
        serde_json::to_string_pretty(&serde_json::json!({ "workers": entries }))?.as_bytes(),
    )?;
    Ok(registry)
}

/// Tells the crashing worker to crash and reaps it, and reaps the orphan's launcher.
fn crash_and_reap(children: &mut [(Role, Child, DateTime<Utc>)]) -> anyhow::Result<()> {
    // Now that it is registered, the crashing worker crashes; the launcher has already exited.
    for (role, child, _) in children.iter_mut() {
        match role {
            Role::Crashed => {
                child
                    .stdin
                    .as_mut()
                    .map(|s| s.write_all(b"crash\n"))
                    .transpose()?;
                child.wait()?;
            }
            Role::Orphan => {
                child.wait()?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs until the process that started the orchestrator is gone (unless detached), reaping
/// children; then removes the directory and kills the whole process group.
fn serve(
    args: &OrchestratorArgs,
    parent_at_start: u32,
    pgid: u32,
    children: &mut [(Role, Child, DateTime<Utc>)],
) -> anyhow::Result<Status> {
    // Serve: hold every channel open; end the whole simulation if our starter vanished.
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if !args.detached && std::os::unix::process::parent_id() != parent_at_start {
            let _ = std::fs::remove_dir_all(&args.dir);
            // SAFETY: kill(2) on our own process group; every process in it is ours.
            unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
            return Ok(Status::Ok);
        }
        for (_, child, _) in children.iter_mut() {
            let _ = child.try_wait();
        }
    }
}

/// A POSIX shared-memory segment, like `multiprocessing.shared_memory` creates; the fd stays open.
fn open_shm(name: &str) -> anyhow::Result<i32> {
    let cname = CString::new(name)?;
    // SAFETY: cname is a valid NUL-terminated string; flags and mode are constants.
    let fd = unsafe { libc::shm_open(cname.as_ptr(), libc::O_CREAT | libc::O_RDWR, 0o600) };
    anyhow::ensure!(
        fd >= 0,
        "shm_open {name}: {}",
        std::io::Error::last_os_error()
    );
    // The name is unlinked at once so nothing is left in /dev/shm; the open fd keeps the object.
    // SAFETY: fd is the descriptor just opened; 1 MiB is a valid length.
    unsafe {
        libc::ftruncate(fd, 1 << 20);
    }
    // SAFETY: mapping a fresh shared segment of the size just set; the result is checked.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            1 << 20,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    anyhow::ensure!(
        addr != libc::MAP_FAILED,
        "mmap {name}: {}",
        std::io::Error::last_os_error()
    );
    Ok(fd)
}

fn unlink_shm(name: &str) {
    if let Ok(c) = CString::new(name) {
        // SAFETY: c is a valid NUL-terminated name.
        unsafe { libc::shm_unlink(c.as_ptr()) };
    }
}

/// Exit when the orchestrator's end of the socket closes, like a worker whose server went away.
fn exit_when_link_closes(mut link: UnixStream) {
    std::thread::Builder::new()
        .name("ipc-link".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            while matches!(link.read(&mut buf), Ok(n) if n > 0) {}
            std::process::exit(0);
        })
        .expect("spawn link thread");
}

/// Hidden mode `__demo-worker`.
pub fn worker(args: &WorkerArgs) -> anyhow::Result<Status> {
    if args.role == Role::OrphanLauncher {
        return launch_orphan(args);
    }
    let _shm_fd = open_shm(&args.shm)?;
    let link = UnixStream::connect(&args.socket)?;
    unlink_shm(&args.shm);
    let mut hello = link.try_clone()?;
    let mut say_hello = move || {
        writeln!(
            hello,
            "hello {} {} {}",
            args.role.label(),
            std::process::id(),
            args.name
        )
    };
    exit_when_link_closes(link);
    match args.role {
        Role::Working => burn_cpu(&mut say_hello),
        Role::Idle | Role::Orphan | Role::Crashed => wait_for_work(args.role, &mut say_hello),
        Role::Hung => deadlock(&mut say_hello),
        Role::Leaking => leak(&mut say_hello),
        Role::OrphanLauncher => unreachable!("handled above"),
    }
}

/// The orphan launcher: starts the orphan and returns at once, so that the orphan is re-parented.
fn launch_orphan(args: &WorkerArgs) -> anyhow::Result<Status> {
    // Start the orphan with our pipes and exit: it is re-parented to init.
    let exe = std::env::current_exe()?;
    let orphan_name = args
        .orphan_name
        .clone()
        .unwrap_or_else(|| args.name.replace("-launcher", ""));
    Command::new(exe)
        .args([
            "__demo-worker",
            "--role",
            "orphan",
            "--name",
            &orphan_name,
            "--shm",
            &args.shm,
        ])
        .arg("--socket")
        .arg(&args.socket)
        .spawn()?;
    Ok(Status::Ok)
}

/// The working worker: says hello, then uses half a core for ever.
fn burn_cpu(say_hello: &mut dyn FnMut() -> std::io::Result<()>) -> anyhow::Result<Status> {
    say_hello()?;
    // Half a core: clearly progressing, gentle on a shared 2-core CI machine.
    let mut x: u64 = 1;
    loop {
        let until = Instant::now() + Duration::from_millis(20);
        while Instant::now() < until {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        std::hint::black_box(x);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The idle, orphan and crashing workers: say hello, then wait for requests on stdin; the
/// crashing one aborts when told `crash`.
fn wait_for_work(
    role: Role,
    say_hello: &mut dyn FnMut() -> std::io::Result<()>,
) -> anyhow::Result<Status> {
    say_hello()?;
    // Wait for work on stdin, like a worker blocked reading its request pipe.
    for line in std::io::stdin().lock().lines() {
        if line?.trim() == "crash" && role == Role::Crashed {
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: setrlimit with a valid struct: no core file for this deliberate crash.
            unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
            std::process::abort();
        }
    }
    // stdin closed: the orchestrator is gone, so is the orphan's reason to idle. Keep
    // the orphan alive (that is its point) until its socket closes.
    if role == Role::Orphan {
        loop {
            std::thread::park();
        }
    }
    Ok(Status::Ok)
}

/// The hung worker: two threads deadlock on two locks, then it says hello and waits on them.
fn deadlock(say_hello: &mut dyn FnMut() -> std::io::Result<()>) -> anyhow::Result<Status> {
    let a = Arc::new(Mutex::new(()));
    let b = Arc::new(Mutex::new(()));
    let both = Arc::new(Barrier::new(3));
    let spawn = |first: Arc<Mutex<()>>, second: Arc<Mutex<()>>, name: &str, both: Arc<Barrier>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let _g1 = first.lock().unwrap();
                both.wait(); // both threads hold their first lock...
                let _g2 = second.lock().unwrap(); // ...and wait forever for the other's
            })
    };
    let t1 = spawn(a.clone(), b.clone(), "generate", both.clone())?;
    let t2 = spawn(b, a, "kv-cache", both.clone())?;
    both.wait();
    // Say hello only once the deadlock is certain: each thread is past its first lock.
    std::thread::sleep(Duration::from_millis(50));
    say_hello()?;
    let _ = t1.join();
    let _ = t2.join();
    Ok(Status::Ok)
}

/// The leaking worker: says hello, then keeps 2 MiB more every 100 ms, up to 2 GiB.
fn leak(say_hello: &mut dyn FnMut() -> std::io::Result<()>) -> anyhow::Result<Status> {
    say_hello()?;
    // 2 MiB kept every 100 ms (about 1.2 GiB/min), touched so it is resident, the way a
    // worker keeping each request's buffers leaks in steps; it stops at 2 GiB and holds.
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        if held.len() < 1024 {
            held.push(vec![1u8; 2 << 20]);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
