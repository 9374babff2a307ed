//! `mlsdiag watch`: the check as a foreground loop (launchd, systemd), so a hang is caught
//! while it is young instead of 8 hours later. The rounds themselves (history across rounds,
//! snapshots, hooks, restarts) are [`crate::watch`]; this loop paces them, prints one line per
//! change and publishes the metrics to a textfile and/or `/metrics` for Prometheus.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Ctx;
use crate::cli::WatchArgs;
use crate::metrics;
use crate::model::{Status, WatchEvent};
use crate::render::prometheus;
use crate::watch::{WatchOptions, Watcher};

pub fn run(args: &WatchArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let stop = stop_signal()?;
    let latest = Arc::new(Mutex::new(prometheus::render(None, Duration::ZERO, None)));
    if let Some(addr) = &args.listen {
        let bound = metrics::serve(addr, Arc::clone(&latest))?;
        eprintln!("mlsdiag watch: metrics on http://{bound}/metrics");
    }
    let mut watcher = Watcher::new(WatchOptions::from(args));
    let mut status;
    let mut round = 0u64;
    loop {
        let started = Instant::now();
        round += 1;
        match watcher.round(ctx.platform.as_ref()) {
            Ok(r) => {
                for event in &r.events {
                    print(out, ctx, event)?;
                }
                status = r.report.status;
                let text = prometheus::render(Some(&r.report), r.took, Some(&r.since));
                publish(args, &latest, &text);
            }
            Err(e) => {
                let took = started.elapsed();
                eprintln!(
                    "{} mlsdiag watch: round {round} failed: {e:#}",
                    chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
                );
                status = Status::Unknown;
                publish(args, &latest, &prometheus::render(None, took, None));
            }
        }
        out.flush()?;
        if args.rounds.is_some_and(|n| round >= n) {
            return Ok(status);
        }
        let next = started + args.interval;
        let wait = next.saturating_duration_since(Instant::now());
        if let Some(signal) = stop.wait(wait) {
            // Ended by a signal: the shell's convention, 128 + its number (Ctrl-C: 130,
            // SIGTERM: 143), not the last round's status.
            out.flush()?;
            std::process::exit(128 + signal);
        }
    }
}

/// Ctrl-C / SIGTERM, noted by the handler in a flag each (no descriptor, no thread: a watch
/// run with few descriptors keeps them for its metrics listener); the loop looks between
/// rounds, so a round in progress finishes first.
struct Stop {
    flags: Vec<(i32, Arc<std::sync::atomic::AtomicBool>)>,
}

impl Stop {
    /// The signal that arrived, if one did within `wait` (looked at every 50 ms).
    fn wait(&self, wait: Duration) -> Option<i32> {
        let until = Instant::now() + wait;
        loop {
            let got = (self.flags.iter())
                .find(|(_, f)| f.load(std::sync::atomic::Ordering::Relaxed))
                .map(|(s, _)| *s);
            let left = until.saturating_duration_since(Instant::now());
            if got.is_some() || left.is_zero() {
                return got;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

fn stop_signal() -> anyhow::Result<Stop> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut flags = Vec::new();
    for s in [SIGINT, SIGTERM] {
        let f = Arc::new(std::sync::atomic::AtomicBool::new(false));
        signal_hook::flag::register(s, Arc::clone(&f))
            .map_err(|e| anyhow::anyhow!("cannot handle signal {s}: {e}"))?;
        flags.push((s, f));
    }
    Ok(Stop { flags })
}

fn publish(args: &WatchArgs, latest: &Mutex<String>, text: &str) {
    *latest.lock().unwrap_or_else(|p| p.into_inner()) = text.to_string();
    if let Some(dir) = &args.textfile
        && let Err(e) = metrics::write_textfile(dir, text)
    {
        eprintln!("mlsdiag watch: {e}");
    }
}

fn print(out: &mut dyn Write, ctx: &Ctx, e: &WatchEvent) -> std::io::Result<()> {
    if ctx.json {
        serde_json::to_writer(&mut *out, e)?;
        return writeln!(out);
    }
    writeln!(out, "{}", crate::render::watch::line(e))
}
