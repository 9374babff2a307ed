//! GPU sources on this machine. On Linux, NVML is loaded at run time: without the NVIDIA
//! driver (this CI) `check` says why in its JSON and nothing fails. On macOS (the GitHub
//! workflow's runner) a live registry dump from `ioreg` is parsed by the same code as
//! fixtures/macos/ioreg-agx.txt, and the IOKit reading agrees on which processes use the GPU.

use crate::util::{Sim, json};

#[test]
fn the_gpu_source_says_whether_it_answered_and_nothing_fails() {
    let sim = Sim::start();
    let out = sim.check(&["--json", "--window", "0"]);
    let r = json(&out);
    assert!(
        r["workers"].as_array().is_some_and(|w| !w.is_empty()),
        "{r:#}"
    );
    let gpu = &r["gpu"];
    if cfg!(target_os = "linux") {
        assert_eq!(gpu["source"], "nvml", "{r:#}");
        let driver = std::path::Path::new("/proc/driver/nvidia").exists();
        if !driver {
            let why = gpu["error"].as_str().unwrap_or_default();
            assert!(why.contains("NVML not available"), "{gpu:#}");
            // No worker claims a GPU reading it could not have.
            assert!(
                r["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|w| w.get("gpu").is_none())
            );
        }
    } else if cfg!(target_os = "macos") {
        assert_eq!(gpu["source"], "iokit", "{r:#}");
    }
}

#[cfg(target_os = "macos")]
#[test]
fn a_live_registry_dump_parses_like_the_recorded_one() {
    use mlsdiag::platform::Platform;
    let out = std::process::Command::new("/usr/sbin/ioreg")
        .args(["-r", "-d", "1", "-w", "0", "-c", "AGXDeviceUserClient"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let clients = mlsdiag::platform::agx::parse_ioreg(&text);
    for c in &clients {
        assert!(
            mlsdiag::platform::agx::creator_pid(&c.creator).is_some(),
            "{c:?}"
        );
    }
    let pids: Vec<u32> = clients
        .iter()
        .filter_map(|c| mlsdiag::platform::agx::creator_pid(&c.creator))
        .collect();
    let live = mlsdiag::platform::macos::Macos::default()
        .gpu(&pids, None)
        .unwrap();
    assert_eq!(live.unavailable, None);
    // A process that exited between the two reads is allowed to be missing.
    for pid in pids.iter().filter(|p| crate::util::alive(**p)) {
        assert!(
            live.processes.contains_key(pid),
            "{pid} in the dump, not through IOKit"
        );
    }
}
