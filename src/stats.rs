//! Statistics for comparing two networks on one test set over several seeds: per-example hits
//! ([`Hits`], which test examples a network got right), and the paired difference of two
//! accuracies with a 95% interval ([`PairedDifference`]).
//!
//! The interval: for seeds s = 1..n, d_s = acc(ticket_s) - acc(dense_s), both measured on the
//! same test examples with the same seed (same data subset, batch order, head initialisation,
//! attack starts). Its variance has two parts: seed noise, estimated by the sample variance of
//! the d_s over n; and test-set sampling noise, which does not average out over seeds because
//! every seed uses the same test set: the variance of the per-example paired difference (mean over
//! seeds of ticket_hit - dense_hit) over N examples, divided by N. The interval is
//! mean ± t(0.975, df) x sqrt(v_seed + v_test) with v_seed = s_seed^2 / n and the
//! Welch-Satterthwaite degrees of freedom of the sum, df = (v_seed + v_test)^2 /
//! (v_seed^2 / (n - 1) + v_test^2 / (N - 1)) (rounded down): n - 1 when seed noise dominates, large
//! when the test set's does. With one seed, seed noise cannot be estimated and the interval holds
//! the test part only (the verdict tables say how many seeds they rest on).

use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which examples of a test set a network got right, in the test set's order. Serialised
/// compactly as `"N:hex"` (N examples, bit i = example i).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hits(pub Vec<bool>);

impl Hits {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Fraction right.
    pub fn accuracy(&self) -> f64 {
        self.0.iter().filter(|h| **h).count() as f64 / self.0.len().max(1) as f64
    }
}

impl Serialize for Hits {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.0.chunks(8).map(|c| c.iter().enumerate().fold(0u8, |b, (i, h)| b | (u8::from(*h) << i))).collect();
        s.serialize_str(&format!("{}:{}", self.0.len(), crate::fsio::hex(&bytes)))
    }
}

impl<'de> Deserialize<'de> for Hits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Hits, D::Error> {
        use serde::de::Error as _;
        let text = String::deserialize(d)?;
        let (n, hex) = text.split_once(':').ok_or_else(|| D::Error::custom("hits must read N:hex"))?;
        let n: usize = n.parse().map_err(D::Error::custom)?;
        if hex.len() != 2 * n.div_ceil(8) {
            return Err(D::Error::custom(format!("hits of {n} examples need {} hex digits", 2 * n.div_ceil(8))));
        }
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<std::result::Result<_, _>>()
            .map_err(D::Error::custom)?;
        Ok(Hits((0..n).map(|i| bytes[i / 8] >> (i % 8) & 1 == 1).collect()))
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1); the normal
/// quantile 1.96 for df = 0 (no seed variance estimated).
pub fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101,
        2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => 1.959_964,
        1..=30 => TABLE[df - 1],
        _ => 1.959_964 + 2.4 / df as f64,
    }
}

/// The Welch-Satterthwaite degrees of freedom of a sum of variance estimates `(variance, df)`,
/// rounded down; components with no degrees of freedom are left out (0 when none remain).
pub fn welch_satterthwaite(parts: &[(f64, usize)]) -> usize {
    let parts: Vec<&(f64, usize)> = parts.iter().filter(|(_, df)| *df > 0).collect();
    let total: f64 = parts.iter().map(|(v, _)| v).sum();
    let denominator: f64 = parts.iter().map(|(v, df)| v * v / *df as f64).sum();
    if parts.is_empty() || denominator <= 0.0 {
        return parts.iter().map(|(_, df)| *df).max().unwrap_or(0);
    }
    (total * total / denominator).floor() as usize
}

/// The paired difference (a - b) of an accuracy over seeds, with its 95% interval (see the
/// module comment). Fractions, not points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
    pub seeds: usize,
    /// Test examples per seed.
    pub examples: usize,
    /// The seed part and the test-set part of the standard error.
    pub se_seed: f64,
    pub se_test: f64,
}

impl PairedDifference {
    /// From per-seed pairs of hits on the same test set (`a[s]` and `b[s]` share seed s).
    pub fn of(a: &[Hits], b: &[Hits]) -> Result<PairedDifference> {
        let scores = |h: &[Hits]| h.iter().map(|x| x.0.iter().map(|&v| f64::from(u8::from(v))).collect()).collect::<Vec<Vec<f64>>>();
        PairedDifference::of_scores(&scores(a), &scores(b))
    }

    /// From per-seed, per-example scores in [0, 1] on the same test set: 0 / 1 hits, or hits
    /// averaged over several conditions (e.g. all rounds of a sparsity curve), which pools the
    /// conditions with the test-set noise counted once per example.
    pub fn of_scores(a: &[Vec<f64>], b: &[Vec<f64>]) -> Result<PairedDifference> {
        let n = a.len();
        if n == 0 || n != b.len() {
            return Err(Error::invalid(format!("{n} and {} runs to pair", b.len()), "pair runs of the same seeds, at least one"));
        }
        let examples = a[0].len();
        if examples == 0 || a.iter().chain(b).any(|h| h.len() != examples) {
            return Err(Error::invalid("hits of different test sets", "compare runs evaluated on the same test split"));
        }
        let mean_of = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| mean_of(x) - mean_of(y)).collect();
        let mean = mean_of(&d);
        let var_seed = if n > 1 { d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        // Per-example paired difference, averaged over seeds; its variance over examples / N.
        let per_example: Vec<f64> = (0..examples).map(|i| a.iter().zip(b).map(|(x, y)| x[i] - y[i]).sum::<f64>() / n as f64).collect();
        let m = mean_of(&per_example);
        let var_test = per_example.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (examples.max(2) - 1) as f64 / examples as f64;
        let (v_seed, v_test) = (var_seed / n as f64, var_test);
        let df = welch_satterthwaite(&[(v_seed, n - 1), (v_test, examples - 1)]);
        let half = t975(df) * (v_seed + v_test).sqrt();
        let (se_seed, se_test) = (v_seed.sqrt(), v_test.sqrt());
        Ok(PairedDifference { mean, lower: mean - half, upper: mean + half, seeds: n, examples, se_seed, se_test })
    }

    /// Is the first side measurably better than the second (this being first minus second)?
    /// `Some(true)` when the lower bound is above 0; `Some(false)` when it is at most `tol` better
    /// (the upper bound is at most `tol`: no lead, or one too small to matter); `None` when the
    /// data cannot decide. One rule for every "does A beat B" question of a study (the
    /// pre-training gate, FAT against AT in claim 2), with the study's tolerance as the smallest
    /// difference that matters, as in the double-win verdict.
    pub fn better(&self, tol: f64) -> Option<bool> {
        if self.lower > 0.0 {
            Some(true)
        } else if self.upper <= tol {
            Some(false)
        } else {
            None
        }
    }

    /// Half the width of the interval.
    pub fn half_width(&self) -> f64 {
        (self.upper - self.lower) / 2.0
    }

    /// "+0.4 [-1.2, +2.0]" in points.
    pub fn points(&self) -> String {
        format!("{:+.1} [{:+.1}, {:+.1}]", 100.0 * self.mean, 100.0 * self.lower, 100.0 * self.upper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_round_trip_compactly() {
        let h = Hits((0..19).map(|i| i % 3 == 0).collect());
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, "\"19:499204\"");
        assert_eq!(serde_json::from_str::<Hits>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Hits>("\"19:49\"").is_err());
        assert!((h.accuracy() - 7.0 / 19.0).abs() < 1e-12);
    }

    #[test]
    fn better_is_measured_refuted_or_undecided() {
        let d = |lower: f64, upper: f64| PairedDifference {
            mean: (lower + upper) / 2.0,
            lower,
            upper,
            seeds: 6,
            examples: 100,
            se_seed: 0.0,
            se_test: 0.0,
        };
        assert_eq!(d(0.001, 0.02).better(0.01), Some(true));
        // Worse, or better by at most the tolerance: refuted.
        assert_eq!(d(-0.019, -0.001).better(0.01), Some(false));
        assert_eq!(d(-0.005, 0.01).better(0.01), Some(false));
        // Could be more than the tolerance better, not measurably better: undecided.
        assert_eq!(d(-0.005, 0.011).better(0.01), None);
    }

    #[test]
    fn the_interval_has_both_noise_parts() {
        // Identical networks: difference exactly 0, interval of width 0.
        let a = Hits(vec![true, false, true, true]);
        let d = PairedDifference::of(&[a.clone(), a.clone()], &[a.clone(), a.clone()]).unwrap();
        assert_eq!((d.mean, d.lower, d.upper), (0.0, 0.0, 0.0));
        // One example flips in one of two seeds: the test part is nonzero, the mean is 1/4 / 2.
        let b = Hits(vec![true, false, true, false]);
        let d = PairedDifference::of(&[a.clone(), a.clone()], &[a.clone(), b.clone()]).unwrap();
        assert!((d.mean - 0.125).abs() < 1e-12);
        assert!(d.se_seed > 0.0 && d.se_test > 0.0 && d.lower < 0.0 && d.upper > 0.25);
        // t quantiles: 4.303 at 2 df (three seeds), about 1.96 for many.
        assert_eq!(t975(2), 4.303);
        // Welch-Satterthwaite: equal parts of 2 and 363 df give about 8; one part alone its own df.
        assert_eq!(welch_satterthwaite(&[(1.0, 2), (1.0, 363)]), 7);
        assert_eq!(welch_satterthwaite(&[(1.0, 2), (0.0, 363)]), 2);
        assert_eq!(welch_satterthwaite(&[(0.0, 0), (1.0, 363)]), 363);
        assert!((t975(1000) - 1.96).abs() < 0.01);
        assert!(PairedDifference::of(std::slice::from_ref(&a), &[Hits(vec![true])]).is_err());
    }
}
