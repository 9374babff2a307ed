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
    /// The boards, by index (NVML).
    pub devices: BTreeMap<u32, GpuDevice>,
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
    /// The GPU it runs on (NVML's index), for the board's power.
    pub device: Option<u32>,
}

/// What one reading says about one GPU board (NVML).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuDevice {
    /// The board's power draw and its enforced limit, milliwatts.
    pub power_mw: Option<u32>,
    pub power_limit_mw: Option<u32>,
    /// Processes holding a compute context on it (every user's the driver lists).
    pub processes: u32,
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
    /// The board's power draw at the window's end and its limit, watts (NVML). A board draws
    /// near its idle power while a kernel spins on a flag or a store, and far more for real
    /// work at the same utilisation (docs/gpu.md has the H100 figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_watts: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_watts: Option<f64>,
    /// Other processes hold a context on the same board: its power is not the worker's alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub power_shared: bool,
}

/// Utilisation at or above which a board drawing under [`SPIN_POWER_SHARE`] of its power limit
/// is spinning, not working.
pub const SPIN_BUSY_PERCENT: f64 = 90.0;

/// The share of the power limit under which a fully busy board is spinning: H100 (700 W):
/// idle 87 W (12%), two spin shapes 129–135 W (18–19%), real matmul work 686 W (98%).
pub const SPIN_POWER_SHARE: f64 = 0.30;

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
        let board = now.device.and_then(|d| after.devices.get(&d));
        Some(GpuUsage {
            source: after.source.to_string(),
            busy_percent: now.busy_percent.or(from_time),
            gpu_seconds: now.gpu_ns.map(|n| n as f64 / 1e9),
            memory_bytes: now.memory_bytes,
            power_watts: board
                .and_then(|b| b.power_mw)
                .map(|mw| f64::from(mw) / 1000.0),
            power_limit_watts: board
                .and_then(|b| b.power_limit_mw)
                .map(|mw| f64::from(mw) / 1000.0),
            power_shared: board.is_some_and(|b| b.processes > 1),
        })
    }

    /// Why the board's power says the GPU spins rather than works, where it can say: the
    /// worker alone on its board, the board at least [`SPIN_BUSY_PERCENT`] busy, drawing under
    /// [`SPIN_POWER_SHARE`] of its power limit.
    pub fn spins_by_power(&self) -> Option<String> {
        let (w, limit) = (self.power_watts?, self.power_limit_watts?);
        let busy = self.busy_percent?;
        (!self.power_shared && busy >= SPIN_BUSY_PERCENT && limit > 0.0 && w < limit * SPIN_POWER_SHARE)
            .then(|| {
                format!(
                    "GPU {busy:.0}% busy at {w:.0} W of its {limit:.0} W limit ({:.0}%, alone on its board): near idle power, the draw of a kernel spinning on a flag or a store, not of work (real work at that utilisation draws most of the limit)",
                    w / limit * 100.0
                )
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
        let shared = if self.power_shared {
            " (shared with other processes: not this worker's alone)"
        } else {
            ""
        };
        match (self.power_watts, self.power_limit_watts) {
            (Some(w), Some(l)) => {
                s.push_str(&format!(", the board at {w:.0} W of {l:.0} W{shared}"))
            }
            // Apple silicon publishes no power limit (IOReport gives the draw alone).
            (Some(w), None) => s.push_str(&format!(", the GPU drawing {w:.1} W{shared}")),
            _ => {}
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

    #[test]
    fn power_tells_a_spin_from_work_when_the_worker_is_alone_on_its_board() {
        // The H100 figures of docs/gpu.md: 100% busy at 135 W, 686 W, limit 700 W.
        let board = |mw, processes| GpuReading {
            source: "nvml",
            at: DateTime::from_timestamp(102, 0),
            processes: [(
                7,
                GpuProcess {
                    busy_percent: Some(100.0),
                    device: Some(0),
                    ..Default::default()
                },
            )]
            .into(),
            devices: [(
                0,
                GpuDevice {
                    power_mw: Some(mw),
                    power_limit_mw: Some(700_000),
                    processes,
                },
            )]
            .into(),
            ..Default::default()
        };
        let spin = GpuUsage::between(&GpuReading::default(), &board(135_000, 1), 7).unwrap();
        let why = spin.spins_by_power().unwrap();
        assert!(why.contains("at 135 W of its 700 W limit (19%"), "{why}");
        assert!(spin.describe().contains("the board at 135 W of 700 W"));
        let work = GpuUsage::between(&GpuReading::default(), &board(686_000, 1), 7).unwrap();
        assert!(work.spins_by_power().is_none());
        // Shared with another process: the board's power is not the worker's to judge by.
        let shared = GpuUsage::between(&GpuReading::default(), &board(135_000, 2), 7).unwrap();
        assert!(shared.spins_by_power().is_none());
        assert!(shared.describe().contains("shared with other processes"));
        // Low utilisation at low power (a decode, a small eval): not a spin.
        let mut light = spin.clone();
        light.busy_percent = Some(14.0);
        assert!(light.spins_by_power().is_none());
    }
}
