//! `fleet`'s work: `mlsdiag check --json` on every host over the system's OpenSSH (batch mode,
//! a connect timeout, an overall deadline, its own process group so a timeout ends all of it),
//! with bounded parallelism, merged into one report. A host that cannot be reached, or has no
//! mlsdiag, is its own UNKNOWN row with the reason.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::model::{FleetReport, HostResult, RemoteWorker, SCHEMA_VERSION, Status};

/// How to reach the hosts and what to run there.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub ssh_config: Option<PathBuf>,
    /// Extra `ssh -o` options.
    pub ssh_options: Vec<String>,
    /// Seconds ssh may take to connect.
    pub connect_timeout: u32,
    /// The most one host may take in all.
    pub timeout: Duration,
    /// Hosts checked at once.
    pub jobs: usize,
    /// The remote mlsdiag (a name on the remote PATH, or a path).
    pub remote_command: String,
    /// Arguments for the remote `check`.
    pub check_args: Vec<String>,
}

/// Every host checked, in the order given.
pub fn check_fleet(hosts: &[String], opts: &FleetOptions) -> anyhow::Result<FleetReport> {
    let remote = remote_command(opts)?;
    let results: Mutex<Vec<Option<HostResult>>> =
        Mutex::new((0..hosts.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.clamp(1, hosts.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(host) = hosts.get(i) else { return };
                    let r = check_host(opts, host, &remote);
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                }
            });
        }
    });
    let hosts: Vec<HostResult> = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let status = hosts.iter().fold(Status::Ok, |s, h| s.worst(h.status));
    let report = FleetReport {
        schema_version: SCHEMA_VERSION,
        command: "fleet",
        status,
        exit_code: status.code(),
        hosts,
    };
    Ok(report)
}

#[derive(Debug, Deserialize)]
struct RemoteCheck {
    status: Status,
    #[serde(default)]
    workers: Vec<RemoteWorker>,
    #[serde(default)]
    notes: Vec<String>,
}

/// The command line the remote shell runs, each word quoted.
pub fn remote_command(opts: &FleetOptions) -> anyhow::Result<String> {
    let mut words = vec![opts.remote_command.clone(), "check".into(), "--json".into()];
    words.extend(opts.check_args.iter().cloned());
    let quoted = shlex::try_join(words.iter().map(String::as_str))
        .map_err(|e| anyhow::anyhow!("cannot quote the remote command: {e}"))?;
    Ok(quoted)
}

/// The most of a host's output read (a check report is kilobytes).
const OUTPUT_LIMIT: u64 = 64 << 20;

pub fn ssh_command(opts: &FleetOptions, host: &str, remote: &str) -> Command {
    let mut c = Command::new("ssh");
    if let Some(cfg) = &opts.ssh_config {
        c.arg("-F").arg(cfg);
    }
    c.args(["-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("ConnectTimeout={}", opts.connect_timeout))
        .args(["-o", "LogLevel=ERROR"]);
    for o in &opts.ssh_options {
        c.arg("-o").arg(o);
    }
    c.arg("-T").arg(host).arg("--").arg(remote);
    c
}

/// Runs one host's check: never longer than `--timeout`.
fn check_host(opts: &FleetOptions, host: &str, remote: &str) -> HostResult {
    let started = Instant::now();
    let mut result = HostResult {
        host: host.to_string(),
        status: Status::Unknown,
        reason: None,
        workers: vec![],
        notes: vec![],
        seconds: 0.0,
        check: None,
    };
    let mut child = match spawn_ssh(opts, host, remote) {
        Ok(c) => c,
        Err(e) => {
            result.reason = Some(format!("cannot run ssh: {e}"));
            return result;
        }
    };
    // Bounded reads on their own threads, collected with a deadline.
    let out = read_bounded(Box::new(child.stdout.take().expect("piped")));
    let err = read_bounded(Box::new(child.stderr.take().expect("piped")));
    let status = wait_or_kill(&mut child, started, opts.timeout);
    // Whatever ssh left behind in its group goes too.
    // SAFETY: kill(2) on the process group ssh was started in (ESRCH when it is empty).
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    result.seconds = started.elapsed().as_secs_f64();
    let stdout = take_output(out);
    let stderr = String::from_utf8_lossy(&take_output(err)).into_owned();
    let last_words = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .to_string();
    let Some(status) = status else {
        result.reason = Some(format!("no answer within {:?} (--timeout)", opts.timeout));
        return result;
    };
    if let Some(reason) = ssh_failure(opts, host, status, &last_words) {
        result.reason = Some(reason);
        return result;
    }
    read_report(&mut result, &stdout, status, &last_words);
    result
}

/// Starts ssh for one host, output piped, in its own process group.
fn spawn_ssh(opts: &FleetOptions, host: &str, remote: &str) -> std::io::Result<Child> {
    // Its own process group: a timeout ends ssh and everything it started (a ProxyCommand
    // that never exits would otherwise hold the pipes open, and the reads below, forever).
    use std::os::unix::process::CommandExt;
    ssh_command(opts, host, remote)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
}

/// Reads at most `OUTPUT_LIMIT` bytes of `r` on a thread of its own; the bytes come on the channel.
fn read_bounded(r: Box<dyn Read + Send>) -> Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.take(OUTPUT_LIMIT).read_to_end(&mut v);
        let _ = tx.send(v);
    });
    rx
}

/// What a reader thread read, waiting at most 2 s for it (nothing when it does not come).
fn take_output(rx: Receiver<Vec<u8>>) -> Vec<u8> {
    rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default()
}

/// Waits for ssh until `timeout` after `started`; past it (or when waiting fails) kills it, None.
fn wait_or_kill(child: &mut Child, started: Instant, timeout: Duration) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    }
}

/// The reason for an exit that ssh itself reports: the host unreachable (255), or no mlsdiag
/// there (127); None for any other exit.
fn ssh_failure(
    opts: &FleetOptions,
    host: &str,
    status: ExitStatus,
    last_words: &str,
) -> Option<String> {
    match status.code() {
        Some(255) => Some(format!(
            "unreachable: {}",
            if last_words.is_empty() {
                "ssh failed"
            } else {
                last_words
            }
        )),
        Some(127) => Some(format!(
            "{} not found on {host} (install it, or give --remote-command PATH): {last_words}",
            opts.remote_command
        )),
        _ => None,
    }
}

/// Fills `result` from the remote check's JSON report, or says why there was none.
fn read_report(result: &mut HostResult, stdout: &[u8], status: ExitStatus, last_words: &str) {
    let value: Option<serde_json::Value> = serde_json::from_slice(stdout).ok();
    let parsed = value
        .clone()
        .and_then(|v| serde_json::from_value::<RemoteCheck>(v).ok());
    match parsed {
        Some(r) => {
            result.status = r.status;
            result.workers = r.workers;
            result.notes = r.notes;
            result.check = value;
        }
        None => {
            result.reason = Some(format!(
                "no check report from the remote mlsdiag ({status}){}",
                if last_words.is_empty() {
                    String::new()
                } else {
                    format!(": {last_words}")
                }
            ));
        }
    }
}
