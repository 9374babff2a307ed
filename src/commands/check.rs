//! `mlsdiag check`: the seed's whole procedure in one command.
//!
//! Find the workers (pattern + registry), read each several times over the window, fold in the
//! server log's in-flight requests and the IPC state, and give every worker a verdict with the
//! evidence that produced it. The exit code follows the monitoring-plugin convention so cron,
//! Nagios/Icinga checks and humans all read the same result.

use std::io::Write;

use super::Ctx;
use crate::cli::CheckCmdArgs;
use crate::diagnose::check::check;
use crate::metrics;
use crate::model::Status;
use crate::render;
use crate::render::prometheus;

pub fn run(args: &CheckCmdArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let started = std::time::Instant::now();
    let report = match check(&(&args.check).into(), ctx.platform.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            // The collector must still learn that this check failed (mlsdiag_up 0).
            if let Some(dir) = &args.textfile {
                let _ = metrics::write_textfile(
                    dir,
                    &prometheus::render(None, started.elapsed(), None),
                );
            }
            return Err(e);
        }
    };
    if let Some(dir) = &args.textfile {
        metrics::write_textfile(
            dir,
            &prometheus::render(Some(&report), started.elapsed(), None),
        )?;
    }
    ctx.emit(out, &report, render::check::check)?;
    Ok(report.status)
}
