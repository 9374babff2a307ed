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
        if let Ok(signal) = stop.recv_timeout(wait) {
            // Ended by a signal: the shell's convention, 128 + its number (Ctrl-C: 130,
            // SIGTERM: 143), not the last round's status.
            out.flush()?;
            std::process::exit(128 + signal);
        }
    }
}

/// Ctrl-C / SIGTERM end the loop between rounds (a round in progress finishes first); the
/// receiver gets the signal's number.
fn stop_signal() -> anyhow::Result<std::sync::mpsc::Receiver<i32>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let (tx, rx) = std::sync::mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| anyhow::anyhow!("cannot handle SIGINT/SIGTERM: {e}"))?;
    std::thread::spawn(move || {
        for s in signals.forever() {
            let _ = tx.send(s);
        }
    });
    Ok(rx)
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
