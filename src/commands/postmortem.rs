//! `mlsdiag postmortem`: the seed's Part 5 template, filled from the evidence.
//!
//! Snapshots answer who, what state, how long and what was collected; the server log answers
//! which request, how many before it and the timeline. Every field the evidence decides is
//! filled and every checkbox it decides is ticked; what only a person can write (impact on
//! users, actions taken, lessons) is left as a visible `_TODO_` placeholder.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::Ctx;
use crate::cli::PostmortemArgs;
use crate::diagnose::assess::Thresholds;
use crate::diagnose::leak;
use crate::fmt::{bytes, duration, local_time as local, md_code, md_text};
use crate::logs::{self, Options};
use crate::model::Snapshot;
use crate::model::{Status, Verdict};
use crate::store;

const TODO: &str = "_TODO: fill in_";

fn check(b: bool) -> &'static str {
    if b { "[x]" } else { "[ ]" }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn load_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, Snapshot)>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let (snaps, problems) = store::load_all(p)?;
            for pr in problems {
                eprintln!("mlsdiag: warning: {pr}");
            }
            out.extend(snaps);
        } else {
            out.push((p.clone(), store::load(p)?));
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no snapshots found in {}",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.sort_by_key(|(p, s)| (s.taken_at, p.clone()));
    Ok(out)
}

/// Write the report. Pure over its inputs, so it is tested on fixtures.
pub fn render(
    snaps: &[(PathBuf, Snapshot)],
    log_path: Option<&Path>,
    log: Option<&logs::Outcome>,
) -> String {
    // The incident's worker: the most severe verdict in the newest snapshots, newest first.
    let worst = snaps
        .iter()
        .rev()
        .max_by_key(|(_, s)| s.worker.verdict)
        .map(|(_, s)| s.name.clone())
        .unwrap_or_default();
    let series: Vec<&(PathBuf, Snapshot)> = snaps.iter().filter(|(_, s)| s.name == worst).collect();
    let (_, first) = series[0];
    let (_, last) = series[series.len() - 1];
    let w = &last.worker;
    let model = last
        .registry
        .as_ref()
        .and_then(|r| r.model.clone())
        .or(w.model.clone());
    let trigger = log.and_then(|o| {
        o.analysis
            .hang_triggers
            .iter()
            .find(|h| h.worker == worst)
            .cloned()
    });
    let stats = log
        .and_then(|o| o.analysis.workers.get(&worst).cloned())
        .or_else(|| last.log.as_ref().and_then(|l| l.stats.clone()));
    let oldest = trigger
        .as_ref()
        .map(|t| t.request.clone())
        .or_else(|| w.in_flight.first().cloned());
    let hang_start = oldest.as_ref().map(|r| r.started);
    let hang_for = hang_start.map(|s| duration((last.taken_at - s).to_std().unwrap_or_default()));
    let timeouts: Vec<DateTime<Utc>> = log
        .map(|o| {
            o.analysis
                .anomalies
                .iter()
                .filter(|a| a.kind == "timeout" && a.worker == worst)
                .map(|a| a.time)
                .collect()
        })
        .unwrap_or_default();
    let hung = series
        .iter()
        .any(|(_, s)| s.worker.verdict == Verdict::Hung);
    let crashed = series
        .iter()
        .any(|(_, s)| s.worker.verdict == Verdict::Crashed);
    let cpu_idle = w
        .cpu_percent
        .is_some_and(|c| c <= Thresholds::default().progress_cpu_percent);
    // The memory trend across the snapshots is history's judgement (one leak rule); the
    // snapshots were taken with the default rule unless their findings say otherwise.
    let rule = leak::Rule::DEFAULT;
    let snaps: Vec<Snapshot> = series.iter().map(|(_, s)| s.clone()).collect();
    let judged = crate::diagnose::history::analyze(&snaps, &rule)
        .into_iter()
        .find(|h| h.pid == w.pid);
    let metric = judged.as_ref().map_or("RSS", |h| h.memory_metric);
    let readings = judged.as_ref().map_or(0, |h| {
        h.memory_trend.as_ref().map_or(h.snapshots, |j| j.readings)
    });
    let (mem_first, mem_last) = judged.as_ref().map_or((None, None), |h| {
        (h.memory_first_bytes, h.memory_last_bytes)
    });
    let mem_judged = judged.and_then(|h| h.memory_trend);
    let leaking = series.iter().any(|(_, s)| {
        s.worker
            .findings
            .iter()
            .any(|f| f.verdict == Verdict::Leaking)
    }) || mem_judged.as_ref().is_some_and(|j| j.is_leak());
    let trend_text = match &mem_judged {
        Some(j) => format!(
            "{} across {} snapshots: {}",
            if j.is_leak() { "Growing" } else { "Not a leak" },
            readings,
            j.describe(metric, &rule)
        ),
        None => format!("Unknown: {readings} snapshot(s) at one time"),
    };
    let prompt = oldest
        .as_ref()
        .and_then(|r| r.prompt_chars)
        .map(|c| format!("{} chars, {:.1} KB", thousands(c), c as f64 / 1000.0));
    let before = stats.as_ref().map(|s| thousands(s.completed));
    let runtime = w
        .elapsed_secs
        .map(|e| duration(std::time::Duration::from_secs(e)));
    let last_done = trigger
        .as_ref()
        .and_then(|t| t.last_completion)
        .or_else(|| {
            log.and_then(|o| {
                o.analysis
                    .last_successes
                    .get(&worst)?
                    .last()
                    .map(|s| s.time)
            })
        });
    let served = stats.as_ref().and_then(|s| {
        Some((
            s.first?,
            last_done.or(s.last)?,
            s.tokens,
            s.mean_tokens_per_sec,
        ))
    });

    let mut m = String::new();
    let date = hang_start
        .unwrap_or(last.taken_at)
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d");
    let title = if hung {
        "Worker Hang Incident"
    } else if crashed {
        "Worker Crash Incident"
    } else if leaking {
        "Worker Memory Leak Incident"
    } else {
        "Worker Incident"
    };
    let _ = writeln!(m, "# {title} - {date}\n");
    let _ = writeln!(
        m,
        "> Generated by mlsdiag {} from {} snapshot(s){}. Fields marked {TODO} need a person.\n",
        env!("CARGO_PKG_VERSION"),
        snaps.len(),
        log_path
            .map(|p| format!(" and the log {}", md_code(&p.display().to_string())))
            .unwrap_or_default()
    );
    let _ = writeln!(m, "| Field | Value |\n|---|---|");
    let row = |m: &mut String, k: &str, v: Option<String>| {
        let _ = writeln!(m, "| **{k}** | {} |", v.unwrap_or_else(|| TODO.to_string()));
    };
    row(
        &mut m,
        "Machine",
        Some(format!("{} ({})", md_text(&last.host), md_text(&last.os))),
    );
    row(
        &mut m,
        "Worker PID",
        Some(format!("{} ({})", last.pid, md_code(&last.name))),
    );
    row(&mut m, "Model", model.as_deref().map(md_text));
    row(
        &mut m,
        "Hang duration",
        hang_for.clone().map(|d| {
            format!(
                "{d} (request started {}, last snapshot {})",
                local(hang_start.unwrap_or(last.taken_at)),
                local(last.taken_at)
            )
        }),
    );
    row(&mut m, "Prompt size", prompt.clone());
    row(
        &mut m,
        "Requests before hang",
        before.clone().map(|b| format!("{b} completed")),
    );
    row(
        &mut m,
        "Total runtime",
        runtime
            .clone()
            .map(|r| format!("{r} (worker process age at the last snapshot)")),
    );
    row(
        &mut m,
        "Verdict",
        Some(format!(
            "**{}** ({})",
            w.verdict.label(),
            w.activity.label()
        )),
    );

    let _ = writeln!(m, "\n## Summary\n");
    let subject = format!(
        "Worker {} (PID {}) on {}",
        md_code(&last.name),
        last.pid,
        md_text(&last.host)
    );
    let mut summary = match (&oldest, hung) {
        (Some(r), true) => format!(
            "{subject} stopped completing requests while serving {}{}{}. It stayed alive with no CPU progress for {} (state {}, {} threads, {:.1}% CPU) while the request stayed in flight.",
            r.id.as_ref()
                .map_or("a request".into(), |i| format!("request {}", md_code(i))),
            prompt
                .as_ref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            before
                .as_ref()
                .map(|b| format!(", after {b} successful requests"))
                .unwrap_or_default(),
            hang_for.clone().unwrap_or_default(),
            w.state.map_or("?".into(), |c| c.to_string()),
            w.threads.map_or("?".into(), |n| n.to_string()),
            w.cpu_percent.unwrap_or(0.0)
        ),
        _ => format!(
            "{subject} was diagnosed **{}**: {}.",
            w.verdict.label(),
            w.findings
                .first()
                .and_then(|f| f.evidence.first())
                .map_or("no finding".into(), |e| md_text(e))
        ),
    };
    if !timeouts.is_empty() {
        summary.push_str(&format!(
            " The orchestrator timed out on it {} time(s).",
            timeouts.len()
        ));
    }
    let _ = writeln!(m, "{summary}\n");

    let _ = writeln!(m, "## Impact\n");
    let queued = trigger.as_ref().map_or(0, |t| t.queued.len());
    let _ = writeln!(
        m,
        "- Worker wedged for {}.",
        hang_for.clone().unwrap_or_else(|| TODO.into())
    );
    let _ = writeln!(
        m,
        "- Requests stuck on it: {} in flight, {} queued behind the first.",
        trigger
            .as_ref()
            .map_or(w.in_flight.len(), |t| 1 + t.queued.len()),
        queued
    );
    if let Some(o) = log {
        let fails = o
            .analysis
            .anomalies
            .iter()
            .filter(|a| a.kind == "failure")
            .count();
        let _ = writeln!(
            m,
            "- Timeouts logged: {}; failed requests logged: {fails}.",
            timeouts.len()
        );
    }
    let _ = writeln!(m, "- Users and services affected: {TODO}\n");

    let _ = writeln!(m, "## Timeline\n");
    let _ = writeln!(m, "| Time | Event |\n|---|---|");
    let mut events: Vec<(DateTime<Utc>, String)> = Vec::new();
    if let Some((f, l, tokens, tps)) = served {
        events.push((
            f,
            format!(
                "Normal operation begins: {} requests served until {}, {} tokens, {} tok/s mean",
                before.clone().unwrap_or_default(),
                local(l),
                thousands(tokens),
                tps.map_or("?".into(), |t| format!("{t:.1}"))
            ),
        ));
    }
    if let Some(r) = &oldest {
        events.push((
            r.started,
            format!(
                "**Hang trigger**: {} received{}{}{} — never completed",
                r.id.as_ref().map_or("request".into(), |i| md_code(i)),
                prompt
                    .as_ref()
                    .map(|p| format!(", {p}"))
                    .unwrap_or_default(),
                r.max_tokens
                    .map(|t| format!(", max_tokens {t}"))
                    .unwrap_or_default(),
                r.temperature
                    .map(|t| format!(", temperature {t}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if let Some(o) = log {
        for a in o
            .analysis
            .anomalies
            .iter()
            .filter(|a| a.worker == worst || a.worker.is_empty())
        {
            let what = match a.kind {
                "timeout" => format!(
                    "Worker timeout after {}s{}",
                    a.timeout_secs.map_or("?".into(), |s| format!("{s:.0}")),
                    a.id.as_ref()
                        .map(|i| format!(" ({})", md_code(i)))
                        .unwrap_or_default()
                ),
                _ => format!(
                    "Failure: {}",
                    md_text(a.message.as_deref().unwrap_or_default())
                ),
            };
            events.push((a.time, what));
        }
        if let Some(t) = &trigger {
            for q in &t.queued {
                events.push((
                    q.started,
                    format!(
                        "Request {} queued behind it{}",
                        q.id.as_ref().map_or(String::new(), |i| md_code(i)),
                        q.prompt_chars
                            .map(|c| format!(" ({} chars)", thousands(c)))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
    }
    for (_, s) in &series {
        events.push((
            s.taken_at,
            format!(
                "Snapshot: verdict {} ({}), CPU {}",
                s.worker.verdict.label(),
                s.worker.activity.label(),
                s.worker
                    .cpu_percent
                    .map_or("?".into(), |c| format!("{c:.1}%"))
            ),
        ));
    }
    events.sort_by_key(|e| e.0);
    for (t, e) in events {
        let _ = writeln!(m, "| {} | {e} |", local(t));
    }

    let _ = writeln!(m, "\n## Detection\n");
    let _ = writeln!(
        m,
        "Detected by `mlsdiag` at {} with verdict **{}**, on this evidence:\n",
        local(last.taken_at),
        w.verdict.label()
    );
    for f in &w.findings {
        for e in &f.evidence {
            let _ = writeln!(m, "- [{}] {}", f.verdict.label(), md_text(e));
        }
    }
    let _ = writeln!(
        m,
        "- How it was noticed, and how long after it began: {TODO}"
    );

    let _ = writeln!(m, "\n## Root cause hypothesis\n");
    if hung {
        let threads_note = last.threads.as_ref().map(|t| {
            let sleeping = t.iter().filter(|t| t.state != 'R').count();
            format!("{sleeping} of {} threads asleep", t.len())
        });
        let _ = writeln!(
            m,
            "Deadlock or lost wakeup inside generation: the worker was alive with {}, no CPU progress, IPC channels open ({}), memory flat, and the request never finished. This matches the known MLX hangs where the generation thread waits forever on a condition variable or GPU event (see mlx-lm#1834). Confirm with a stack capture.\n",
            threads_note.unwrap_or_else(|| "all threads asleep".into()),
            w.ipc
                .as_ref()
                .map_or("unknown".into(), |i| md_text(&i.line()))
        );
    }
    let matched: Vec<&crate::model::Match> = series
        .iter()
        .filter_map(|(_, s)| s.stacks.as_ref())
        .flat_map(|st| &st.signatures)
        .collect();
    for sig in matched.iter().take(3) {
        let _ = writeln!(
            m,
            "The stacks match **{}** ({}): {}.\n",
            md_text(&sig.id),
            md_text(&sig.url),
            md_text(&sig.meaning)
        );
    }
    let _ = writeln!(m, "Confirmed root cause: {TODO}");

    let _ = writeln!(m, "\n## Symptoms\n");
    let _ = writeln!(
        m,
        "- {} Timeout error",
        check(!timeouts.is_empty() || w.in_flight.iter().any(|r| !r.timeouts.is_empty()))
    );
    let _ = writeln!(m, "- {} Deadlock (0% CPU)", check(hung && cpu_idle));
    let _ = writeln!(m, "- {} Memory leak", check(leaking));
    let _ = writeln!(m, "- {} Crash", check(crashed));

    let _ = writeln!(m, "\n## Memory ({metric})\n");
    let _ = writeln!(
        m,
        "- Start: {}",
        mem_first.map_or(TODO.into(), |b| format!(
            "{} at {}",
            bytes(b),
            local(first.taken_at)
        ))
    );
    let _ = writeln!(
        m,
        "- End: {}",
        mem_last.map_or(TODO.into(), |b| format!(
            "{} at {}",
            bytes(b),
            local(last.taken_at)
        ))
    );
    let _ = writeln!(m, "- Trend: {}", md_text(&trend_text));
    if let Some(sm) = &last.system_memory {
        let _ = writeln!(
            m,
            "- System: {} available of {}, pressure {}",
            bytes(sm.available_bytes),
            bytes(sm.total_bytes),
            sm.pressure.label()
        );
    }

    let _ = writeln!(m, "\n## Data collected\n");
    let _ = writeln!(m, "- [x] Process snapshot");
    let _ = writeln!(m, "- {} Thread state", check(last.threads.is_some()));
    let _ = writeln!(m, "- {} IPC state", check(last.fds.is_some()));
    let _ = writeln!(m, "- {} Registry state", check(last.registry.is_some()));
    let _ = writeln!(
        m,
        "- {} Logs with timeline",
        check(log.is_some() || last.log.is_some())
    );
    let _ = writeln!(m, "{}", stack_trace_line(series.iter().map(|(_, s)| s)));

    let _ = writeln!(m, "\n## Files\n");
    for (p, _) in &series {
        let _ = writeln!(
            m,
            "- Snapshot: {} (and `.txt`)",
            md_code(&p.display().to_string())
        );
    }
    if let Some(p) = log_path {
        let _ = writeln!(m, "- Log: {}", md_code(&p.display().to_string()));
    }

    let _ = writeln!(m, "\n## Actions taken\n");
    for a in [
        "Killed worker",
        "Spawned fresh worker",
        "Updated monitoring",
        "Reported to team",
    ] {
        let _ = writeln!(m, "- [ ] {a} — {TODO}");
    }

    let _ = writeln!(m, "\n## Action items\n");
    let _ = writeln!(m, "| Item | Type | Owner | Bug |\n|---|---|---|---|");
    let _ = writeln!(
        m,
        "| Run `mlsdiag snapshot --quiet --on-finding` from cron/launchd so the next hang is caught young | detect | {TODO} | {TODO} |"
    );
    let _ = writeln!(
        m,
        "| Add a per-decode-step heartbeat and a worker-side generation timeout | mitigate | {TODO} | {TODO} |"
    );
    if hung {
        let _ = writeln!(
            m,
            "| Replay the trigger request until the hang recurs (about 952 runs to see a 1-in-318 hang with 95% probability) | investigate | {TODO} | {TODO} |"
        );
    }
    let _ = writeln!(m, "| {TODO} | {TODO} | {TODO} | {TODO} |");

    let _ = writeln!(m, "\n## Follow-up\n");
    let _ = writeln!(m, "- [ ] Check other machines");
    let _ = writeln!(
        m,
        "- [ ] Review MLX version (`pip show mlx mlx-lm`) — {TODO}"
    );
    let _ = writeln!(m, "- [ ] Attempt reproduction");
    let _ = writeln!(m, "- [ ] Implement fixes");

    let _ = writeln!(m, "\n## Lessons learned\n");
    let _ = writeln!(
        m,
        "- What went well: {TODO}\n- What went wrong: {TODO}\n- Where we got lucky: {TODO}"
    );
    m
}

pub fn run(args: &PostmortemArgs, _ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    let snaps = load_inputs(&args.snapshots)?;
    let log = match &args.log {
        Some(p) => Some(logs::analyze(
            std::slice::from_ref(p),
            Options {
                hung_after: std::time::Duration::from_secs(300),
                bands: vec![],
                ..Options::default()
            },
            |_| {},
        )?),
        None => None,
    };
    let text = render(&snaps, args.log.as_deref(), log.as_ref());
    match &args.output {
        None => out.write_all(text.as_bytes())?,
        Some(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow::anyhow!("{}: not a file name", path.display()))?;
            let handle = crate::output::Dir::open(dir, "the report")?
                .ok_or_else(|| anyhow::anyhow!("{}: does not exist", dir.display()))?;
            if args.force {
                // Only a regular file is ever replaced: not a device, a FIFO, a directory or
                // a symlink (dangling or not), whatever --force says.
                match std::fs::symlink_metadata(path) {
                    Ok(m) if !m.file_type().is_file() => anyhow::bail!(
                        "{}: exists and is not a regular file; refusing to replace it, even with --force",
                        path.display()
                    ),
                    _ => handle.replace(name, text.as_bytes(), 0o644)?,
                }
            } else if !handle.write_new(name, text.as_bytes())? {
                // Without --force nothing that exists is replaced, a dangling symlink included.
                anyhow::bail!("{}: exists; use --force to replace it", path.display());
            }
            writeln!(out, "wrote {}", path.display())?;
        }
    }
    Ok(Status::Ok)
}

/// The "Stack trace" item of the data checklist: checked when a snapshot holds frames, else
/// why there are none.
fn stack_trace_line<'a>(
    mut snapshots: impl DoubleEndedIterator<Item = &'a crate::model::Snapshot>,
) -> String {
    let Some(st) = snapshots.by_ref().rev().find_map(|s| s.stacks.as_ref()) else {
        return "- [ ] Stack trace (the snapshots hold none: `mlsdiag snapshot` keeps the stacks of a live worker, `mlsdiag stacks PID` shows them)".into();
    };
    let frames = !st.python_threads.is_empty()
        || st
            .threads
            .iter()
            .any(|t| !t.python.is_empty() || !t.native.is_empty());
    let ok: Vec<&str> = st
        .sources
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.name.as_str())
        .collect();
    if frames {
        format!("- [x] Stack trace (from {})", md_text(&ok.join(", ")))
    } else {
        let why: Vec<String> = st
            .sources
            .iter()
            .filter(|s| !s.ok)
            .map(|s| format!("{}: {}", s.name, s.detail))
            .collect();
        format!(
            "- [ ] Stack trace (no frames captured: {})",
            md_text(&why.join("; "))
        )
    }
}
