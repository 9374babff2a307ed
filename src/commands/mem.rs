//! `mlsdiag mem`: the seed's `vm_stat` step and its 30-second memory watch, in one command.
//!
//! System totals and a pressure level, then each worker's resident size (and footprint where the
//! OS reports one, which is the number to trend on macOS). With `--samples N` it prints the
//! series and the leak rule's judgement of it (`leak`: the baseline, not memory in use).

use std::io::Write;

use serde::Serialize;

use super::Ctx;
use crate::cli::MemArgs;
use crate::diagnose::leak;
use crate::discover::pattern;
use crate::discover::{pids_or_workers, worker_name};
use crate::error::InspectError;
use crate::fmt::{bytes, sanitize};
use crate::model::SCHEMA_VERSION;
use crate::model::Status;
use crate::model::SystemMemory;
use crate::registry;
use crate::render;
use crate::sample::sample;

#[derive(Debug, Serialize)]
pub struct MemSample {
    pub at_secs: f64,
    pub rss_bytes: u64,
    pub footprint_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct WorkerMem {
    pub pid: u32,
    pub name: String,
    pub samples: Vec<MemSample>,
    /// The leak rule's judgement of the samples (see `leak`).
    pub trend: Option<leak::Judgement>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MemReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub system: SystemMemory,
    pub workers: Vec<WorkerMem>,
}

pub fn run(args: &MemArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let platform = ctx.platform.as_ref();
    let system = platform.system_memory()?;
    let re = pattern(&args.discovery.pattern)?;
    let reg = registry::load(&args.discovery.registry).ok();
    let pids = pids_or_workers(platform, &re, reg.as_ref(), &args.pids)?;
    let samples = args.samples.max(1);
    let window = args.interval * (samples as u32 - 1);
    let series = sample(platform, &pids, window, samples);
    let mut status = Status::Ok;
    let workers: Vec<WorkerMem> = series
        .iter()
        .map(|s| {
            // A worker that is gone has no memory to report; one we may not read is UNKNOWN.
            if s.readings.is_empty() && !matches!(s.error, Some(InspectError::Gone { .. })) {
                status = status.worst(Status::Unknown);
            }
            let entry = reg.as_ref().and_then(|r| r.get(s.pid));
            WorkerMem {
                pid: s.pid,
                name: s
                    .last()
                    .map(|p| worker_name(entry, &p.cmdline, &p.name, &re))
                    .unwrap_or_default(),
                samples: s
                    .readings
                    .iter()
                    .map(|(t, p)| MemSample {
                        at_secs: *t,
                        rss_bytes: p.rss_bytes,
                        footprint_bytes: p.footprint_bytes,
                    })
                    .collect(),
                trend: leak::judge(&s.memory_samples(|_| None), &args.leak.rule()),
                error: s.error.as_ref().map(|e| e.to_string()),
            }
        })
        .collect();
    let report = MemReport {
        schema_version: SCHEMA_VERSION,
        command: "mem",
        system,
        workers,
    };
    if ctx.json {
        render::json(out, &report)?;
        return Ok(status);
    }
    let m = &report.system;
    writeln!(
        out,
        "system: total {}, free {}, available {}, cached {}, swap {} of {} free",
        bytes(m.total_bytes),
        bytes(m.free_bytes),
        bytes(m.available_bytes),
        bytes(m.cached_bytes),
        bytes(m.swap_free_bytes),
        bytes(m.swap_total_bytes)
    )?;
    writeln!(
        out,
        "pressure: {} ({})",
        m.pressure.label(),
        m.pressure_evidence
    )?;
    if report.workers.is_empty() {
        writeln!(out, "no workers found")?;
        return Ok(status);
    }
    let mut t = ctx.style.table(&["PID", "NAME", "T+s", "RSS", "FOOTPRINT"]);
    for w in &report.workers {
        for s in &w.samples {
            t.add_row(vec![
                w.pid.to_string(),
                sanitize(&w.name),
                format!("{:.1}", s.at_secs),
                bytes(s.rss_bytes),
                s.footprint_bytes.map_or("-".into(), bytes),
            ]);
        }
    }
    writeln!(out, "{t}")?;
    for w in &report.workers {
        if let Some(e) = &w.error {
            writeln!(out, "PID {}: {}", w.pid, sanitize(e))?;
        }
        if let Some(j) = &w.trend {
            let metric = if w.samples.iter().any(|s| s.footprint_bytes.is_some()) {
                "footprint"
            } else {
                "RSS"
            };
            writeln!(
                out,
                "PID {} {}",
                w.pid,
                j.describe(metric, &args.leak.rule())
            )?;
        }
    }
    Ok(status)
}
