//! `mlsdiag snapshot`: the seed's step 8, complete and safe to run from cron or launchd.
//!
//! For each worker: the `check` verdict and evidence, a fresh process reading, every thread and
//! descriptor, the registry entry, system memory and, with `--log`, the worker's requests and
//! the log tail; saved as `worker_<pid>_<stamp>.json` (for `history`, `postmortem`) and `.txt`
//! (for people). Retention deletes only mlsdiag's own files.

use std::io::Write;

use super::Ctx;
use crate::cli::SnapshotArgs;
use crate::fmt::sanitize;
use crate::model::{Status, Verdict};
use crate::render;
use crate::snapshot::take;

pub fn run(args: &SnapshotArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let (result, report) = take(&args.into(), ctx.platform.as_ref())?;
    let status = result.status;
    if ctx.json {
        render::json(out, &result)?;
        return Ok(status);
    }
    let all_healthy =
        report.workers.iter().all(|w| w.verdict == Verdict::Healthy) && report.status == Status::Ok;
    if args.quiet && all_healthy {
        return Ok(status);
    }
    for s in &result.saved {
        writeln!(
            out,
            "PID {} {}: {} → {}",
            s.pid,
            sanitize(&s.name),
            s.verdict.label(),
            s.json
        )?;
    }
    if result.saved.is_empty() {
        writeln!(
            out,
            "nothing to snapshot ({} worker(s) found)",
            report.workers.len()
        )?;
    }
    for d in &result.deleted {
        writeln!(out, "deleted {d}")?;
    }
    for c in &result.cleaned {
        writeln!(
            out,
            "removed {c} (left by a snapshot write that was killed)"
        )?;
    }
    for n in &report.notes {
        writeln!(out, "note: {}", sanitize(n))?;
    }
    Ok(status)
}
