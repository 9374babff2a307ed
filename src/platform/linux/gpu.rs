//! NVIDIA GPUs through NVML (`nvml-wrapper`; libnvidia-ml is loaded at run time, so a machine
//! without the driver only gets a reason). Per process: SM utilisation over the window, as the
//! driver samples it, and GPU memory in use. Both are readable without root.

use chrono::{DateTime, Utc};
use nvml_wrapper::Nvml;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

use crate::model::{GpuProcess, GpuReading};

/// Loads NVML once per process: the library and the driver connection are reused by every
/// reading (watch's rounds, the two readings of a check's window).
pub fn nvml() -> Result<&'static Nvml, String> {
    static NVML: std::sync::OnceLock<Result<Nvml, String>> = std::sync::OnceLock::new();
    NVML.get_or_init(|| Nvml::init().map_err(|e| format!("NVML not available: {e}")))
        .as_ref()
        .map_err(Clone::clone)
}

/// One reading of every NVIDIA GPU for `pids`.
pub fn read(pids: &[u32], since: Option<DateTime<Utc>>) -> GpuReading {
    let nvml = match nvml() {
        Ok(n) => n,
        Err(why) => return GpuReading::unavailable("nvml", why),
    };
    let mut reading = GpuReading {
        source: "nvml",
        at: Some(Utc::now()),
        ..GpuReading::default()
    };
    let count = match nvml.device_count() {
        Ok(n) => n,
        Err(e) => return GpuReading::unavailable("nvml", format!("no GPU: {e}")),
    };
    let mut sm: std::collections::BTreeMap<u32, (f64, u32)> = Default::default();
    // Processes on a GPU whose utilisation could not be read (MIG, an old driver): unknown,
    // never 0 %.
    let mut unknown = std::collections::BTreeSet::new();
    for i in 0..count {
        let Ok(dev) = nvml.device_by_index(i) else {
            continue;
        };
        let running = dev.running_compute_processes().unwrap_or_default();
        // The board's power and limit, and how many processes share it (the power is the
        // worker's alone only when it is the only one).
        reading.devices.insert(
            i,
            crate::model::GpuDevice {
                power_mw: dev.power_usage().ok(),
                power_limit_mw: dev.enforced_power_limit().ok(),
                processes: running.len() as u32,
            },
        );
        let on_device: Vec<u32> = running
            .into_iter()
            .filter(|p| pids.contains(&p.pid))
            .map(|p| {
                let e = reading.processes.entry(p.pid).or_default();
                e.device = Some(i);
                if let UsedGpuMemory::Used(b) = p.used_gpu_memory {
                    *e.memory_bytes.get_or_insert(0) += b;
                }
                p.pid
            })
            .collect();
        // Samples since the window's start (CPU timestamps in µs); none is not an error.
        let stamp = since.map(|t| t.timestamp_micros().max(0) as u64);
        match dev.process_utilization_stats(stamp) {
            Ok(samples) => {
                for s in samples.iter().filter(|s| pids.contains(&s.pid)) {
                    let e = sm.entry(s.pid).or_default();
                    e.0 += f64::from(s.sm_util);
                    e.1 += 1;
                }
            }
            Err(NvmlError::NotFound) => {}
            Err(e) => {
                reading.unavailable = Some(format!("NVML utilisation of GPU {i}: {e}"));
                unknown.extend(on_device);
            }
        }
    }
    for (pid, p) in reading.processes.iter_mut() {
        // A process holding a context with no sample in the window did not use the SMs.
        p.busy_percent = match sm.get(pid).copied() {
            Some((sum, n)) if n > 0 => Some(sum / f64::from(n)),
            _ if unknown.contains(pid) => None,
            _ => Some(0.0),
        };
    }
    for (pid, (sum, n)) in sm {
        reading.processes.entry(pid).or_insert_with(|| GpuProcess {
            busy_percent: Some(sum / f64::from(n.max(1))),
            ..GpuProcess::default()
        });
    }
    reading
}
