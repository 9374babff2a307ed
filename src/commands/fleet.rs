//! `mlsdiag fleet HOST…`: the same diagnosis on every Mac (the Studio, the Mini, the Air) from
//! one place, over the system's OpenSSH, with nothing to install but mlsdiag itself. Each host
//! runs `mlsdiag check --json`; the results merge into one table and one exit code. A host that
//! cannot be reached, or has no mlsdiag, is its own UNKNOWN row with the reason, never a hang of
//! the whole command: ssh runs in batch mode with a connect timeout and an overall deadline.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::Ctx;
use crate::cli::FleetArgs;
use crate::model::SCHEMA_VERSION;
use crate::model::Status;
use crate::model::{FleetReport, HostResult, RemoteWorker};
use crate::render;

#[derive(Debug, Deserialize)]
struct RemoteCheck {
    status: Status,
    #[serde(default)]
    workers: Vec<RemoteWorker>,
    #[serde(default)]
    notes: Vec<String>,
}

/// Hosts from the arguments and `--hosts FILE` (one per line, `#` comments), in order, once.
fn hosts(args: &FleetArgs) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = args.hosts.clone();
    if let Some(p) = &args.hosts_file {
        let text = crate::input::read_to_string(p, crate::input::SMALL_FILE_LIMIT)?;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if !line.is_empty() {
                out.push(line.to_string());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|h| seen.insert(h.clone()));
    for h in &out {
        anyhow::ensure!(
            !h.starts_with('-') && !h.chars().any(char::is_whitespace),
            "{h:?} is not a host name"
        );
    }
    anyhow::ensure!(!out.is_empty(), "give hosts, or --hosts FILE");
    Ok(out)
}

/// The command line the remote shell runs, each word quoted.
fn remote_command(args: &FleetArgs) -> anyhow::Result<String> {
    let mut words = vec![args.remote_command.clone(), "check".into(), "--json".into()];
    words.extend(args.check_args.iter().cloned());
    let quoted = shlex::try_join(words.iter().map(String::as_str))
        .map_err(|e| anyhow::anyhow!("cannot quote the remote command: {e}"))?;
    Ok(quoted)
}

/// The most of a host's output read (a check report is kilobytes).
const OUTPUT_LIMIT: u64 = 64 << 20;

fn ssh_command(args: &FleetArgs, host: &str, remote: &str) -> Command {
    let mut c = Command::new("ssh");
    if let Some(cfg) = &args.ssh_config {
        c.arg("-F").arg(cfg);
    }
    c.args(["-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!("ConnectTimeout={}", args.connect_timeout))
        .args(["-o", "LogLevel=ERROR"]);
    for o in &args.ssh_options {
        c.arg("-o").arg(o);
    }
    c.arg("-T").arg(host).arg("--").arg(remote);
    c
}

/// Runs one host's check: never longer than `--timeout`.
fn check_host(args: &FleetArgs, host: &str, remote: &str) -> HostResult {
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
    // Its own process group: a timeout ends ssh and everything it started (a ProxyCommand
    // that never exits would otherwise hold the pipes open, and the reads below, forever).
    let child = {
        use std::os::unix::process::CommandExt;
        ssh_command(args, host, remote)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
    };
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            result.reason = Some(format!("cannot run ssh: {e}"));
            return result;
        }
    };
    // Bounded reads on their own threads, collected with a deadline.
    let read = |r: Box<dyn Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.take(OUTPUT_LIMIT).read_to_end(&mut v);
            let _ = tx.send(v);
        });
        rx
    };
    let out = read(Box::new(child.stdout.take().expect("piped")));
    let err = read(Box::new(child.stderr.take().expect("piped")));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() < args.timeout => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // Whatever ssh left behind in its group goes too.
    // SAFETY: kill(2) on the process group ssh was started in (ESRCH when it is empty).
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    result.seconds = started.elapsed().as_secs_f64();
    let collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default()
    };
    let stdout = collect(out);
    let stderr = String::from_utf8_lossy(&collect(err)).into_owned();
    let last_words = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .to_string();
    let Some(status) = status else {
        result.reason = Some(format!("no answer within {:?} (--timeout)", args.timeout));
        return result;
    };
    match status.code() {
        Some(255) => {
            result.reason = Some(format!(
                "unreachable: {}",
                if last_words.is_empty() {
                    "ssh failed".into()
                } else {
                    last_words
                }
            ));
            return result;
        }
        Some(127) => {
            result.reason = Some(format!(
                "{} not found on {host} (install it, or give --remote-command PATH): {last_words}",
                args.remote_command
            ));
            return result;
        }
        _ => {}
    }
    let value: Option<serde_json::Value> = serde_json::from_slice(&stdout).ok();
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
    result
}

pub fn run(args: &FleetArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let hosts = hosts(args)?;
    let remote = remote_command(args)?;
    let results: Mutex<Vec<Option<HostResult>>> =
        Mutex::new((0..hosts.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..args.jobs.clamp(1, hosts.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(host) = hosts.get(i) else { return };
                    let r = check_host(args, host, &remote);
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
    ctx.emit(out, &report, render::fleet::fleet)?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> FleetArgs {
        let mut argv = vec!["mlsdiag", "fleet"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Fleet(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_remote_command_is_quoted_for_the_remote_shell() {
        let a = args(&[
            "h1",
            "--",
            "--log",
            "/tmp/my logs/mls.log",
            "--pattern",
            "a|b",
        ]);
        assert_eq!(
            remote_command(&a).unwrap(),
            "mlsdiag check --json --log '/tmp/my logs/mls.log' --pattern 'a|b'"
        );
    }

    #[test]
    fn hosts_come_from_args_and_file_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hosts");
        std::fs::write(&f, "# the fleet\nstudio\n\nmini  # desk\nstudio\n").unwrap();
        let a = args(&["air", "--hosts", f.to_str().unwrap()]);
        assert_eq!(hosts(&a).unwrap(), ["air", "studio", "mini"]);
        // A "host" that ssh would take as an option, from a file clap does not see.
        std::fs::write(&f, "-oProxyCommand=touch\n").unwrap();
        let a = args(&["--hosts", f.to_str().unwrap()]);
        assert!(
            hosts(&a)
                .unwrap_err()
                .to_string()
                .contains("not a host name")
        );
        assert!(hosts(&args(&[])).is_err());
    }

    #[test]
    fn ssh_runs_in_batch_mode_with_a_connect_timeout() {
        let a = args(&["h", "--connect-timeout", "3", "--ssh-option", "Port=2222"]);
        let c = ssh_command(&a, "h", "mlsdiag check --json");
        let argv: Vec<String> = c
            .get_args()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let joined = argv.join(" ");
        assert!(joined.contains("-o BatchMode=yes"), "{joined}");
        assert!(joined.contains("-o ConnectTimeout=3"), "{joined}");
        assert!(joined.contains("-o Port=2222"), "{joined}");
        assert!(joined.ends_with("-T h -- mlsdiag check --json"), "{joined}");
    }
}
