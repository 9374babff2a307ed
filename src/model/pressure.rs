//! System memory pressure, judged the same way on every OS.
//!
//! The seed's step 7 reads `vm_stat` by eye. Here the backend supplies totals (and Linux PSI
//! averages where available) and this function turns them into one level with its reason.

use super::process::PressureLevel;

/// Pressure from available memory and, on Linux, PSI `avg10` percentages `(some, full)`.
///
/// critical: under 5 % available, or `full` stalls ≥ 10 %; warning: under 15 % available, or
/// `some` stalls ≥ 10 %; normal otherwise.
pub fn pressure_level(
    total: u64,
    available: u64,
    psi: Option<(f64, f64)>,
) -> (PressureLevel, String) {
    let pct = if total == 0 {
        100.0
    } else {
        available as f64 * 100.0 / total as f64
    };
    let mut level = if pct < 5.0 {
        PressureLevel::Critical
    } else if pct < 15.0 {
        PressureLevel::Warning
    } else {
        PressureLevel::Normal
    };
    let mut why = format!("{pct:.1}% of memory available");
    if let Some((some, full)) = psi {
        why.push_str(&format!(
            "; PSI memory some avg10 {some:.2}%, full avg10 {full:.2}%"
        ));
        if full >= 10.0 {
            level = level.max(PressureLevel::Critical);
        } else if some >= 10.0 {
            level = level.max(PressureLevel::Warning);
        }
    }
    (level, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(pressure_level(100, 50, None).0, PressureLevel::Normal);
        assert_eq!(pressure_level(100, 10, None).0, PressureLevel::Warning);
        assert_eq!(pressure_level(100, 4, None).0, PressureLevel::Critical);
        assert_eq!(
            pressure_level(100, 50, Some((12.0, 0.0))).0,
            PressureLevel::Warning
        );
        assert_eq!(
            pressure_level(100, 50, Some((30.0, 11.0))).0,
            PressureLevel::Critical
        );
        assert!(pressure_level(0, 0, None).1.contains("100.0%"));
    }
}
