//! `mlsdiag record`: save what the OS shows about the workers, for replay with `--fixture`.
//!
//! A recording is the neutral model serialized: readings over time, threads, descriptors and
//! system memory, exactly what the commands consume. Replaying it runs the real classification
//! and renderers on any machine, which is how macOS behaviour is tested on Linux and how a
//! field incident becomes a regression test.

use std::io::Write;

use super::Ctx;
use crate::cli::RecordArgs;
use crate::discover::pids_or_workers;
use crate::model::Status;
use crate::platform::fixture::{RECORDING_KIND, RecordedProcess, Recording};
use crate::registry;
use crate::sample::sample;

pub fn run(args: &RecordArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let platform = ctx.platform.as_ref();
    let search = args.discovery.search()?;
    let reg = registry::load(&args.discovery.registry).ok();
    let mut pids = pids_or_workers(platform, &search, reg.as_ref(), &args.pids)?;
    // Parents too: the orchestrator's name and channels are part of the picture.
    let parents: Vec<u32> = pids
        .iter()
        .filter_map(|&p| platform.process(p).ok())
        .map(|p| p.ppid)
        .filter(|&p| p > 1)
        .collect();
    pids.extend(parents);
    pids.sort_unstable();
    pids.dedup();
    let samples = args.samples.max(1);
    let series = sample(
        platform,
        &pids,
        args.interval * (samples as u32 - 1),
        samples,
    );
    let processes: Vec<RecordedProcess> = series
        .into_iter()
        .filter(|s| !s.readings.is_empty())
        .map(|s| RecordedProcess {
            pid: s.pid,
            threads: platform.threads(s.pid).ok(),
            fds: platform.fds(s.pid, Some(&pids)).ok(),
            readings: s.readings.into_iter().map(|(_, p)| p).collect(),
        })
        .collect();
    let recording = Recording {
        schema_version: 1,
        kind: RECORDING_KIND.into(),
        os: std::env::consts::OS.into(),
        captured_at: platform.now(),
        note: args.note.clone().unwrap_or_else(|| {
            format!(
                "mlsdiag record, {samples} reading(s) {:?} apart",
                args.interval
            )
        }),
        system_memory: platform.system_memory().ok(),
        processes,
    };
    let json = serde_json::to_string_pretty(&recording)?;
    anyhow::ensure!(
        crate::store::write_new(&args.output, json.as_bytes())?,
        "{}: exists; a recording is never overwritten",
        args.output.display()
    );
    let written = serde_json::json!({
        "schema_version": crate::model::SCHEMA_VERSION,
        "command": "record",
        "path": args.output.display().to_string(),
        "processes": recording.processes.len(),
    });
    ctx.emit(out, &written, |w, _, out| {
        writeln!(
            out,
            "recorded {} process(es) to {}",
            w["processes"],
            w["path"].as_str().unwrap_or_default()
        )
    })?;
    Ok(Status::Ok)
}
