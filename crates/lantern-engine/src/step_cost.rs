//! How long a decode step takes for a given number of batch tokens, learned from the steps
//! themselves. Speculative drafting asks it what one more token would cost: nearly nothing
//! while decoding is bound by reading the weights (few sequences), about a token's worth of
//! compute once the batch is compute-bound (many sequences, or a prefill chunk).

/// Upper bounds of the batch-size classes timed separately.
const BOUNDS: [usize; 20] = [
    1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 256, 512, 4096,
];
/// Weight of the newest step in a class's average.
const SMOOTHING: f64 = 0.1;
/// Until a class is measured: each token beyond the first costs this share of a one-token
/// step (on a 2-core CPU a 4-token batch takes about 1.7 times a 1-token step).
const PRIOR_SLOPE: f64 = 0.25;
/// A token never costs less than this share of a one-token step, so noise cannot make
/// drafts look free.
const MIN_SLOPE: f64 = 0.02;

#[derive(Debug, Clone)]
pub(crate) struct StepCost {
    /// Per class: mean batch tokens and mean seconds (0 tokens: never measured).
    classes: [(f64, f64); BOUNDS.len()],
    /// Stops learning (tests fix a profile instead of timing a fake model).
    frozen: bool,
}

impl Default for StepCost {
    fn default() -> Self {
        StepCost {
            classes: [(0.0, 0.0); BOUNDS.len()],
            frozen: false,
        }
    }
}

fn class(tokens: usize) -> usize {
    BOUNDS
        .iter()
        .position(|&b| tokens <= b)
        .unwrap_or(BOUNDS.len() - 1)
}

impl StepCost {
    /// A fixed profile: these (tokens, seconds) points, never updated.
    #[cfg(test)]
    pub fn fixed(points: &[(usize, f64)]) -> Self {
        let mut c = StepCost::default();
        for &(n, t) in points {
            c.record(n, t);
        }
        c.frozen = true;
        c
    }

    pub fn record(&mut self, tokens: usize, secs: f64) {
        if tokens == 0 || !secs.is_finite() || self.frozen {
            return;
        }
        let c = &mut self.classes[class(tokens)];
        if c.0 == 0.0 {
            *c = (tokens as f64, secs);
        } else {
            c.0 += SMOOTHING * (tokens as f64 - c.0);
            c.1 += SMOOTHING * (secs - c.1);
        }
    }

    /// The time of a one-token step: measured, else extrapolated from the smallest measured
    /// class, else 1 (the answers are then only relative).
    fn unit(&self) -> f64 {
        match self.classes.iter().find(|c| c.0 > 0.0) {
            Some(&(n, t)) => t / (1.0 + PRIOR_SLOPE * (n - 1.0)),
            None => 1.0,
        }
    }

    /// Estimated seconds (or units) of a step with `tokens` batch tokens: linear between the
    /// measured classes around it when they are near (the cost per token falls as batches
    /// grow, so a far larger class would make the next tokens look cheap), else on from the
    /// nearest smaller class at the slope that led to it; never falling as tokens grow.
    pub fn time(&self, tokens: usize) -> f64 {
        let x = tokens.max(1) as f64;
        let unit = self.unit();
        let (mut below, mut lo, mut hi) = (None::<(f64, f64)>, (1.0, unit), None::<(f64, f64)>);
        for &(n, t) in self.classes.iter().filter(|c| c.0 > 0.0) {
            if n <= x {
                if n > lo.0 {
                    below = Some(lo);
                }
                lo = (n, t.max(lo.1));
            } else {
                hi = Some((n, t));
                break;
            }
        }
        let slope = match (hi, below) {
            (Some((n, t)), _) if n - lo.0 <= lo.0.max(8.0) => (t - lo.1) / (n - lo.0),
            (_, Some((n, t))) if lo.0 > n => (lo.1 - t) / (lo.0 - n),
            _ => PRIOR_SLOPE * unit,
        };
        lo.1 + slope.max(MIN_SLOPE * unit) * (x - lo.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmeasured_sizes_follow_the_prior() {
        let c = StepCost::default();
        assert!((c.time(1) - 1.0).abs() < 1e-9);
        assert!((c.time(5) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn measured_sizes_are_interpolated_and_never_free() {
        let mut c = StepCost::default();
        c.record(1, 0.010);
        c.record(8, 0.017);
        c.record(16, 0.033);
        c.record(512, 0.500);
        assert!((c.time(1) - 0.010).abs() < 1e-9);
        assert!((c.time(4) - 0.013).abs() < 1e-6);
        // Between 8 and 16 (near): interpolated.
        assert!((c.time(12) - 0.025).abs() < 1e-6);
        // Past 16 the next measured class is far: the slope from 8 to 16 goes on.
        assert!((c.time(20) - 0.041).abs() < 1e-6);
        // A noisy class measured faster than a smaller one does not make tokens free.
        c.record(24, 0.020);
        assert!(c.time(25) > c.time(24));
        assert!(c.time(24) >= 0.033);
    }
}
