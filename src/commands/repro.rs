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
use crate::repro::campaign;

/// Requests to replay: OpenAI chat-completion bodies, one JSON object per line, or one prompt.
pub fn load_requests(args: &ReproArgs) -> anyhow::Result<Vec<serde_json::Value>> {
    if let Some(p) = &args.prompt {
        let text = crate::input::read_to_string(p, crate::input::SMALL_FILE_LIMIT)?;
        return Ok(vec![
            serde_json::json!({"messages": [{"role": "user", "content": text}]}),
        ]);
    }
    let Some(p) = &args.requests else {
        anyhow::bail!("give --prompt FILE or --requests FILE.jsonl")
    };
    let text = crate::input::read_to_string(p, crate::input::RECORDING_LIMIT)?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", p.display(), i + 1))?;
        anyhow::ensure!(
            v.get("messages").is_some_and(|m| m.is_array()) || v.get("prompt").is_some(),
            "{}:{}: a request needs \"messages\" (chat) or \"prompt\"",
            p.display(),
            i + 1
        );
        out.push(v);
    }
    anyhow::ensure!(!out.is_empty(), "{}: no requests", p.display());
    Ok(out)
}

pub fn run(args: &ReproArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let requests = load_requests(args)?;
    let progress = !ctx.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = campaign::run(&args.into(), &requests, ctx.platform.as_ref(), progress)?;
    let status = if report.hangs > 0 {
        Status::Critical
    } else if report.errors > 0 {
        Status::Warning
    } else {
        Status::Ok
    };
    if ctx.json {
        render::json(out, &report)?;
        return Ok(status);
    }
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
            "hang rate {:.4} (95% CI {} to {})",
            report.hang_rate,
            inv(i.low),
            inv(i.high)
        )?;
    }
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
    for e in &report.error_details {
        writeln!(out, "error: {}", crate::fmt::sanitize(e))?;
    }
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
    Ok(status)
}
