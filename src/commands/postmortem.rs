//! `mlsdiag postmortem`: the seed's Part 5 template, filled from the evidence.
//!
//! Snapshots answer who, what state, how long and what was collected; the server log answers
//! which request, how many before it and the timeline. Every field the evidence decides is
//! filled and every checkbox it decides is ticked; what only a person can write (impact on
//! users, actions taken, lessons) is left as a visible `_TODO_` placeholder.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Ctx;
use crate::cli::PostmortemArgs;
use crate::diagnose::incident::incident;
use crate::logs::{self, Options};
use crate::model::Snapshot;
use crate::model::Status;
use crate::render;
use crate::store;

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

pub fn run(args: &PostmortemArgs, ctx: &Ctx, out: &mut dyn Write) -> anyhow::Result<Status> {
    // A postmortem is a Markdown document for people; its facts are the snapshots' JSON.
    anyhow::ensure!(
        !ctx.json,
        "postmortem writes Markdown for people, so --json has no meaning here; the facts it uses are the snapshots' JSON (`snapshot --json`, `history --json`)"
    );
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
    let text = render::postmortem::postmortem(&incident(&snaps, args.log.as_deref(), log.as_ref()));
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
