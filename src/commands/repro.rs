//! `mlsdiag repro`: replay captured requests many times until a rare hang shows, catch each
//! stall in the act with a snapshot, and report the hang rate with how much it can be trusted.
//!
//! Two targets share the campaign: `--endpoint URL`, a live OpenAI-compatible server (MLS,
//! `mlx_lm.server`), whose workers are snapshotted at a stall; and `--model DIR`, the reference
//! MLX loop run in `mlsdiag-runner` children, of which the stalled one is snapshotted and then
//! killed (or kept alive with `--keep-hung`).

use std::io::Write;

use super::Ctx;
use crate::cli::ReproArgs;
use crate::model::Status;
use crate::render;
use crate::repro::{campaign, requests};

pub fn run(args: &ReproArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let requests = requests::load(args.prompt.as_deref(), args.requests.as_deref())?;
    let progress = !ctx.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = campaign::run(&args.into(), &requests, ctx.platform.as_ref(), progress)?;
    let status = status_of(&report);
    if ctx.json {
        render::json(out, &report)?;
        return Ok(status);
    }
    print_summary(&report, out)?;
    print_hangs(&report, out)?;
    for e in &report.error_details {
        writeln!(out, "error: {}", crate::fmt::sanitize(e))?;
    }
    print_verdict(args, &report, out)?;
    Ok(status)
}

/// The command's status: critical when a run hung, a warning when one failed, else ok.
fn status_of(report: &campaign::ReproReport) -> Status {
    if report.hangs > 0 {
        Status::Critical
    } else if report.errors > 0 {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// Prints the tallies of the runs and, when known, the hang rate with its 95 % interval.
fn print_summary(report: &campaign::ReproReport, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "{} runs of {} request(s) against {}: {} completed, {} hang(s), {} error(s); {} tokens{}",
        report.runs,
        report.requests,
        report
            .endpoint
            .as_deref()
            .or(report.model.as_deref())
            .unwrap_or_default(),
        report.completed,
        report.hangs,
        report.errors,
        report.tokens,
        report
            .tokens_per_sec
            .map(|t| format!(", {t:.1} tok/s"))
            .unwrap_or_default()
    )?;
    if let Some(i) = report.hang_rate_95 {
        let inv = |p: f64| {
            if p > 0.0 {
                format!("1/{:.0}", 1.0 / p)
            } else {
                "0".into()
            }
        };
        writeln!(
            out,
            "hang rate {:.4} of {} judged run(s) (95% CI {} to {}){}",
            report.hang_rate,
            report.judged,
            inv(i.low),
            inv(i.high),
            if report.errors > 0 {
                format!(
                    "; the {} run(s) that ended in an error are not counted",
                    report.errors
                )
            } else {
                String::new()
            }
        )?;
    }
    Ok(())
}

/// Prints each hang: where it stalled, its snapshots, and what became of its runner.
fn print_hangs(report: &campaign::ReproReport, out: &mut dyn Write) -> anyhow::Result<()> {
    for h in &report.hang_details {
        writeln!(
            out,
            "hang: run {} (request {}) stalled after {} tokens, {:.1} s",
            h.run, h.request, h.after_tokens, h.after_secs
        )?;
        for s in &h.snapshots {
            writeln!(out, "  snapshot {s}")?;
        }
        if let Some(e) = &h.snapshot_error {
            writeln!(out, "  no snapshot: {e}")?;
        }
        match h.runner_pid {
            Some(pid) if h.kept_alive => writeln!(
                out,
                "  runner {pid} left alive, hung (--keep-hung); end it with: kill {pid}"
            )?,
            Some(pid) => writeln!(out, "  runner {pid} killed")?,
            None => {}
        }
    }
    Ok(())
}

/// Prints the closing line: how many runs would show a hang, or would claim a fix.
fn print_verdict(
    args: &ReproArgs,
    report: &campaign::ReproReport,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match report.hangs {
        0 => writeln!(
            out,
            "no hang seen; at a rate of 1/{:.0}, {} more run(s) would show one with 95% probability, and {} clean runs would claim a fix",
            1.0 / args.target_rate,
            report.runs_still_needed_to_see_a_hang.unwrap_or(0),
            report.clean_runs_to_claim_a_fix.unwrap_or(0)
        )?,
        _ => writeln!(
            out,
            "reproduced; after a fix, {} clean runs would show (95%) that the rate is below the observed {:.4}",
            report.clean_runs_to_claim_a_fix.unwrap_or(0),
            report.hang_rate
        )?,
    }
    Ok(())
}
