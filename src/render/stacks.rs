//! `stacks`' text: where each thread is stuck, from which sources, and which known hang it is.

use std::io::Write;

use super::{Style, sanitize};
use crate::model::{Frame, StacksReport};

fn top(frames: &[Frame]) -> String {
    frames.last().map_or("-".into(), |f| match f.line {
        Some(l) => format!(
            "{} ({}:{l})",
            f.function,
            f.location
                .as_deref()
                .map(|p| p.rsplit('/').next().unwrap_or(p))
                .unwrap_or("?")
        ),
        None => f.function.clone(),
    })
}

/// The threads with what they wait on and their innermost frames, the wait groups, each
/// source's outcome, and the known hangs matched.
pub fn stacks(r: &StacksReport, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    thread_table(r, st, out)?;
    thread_frames(r, out)?;
    wait_groups(r, out)?;
    source_outcomes(r, out)?;
    signature_matches(r, out)
}

/// The table of threads: state, what each waits on, and its innermost frames.
fn thread_table(r: &StacksReport, st: &Style, out: &mut dyn Write) -> std::io::Result<()> {
    let mut t = st.table(&[
        "TID",
        "NAME",
        "S",
        "WAITS ON",
        "PYTHON (innermost)",
        "NATIVE (innermost)",
    ]);
    for th in &r.threads {
        t.add_row(vec![
            th.tid.to_string(),
            sanitize(th.name.as_deref().unwrap_or("")),
            th.state.map_or("-".into(), |c| c.to_string()),
            sanitize(th.wait.as_deref().unwrap_or("-")),
            sanitize(&top(&th.python)),
            sanitize(&top(&th.native)),
        ]);
    }
    writeln!(out, "{t}")
}

/// The full Python and native frames of every thread that has any.
fn thread_frames(r: &StacksReport, out: &mut dyn Write) -> std::io::Result<()> {
    for th in r
        .threads
        .iter()
        .chain(&r.python_threads)
        .filter(|t| !t.python.is_empty() || !t.native.is_empty())
    {
        writeln!(
            out,
            "\nThread {} {}{}",
            th.tid,
            sanitize(th.name.as_deref().unwrap_or("")),
            if th.owns_gil == Some(true) {
                " [holds the GIL]"
            } else {
                ""
            }
        )?;
        for f in &th.python {
            writeln!(
                out,
                "  py  {} ({}:{})",
                sanitize(&f.function),
                sanitize(f.location.as_deref().unwrap_or("?")),
                f.line.unwrap_or(0)
            )?;
        }
        if let Some([n, total]) = th.samples {
            writeln!(out, "  native ({n}/{total} samples on this path):")?;
        }
        for f in &th.native {
            writeln!(
                out,
                "  c   {}{}",
                sanitize(&f.function),
                f.location
                    .as_ref()
                    .map(|l| format!("  (in {})", sanitize(l)))
                    .unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

/// One line per wait group: how many threads wait on what, and on how many locks.
fn wait_groups(r: &StacksReport, out: &mut dyn Write) -> std::io::Result<()> {
    if !r.groups.is_empty() {
        writeln!(out)?;
        for g in &r.groups {
            let mut line = format!("{} thread(s) in {}", g.tids.len(), g.wait);
            if !g.locks.is_empty() {
                line.push_str(&format!(" on {} lock(s)", g.locks.len()));
            }
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// The "Sources:" list: whether each source worked, and its detail.
fn source_outcomes(r: &StacksReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "\nSources:")?;
    for s in &r.sources {
        writeln!(
            out,
            "  {} {}: {}",
            if s.ok { "✓" } else { "✗" },
            s.name,
            sanitize(&s.detail)
        )?;
    }
    Ok(())
}

/// The known MLX hang signatures matched, or a line saying none did.
fn signature_matches(r: &StacksReport, out: &mut dyn Write) -> std::io::Result<()> {
    if r.signatures.is_empty() {
        writeln!(
            out,
            "\nNo known MLX hang signature matched (see docs/hang-signatures.md)."
        )?;
    }
    for m in &r.signatures {
        writeln!(
            out,
            "\nmatches {}: {} — {} ({}); threads {:?}",
            m.id, m.title, m.meaning, m.url, m.threads
        )?;
    }
    Ok(())
}
