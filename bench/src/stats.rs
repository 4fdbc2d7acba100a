//! Summaries of measurements: the median of repeated runs with their
//! lowest and highest, and percentiles of one run's samples.

use std::fmt;

/// The median of several runs of one measure, with the spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Runs {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Runs {
    /// Summarises the runs (at least one).
    pub fn of(values: &[f64]) -> Runs {
        assert!(!values.is_empty(), "a measure needs at least one run");
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Runs { median: median_sorted(&v), min: v[0], max: v[v.len() - 1], n: v.len() }
    }
}

impl fmt::Display for Runs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} to {})", human(self.median), human(self.min), human(self.max))
    }
}

fn median_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// The `p`th percentile (0 to 100) of samples, by the nearest rank.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    assert!(!samples.is_empty(), "a percentile of no samples");
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// A number with three significant digits, and k/M for thousands and
/// millions: 132512.3 is `132.5k`, 0.482 is `0.482`.
pub fn human(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_take_the_median_and_the_spread() {
        let r = Runs::of(&[3.0, 1.0, 2.0]);
        assert_eq!((r.median, r.min, r.max, r.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Runs::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let mut s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut s, 50.0), 50.0);
        assert_eq!(percentile(&mut s, 99.0), 99.0);
        assert_eq!(percentile(&mut s, 100.0), 100.0);
        assert_eq!(percentile(&mut [7.0], 99.0), 7.0);
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(human(132_512.3), "132.5k");
        assert_eq!(human(1_500_000.0), "1.50M");
        assert_eq!(human(307.4), "307");
        assert_eq!(human(19.48), "19.5");
        assert_eq!(human(0.482), "0.482");
        assert_eq!(human(2.0), "2");
    }
}
