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
        if stop.recv_timeout(wait).is_ok() {
            return Ok(status);
        }
    }
}

/// Ctrl-C / SIGTERM end the loop between rounds (a round in progress finishes first).
fn stop_signal() -> anyhow::Result<std::sync::mpsc::Receiver<()>> {
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .map_err(|e| anyhow::anyhow!("cannot handle SIGINT/SIGTERM: {e}"))?;
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
