//! GPU time per process on Apple silicon, the platform-neutral part: the IORegistry's AGX user
//! clients (children of the `IOAccelerator` service), each with the process that opened it
//! (`IOUserClientCreator` = `"pid 533, WindowServer"`) and its `AppUsage` entries, one per API,
//! each with `accumulatedGPUTime` in ns. Activity Monitor, nvtop and macmon read the same,
//! without root. The macOS backend reads the clients; this module turns them into a reading,
//! and is tested on Linux on a registry dump (fixtures/macos/ioreg-agx.txt).

use crate::model::{GpuProcess, GpuReading};

/// One AGX user client as read from the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct AgxClient {
    /// `IOUserClientCreator`.
    pub creator: String,
    /// Each `AppUsage` entry's `accumulatedGPUTime`, ns.
    pub gpu_ns: Vec<u64>,
}

/// The PID of `"pid 533, WindowServer"` (the name is cut short by the kernel, so only the PID
/// counts).
pub fn creator_pid(creator: &str) -> Option<u32> {
    let digits = creator.trim().strip_prefix("pid ")?;
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// A reading of `pids` from every client: a process's GPU time is the sum over its clients
/// (a process opens one per Metal device or command queue family).
pub fn reading(
    clients: &[AgxClient],
    pids: &[u32],
    at: chrono::DateTime<chrono::Utc>,
) -> GpuReading {
    let mut r = GpuReading {
        source: "iokit",
        at: Some(at),
        ..GpuReading::default()
    };
    for c in clients {
        let Some(pid) = creator_pid(&c.creator).filter(|p| pids.contains(p)) else {
            continue;
        };
        let p = r.processes.entry(pid).or_insert_with(|| GpuProcess {
            gpu_ns: Some(0),
            ..GpuProcess::default()
        });
        let sum: u64 = c.gpu_ns.iter().fold(0u64, |a, n| a.saturating_add(*n));
        p.gpu_ns = p.gpu_ns.map(|n| n.saturating_add(sum));
    }
    r
}

/// The clients of an `ioreg -r -d 1 -w 0 -c AGXDeviceUserClient` dump: how a registry is
/// recorded for tests (the backend reads the same properties through IOKit).
pub fn parse_ioreg(text: &str) -> Vec<AgxClient> {
    let mut out = Vec::new();
    for block in text.split("+-o ").skip(1) {
        if !block.starts_with("AGXDeviceUserClient") {
            continue;
        }
        let creator = block.split("\"IOUserClientCreator\" = \"").nth(1);
        let Some(creator) = creator.and_then(|c| c.split('"').next()) else {
            continue;
        };
        let gpu_ns = block
            .split("\"accumulatedGPUTime\"=")
            .skip(1)
            .filter_map(|s| {
                let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                s[..end].parse().ok()
            })
            .collect();
        out.push(AgxClient {
            creator: creator.to_string(),
            gpu_ns,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creators() {
        assert_eq!(creator_pid("pid 533, WindowServer"), Some(533));
        assert_eq!(creator_pid(" pid 49387, python3.12"), Some(49387));
        assert_eq!(creator_pid("pid , x"), None);
        assert_eq!(creator_pid("533, WindowServer"), None);
    }

    #[test]
    fn the_recorded_registry_gives_each_worker_its_gpu_time() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/macos/ioreg-agx.txt"
        ))
        .unwrap();
        let clients = parse_ioreg(&text);
        assert_eq!(clients.len(), 5, "{clients:#?}");
        let at = chrono::DateTime::from_timestamp(1_767_682_966, 0).unwrap();
        let r = reading(&clients, &[49387, 49391, 533, 7], at);
        // The hung worker's two clients are summed; a client without AppUsage counts 0.
        assert_eq!(
            r.processes[&49387].gpu_ns,
            Some(812_345_678_901 + 1_250_000_000)
        );
        assert_eq!(r.processes[&49391].gpu_ns, Some(0));
        assert_eq!(r.processes[&533].gpu_ns, Some(3_600_000_000_000));
        // Processes not asked about, and PIDs without a client, are left out.
        assert!(!r.processes.contains_key(&7));
        assert!(!r.processes.contains_key(&611));
    }
}
