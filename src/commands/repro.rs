//! `mlsdiag repro --endpoint URL`: replay captured requests against a live OpenAI-compatible
//! server (MLS, `mlx_lm.server`) many times, catch a stall in the act, snapshot the server's
//! workers at that moment, and report the hang rate with how much it can be trusted.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::Ctx;
use crate::classify::Status;
use crate::cli::{CheckArgs, ReproArgs, SnapshotArgs};
use crate::render::{self, SCHEMA_VERSION};
use crate::repro::endpoint::{self, Endpoint};
use crate::repro::stats::{self, Interval};

#[derive(Debug, Clone, Serialize)]
pub struct Hang {
    pub run: u64,
    pub request: usize,
    pub after_tokens: u64,
    pub after_secs: f64,
    /// Snapshots of the server's workers taken when the stall was seen.
    pub snapshots: Vec<String>,
    pub snapshot_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ReproReport {
    pub schema_version: u32,
    pub command: &'static str,
    pub endpoint: String,
    pub requests: usize,
    pub runs: u64,
    pub completed: u64,
    pub hangs: u64,
    pub errors: u64,
    pub tokens: u64,
    pub tokens_per_sec: Option<f64>,
    pub hang_rate: f64,
    /// 95 % Clopper–Pearson interval of the hang rate.
    pub hang_rate_95: Option<Interval>,
    /// More runs needed to see one hang with 95 % probability, at the observed rate (or the
    /// target rate when none was seen).
    pub runs_still_needed_to_see_a_hang: Option<u64>,
    /// Clean runs needed to claim, at 95 %, a rate below the observed (or target) rate.
    pub clean_runs_to_claim_a_fix: Option<u64>,
    pub target_rate: f64,
    pub hang_details: Vec<Hang>,
    pub error_details: Vec<String>,
    pub out_dir: String,
}

/// Requests to replay: OpenAI chat-completion bodies, one JSON object per line, or one prompt.
pub fn load_requests(args: &ReproArgs) -> anyhow::Result<Vec<serde_json::Value>> {
    if let Some(p) = &args.prompt {
        let text =
            std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        return Ok(vec![
            serde_json::json!({"messages": [{"role": "user", "content": text}]}),
        ]);
    }
    let Some(p) = &args.requests else {
        anyhow::bail!("give --prompt FILE or --requests FILE.jsonl")
    };
    let text = std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
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

fn body(base: &serde_json::Value, args: &ReproArgs) -> serde_json::Value {
    let mut b = base.clone();
    b["stream"] = true.into();
    if let Some(m) = &args.model {
        b["model"] = m.clone().into();
    }
    if b.get("max_tokens").is_none() {
        b["max_tokens"] = args.max_tokens.into();
    }
    b
}

pub fn run(args: &ReproArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let ep = Endpoint::parse(&args.endpoint).map_err(anyhow::Error::msg)?;
    let requests = load_requests(args)?;
    let out_dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "mlsdiag-repro-{}",
            chrono::Local::now().format("%Y%m%d_%H%M%S")
        ))
    });
    let next = AtomicU64::new(0);
    let (completed, tokens, errors) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let stream_secs = Mutex::new(0f64);
    let hangs: Mutex<Vec<Hang>> = Mutex::new(Vec::new());
    let error_details: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let snapshot_lock = Mutex::new(());
    let bar = if ctx.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(args.runs);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} runs  {msg}  [{elapsed_precise}, eta {eta}]",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    std::thread::scope(|s| {
        for _ in 0..args.parallel.max(1) {
            s.spawn(|| {
                loop {
                    let run = next.fetch_add(1, Ordering::Relaxed);
                    if run >= args.runs {
                        return;
                    }
                    let index = run as usize % requests.len();
                    let o = endpoint::stream(&ep, &body(&requests[index], args), args.stall);
                    tokens.fetch_add(o.tokens, Ordering::Relaxed);
                    *stream_secs.lock().unwrap_or_else(|p| p.into_inner()) += o.seconds;
                    if o.stalled {
                        // One snapshot at a time: the evidence of this stall, then move on.
                        let _one = snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
                        let snap_args = SnapshotArgs {
                            pids: vec![],
                            check: CheckArgs {
                                discovery: args.discovery.clone(),
                                log: args.log.clone(),
                                window: std::time::Duration::from_secs(1),
                                leak_window: None,
                                hung_after: std::time::Duration::from_secs(300),
                                leak_threshold: 10.0,
                                progress_cpu: 1.0,
                                history: None,
                            },
                            dir: Some(out_dir.clone()),
                            quiet: true,
                            on_finding: false,
                            keep: None,
                            max_age: None,
                            tail: 20,
                        };
                        let (snapshots, snapshot_error) =
                            match super::snapshot::take(&snap_args, ctx) {
                                Ok((r, _)) if r.saved.is_empty() => (
                                    vec![],
                                    Some(
                                        "no server worker found by --pattern/--registry"
                                            .to_string(),
                                    ),
                                ),
                                Ok((r, _)) => (r.saved.into_iter().map(|s| s.json).collect(), None),
                                Err(e) => (vec![], Some(format!("{e:#}"))),
                            };
                        hangs.lock().unwrap_or_else(|p| p.into_inner()).push(Hang {
                            run,
                            request: index,
                            after_tokens: o.tokens,
                            after_secs: o.seconds,
                            snapshots,
                            snapshot_error,
                        });
                    } else if let Some(e) = o.error {
                        errors.fetch_add(1, Ordering::Relaxed);
                        let mut d = error_details.lock().unwrap_or_else(|p| p.into_inner());
                        if d.len() < 20 {
                            d.push(format!("run {run}: {e}"));
                        }
                    } else {
                        completed.fetch_add(1, Ordering::Relaxed);
                    }
                    let secs = *stream_secs.lock().unwrap_or_else(|p| p.into_inner());
                    let hung = hangs.lock().map(|h| h.len()).unwrap_or(0);
                    bar.set_message(format!(
                        "{:.1} tok/s, {hung} hang(s)",
                        tokens.load(Ordering::Relaxed) as f64 / secs.max(1e-9)
                    ));
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut hang_details = hangs.into_inner().unwrap_or_else(|p| p.into_inner());
    hang_details.sort_by_key(|h| h.run);
    let (runs, hung) = (args.runs, hang_details.len() as u64);
    let rate = if runs > 0 {
        hung as f64 / runs as f64
    } else {
        0.0
    };
    let basis = if hung > 0 { rate } else { args.target_rate };
    let secs = stream_secs.into_inner().unwrap_or_else(|p| p.into_inner());
    let tokens = tokens.into_inner();
    let report = ReproReport {
        schema_version: SCHEMA_VERSION,
        command: "repro",
        endpoint: args.endpoint.clone(),
        requests: requests.len(),
        runs,
        completed: completed.into_inner(),
        hangs: hung,
        errors: errors.into_inner(),
        tokens,
        tokens_per_sec: (secs > 0.0).then(|| tokens as f64 / secs),
        hang_rate: rate,
        hang_rate_95: stats::clopper_pearson(hung, runs, 0.95),
        runs_still_needed_to_see_a_hang: if hung > 0 {
            Some(0)
        } else {
            stats::runs_to_see(basis, 0.95).map(|n| n.saturating_sub(runs))
        },
        clean_runs_to_claim_a_fix: stats::runs_to_claim_fix(basis, 0.95),
        target_rate: args.target_rate,
        hang_details,
        error_details: error_details
            .into_inner()
            .unwrap_or_else(|p| p.into_inner()),
        out_dir: out_dir.display().to_string(),
    };
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
        report.endpoint,
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
    }
    for e in &report.error_details {
        writeln!(out, "error: {e}")?;
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
