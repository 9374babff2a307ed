//! Energy counters to average power, the platform-neutral part of the GPU power reading on
//! Apple silicon: which channels of IOReport's `Energy Model` group are the GPU, what their
//! unit labels mean, and how an energy delta over an interval becomes milliwatts. The macOS
//! backend ([`super::ioreport`]) only makes the IOReport calls and hands the channels' deltas
//! here, so everything that interprets them is unit-tested on every OS.
//!
//! What the channels look like comes from open-source readers of the same counters (macmon,
//! all-smi, unsloth, HardwareVisualizer), not from a Mac of ours; docs/gpu.md says what is
//! confirmed and what is not.

/// The IOReport group that holds the energy counters.
pub const ENERGY_GROUP: &str = "Energy Model";

/// One channel's change over a sampling interval, as IOReport's sample delta gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyDelta {
    /// `IOReportChannelGetGroup`.
    pub group: String,
    /// `IOReportChannelGetChannelName`.
    pub name: String,
    /// `IOReportChannelGetUnitLabel`: `mJ`, `uJ` or `nJ` (it differs per channel and per chip).
    pub unit: String,
    /// `IOReportSimpleGetIntegerValue` of the delta: energy spent over the interval, in `unit`.
    pub delta: i64,
}

/// How a channel counts towards the GPU's power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuChannel {
    /// `GPU Energy`, or `DIE_<n>_GPU Energy` on a package of several dies: summed.
    Energy,
    /// `GPU` or `GPU<n>`: read only where no [`GpuChannel::Energy`] channel exists, since
    /// where both are published they carry the same energy and would be counted twice.
    Fallback,
}

/// Whether a channel is the GPU's, and how it counts. `GPU SRAM`, `GPU0_SRAM` and every
/// other channel are not the GPU's own draw.
pub fn gpu_channel(group: &str, name: &str) -> Option<GpuChannel> {
    if group != ENERGY_GROUP {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let undied = name
        .strip_prefix("DIE_")
        .and_then(|rest| rest.split_once('_'))
        .filter(|(die, _)| digits(die))
        .map_or(name, |(_, rest)| rest);
    if undied == "GPU Energy" {
        Some(GpuChannel::Energy)
    } else if name == "GPU" || name.strip_prefix("GPU").is_some_and(digits) {
        Some(GpuChannel::Fallback)
    } else {
        None
    }
}

/// Joules per count of an energy unit label; `None` for a label this code does not know.
pub fn joules_per_count(unit: &str) -> Option<f64> {
    match unit.trim() {
        "mJ" => Some(1e-3),
        "uJ" => Some(1e-6),
        "nJ" => Some(1e-9),
        _ => None,
    }
}

/// Average power in milliwatts of `joules` spent over `seconds` (rounded, saturating at
/// `u32::MAX`, which is 4.3 MW).
pub fn milliwatts(joules: f64, seconds: f64) -> Result<u32, String> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("no interval to average over ({seconds} s)"));
    }
    if !(joules.is_finite() && joules >= 0.0) {
        return Err(format!("energy {joules} J is not a count of energy spent"));
    }
    // `as` saturates a float too large for u32.
    Ok((joules / seconds * 1000.0).round() as u32)
}

/// The GPU's average power over `seconds` from the deltas of one sample pair: the sum of the
/// `GPU Energy` channels, or of the `GPU<n>` channels where there is none.
pub fn gpu_power_mw(channels: &[EnergyDelta], seconds: f64) -> Result<u32, String> {
    let classified: Vec<(GpuChannel, &EnergyDelta)> = channels
        .iter()
        .filter_map(|c| gpu_channel(&c.group, &c.name).map(|k| (k, c)))
        .collect();
    let kind = if classified.iter().any(|(k, _)| *k == GpuChannel::Energy) {
        GpuChannel::Energy
    } else {
        GpuChannel::Fallback
    };
    let mut joules = 0.0;
    let mut found = false;
    for (_, c) in classified.iter().filter(|(k, _)| *k == kind) {
        found = true;
        if c.delta < 0 {
            return Err(format!(
                "the {:?} counter went backwards ({} {})",
                c.name, c.delta, c.unit
            ));
        }
        let per = joules_per_count(&c.unit)
            .ok_or_else(|| format!("unknown energy unit {:?} of {:?}", c.unit, c.name))?;
        joules += c.delta as f64 * per;
    }
    if !found {
        return Err(format!(
            "no GPU channel in IOReport's {ENERGY_GROUP:?} group ({} channels)",
            channels.len()
        ));
    }
    milliwatts(joules, seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str, unit: &str, delta: i64) -> EnergyDelta {
        EnergyDelta {
            group: ENERGY_GROUP.to_string(),
            name: name.to_string(),
            unit: unit.to_string(),
            delta,
        }
    }

    #[test]
    fn units_and_the_interval_make_milliwatts() {
        // 2 J over 200 ms is 10 W, whatever the unit the counter uses.
        for (unit, delta) in [("mJ", 2_000), ("uJ", 2_000_000), ("nJ", 2_000_000_000)] {
            assert_eq!(
                gpu_power_mw(&[ch("GPU Energy", unit, delta)], 0.2),
                Ok(10_000),
                "{unit}"
            );
        }
        // The label is trimmed; an idle GPU draws 0.
        assert_eq!(gpu_power_mw(&[ch("GPU Energy", " mJ ", 3)], 1.0), Ok(3));
        assert_eq!(gpu_power_mw(&[ch("GPU Energy", "nJ", 0)], 0.2), Ok(0));
        assert_eq!(milliwatts(1e12, 1.0), Ok(u32::MAX));
    }

    #[test]
    fn an_unknown_unit_is_refused_not_guessed() {
        let e = gpu_power_mw(&[ch("GPU Energy", "mWh", 5)], 0.2).unwrap_err();
        assert!(e.contains("unknown energy unit \"mWh\""), "{e}");
        assert!(gpu_power_mw(&[ch("GPU Energy", "", 5)], 0.2).is_err());
        assert_eq!(joules_per_count("J"), None);
    }

    #[test]
    fn no_interval_is_no_power() {
        let c = [ch("GPU Energy", "mJ", 5)];
        for secs in [0.0, -0.2, f64::NAN, f64::INFINITY] {
            let e = gpu_power_mw(&c, secs).unwrap_err();
            assert!(e.contains("no interval"), "{secs}: {e}");
        }
    }

    #[test]
    fn a_counter_going_backwards_is_refused() {
        let e = gpu_power_mw(&[ch("GPU Energy", "mJ", -7)], 0.2).unwrap_err();
        assert!(e.contains("went backwards"), "{e}");
        assert!(milliwatts(-1.0, 1.0).is_err());
        assert!(milliwatts(f64::NAN, 1.0).is_err());
    }

    #[test]
    fn several_gpu_channels_are_summed_and_others_ignored() {
        let channels = [
            ch("DIE_0_GPU Energy", "mJ", 1_000),
            ch("DIE_1_GPU Energy", "uJ", 500_000),
            ch("GPU SRAM", "mJ", 9_000),
            ch("GPU0_SRAM", "mJ", 9_000),
            ch("CPU Energy", "mJ", 9_000),
            ch("ANE", "mJ", 9_000),
            // Where `GPU Energy` exists, `GPU0` carries the same energy: not counted twice.
            ch("GPU0", "mJ", 9_000),
        ];
        assert_eq!(gpu_power_mw(&channels, 0.5), Ok(3_000));
        // Without `GPU Energy`, the `GPU`/`GPU<n>` channels are the GPU.
        let bare = [ch("GPU", "nJ", 100_000_000), ch("GPU1", "nJ", 100_000_000)];
        assert_eq!(gpu_power_mw(&bare, 0.2), Ok(1_000));
        // A channel of another group is not the GPU's energy, whatever its name.
        let mut other = ch("GPU Energy", "mJ", 9_000);
        other.group = "GPU Stats".to_string();
        assert_eq!(gpu_channel(&other.group, &other.name), None);
        assert_eq!(
            gpu_power_mw(&[other, ch("GPU Energy", "mJ", 200)], 0.2),
            Ok(1_000)
        );
    }

    #[test]
    fn names_are_matched_exactly() {
        assert_eq!(
            gpu_channel(ENERGY_GROUP, "GPU Energy"),
            Some(GpuChannel::Energy)
        );
        assert_eq!(
            gpu_channel(ENERGY_GROUP, "DIE_12_GPU Energy"),
            Some(GpuChannel::Energy)
        );
        assert_eq!(gpu_channel(ENERGY_GROUP, "GPU"), Some(GpuChannel::Fallback));
        assert_eq!(
            gpu_channel(ENERGY_GROUP, "GPU3"),
            Some(GpuChannel::Fallback)
        );
        for not in [
            "DIE_X_GPU Energy",
            "DIE__GPU Energy",
            "GPU Energy SRAM",
            "GPU SRAM",
            "GPU0_SRAM",
            "GPUx",
            "DIE_0_CPU Energy",
            "",
        ] {
            assert_eq!(gpu_channel(ENERGY_GROUP, not), None, "{not:?}");
        }
    }

    #[test]
    fn no_gpu_channel_is_an_error() {
        let e = gpu_power_mw(&[ch("CPU Energy", "mJ", 5)], 0.2).unwrap_err();
        assert!(e.contains("no GPU channel"), "{e}");
        assert!(gpu_power_mw(&[], 0.2).is_err());
    }
}
