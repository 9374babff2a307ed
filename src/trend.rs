//! Least-squares trend of a time series, the leak signal.
//!
//! A leak is memory that grows steadily, not memory that is large or that jumps once. A slope
//! alone flags a single allocation burst; requiring the fit to explain the data (R² ≥ 0.9)
//! separates steady growth from noise and sawtooth caches.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Trend {
    /// Growth in MiB per minute.
    pub slope_mib_per_min: f64,
    /// Coefficient of determination of the linear fit, 0..=1.
    pub r_squared: f64,
    pub samples: usize,
    pub span_secs: f64,
}

/// Fit `bytes` against `secs`. Needs at least three points spanning some time.
pub fn fit(points: &[(f64, u64)]) -> Option<Trend> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let mean_y = points.iter().map(|p| p.1 as f64).sum::<f64>() / nf;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in points {
        let dx = x - mean_x;
        let dy = y as f64 - mean_y;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if sxx <= f64::EPSILON {
        return None;
    }
    let slope = sxy / sxx; // bytes per second
    // A perfectly flat series is explained perfectly by a zero slope.
    let r_squared = if syy <= f64::EPSILON {
        1.0
    } else {
        (sxy * sxy) / (sxx * syy)
    };
    let span = points.iter().map(|p| p.0).fold(f64::MIN, f64::max)
        - points.iter().map(|p| p.0).fold(f64::MAX, f64::min);
    Some(Trend {
        slope_mib_per_min: slope * 60.0 / (1024.0 * 1024.0),
        r_squared,
        samples: n,
        span_secs: span,
    })
}

impl Trend {
    /// Steady growth above `threshold_mib_per_min` with a fit good enough to call it a trend.
    pub fn is_leak(&self, threshold_mib_per_min: f64) -> bool {
        self.slope_mib_per_min > threshold_mib_per_min && self.r_squared >= 0.9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn steady_growth_is_a_leak() {
        // 1 MiB per second for 10 s: 60 MiB/min, perfect fit.
        let pts: Vec<_> = (0..10).map(|i| (i as f64, 500 * MIB + i * MIB)).collect();
        let t = fit(&pts).unwrap();
        assert!((t.slope_mib_per_min - 60.0).abs() < 1e-6);
        assert!(t.r_squared > 0.999);
        assert!(t.is_leak(10.0));
        assert!(!t.is_leak(100.0));
    }

    #[test]
    fn flat_and_noisy_are_not() {
        let flat: Vec<_> = (0..10).map(|i| (i as f64, 8 * 1024 * MIB)).collect();
        let t = fit(&flat).unwrap();
        assert_eq!(t.slope_mib_per_min, 0.0);
        assert!(!t.is_leak(1.0));
        // Alternating +-50 MiB noise with a tiny drift: slope small, fit poor.
        let noisy: Vec<_> = (0..20u64)
            .map(|i| {
                (
                    i as f64,
                    1024 * MIB + if i % 2 == 0 { 50 * MIB } else { 0 } + i * 1024,
                )
            })
            .collect();
        let t = fit(&noisy).unwrap();
        assert!(t.r_squared < 0.9, "{t:?}");
        assert!(!t.is_leak(0.0));
    }

    #[test]
    fn one_jump_is_not_steady() {
        // Flat, one 400 MiB step in the middle, flat again: positive slope, poor fit.
        let pts: Vec<_> = (0..20u64)
            .map(|i| (i as f64, if i < 10 { 8000 * MIB } else { 8400 * MIB }))
            .collect();
        let t = fit(&pts).unwrap();
        assert!(t.slope_mib_per_min > 0.0);
        assert!(t.r_squared < 0.9);
    }

    #[test]
    fn too_few_points_or_no_time() {
        assert!(fit(&[(0.0, 1), (1.0, 2)]).is_none());
        assert!(fit(&[(1.0, 1), (1.0, 2), (1.0, 3)]).is_none());
    }
}
