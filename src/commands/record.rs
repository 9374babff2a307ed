//! `mlsdiag record`: save what the OS shows about the workers, for replay with `--fixture`.
//!
//! A recording is the neutral model serialized: readings over time, threads, descriptors and
//! system memory, exactly what the commands consume. Replaying it runs the real classification
//! and renderers on any machine, which is how macOS behaviour is tested on Linux and how a
//! field incident becomes a regression test.

use std::io::Write;
use std::path::Path;

use super::{Ctx, pattern};
use crate::classify::Status;
use crate::cli::RecordArgs;
use crate::discover::discover;
use crate::platform::fixture::{RECORDING_KIND, RecordedProcess, Recording};
use crate::registry::{self, Loaded};
use crate::sample::sample;

/// Write `bytes` to a new file at `path`, atomically, never replacing an existing file.
pub fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    tmp.persist_noclobber(path)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.error))?;
    Ok(())
}

pub fn run(args: &RecordArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let platform = ctx.platform.as_ref();
    let mut pids: Vec<u32> = if args.pids.is_empty() {
        let re = pattern(&args.discovery.pattern)?;
        let reg = match registry::load(&args.discovery.registry) {
            Loaded::Ok(r) => Some(r),
            _ => None,
        };
        discover(platform, &re, reg.as_ref())?
            .workers
            .iter()
            .map(|c| c.pid)
            .collect()
    } else {
        args.pids.clone()
    };
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
    write_new(
        &args.output,
        serde_json::to_string_pretty(&recording)?.as_bytes(),
    )?;
    writeln!(
        out,
        "recorded {} process(es) to {}",
        recording.processes.len(),
        args.output.display()
    )?;
    Ok(Status::Ok)
}
