//! The leak rule: a leak is the worker's memory baseline rising, not memory in use.
//!
//! An MLX worker's memory moves with its work: the KV cache grows through a generation and is
//! freed after it, buffers are taken and given back. A line fitted to raw readings calls that work
//! a leak (two healthy workers generating 3000-token answers looked like +10 and +20 MiB/min over
//! 5 s, under 1 MiB in all), and a real leak that keeps memory in steps, one request at a time,
//! fits a line poorly enough to be missed. So the rule judges the *baseline*, the memory the
//! worker still holds when it is not using it, and only when there is enough of it to judge:
//!
//! 1. **Baseline points.** Where it is known which readings were taken with no request in flight
//!    (a log was given), the baseline is those idle readings. Where it is not known, it is the
//!    lowest reading in each of up to 12 runs of consecutive readings (equal counts, so an uneven
//!    reading schedule leaves no run empty): memory given back within a run does not count,
//!    and readings known to be mid-request are left out. Where too
//!    few readings are left (a request was in flight at the others), there is no baseline to
//!    see and no verdict: memory a request holds is work.
//! 2. **Slope.** Theil–Sen: the median of the slopes between every pair of baseline points. Steps
//!    and single outliers do not pull it the way they pull least squares.
//! 3. **A leak needs all of**: readings spanning at least `min_span`; at least four baseline
//!    points; a slope above `threshold_mib_per_min`; a fitted growth (slope × span) of at least
//!    `min_growth_mib`; and growth spread over the span, no single rise between consecutive
//!    baseline points larger than two thirds of the baseline's whole rise (one jump is a cache
//!    filled once, not a leak; a leak goes on, and its next step makes the verdict). Two thirds,
//!    not half: with four points from uneven readings, one interval can hold two of a steady
//!    leak's steps.
//!
//! Every command that judges memory (`check`'s window, `watch` across rounds, `history` and
//! `postmortem` across snapshots, `mem`) calls [`judge`], and [`Judgement::describe`] is the
//! evidence: what was compared, over how long, and which condition decided.

use crate::model::MemorySample;

pub use crate::model::leak::{Basis, Judgement, Outcome, Rule};
use crate::model::leak::{MIB, MIN_POINTS};

/// Interval minima taken when idle readings are not known.
const MAX_INTERVALS: usize = 12;
/// More baseline points than this are reduced to interval minima (Theil–Sen is quadratic).
const MAX_POINTS: usize = 64;

/// Judge a process's memory readings (oldest first). `None` with fewer than two readings or
/// none spread over time.
pub fn judge(samples: &[MemorySample], rule: &Rule) -> Option<Judgement> {
    let (first, last) = (samples.first()?, samples.last()?);
    let span = last.secs - first.secs;
    if samples.len() < 2 || span <= 0.0 {
        return None;
    }
    let busy = samples.iter().filter(|s| s.busy == Some(true)).count();
    let idle: Vec<(f64, u64)> = samples
        .iter()
        .filter(|s| s.busy == Some(false))
        .map(|s| (s.secs, s.bytes))
        .collect();
    let idle_readings = samples
        .iter()
        .any(|s| s.busy.is_some())
        .then_some(idle.len());
    // Readings that could be baseline: all but those known to be mid-request.
    let open_readings = samples.len() - busy;
    let (basis, points) = baseline(samples, idle);
    let slope = theil_sen(&points); // bytes per second
    let base_span = points.last().map_or(0.0, |p| p.0) - points.first().map_or(0.0, |p| p.0);
    let growth = slope * base_span / MIB;
    let largest_step = points
        .windows(2)
        .map(|w| w[1].1 as f64 - w[0].1 as f64)
        .fold(0.0, f64::max)
        / MIB;
    let slope_mib_per_min = slope * 60.0 / MIB;
    // The baseline's own rise, first point to last (the one-step rule's yardstick).
    let rise = match (points.first(), points.last()) {
        (Some(a), Some(b)) => (b.1 as f64 - a.1 as f64) / MIB,
        _ => 0.0,
    };
    let outcome = if span < rule.min_span.as_secs_f64() {
        Outcome::TooShort
    } else if busy > 0 && open_readings < MIN_POINTS && samples.len() >= MIN_POINTS {
        Outcome::BusyThroughout
    } else if points.len() < MIN_POINTS {
        Outcome::TooFewPoints
    } else if slope_mib_per_min <= rule.threshold_mib_per_min {
        Outcome::Steady
    } else if growth < rule.min_growth_mib {
        Outcome::LittleGrowth
    } else if largest_step > rise * 2.0 / 3.0 {
        Outcome::OneStep
    } else {
        Outcome::Leak
    };
    Some(Judgement {
        outcome,
        basis,
        readings: samples.len(),
        points: points.len(),
        span_secs: span,
        first_bytes: first.bytes,
        last_bytes: last.bytes,
        baseline_first_bytes: points.first().map_or(first.bytes, |p| p.1),
        baseline_last_bytes: points.last().map_or(last.bytes, |p| p.1),
        slope_mib_per_min,
        growth_mib: growth,
        largest_step_mib: largest_step,
        idle_readings,
        busy_readings: busy,
    })
}

/// The readings the trend is fitted to: the idle ones when there are enough, else the lowest
/// of runs of the readings not known to be mid-request.
fn baseline(samples: &[MemorySample], idle: Vec<(f64, u64)>) -> (Basis, Vec<(f64, u64)>) {
    if idle.len() >= MIN_POINTS {
        let points = if idle.len() > MAX_POINTS {
            interval_minima(&idle, MAX_POINTS)
        } else {
            idle
        };
        (Basis::IdleReadings, points)
    } else {
        // Readings known to be taken mid-request are work, never baseline.
        let open: Vec<(f64, u64)> = samples
            .iter()
            .filter(|s| s.busy != Some(true))
            .map(|s| (s.secs, s.bytes))
            .collect();
        let k = (open.len() / 3)
            .clamp(MIN_POINTS, MAX_INTERVALS)
            .min(open.len());
        (Basis::IntervalMinima, interval_minima(&open, k))
    }
}

/// The lowest point of each of `k` runs of consecutive points of (nearly) equal count, each at
/// the time it was read. Runs by count, not by time: with uneven readings (a busy machine) an
/// interval of time can be empty, and then there are too few points to judge.
fn interval_minima(points: &[(f64, u64)], k: usize) -> Vec<(f64, u64)> {
    let n = points.len();
    if k == 0 || n <= k {
        return points.to_vec();
    }
    (0..k)
        .filter_map(|i| {
            let run = &points[i * n / k..(i + 1) * n / k];
            run.iter().copied().min_by_key(|p| p.1)
        })
        .collect()
}

/// The median of the slopes between every pair of points with distinct times (0 when none).
fn theil_sen(points: &[(f64, u64)]) -> f64 {
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let dt = b.0 - a.0;
            if dt > 0.0 {
                slopes.push((b.1 as f64 - a.1 as f64) / dt);
            }
        }
    }
    if slopes.is_empty() {
        return 0.0;
    }
    slopes.sort_by(f64::total_cmp);
    let n = slopes.len();
    if n % 2 == 1 {
        slopes[n / 2]
    } else {
        (slopes[n / 2 - 1] + slopes[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MB: u64 = 1024 * 1024;

    /// Readings every `step` seconds for `secs` seconds, memory from `f(t)`.
    fn series(secs: f64, step: f64, f: impl Fn(f64) -> u64) -> Vec<MemorySample> {
        let n = (secs / step) as usize + 1;
        (0..n)
            .map(|i| {
                let t = i as f64 * step;
                MemorySample {
                    secs: t,
                    bytes: f(t),
                    busy: None,
                }
            })
            .collect()
    }

    fn outcome(s: &[MemorySample]) -> Outcome {
        judge(s, &Rule::default()).unwrap().outcome
    }

    #[test]
    fn flat_sawtooth_and_generating_are_not_leaks() {
        let flat = series(120.0, 0.5, |_| 2048 * MB);
        assert_eq!(outcome(&flat), Outcome::Steady);
        // Allocate 200 MiB, free it, every 4 s.
        let saw = series(120.0, 0.5, |t| {
            1024 * MB + if (t as u64) % 4 < 2 { 200 * MB } else { 0 }
        });
        assert_eq!(outcome(&saw), Outcome::Steady);
        // A KV cache growing through each 9 s generation and freed after it.
        let gen_ = series(120.0, 0.5, |t| {
            let phase = t % 10.0;
            1024 * MB
                + if phase < 9.0 {
                    (phase * 30.0) as u64 * MB
                } else {
                    0
                }
        });
        assert_eq!(outcome(&gen_), Outcome::Steady);
        // Least squares on the raw readings of one window of that generation looks like a leak.
        let one = series(8.0, 0.2, |t| 1024 * MB + (t * 30.0) as u64 * MB);
        assert_eq!(outcome(&one), Outcome::TooShort);
    }

    #[test]
    fn a_stepwise_leak_is_one_and_says_what_was_compared() {
        // 16 MiB kept per request, one request a second, with 64 MiB of work freed after each.
        let leak = series(90.0, 0.25, |t| {
            let kept = (t as u64) * 16 * MB;
            let work = if t.fract() < 0.5 { 64 * MB } else { 0 };
            512 * MB + kept + work
        });
        let j = judge(&leak, &Rule::default()).unwrap();
        assert_eq!(j.outcome, Outcome::Leak, "{j:?}");
        assert!((j.slope_mib_per_min - 960.0).abs() < 60.0, "{j:?}");
        let ev = j.describe("RSS", &Rule::default());
        assert!(
            ev.contains("lowest reading of each of 12 intervals"),
            "{ev}"
        );
        assert!(ev.contains("Theil–Sen"), "{ev}");
        assert!(ev.contains("over 1m30s"), "{ev}");
    }

    #[test]
    fn little_growth_one_step_and_too_few_points() {
        // 20 MiB/min, but 12 MiB in all over 36 s... with the span minimum lowered to see it.
        let rule = Rule {
            min_span: Duration::from_secs(30),
            ..Rule::default()
        };
        let slow = series(36.0, 1.0, |t| {
            100 * MB + (t * 20.0 / 60.0 * MB as f64) as u64
        });
        assert_eq!(judge(&slow, &rule).unwrap().outcome, Outcome::LittleGrowth);
        // A 400 MiB cache filled once, in the middle.
        let jump = series(120.0, 1.0, |t| if t < 60.0 { 1024 * MB } else { 1424 * MB });
        let j = judge(&jump, &Rule::default()).unwrap();
        assert_eq!(j.outcome, Outcome::OneStep, "{j:?}");
        assert!(
            j.describe("RSS", &Rule::default())
                .contains("one-time allocation")
        );
        // Three idle readings are not a baseline, and the rest were busy.
        let mut busy = series(120.0, 10.0, |t| 1024 * MB + (t as u64) * MB);
        for (i, s) in busy.iter_mut().enumerate() {
            s.busy = Some(i % 4 != 0 || i > 8);
        }
        assert_eq!(outcome(&busy), Outcome::BusyThroughout);
    }

    #[test]
    fn a_steady_leak_read_unevenly_is_not_one_step() {
        // Six readings, the second and third close together: one interval holds two steps of
        // a steady 150 MB-per-reading leak (seen under load, tests/cli/recording.rs).
        let times = [0.0, 0.18, 0.24, 0.62, 0.8, 1.0];
        let s: Vec<MemorySample> = times
            .iter()
            .enumerate()
            .map(|(i, &t)| MemorySample {
                secs: t,
                bytes: 9_126_805_504 + i as u64 * 150_000_000,
                busy: None,
            })
            .collect();
        let rule = Rule {
            min_span: Duration::from_millis(500),
            ..Rule::default()
        };
        let j = judge(&s, &rule).unwrap();
        assert_eq!(j.outcome, Outcome::Leak, "{j:?}");
    }

    #[test]
    fn idle_readings_are_the_baseline_where_known() {
        // Busy readings carry a growing KV cache; idle ones show the true baseline, flat.
        let mut s = series(180.0, 5.0, |t| {
            if (t as u64 / 5).is_multiple_of(3) {
                1024 * MB
            } else {
                1024 * MB + (t as u64) * 4 * MB
            }
        });
        for (i, x) in s.iter_mut().enumerate() {
            x.busy = Some(i % 3 != 0);
        }
        let j = judge(&s, &Rule::default()).unwrap();
        assert_eq!(j.basis, Basis::IdleReadings);
        assert_eq!(j.outcome, Outcome::Steady, "{j:?}");
        // The same idle readings rising 1 MiB/s: a leak, judged on the idle readings only.
        for x in s.iter_mut().filter(|x| x.busy == Some(false)) {
            x.bytes = 1024 * MB + (x.secs as u64) * MB;
        }
        let j = judge(&s, &Rule::default()).unwrap();
        assert_eq!(j.outcome, Outcome::Leak, "{j:?}");
        assert_eq!(j.points, 13);
        assert!(
            j.describe("footprint", &Rule::default())
                .contains("13 idle readings")
        );
    }

    #[test]
    fn edge_cases() {
        assert!(judge(&[], &Rule::default()).is_none());
        let one = [MemorySample {
            secs: 0.0,
            bytes: 1,
            busy: None,
        }];
        assert!(judge(&one, &Rule::default()).is_none());
        let same_time = [one[0], one[0], one[0]];
        assert!(judge(&same_time, &Rule::default()).is_none());
        // Many points are reduced, not squared.
        let many = series(3600.0, 0.1, |t| 1024 * MB + (t as u64) * MB / 2);
        let j = judge(&many, &Rule::default()).unwrap();
        assert_eq!(j.points, MAX_INTERVALS);
        assert_eq!(j.outcome, Outcome::Leak);
        // Shrinking memory is steady, not a negative leak.
        let down = series(120.0, 1.0, |t| 4096 * MB - (t as u64) * MB);
        assert_eq!(outcome(&down), Outcome::Steady);
        assert_eq!(theil_sen(&[(0.0, 5), (0.0, 9)]), 0.0);
    }
}
