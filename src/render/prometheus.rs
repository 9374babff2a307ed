//! Prometheus exposition of a check: the text format that node_exporter's textfile collector
//! reads and that `watch --listen` serves on `/metrics` ([`crate::metrics`] writes and serves
//! it). Operators alert on these with the rules in docs/alerting-rules.yml.

use std::fmt::Write as _;
use std::time::Duration;

use crate::model::{CheckReport, SinceProgress, Verdict};

/// Escapes a label value: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    name: &'a str,
    help: &'a str,
    kind: &'a str,
    samples: Vec<(String, f64)>,
}

impl Family<'_> {
    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            let _ = writeln!(out, "{}{labels} {}", self.name, number(*value));
        }
    }
}

/// A time as the Unix seconds Prometheus timestamps are (to the millisecond).
fn unix_secs(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn number(v: f64) -> String {
    if v.is_finite() && v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The exposition of `report` (or of a failed collection: `report` None), with how long the
/// collection took and, from `watch`, the time since each worker's last progress.
pub fn render(
    report: Option<&CheckReport>,
    took: Duration,
    since_progress: Option<&SinceProgress>,
) -> String {
    let mut families = health_families(report.is_some(), took);
    if let Some(r) = report {
        families.push(status_family(r));
        families.push(Family {
            name: "mlsdiag_check_timestamp_seconds",
            help: "When the check behind these metrics ran, Unix seconds.",
            kind: "gauge",
            samples: vec![(String::new(), unix_secs(r.generated_at))],
        });
        families.push(info_family(r));
        families.push(verdict_family(r));
        families.extend(resource_families(r));
        families.extend(progress_families(r, since_progress));
    }
    let mut out = String::new();
    for f in &families {
        f.write(&mut out);
    }
    out
}

/// The families written even when the check failed: whether it worked, how long it took, and
/// which mlsdiag wrote them.
fn health_families(up: bool, took: Duration) -> Vec<Family<'static>> {
    vec![
        Family {
            name: "mlsdiag_build_info",
            help: "The mlsdiag that wrote these metrics (always 1).",
            kind: "gauge",
            samples: vec![(
                format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")),
                1.0,
            )],
        },
        Family {
            name: "mlsdiag_up",
            help: "1 if the last check could inspect the workers, 0 if it failed.",
            kind: "gauge",
            samples: vec![(String::new(), if up { 1.0 } else { 0.0 })],
        },
        Family {
            name: "mlsdiag_scrape_duration_seconds",
            help: "How long the last check took (sampling window included; snapshots and hooks not).",
            kind: "gauge",
            samples: vec![(String::new(), took.as_secs_f64())],
        },
    ]
}

/// The overall status of the check, as its exit code.
fn status_family(r: &CheckReport) -> Family<'static> {
    Family {
        name: "mlsdiag_status",
        help: "Overall status as the exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        kind: "gauge",
        samples: vec![(String::new(), f64::from(r.status.code()))],
    }
}

/// The label that names one worker: its name, which outlives restarts when the registry gives
/// it (the PID changes on each one and is on `mlsdiag_worker_info` only). Two processes under
/// one name in one check (unregistered ones named alike by their command lines) are told apart
/// as `name (pid N)`.
fn who(r: &CheckReport, w: &crate::model::WorkerReport) -> String {
    let shared = r.workers.iter().filter(|o| o.name == w.name).count() > 1;
    if shared {
        format!("worker=\"{} (pid {})\"", label(&w.name), w.pid)
    } else {
        format!("worker=\"{}\"", label(&w.name))
    }
}

/// One sample for each worker that `f` gives a value for, labelled with the worker.
fn per_worker(
    r: &CheckReport,
    f: &dyn Fn(&crate::model::WorkerReport) -> Option<f64>,
) -> Vec<(String, f64)> {
    r.workers
        .iter()
        .filter_map(|w| f(w).map(|v| (format!("{{{}}}", who(r, w)), v)))
        .collect()
}

/// What identifies each worker now (always 1): the PID, which changes on every restart, its
/// model and whether the registry lists it. Join on `worker` for them.
fn info_family(r: &CheckReport) -> Family<'static> {
    Family {
        name: "mlsdiag_worker_info",
        help: "The worker's process (always 1): its PID, model and whether the registry lists it.",
        kind: "gauge",
        samples: r
            .workers
            .iter()
            .map(|w| {
                let labels = format!(
                    "{{{},pid=\"{}\",model=\"{}\",registered=\"{}\"}}",
                    who(r, w),
                    w.pid,
                    label(w.model.as_deref().unwrap_or("")),
                    w.registered
                );
                (labels, 1.0)
            })
            .collect(),
    }
}

/// Each worker's verdict as one sample per possible verdict.
fn verdict_family(r: &CheckReport) -> Family<'static> {
    Family {
        name: "mlsdiag_worker_verdict",
        help: "The worker's verdict: 1 for the current one, 0 for the others.",
        kind: "gauge",
        samples: r
            .workers
            .iter()
            .flat_map(|w| {
                Verdict::ALL.iter().map(move |v| {
                    (
                        format!("{{{},verdict=\"{}\"}}", who(r, w), v.label()),
                        if w.verdict == *v { 1.0 } else { 0.0 },
                    )
                })
            })
            .collect(),
    }
}

/// The workers' resources: CPU time, resident memory, footprint and threads.
fn resource_families(r: &CheckReport) -> Vec<Family<'static>> {
    vec![
        Family {
            name: "mlsdiag_worker_cpu_seconds_total",
            help: "User plus system CPU time of the worker process.",
            kind: "counter",
            samples: per_worker(r, &|w| w.cpu_seconds),
        },
        Family {
            name: "mlsdiag_worker_resident_bytes",
            help: "Resident set size of the worker process.",
            kind: "gauge",
            samples: per_worker(r, &|w| w.rss_bytes.map(|b| b as f64)),
        },
        Family {
            name: "mlsdiag_worker_footprint_bytes",
            help: "phys_footprint of the worker process (macOS; the leak signal there).",
            kind: "gauge",
            samples: per_worker(r, &|w| w.footprint_bytes.map(|b| b as f64)),
        },
        Family {
            name: "mlsdiag_worker_threads",
            help: "Threads of the worker process.",
            kind: "gauge",
            samples: per_worker(r, &|w| w.threads.map(f64::from)),
        },
    ]
}

/// The workers' progress: requests in flight and seconds since they last progressed.
fn progress_families(
    r: &CheckReport,
    since_progress: Option<&SinceProgress>,
) -> Vec<Family<'static>> {
    vec![
        Family {
            name: "mlsdiag_worker_in_flight_requests",
            help: "Requests the server log shows started and not finished on this worker (needs --log).",
            kind: "gauge",
            samples: if r.log.is_some() {
                per_worker(r, &|w| Some(w.in_flight.len() as f64))
            } else {
                vec![]
            },
        },
        Family {
            name: "mlsdiag_worker_oldest_in_flight_start_timestamp_seconds",
            help: "When the oldest request the log shows in flight on this worker started, Unix seconds (needs --log); its age is time() - this.",
            kind: "gauge",
            samples: per_worker(r, &|w| {
                let oldest = w.in_flight.first()?;
                Some(unix_secs(oldest.started))
            }),
        },
        Family {
            name: "mlsdiag_worker_last_progress_timestamp_seconds",
            help: "When the worker last made progress (tokens, the log's progress lines, CPU or GPU time), Unix seconds; its age is time() - this.",
            kind: "gauge",
            samples: per_worker(r, &|w| last_progress(r, w, since_progress)),
        },
        Family {
            name: "mlsdiag_worker_tokens_total",
            help: "Tokens the worker generated, by its token progress record (the mlsdiag Python module).",
            kind: "counter",
            samples: per_worker(r, &|w| w.progress.as_ref().map(|p| p.record.tokens as f64)),
        },
        Family {
            name: "mlsdiag_worker_gpu_busy_percent",
            help: "GPU busy share over the check's window (NVML SM utilisation, or IORegistry GPU time over the window).",
            kind: "gauge",
            samples: per_worker(r, &|w| w.gpu.as_ref().and_then(|g| g.busy_percent)),
        },
        Family {
            name: "mlsdiag_worker_gpu_seconds_total",
            help: "GPU time the worker used (macOS IORegistry).",
            kind: "counter",
            samples: per_worker(r, &|w| w.gpu.as_ref().and_then(|g| g.gpu_seconds)),
        },
        Family {
            name: "mlsdiag_worker_gpu_memory_bytes",
            help: "GPU memory the worker holds (NVML).",
            kind: "gauge",
            samples: per_worker(r, &|w| {
                w.gpu
                    .as_ref()
                    .and_then(|g| g.memory_bytes.map(|b| b as f64))
            }),
        },
        Family {
            name: "mlsdiag_worker_tokens_per_second",
            help: "Tokens per second over the check's window, by the worker's token progress record.",
            kind: "gauge",
            samples: per_worker(r, &|w| w.progress.as_ref().and_then(|p| p.tokens_per_sec)),
        },
    ]
}

/// When `w` last made progress: its token record's last token or prefill chunk; else, from
/// `watch`, the round it was last seen progressing; else, from one check, now when it is
/// working (one check only knows whether there was progress within its window).
fn last_progress(
    r: &CheckReport,
    w: &crate::model::WorkerReport,
    since_progress: Option<&SinceProgress>,
) -> Option<f64> {
    let now = unix_secs(r.generated_at);
    let record = w.progress.as_ref().and_then(|p| p.record.last_progress);
    let from_record = record.map(unix_secs);
    let from_rounds = since_progress.and_then(|m| m.get(&w.pid)).map(|s| now - s);
    let working = (w.activity == crate::model::Activity::Working).then_some(now);
    from_record.or(from_rounds).or(working)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn numbers_print_as_prometheus_reads_them() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::NAN), "NaN");
    }

    #[test]
    fn a_failed_check_still_says_up_0() {
        let text = render(None, Duration::from_millis(1500), None);
        assert!(text.contains("mlsdiag_up 0\n"), "{text}");
        assert!(
            text.contains("mlsdiag_scrape_duration_seconds 1.5\n"),
            "{text}"
        );
        assert!(!text.contains("mlsdiag_worker"), "{text}");
    }
}
