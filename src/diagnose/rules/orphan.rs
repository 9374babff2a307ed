//! Orphan: alive and matching the pattern, but unknown to the registry (its orchestrator
//! usually gone, the worker re-parented to init or launchd).

use super::Judging;
use crate::diagnose::assess::{Observation, RegistryView};
use crate::model::{Finding, ProcessInfo, Verdict};

pub fn judge(o: &Observation, last: &ProcessInfo, parent: &str, j: &mut Judging) {
    match (&o.registry, o.entry) {
        (RegistryView::Loaded { path }, None) => {
            let mut ev = vec![format!(
                "alive and matching, but not listed in the registry {path}"
            )];
            if last.ppid <= 1 {
                ev.push(format!(
                    "parent is {parent}: its orchestrator is gone (re-parented to init/launchd)"
                ));
            } else {
                ev.push(format!("parent is {parent}"));
            }
            j.findings.push(Finding {
                verdict: Verdict::Orphan,
                evidence: ev,
            });
        }
        (RegistryView::Unavailable { why }, None) => {
            j.notes.push(format!(
                "registry unavailable ({why}): cannot tell whether this worker is an orphan"
            ));
        }
        _ => {}
    }
}
