//! `watch`'s line per verdict change: when, which worker, from what to what, the first
//! evidence, and what was done (snapshot, hook, restart).

use super::{clip_name, sanitize};
use crate::model::{Verdict, WatchEvent};

/// The event as one line of text (local time).
pub fn line(e: &WatchEvent) -> String {
    let label = |v: Option<Verdict>, none: &str| v.map_or(none.to_string(), |v| v.label().into());
    let mut line = format!(
        "{} PID {} {}: {} → {}",
        e.at.with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S"),
        e.pid,
        clip_name(&e.worker),
        label(e.from, "new"),
        label(e.to, "gone"),
    );
    if let Some(first) = e.evidence.first()
        && e.to != Some(Verdict::Healthy)
    {
        line.push_str(&format!(": {}", sanitize(first)));
    }
    for (what, v) in [
        ("snapshot", &e.snapshot),
        ("hook", &e.hook),
        ("restart", &e.restart),
    ] {
        if let Some(v) = v {
            line.push_str(&format!(" [{what}: {}]", sanitize(v)));
        }
    }
    line
}
