//! GPU time per worker, read without root: NVML on Linux (per-process SM utilisation and GPU
//! memory), the IORegistry's AGX user clients on macOS (each client's accumulated GPU time).
//! GPU-bound work idles the CPU; a GPU spin keeps the GPU busy while no token comes. Neither is
//! visible in CPU time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One reading of a GPU source for the processes asked about.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuReading {
    /// `nvml` or `iokit`.
    pub source: &'static str,
    /// Why the source could not be read (no driver, no GPU); nothing else fails.
    pub unavailable: Option<String>,
    /// The processes the GPU knows, by PID; a process absent holds no GPU context.
    pub processes: BTreeMap<u32, GpuProcess>,
    pub at: Option<DateTime<Utc>>,
}

/// What one reading says about one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuProcess {
    /// GPU time so far (a counter; macOS).
    pub gpu_ns: Option<u64>,
    /// Busy share since the window's start, as the driver samples it (NVML's SM %).
    pub busy_percent: Option<f64>,
    /// GPU memory in use (NVML).
    pub memory_bytes: Option<u64>,
}

impl GpuReading {
    pub fn unavailable(source: &'static str, why: String) -> GpuReading {
        GpuReading {
            source,
            unavailable: Some(why),
            ..GpuReading::default()
        }
    }
}

/// A worker's GPU use over a check's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuUsage {
    pub source: String,
    /// Busy share of the window, per cent (NVML's SM utilisation, or GPU time over the window).
    pub busy_percent: Option<f64>,
    /// GPU time so far (macOS).
    pub gpu_seconds: Option<f64>,
    pub memory_bytes: Option<u64>,
}

/// Whether the GPU source answered, for the report (the JSON says why when it did not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSource {
    pub source: String,
    pub error: Option<String>,
}

/// GPU busy share at or above which the GPU is doing the worker's work.
pub const GPU_BUSY_PERCENT: f64 = 5.0;

impl GpuUsage {
    /// `pid`'s use over the window from readings at its start and end; `None` when the GPU
    /// does not know the process.
    pub fn between(before: &GpuReading, after: &GpuReading, pid: u32) -> Option<GpuUsage> {
        let now = after.processes.get(&pid)?;
        let secs = match (before.at, after.at) {
            (Some(a), Some(b)) => (b - a).as_seconds_f64(),
            _ => 0.0,
        };
        let from_time = match (
            before.processes.get(&pid).and_then(|p| p.gpu_ns),
            now.gpu_ns,
        ) {
            (Some(a), Some(b)) if secs > 0.0 && b >= a => {
                Some(((b - a) as f64 / 1e9 / secs * 100.0).min(100.0))
            }
            _ => None,
        };
        Some(GpuUsage {
            source: after.source.to_string(),
            busy_percent: now.busy_percent.or(from_time),
            gpu_seconds: now.gpu_ns.map(|n| n as f64 / 1e9),
            memory_bytes: now.memory_bytes,
        })
    }

    /// Whether the GPU did the worker's work over the window.
    pub fn busy(&self) -> bool {
        self.busy_percent.is_some_and(|b| b >= GPU_BUSY_PERCENT)
    }

    /// The reading in words, for evidence.
    pub fn describe(&self) -> String {
        let mut s = match self.busy_percent {
            Some(b) => format!("GPU {b:.0}% busy over the window ({})", self.source),
            None => format!("GPU use unknown over the window ({})", self.source),
        };
        if let Some(m) = self.memory_bytes {
            s.push_str(&format!(", {} of GPU memory", crate::fmt::bytes(m)));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at: i64, pid: u32, p: GpuProcess) -> GpuReading {
        GpuReading {
            source: "iokit",
            at: DateTime::from_timestamp(at, 0),
            processes: [(pid, p)].into(),
            ..Default::default()
        }
    }

    #[test]
    fn gpu_time_over_the_window_is_the_busy_share() {
        let ns = |n: u64| GpuProcess {
            gpu_ns: Some(n),
            ..Default::default()
        };
        let u = GpuUsage::between(
            &reading(100, 7, ns(1_000)),
            &reading(102, 7, ns(1_800_001_000)),
            7,
        )
        .unwrap();
        assert_eq!(u.busy_percent, Some(90.0));
        assert!(u.busy());
        assert!(u.describe().starts_with("GPU 90% busy"), "{}", u.describe());
        // A process the GPU does not know, and a counter that went back (a new client).
        assert_eq!(
            GpuUsage::between(&reading(100, 7, ns(0)), &reading(102, 8, ns(5)), 7),
            None
        );
        let u = GpuUsage::between(&reading(100, 7, ns(50)), &reading(102, 7, ns(10)), 7).unwrap();
        assert_eq!(u.busy_percent, None);
        assert!(!u.busy());
    }

    #[test]
    fn nvml_gives_the_share_itself() {
        let sm = GpuProcess {
            busy_percent: Some(99.0),
            memory_bytes: Some(6 << 30),
            ..Default::default()
        };
        let u = GpuUsage::between(&GpuReading::default(), &reading(102, 7, sm), 7).unwrap();
        assert_eq!(u.busy_percent, Some(99.0));
        assert!(
            u.describe().contains("6.0 GiB of GPU memory"),
            "{}",
            u.describe()
        );
    }
}
