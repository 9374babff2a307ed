//! Readings of processes spread over a window, so rates come from what happened now.
//!
//! `ps` prints %CPU averaged since the process started, which hides a worker that froze an hour
//! ago after hours of work. mlsdiag reads each worker several times across `--window` and
//! computes CPU% and memory slope from those readings only.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::error::InspectError;
use crate::model::waits::group;
use crate::model::{ProcessInfo, SCHEMA_VERSION, ThreadRow, ThreadsReport};
use crate::platform::Platform;

/// Readings of one process: `(seconds since the first reading, reading)`.
#[derive(Debug, Clone)]
pub struct Series {
    pub pid: u32,
    pub readings: Vec<(f64, ProcessInfo)>,
    /// Set when a reading failed; readings taken before the failure are kept.
    pub error: Option<InspectError>,
}

impl Series {
    pub fn first(&self) -> Option<&ProcessInfo> {
        self.readings.first().map(|r| &r.1)
    }
    pub fn last(&self) -> Option<&ProcessInfo> {
        self.readings.last().map(|r| &r.1)
    }
    pub fn span_secs(&self) -> f64 {
        self.readings.last().map_or(0.0, |r| r.0) - self.readings.first().map_or(0.0, |r| r.0)
    }
    /// CPU used over the span, nanoseconds.
    pub fn cpu_delta_ns(&self) -> Option<u64> {
        (self.readings.len() >= 2)
            .then(|| self.last()?.cpu_ns().checked_sub(self.first()?.cpu_ns()))?
    }
    /// Average CPU% over the span (100 = one core).
    pub fn cpu_percent(&self) -> Option<f64> {
        let span = self.span_secs();
        (span > 0.0).then(|| self.cpu_delta_ns().map(|d| d as f64 / 1e9 / span * 100.0))?
    }
    /// Keep only the readings from the last one taken at or before `secs` on, where at least
    /// two remain: CPU% and the threads running then cover only that part of the window.
    pub fn keep_from(&mut self, secs: f64) {
        let start = self.readings.iter().rposition(|r| r.0 <= secs).unwrap_or(0);
        if self.readings.len() - start >= 2 {
            self.readings.drain(..start);
        }
    }
    /// Most threads seen running in any reading.
    pub fn max_running(&self) -> u32 {
        self.readings
            .iter()
            .map(|r| r.1.threads_running)
            .max()
            .unwrap_or(0)
    }
    /// The leak metric (footprint where the OS has it, else RSS) at each reading, with whether a
    /// request was in flight at that reading, from `busy(seconds since the first reading)`.
    pub fn memory_samples(
        &self,
        busy: impl Fn(f64) -> Option<bool>,
    ) -> Vec<crate::model::MemorySample> {
        self.readings
            .iter()
            .map(|(t, p)| crate::model::MemorySample {
                secs: *t,
                bytes: p.leak_metric_bytes(),
                busy: busy(*t),
            })
            .collect()
    }
}

/// Read every pid `samples` times, evenly spread over `window` (one reading when `window` is 0).
pub fn sample(
    platform: &dyn Platform,
    pids: &[u32],
    window: Duration,
    samples: usize,
) -> Vec<Series> {
    let mut series: Vec<Series> = pids
        .iter()
        .map(|&pid| Series {
            pid,
            readings: Vec::new(),
            error: None,
        })
        .collect();
    let samples = if window.is_zero() { 1 } else { samples.max(2) };
    let step = if samples > 1 {
        window / (samples as u32 - 1)
    } else {
        Duration::ZERO
    };
    let start = Instant::now();
    for i in 0..samples {
        let due = start + step * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for s in series.iter_mut().filter(|s| s.error.is_none()) {
            let t = start.elapsed().as_secs_f64();
            match platform.process(s.pid) {
                Ok(p) => s.readings.push((t, p)),
                Err(e) => s.error = Some(e),
            }
        }
    }
    series
}

/// How many readings to take over a window: about five per second, at least 5, at most 50.
pub fn readings_for(window: Duration) -> usize {
    ((window.as_secs_f64() * 5.0).round() as usize + 1).clamp(5, 50)
}

/// Every thread of `pid`, read twice `window` apart for per-thread CPU%, grouped by what the
/// sleeping ones wait on.
pub fn threads(
    platform: &dyn Platform,
    pid: u32,
    window: Duration,
) -> Result<ThreadsReport, InspectError> {
    let p = platform.process(pid)?;
    let before = platform.threads(pid)?;
    let gpu_before = platform.gpu(&[pid], None);
    let started = std::time::Instant::now();
    let after = if window.is_zero() {
        before.clone()
    } else {
        std::thread::sleep(window);
        platform.threads(pid)?
    };
    let gpu = gpu_before.and_then(|b| {
        let a = platform.gpu(&[pid], b.at)?;
        crate::model::GpuUsage::between(&b, &a, pid)
    });
    let span = started.elapsed().as_secs_f64();
    let prev: BTreeMap<u64, u64> = before.iter().map(|t| (t.tid, t.cpu_ns())).collect();
    let mut states = BTreeMap::new();
    for t in &after {
        *states.entry(t.state).or_insert(0) += 1;
    }
    let all_blocked = !after.is_empty() && after.iter().all(|t| t.state != 'R');
    let groups = group(&after);
    let threads = after
        .into_iter()
        .map(|t| {
            let cpu_percent = (span > 0.0)
                .then(|| {
                    prev.get(&t.tid)
                        .map(|&b| t.cpu_ns().saturating_sub(b) as f64 / 1e9 / span * 100.0)
                })
                .flatten();
            ThreadRow {
                thread: t,
                cpu_percent,
            }
        })
        .collect();
    Ok(ThreadsReport {
        schema_version: SCHEMA_VERSION,
        command: "threads",
        pid: p.pid,
        name: p.name,
        window_secs: span,
        threads,
        states,
        all_blocked,
        groups,
        gpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(t: f64, cpu_ms: u64) -> (f64, ProcessInfo) {
        let p = ProcessInfo {
            pid: 7,
            ppid: 1,
            uid: 501,
            name: "python3".into(),
            cmdline: vec![],
            state: 'S',
            start_time: chrono::DateTime::UNIX_EPOCH,
            cpu_user_ns: cpu_ms * 1_000_000,
            cpu_system_ns: 0,
            rss_bytes: 0,
            vsz_bytes: 0,
            footprint_bytes: None,
            threads: 1,
            threads_running: 0,
        };
        (t, p)
    }

    #[test]
    fn keep_from_drops_the_start_of_the_window_while_two_readings_remain() {
        // 40 ms of CPU in the first second (a request parsed), then nothing.
        let mut s = Series {
            pid: 7,
            readings: vec![
                reading(0.0, 0),
                reading(1.0, 40),
                reading(2.0, 40),
                reading(3.0, 40),
            ],
            error: None,
        };
        assert!(s.cpu_percent().unwrap() > 1.0);
        s.keep_from(1.5);
        assert_eq!(s.readings.len(), 3, "from the reading at 1.0 on");
        assert_eq!(s.cpu_percent(), Some(0.0));
        // Too few left: the whole window stays.
        s.keep_from(10.0);
        assert_eq!(s.readings.len(), 3);
    }
}
