//! Campaign statistics: how sure can we be about a 1-in-318 hang?
//!
//! A rare hang is a binomial rate. The exact (Clopper–Pearson) interval says what rates the
//! observed runs are compatible with, and the geometric argument says how many runs it takes to
//! see one hang, or to claim a fix, with 95 % confidence.

use serde::Serialize;
use statrs::distribution::{Beta, ContinuousCDF};

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The exact two-sided `confidence` interval for `hangs` in `runs` (Clopper–Pearson).
pub fn clopper_pearson(hangs: u64, runs: u64, confidence: f64) -> Option<Interval> {
    if runs == 0 || hangs > runs {
        return None;
    }
    let alpha = 1.0 - confidence;
    let (x, n) = (hangs as f64, runs as f64);
    let low = if hangs == 0 {
        0.0
    } else {
        Beta::new(x, n - x + 1.0).ok()?.inverse_cdf(alpha / 2.0)
    };
    let high = if hangs == runs {
        1.0
    } else {
        Beta::new(x + 1.0, n - x)
            .ok()?
            .inverse_cdf(1.0 - alpha / 2.0)
    };
    Some(Interval { low, high })
}

/// Runs needed to see at least one hang with probability `confidence` when the rate is `rate`.
pub fn runs_to_see(rate: f64, confidence: f64) -> Option<u64> {
    (rate > 0.0 && rate < 1.0).then(|| ((1.0 - confidence).ln() / (1.0 - rate).ln()).ceil() as u64)
}

/// Clean runs needed to claim, with `confidence`, that the rate is now below `rate`.
pub fn runs_to_claim_fix(rate: f64, confidence: f64) -> Option<u64> {
    // Zero hangs in n runs rejects rate p when (1-p)^n <= 1-confidence: the same bound.
    runs_to_see(rate, confidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_numbers() {
        // One hang in 318 requests: the true rate is somewhere between 1/12,561 and 1/57.
        let i = clopper_pearson(1, 318, 0.95).unwrap();
        assert!(
            (1.0 / i.low - 12_561.0).abs() / 12_561.0 < 0.01,
            "{}",
            1.0 / i.low
        );
        assert!((1.0 / i.high - 57.0).abs() < 1.0, "{}", 1.0 / i.high);
        assert_eq!(runs_to_see(1.0 / 318.0, 0.95), Some(952));
        assert_eq!(runs_to_see(1.0 / 318.0, 0.50), Some(221));
        assert_eq!(runs_to_see(1.0 / 318.0, 0.99), Some(1463));
        assert!(runs_to_claim_fix(1.0 / 318.0, 0.95).unwrap() >= 950);
    }

    #[test]
    fn edges() {
        let none = clopper_pearson(0, 100, 0.95).unwrap();
        assert_eq!(none.low, 0.0);
        assert!(
            (none.high - 0.0362).abs() < 0.001,
            "rule of three: about 3/n ({})",
            none.high
        );
        assert_eq!(clopper_pearson(5, 5, 0.95).unwrap().high, 1.0);
        assert!(clopper_pearson(1, 0, 0.95).is_none());
        assert!(runs_to_see(0.0, 0.95).is_none());
    }
}
