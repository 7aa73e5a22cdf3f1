//! The hill climber that sizes [`TinyLfuCache`](crate::TinyLfuCache)'s window: Caffeine's
//! "adaptive" W-TinyLFU (Einziger, Eytan, Friedman and Manes, *"Lightweight Robust Size Aware
//! Cache Management"*, ACM TOS 2022; Caffeine's `BoundedLocalCache.determineAdjustment`).
//!
//! Every sample the hit rate of the sample is compared with the previous one. If it did not
//! drop, the window keeps moving the same way; if it dropped, the direction flips. The step
//! starts at 6.25% of the capacity (towards a smaller window) and decays by 2% per sample, so
//! the window settles; a change of the hit rate by 10 points or more restarts the climb with a
//! full step. Four departures from Caffeine, all measured on the crate's hit-ratio table
//! (`examples/hit_ratio.rs`):
//!
//! - A sample is one request per entry, at least 20,000 requests (Caffeine: 10 per entry). Ten
//!   per entry adapts too slowly for large caches (OLTP at 10,000 entries: 59.5% against 62.4%).
//! - A change smaller than three standard errors (`3 sqrt(2 p (1 - p) / n)` for a hit rate
//!   `p` over `n` requests) is noise: the window and the step stay as they are. Without
//!   this the window random-walks on stable traffic and frequency-heavy traces lose up to 3
//!   points (P3 at 32,768 entries: 14.9% against 17.5%).
//! - A change is also noise when it is below three standard errors of the sample's own hit
//!   rate, estimated from its 16 sub-samples (`3 sqrt(2 var / 16)`, `var` the variance of the
//!   sub-samples' hit rates), except after a sample without hits (a cold start). Phased and
//!   periodic traffic swings far more between samples than the binomial error says, and each
//!   swing moved the window by a full step: a loop longer than the cache beside Zipf traffic
//!   (44.6% against 51.8%) and P3 at 100,000 entries (39.1% against 40.4%).
//! - Every flip of direction also halves the step, so a window that oscillates around its best
//!   size settles there within a few samples instead of swinging by full steps (P3 at 10,000
//!   entries: 6.5% against 6.2% with the 2% decay alone). The restart threshold is 10 points
//!   (Caffeine: 5), so the swings of a periodic workload's hit rate between samples do not
//!   keep restarting the full step.

/// Hit-rate change (as a fraction) that restarts the climb with a full step.
const RESTART_THRESHOLD: f64 = 0.10;
/// Requests per sample at least.
const MIN_SAMPLE: u64 = 20_000;
/// A change of the hit rate below this many standard errors moves nothing.
const NOISE_SIGMAS: f64 = 3.0;
/// Sub-samples per sample, for the sample's own variance.
const SUB_SAMPLES: u64 = 16;
/// The full step, as a fraction of the capacity.
const STEP_PERCENT: f64 = 0.0625;
/// Each sample's step is this fraction of the last one.
const STEP_DECAY: f64 = 0.98;
/// ... and, when the direction flips, this fraction of that.
const FLIP_DECAY: f64 = 0.5;

/// The climber's state.
pub(crate) struct Climber {
    hits: u64,
    misses: u64,
    previous_rate: f64,
    /// Signed step in weight units; negative shrinks the window.
    step: f64,
    /// The full step, in weight units.
    full_step: f64,
    /// `hits + misses` and `hits` when the current sub-sample started.
    sub_start: (u64, u64),
    /// Sub-samples closed in this sample, and the sum and sum of squares of their hit rates.
    sub_count: u32,
    sub_sum: f64,
    sub_squares: f64,
}

impl Climber {
    /// A climber for a cache of `capacity` weight.
    pub(crate) fn new(capacity: u64) -> Self {
        // Capacities beyond 2^53 lose precision, which only rounds the step.
        #[allow(clippy::cast_precision_loss)]
        let full_step = STEP_PERCENT * capacity as f64;
        Self {
            hits: 0,
            misses: 0,
            previous_rate: 0.0,
            step: -full_step,
            full_step,
            sub_start: (0, 0),
            sub_count: 0,
            sub_sum: 0.0,
            sub_squares: 0.0,
        }
    }

    /// Counts `n` hits.
    #[inline]
    pub(crate) fn hit(&mut self, n: u64) {
        self.hits += n;
    }

    /// Counts a miss (an insert of a new key).
    #[inline]
    pub(crate) fn miss(&mut self) {
        self.misses += 1;
    }

    /// Once a sample is complete (one request per entry of a cache holding `entries`, at least
    /// 20,000): the window adjustment (in weight units, positive = grow the window), and a new
    /// sample starts. `None` before that.
    pub(crate) fn adjustment(&mut self, entries: u64) -> Option<i128> {
        let requests = self.hits + self.misses;
        let target = entries.max(MIN_SAMPLE);
        let (sub_requests, sub_hits) = (requests - self.sub_start.0, self.hits - self.sub_start.1);
        if sub_requests.saturating_mul(SUB_SAMPLES) >= target {
            // Sample counts stay far below 2^53.
            #[allow(clippy::cast_precision_loss)]
            let rate = sub_hits as f64 / sub_requests as f64;
            self.sub_count += 1;
            self.sub_sum += rate;
            self.sub_squares += rate * rate;
            self.sub_start = (requests, self.hits);
        }
        if requests < target {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let rate = self.hits as f64 / requests as f64;
        let change = rate - self.previous_rate;
        #[allow(clippy::cast_precision_loss)]
        let mut noise = NOISE_SIGMAS * (2.0 * rate * (1.0 - rate) / requests as f64).sqrt();
        if self.sub_count > 1 && self.previous_rate > 0.0 {
            let n = f64::from(self.sub_count);
            let mean = self.sub_sum / n;
            let variance = (self.sub_squares / n - mean * mean).max(0.0) * n / (n - 1.0);
            noise = noise.max(NOISE_SIGMAS * (2.0 * variance / n).sqrt());
        }
        self.previous_rate = rate;
        self.hits = 0;
        self.misses = 0;
        self.sub_start = (0, 0);
        self.sub_count = 0;
        self.sub_sum = 0.0;
        self.sub_squares = 0.0;
        if change.abs() < noise {
            return Some(0);
        }
        let amount = if change >= 0.0 { self.step } else { -self.step };
        self.step = if change.abs() >= RESTART_THRESHOLD {
            self.full_step.copysign(amount)
        } else if change < 0.0 {
            FLIP_DECAY * STEP_DECAY * amount
        } else {
            STEP_DECAY * amount
        };
        // Truncated towards zero, as Caffeine's `(long) amount`; the step never exceeds the
        // capacity, so it fits.
        #[allow(clippy::cast_possible_truncation)]
        let amount = amount as i128;
        Some(amount)
    }
}

#[cfg(test)]
mod tests {
    use super::Climber;

    /// One sample of `n` requests with `hits` hits.
    fn sample(c: &mut Climber, hits: u64, n: u64) -> Option<i128> {
        c.hit(hits);
        (0..n - hits).for_each(|_| c.miss());
        c.adjustment(1)
    }

    #[test]
    fn follows_significant_changes_and_ignores_noise() {
        let mut c = Climber::new(1_000);
        c.hit(10);
        assert_eq!(
            c.adjustment(1),
            None,
            "a sample is at least 20,000 requests"
        );
        // 12% against 0%: past the restart threshold; the first direction shrinks the window.
        assert_eq!(sample(&mut c, 2_400 - 10, 20_000), Some(-62));
        // 4%: a drop of 8 points flips to growing; the flip halves the next step.
        assert_eq!(sample(&mut c, 800, 20_000), Some(62));
        // 4.05%: within noise (3 standard errors are about 0.6 points here): no move.
        assert_eq!(sample(&mut c, 810, 20_000), Some(0));
        // 5%: a significant rise keeps growing, by the halved step (62.5 x 0.98 / 2).
        assert_eq!(sample(&mut c, 1_000, 20_000), Some(30));
        assert_eq!(sample(&mut c, 1_000, 20_000), Some(0));
        // 4%: a significant drop flips to shrinking, by the step decayed by 2% (30.0).
        assert_eq!(sample(&mut c, 800, 20_000), Some(-30));
        // 25%: a rise of 21 points keeps the direction, by the step the flip halved (14.7), and
        // restarts the next step at full size.
        assert_eq!(sample(&mut c, 5_000, 20_000), Some(-14));
        // 5%: a drop of 20 points flips to growing, by the full step.
        assert_eq!(sample(&mut c, 1_000, 20_000), Some(62));
    }

    /// One sample of 16 sub-samples of 1,250 requests, with `hits[i]` hits in the `i`-th.
    fn sub_samples(c: &mut Climber, hits: impl Fn(usize) -> u64) -> Option<i128> {
        let mut out = None;
        for i in 0..16 {
            c.hit(hits(i));
            (0..1_250 - hits(i)).for_each(|_| c.miss());
            out = c.adjustment(1);
        }
        out
    }

    #[test]
    fn swings_within_a_sample_are_noise() {
        let mut c = Climber::new(1_000);
        assert_eq!(sub_samples(&mut c, |_| 150), Some(-62), "12% against 0%");
        // 20%, in sub-samples alternating between 0% and 40%: 8 points above the last sample,
        // far beyond the binomial error (0.85 point) but within three standard errors of the
        // sub-samples' mean (22 points).
        assert_eq!(
            sub_samples(&mut c, |i| if i % 2 == 0 { 0 } else { 500 }),
            Some(0)
        );
        // 12% in every sub-sample: the same drop of 8 points is significant and flips the
        // direction.
        assert_eq!(sub_samples(&mut c, |_| 150), Some(62));
    }
}
