//! `mlsdiag demo`: start a simulated MLS with one worker of each kind and diagnose it.
//!
//! The first command a new user runs. It proves the diagnosis on real misbehaving processes
//! (see [`crate::sim`]), prints what `check` concludes, says whether every worker got the verdict
//! it was built to earn, and cleans up after itself: on exit, on Ctrl-C, and (through the
//! orchestrator noticing its starter is gone) even when killed. `--keep` leaves it running.

use std::io::{self, Write};

use super::Ctx;
use crate::cli::DemoArgs;
use crate::diagnose::check::{CheckOptions, check};
use crate::fmt;
use crate::model::{CheckReport, SCHEMA_VERSION, Status};
use crate::render;
use crate::sim::demo::{self, DemoReport, Expectation};
use crate::sim::{Role, State};

pub fn run(args: &DemoArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    if let Some(dir) = &args.stop {
        demo::stop(dir)?;
        writeln!(out, "stopped the demo in {}", dir.display())?;
        return Ok(Status::Ok);
    }
    let mut sim = demo::Simulation::start(args.keep)?;
    let result = diagnose(args, ctx, out, &mut sim);
    sim.finish(args.keep && result.is_ok());
    result
}

fn diagnose(
    args: &DemoArgs,
    ctx: &Ctx,
    out: &mut dyn Write,
    sim: &mut demo::Simulation,
) -> anyhow::Result<Status> {
    let state = sim.wait_for_state()?;
    let dir = sim.dir.as_path();
    let options = CheckOptions {
        pattern: Some(state.pattern.clone()),
        registry: state.registry.clone(),
        log: Some(state.log.clone()),
        window: args.window,
        // The simulated workers are seconds old, and a request is evidence only about a
        // process alive when it started: the stall that counts is the one since then.
        hung_after: demo::DEMO_HUNG_AFTER,
        leak: demo::DEMO_LEAK,
        ..CheckOptions::default()
    };
    if !ctx.json {
        writeln!(
            out,
            "Simulated MLS in {}: orchestrator PID {} and {} workers ({}).\nDiagnosing with a {:.1} s window...\n",
            dir.display(),
            state.orchestrator_pid,
            state.workers.len(),
            state
                .workers
                .iter()
                .map(|(r, p, _)| format!("{} {p}", r.label()))
                .collect::<Vec<_>>()
                .join(", "),
            args.window.as_secs_f64()
        )?;
    }
    demo::until_provable(args.window);
    let report = check(&options, ctx.platform.as_ref())?;
    let expectations: Vec<_> = state.workers.iter().map(|w| compare(&report, w)).collect();
    let as_designed = expectations.iter().all(|e| e.as_designed);
    if ctx.json {
        let report = DemoReport {
            schema_version: SCHEMA_VERSION,
            command: "demo",
            dir: dir.to_path_buf(),
            kept: args.keep,
            as_designed,
            expectations,
            check: report,
        };
        render::json(out, &report)?;
    } else {
        crate::render::check::check(&report, &ctx.style, out)?;
        writeln!(out)?;
        print_outcome(out, &expectations, as_designed)?;
        if args.keep {
            print_next_steps(out, &state, dir)?;
        }
    }
    // The demo succeeds when the diagnosis matches the design, whatever the verdicts are.
    Ok(if as_designed {
        Status::Ok
    } else {
        Status::Warning
    })
}

/// One simulated worker's designed verdict next to the one the check found.
fn compare(report: &CheckReport, &(role, pid, _): &(Role, u32, String)) -> Expectation {
    let (verdict, activity) = demo::expected(role);
    let found = report.workers.iter().find(|w| w.pid == pid);
    let as_designed =
        found.is_some_and(|w| w.verdict == verdict && activity.is_none_or(|a| a == w.activity));
    Expectation {
        role,
        pid,
        expected: verdict,
        expected_activity: activity,
        found: found.map(|w| w.verdict),
        found_activity: found.map(|w| w.activity),
        as_designed,
    }
}

/// Prints that every worker was diagnosed as designed, or each one that was not.
fn print_outcome(out: &mut dyn Write, all: &[Expectation], as_designed: bool) -> io::Result<()> {
    if as_designed {
        let n = all.len();
        return writeln!(out, "demo: all {n} workers diagnosed as designed.");
    }
    for e in all.iter().filter(|e| !e.as_designed) {
        writeln!(
            out,
            "demo: the {} worker (PID {}) was built to be {} but was diagnosed {}",
            e.role.label(),
            e.pid,
            e.expected.label(),
            e.found.map_or("missing", |v| v.label())
        )?;
    }
    Ok(())
}

/// Prints the commands to try on the simulation that `--keep` left running, and how to stop it.
fn print_next_steps(out: &mut dyn Write, state: &State, dir: &std::path::Path) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let exe = exe.display();
    let reg = state.registry.display();
    let flags = format!("--pattern {} --registry {reg}", state.pattern);
    let (log, hung) = (state.log.display(), fmt::duration(demo::DEMO_HUNG_AFTER));
    writeln!(out, "\nThe simulation keeps running. Try:")?;
    writeln!(out, "  {exe} check {flags} --log {log} --hung-after {hung}")?;
    let pid_of = |r: Role| state.workers.iter().find(|w| w.0 == r).map_or(0, |w| w.1);
    writeln!(out, "  {exe} threads {}", pid_of(Role::Hung))?;
    writeln!(out, "  {exe} fds {}", pid_of(Role::Idle))?;
    writeln!(out, "  {exe} registry {flags}")?;
    writeln!(out, "  {exe} mem {flags} --samples 5")?;
    writeln!(out, "Stop it with:\n  {exe} demo --stop {}", dir.display())
}
