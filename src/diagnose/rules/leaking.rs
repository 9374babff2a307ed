//! Leaking: the worker's memory baseline rising, judged by [`crate::diagnose::leak`] on the
//! window's readings, with the readings taken mid-request left out where the log says which.

use super::Judging;
use crate::diagnose::assess::{Observation, Thresholds};
use crate::diagnose::leak;
use crate::model::{Finding, ProcessInfo, Verdict};

pub fn judge(o: &Observation, th: &Thresholds, last: &ProcessInfo, j: &mut Judging) {
    let metric = if last.footprint_bytes.is_some() {
        "footprint"
    } else {
        "RSS"
    };
    let samples = o.series.memory_samples(|secs| busy_at(o, secs));
    if let Some(judged) = leak::judge(&samples, &th.leak) {
        let fact = judged.describe(metric, &th.leak);
        if judged.is_leak() {
            j.findings.push(Finding {
                verdict: Verdict::Leaking,
                evidence: vec![fact],
            });
        } else {
            j.notes.push(fact);
        }
    }
}

/// Whether a request was in flight at the reading taken `secs` after the first one, where the
/// log can say: from the oldest request still in flight on (a format that logs ends), and after
/// the last progress when nothing is in flight. The last reading is taken at `o.now`.
fn busy_at(o: &Observation, secs: f64) -> Option<bool> {
    let l = o.log?;
    if !l.proves_in_flight {
        return None;
    }
    let back = chrono::Duration::milliseconds(((o.series.span_secs() - secs) * 1000.0) as i64);
    let at = o.now - back;
    match l.in_flight.iter().map(|r| r.started).min() {
        Some(oldest) => (at >= oldest).then_some(true),
        None => match l.last_progress.or(l.last_completion) {
            Some(p) if at <= p => None,
            _ => Some(false),
        },
    }
}
