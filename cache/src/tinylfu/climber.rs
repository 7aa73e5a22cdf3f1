//! The hill climber that sizes [`TinyLfuCache`](crate::TinyLfuCache)'s window: Caffeine's
//! "adaptive" W-TinyLFU (Einziger, Eytan, Friedman and Manes, *"Lightweight Robust Size Aware
//! Cache Management"*, ACM TOS 2022; Caffeine's `BoundedLocalCache.determineAdjustment`).
//!
//! Every sample the hit rate of the sample is compared with the previous one. If it did not
//! drop, the window keeps moving the same way; if it dropped, the direction flips. The step
//! starts at 6.25% of the capacity (towards a smaller window) and decays by 2% per sample, so
//! the window settles; a change of the hit rate by 10 points or more restarts the climb with a
//! full step. Four departures from Caffeine, all measured on the crate's hit-ratio table
//! (`examples/hit_ratio.rs`), besides the [regime changes](#regime-changes) below:
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
//!
//! # Regime changes
//!
//! Comparing consecutive samples cannot tell a drop the climber caused from one the traffic
//! caused, and when the whole popular set changes at once (the hit-ratio example's shifting
//! workload: Zipf traffic whose keys are all replaced every 100,000 requests) the sketch keeps
//! counting the old keys until its halvings wear them down, so they win every admission
//! contest against the new ones. At 10,000 entries that left W-TinyLFU at 50.61% against LRU's
//! 58.44%. So every sample also counts its misses on keys the sketch had never counted
//! ("unseen" keys), and:
//!
//! - A sample whose hit rate dropped by the restart threshold (10 points) or more while the
//!   share of requests for unseen keys rose by 10 points or more **suspects** a regime change,
//!   and the sketch forgets every count at once (an early reset, as the TinyLFU paper's reset
//!   but complete: the old keys' counts are what keeps the new keys out). Not when the sample
//!   kept less than a quarter of the previous hit rate (a scan of one-off keys, or a cold
//!   start: forgetting there cost the scan mix 0.3 point), nor when the sketch halves within
//!   four samples anyway (below 4,000 entries a sample is at least 20,000 requests and the
//!   sketch halves every 20 requests per entry: responding there too cost the shifting workload
//!   at 1,000 entries 3.4 points).
//! - If the next sample **confirms** it (its hit rate still 5 points or more below the rate
//!   before the drop, the unseen share still 5 points or more above the share before the drop
//!   but no higher than during it, as the new keys come back), the window takes the whole
//!   protected segment, so the cache follows the new keys as LRU would, and the climb resumes
//!   growing from a full step; the climber shrinks the window again once that stops paying.
//!   The confirmation spares a long scan beside the traffic and the ARC P3 trace, whose unseen
//!   share keeps rising after its drops (without the "no higher than during it" condition, P3
//!   at 100,000 entries lost 4.3 points: the window jumped and stayed large).
//!
//! With both, the shifting workload at 10,000 entries reaches 57.99% (LRU 58.44%) and every
//! other cell of the table moves by at most 0.14 point. Halving the sketch twice on every large drop
//! alone reached 54.25%, and jumping the window alone at most 56.0%. The idea of resetting on a large change of the hit rate
//! comes from Caffeine (its climber restarts on a hit-rate change above its restart threshold,
//! and its sketch halves once per sample period, 10 additions per entry); the unseen-key surge,
//! the complete reset and the confirmation are this crate's. A change faster than about three samples is not caught (keys
//! replaced every 50,000 requests at 10,000 entries: 44.79% against LRU's 56.41%).

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
/// A suspected regime change needs the share of requests for unseen keys to rise by this much
/// (as a fraction of the sample's requests) over the previous sample ...
const SURGE: f64 = 0.10;
/// ... the hit rate to keep at least this fraction of the previous sample's (a sample that lost
/// nearly every hit is a scan or a cold start, not a new popular set) ...
const KEEP: f64 = 0.25;
/// ... and the sketch to remember at least this many samples (a sketch that halves every sample
/// or two forgets the old keys by itself).
const MEMORY_SAMPLES: u64 = 4;
/// The next sample confirms it when its unseen share is still this much above the share before
/// the drop (and no higher than during the drop) and its hit rate still this much below the
/// rate before the drop.
const CONFIRM: f64 = 0.05;

/// What the policy does once a sample is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Adjustment {
    /// Weight units to move the window by (positive grows it).
    pub(crate) window: i128,
    /// A regime change is suspected: the sketch forgets every count.
    pub(crate) forget: bool,
    /// A regime change is confirmed: the window takes the whole protected segment (and the
    /// climb goes on growing it, from the full step).
    pub(crate) recency: bool,
}

/// The figures of the sample where a regime change was suspected.
#[derive(Clone, Copy)]
struct Suspect {
    /// Hit rate and unseen share of the sample before the drop.
    rate_before: f64,
    unseen_before: f64,
    /// Unseen share of the drop's sample.
    unseen_during: f64,
}

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
    /// Misses on keys the sketch had not counted, this sample.
    unseen: u64,
    /// Their share of the previous sample's requests.
    previous_unseen: f64,
    /// A regime change suspected at the end of the previous sample, waiting for this one.
    suspect: Option<Suspect>,
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
            unseen: 0,
            previous_unseen: 0.0,
            suspect: None,
        }
    }

    /// Counts `n` hits.
    #[inline]
    pub(crate) fn hit(&mut self, n: u64) {
        self.hits += n;
    }

    /// Counts a miss (an insert of a new key); `unseen` when the sketch had not counted the
    /// key.
    #[inline]
    pub(crate) fn miss(&mut self, unseen: bool) {
        self.misses += 1;
        self.unseen += u64::from(unseen);
    }

    /// Once a sample is complete (one request per entry of a cache holding `entries`, at least
    /// 20,000): the adjustment, and a new sample starts. `None` before that. `sketch_period` is
    /// the sketch's additions between halvings.
    pub(crate) fn adjustment(&mut self, entries: u64, sketch_period: u64) -> Option<Adjustment> {
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
        #[allow(clippy::cast_precision_loss)]
        let unseen = self.unseen as f64 / requests as f64;
        let recency = self.suspect.take().is_some_and(|s| {
            unseen >= s.unseen_before + CONFIRM
                && unseen <= s.unseen_during
                && rate <= s.rate_before - CONFIRM
        });
        let forget = sketch_period >= MEMORY_SAMPLES.saturating_mul(target)
            && change <= -RESTART_THRESHOLD
            && rate >= KEEP * self.previous_rate
            && unseen >= self.previous_unseen + SURGE;
        if forget {
            self.suspect = Some(Suspect {
                rate_before: self.previous_rate,
                unseen_before: self.previous_unseen,
                unseen_during: unseen,
            });
        }
        self.previous_unseen = unseen;
        self.unseen = 0;
        self.previous_rate = rate;
        self.hits = 0;
        self.misses = 0;
        self.sub_start = (0, 0);
        self.sub_count = 0;
        self.sub_sum = 0.0;
        self.sub_squares = 0.0;
        let window = if change.abs() < noise {
            0
        } else {
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
            amount
        };
        if recency {
            self.step = self.full_step;
        }
        Some(Adjustment {
            window,
            forget,
            recency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Adjustment, Climber};

    /// One sample of `n` requests with `hits` hits.
    fn sample(c: &mut Climber, hits: u64, n: u64) -> Option<i128> {
        c.hit(hits);
        (0..n - hits).for_each(|_| c.miss(false));
        c.adjustment(1, 0).map(|a| {
            assert!(!a.forget && !a.recency);
            a.window
        })
    }

    #[test]
    fn follows_significant_changes_and_ignores_noise() {
        let mut c = Climber::new(1_000);
        c.hit(10);
        assert_eq!(
            c.adjustment(1, 0),
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
            (0..1_250 - hits(i)).for_each(|_| c.miss(false));
            out = c.adjustment(1, 0).map(|a| a.window);
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

    /// One sample of `n` requests: `hits` hits, `unseen` misses on keys the sketch had not
    /// counted, the rest misses on known keys; a sketch halving every `period` additions.
    fn mixed(c: &mut Climber, hits: u64, unseen: u64, period: u64) -> Adjustment {
        let n = 20_000;
        c.hit(hits);
        (0..unseen).for_each(|_| c.miss(true));
        (0..n - hits - unseen).for_each(|_| c.miss(false));
        c.adjustment(1, period).expect("a sample is complete")
    }

    /// Two steady samples at 60% hits and 20% unseen keys.
    fn steady(period: u64) -> Climber {
        let mut c = Climber::new(1_000);
        for _ in 0..2 {
            let a = mixed(&mut c, 12_000, 4_000, period);
            assert!(!a.forget && !a.recency);
        }
        c
    }

    #[test]
    fn a_new_popular_set_is_suspected_then_confirmed() {
        let long = 10 * 20_000;
        let mut c = steady(long);
        // 35% hits, 45% unseen: a drop of 25 points with a surge of unseen keys. The sketch
        // forgets; the flip grows the window by the full step.
        let a = mixed(&mut c, 7_000, 9_000, long);
        assert_eq!(
            a,
            Adjustment {
                window: 62,
                forget: true,
                recency: false
            }
        );
        // 47% hits, 33% unseen: still well below the old rate, the unseen share still above
        // the old one but falling (the new keys come back): confirmed.
        let a = mixed(&mut c, 9_400, 6_600, long);
        assert!(a.recency && !a.forget, "{a:?}");
        // The climb goes on growing the window from the full step.
        assert_eq!(mixed(&mut c, 11_000, 5_000, long).window, 62);
    }

    #[test]
    fn scans_swings_and_short_memories_are_not_regime_changes() {
        let long = 10 * 20_000;
        // A sketch that halves every sample forgets the old keys by itself.
        let mut c = steady(20_000);
        assert!(!mixed(&mut c, 7_000, 9_000, 20_000).forget);
        // A sample without hits and with 95% unseen keys: a scan.
        let mut c = steady(long);
        assert!(!mixed(&mut c, 0, 19_000, long).forget);
        // A drop without a surge of unseen keys (a loop longer than the cache).
        let mut c = steady(long);
        assert!(!mixed(&mut c, 7_000, 4_000, long).forget);
        // A drop the next sample recovers from.
        let mut c = steady(long);
        assert!(mixed(&mut c, 7_000, 9_000, long).forget);
        assert!(!mixed(&mut c, 12_000, 4_000, long).recency);
        // A drop whose unseen keys keep rising (a long scan beside the traffic).
        let mut c = steady(long);
        assert!(mixed(&mut c, 7_000, 9_000, long).forget);
        assert!(!mixed(&mut c, 9_000, 10_000, long).recency);
    }
}
