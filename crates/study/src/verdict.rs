//! Verdicts with their uncertainty: a number estimated from a condition's replicates (mean and
//! standard error), differences of such numbers, and a criterion decided on them as met, not
//! met, or inconclusive when the uncertainty interval straddles the threshold.
//!
//! The interval is the mean plus or minus [`K`] standard errors (about 95% for many replicates
//! of a normal spread; wider in truth for three, which is why a verdict near its threshold
//! should be read as weak even when decided). With one replicate there is no spread to measure:
//! the verdict is decided on the single value and says so.

/// Standard errors on each side of the mean that make the interval.
pub const K: f64 = 2.0;

/// A mean over replicates with its standard error (`None`: one replicate, no spread known).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    pub se: Option<f64>,
}

/// The decision on a criterion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    NotMet,
    /// The interval holds values on both sides of the threshold.
    Inconclusive,
}

impl Verdict {
    /// The verdict as the report prints it.
    pub fn mark(self) -> &'static str {
        match self {
            Verdict::Met => "**met**",
            Verdict::NotMet => "**not met**",
            Verdict::Inconclusive => "**inconclusive**",
        }
    }

    /// Several claims that must all hold: not met if any is not met, else inconclusive if any
    /// is, else met.
    pub fn all(vs: impl IntoIterator<Item = Verdict>) -> Verdict {
        let mut out = Verdict::Met;
        for v in vs {
            match v {
                Verdict::NotMet => return Verdict::NotMet,
                Verdict::Inconclusive => out = Verdict::Inconclusive,
                Verdict::Met => {}
            }
        }
        out
    }
}

/// Mean and sample standard deviation (n - 1), the latter `None` for fewer than two values.
pub fn mean_sd(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, None);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some(var.sqrt()))
}

impl Estimate {
    /// The estimate from a condition's replicate values.
    pub fn of(values: &[f64]) -> Estimate {
        let (mean, sd) = mean_sd(values);
        Estimate {
            mean,
            se: sd.map(|s| s / (values.len() as f64).sqrt()),
        }
    }

    /// `self - other`, for independent replicates: the standard errors add in quadrature; no
    /// spread is known when either side has none.
    pub fn minus(&self, other: &Estimate) -> Estimate {
        Estimate {
            mean: self.mean - other.mean,
            se: match (self.se, other.se) {
                (Some(a), Some(b)) => Some(a.hypot(b)),
                _ => None,
            },
        }
    }

    /// The interval `mean +- K se` (the mean alone without a spread).
    pub fn interval(&self) -> (f64, f64) {
        let h = K * self.se.unwrap_or(0.0);
        (self.mean - h, self.mean + h)
    }

    /// The claim "the value is above `t`".
    pub fn above(&self, t: f64) -> Verdict {
        let (lo, hi) = self.interval();
        if self.mean.is_nan() || hi <= t {
            Verdict::NotMet
        } else if lo > t {
            Verdict::Met
        } else {
            Verdict::Inconclusive
        }
    }

    /// The claim "the value is below `t`".
    pub fn below(&self, t: f64) -> Verdict {
        let (lo, hi) = self.interval();
        if self.mean.is_nan() || lo >= t {
            Verdict::NotMet
        } else if hi < t {
            Verdict::Met
        } else {
            Verdict::Inconclusive
        }
    }

    /// `1.23 [0.50, 1.96]`, or `1.23` without a spread.
    pub fn describe(&self) -> String {
        match self.se {
            Some(_) => {
                let (lo, hi) = self.interval();
                format!("{:.2} [{lo:.2}, {hi:.2}]", self.mean)
            }
            None => format!("{:.2}", self.mean),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_spread_against_hand_computed_values() {
        let (m, sd) = mean_sd(&[1.0, 2.0, 4.0]);
        assert!((m - 7.0 / 3.0).abs() < 1e-12);
        // Deviations -4/3, -1/3, 5/3: squares sum to 42/9, over n - 1 = 2.
        assert!((sd.unwrap() - (42.0f64 / 18.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[5.0]), (5.0, None));
        let e = Estimate::of(&[1.0, 2.0, 4.0]);
        assert!((e.se.unwrap() - (42.0f64 / 18.0 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn a_verdict_is_inconclusive_exactly_when_the_interval_straddles_the_threshold() {
        let e = Estimate {
            mean: 2.0,
            se: Some(0.4),
        };
        // Interval [1.2, 2.8].
        assert_eq!(e.below(3.0), Verdict::Met);
        assert_eq!(e.below(2.5), Verdict::Inconclusive);
        assert_eq!(e.below(1.2), Verdict::NotMet);
        assert_eq!(e.above(1.0), Verdict::Met);
        assert_eq!(e.above(2.0), Verdict::Inconclusive);
        assert_eq!(e.above(2.8), Verdict::NotMet);
        // One replicate: decided on the value.
        let one = Estimate {
            mean: 2.0,
            se: None,
        };
        assert_eq!(one.below(2.5), Verdict::Met);
        assert_eq!(one.above(2.5), Verdict::NotMet);
        let nan = Estimate {
            mean: f64::NAN,
            se: None,
        };
        assert_eq!(nan.below(3.0), Verdict::NotMet);
        assert_eq!(nan.above(3.0), Verdict::NotMet);
        assert_eq!(e.describe(), "2.00 [1.20, 2.80]");
        assert_eq!(one.describe(), "2.00");
    }

    #[test]
    fn differences_add_errors_in_quadrature_and_verdicts_combine() {
        let a = Estimate {
            mean: 5.0,
            se: Some(0.3),
        };
        let b = Estimate {
            mean: 1.0,
            se: Some(0.4),
        };
        let d = a.minus(&b);
        assert_eq!(d.mean, 4.0);
        assert!((d.se.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(
            a.minus(&Estimate {
                mean: 1.0,
                se: None
            })
            .se,
            None
        );
        use Verdict::*;
        assert_eq!(Verdict::all([Met, Met]), Met);
        assert_eq!(Verdict::all([Met, Inconclusive]), Inconclusive);
        assert_eq!(Verdict::all([Inconclusive, NotMet, Met]), NotMet);
    }
}
