//! Hot-key detection on a Zipf(1.1) stream: 10M accesses over 1M keys, recorded from two
//! threads; the true top-100 is found with >= 95% recall in <= 64 KiB.

use std::collections::HashSet;

use tierkit_shard::HotKeyDetector;

use tierkit_testkit::allocated_by_this_thread;

const KEYS: usize = 1_000_000;
const ACCESSES: usize = 10_000_000;

/// SplitMix64: a deterministic stream of uniform u64s.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Key ranks drawn from Zipf(s) over `n` keys by inverse CDF; key = a scrambled rank so hot
/// keys are not simply the small integers.
fn zipf_stream(n: usize, s: f64, len: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(n);
    let mut total = 0.0;
    for rank in 1..=n {
        total += (rank as f64).powf(-s);
        cdf.push(total);
    }
    let mut rng = Rng(seed);
    (0..len)
        .map(|_| {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let rank = cdf.partition_point(|&c| c < u) as u64;
            rank.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20
        })
        .collect()
}

#[test]
fn finds_the_zipf_top_100_in_64_kib_from_two_threads() {
    let stream = zipf_stream(KEYS, 1.1, ACCESSES, 42);
    // The truth: exact counts.
    let mut exact: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    for &k in &stream {
        *exact.entry(k).or_default() += 1;
    }
    let mut by_count: Vec<(u64, u64)> = exact.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let truth: HashSet<u64> = by_count.iter().take(100).map(|(k, _)| *k).collect();

    let before = allocated_by_this_thread();
    let detector = HotKeyDetector::<u64>::new(2048).unwrap();
    let footprint = allocated_by_this_thread() - before;
    assert!(
        footprint <= 64 * 1024,
        "detector allocated {footprint} bytes"
    );
    assert!(
        detector.memory_bytes() <= 64 * 1024,
        "{}",
        detector.memory_bytes()
    );

    let (a, b) = stream.split_at(ACCESSES / 2);
    std::thread::scope(|s| {
        for half in [a, b] {
            let d = &detector;
            s.spawn(move || {
                let before = allocated_by_this_thread();
                for k in half {
                    d.record(k);
                }
                assert_eq!(allocated_by_this_thread(), before, "recording allocated");
            });
        }
    });

    let found: HashSet<u64> = detector.top(100).into_iter().map(|h| h.key).collect();
    let recall = truth.intersection(&found).count();
    eprintln!(
        "hot keys: recall {recall}/100, footprint {footprint} B, memory_bytes {}",
        detector.memory_bytes()
    );
    assert!(recall >= 95, "recall {recall}/100");
    // Sampling one access in 16 still finds nearly all of them, at a fraction of the cost.
    let sampled = HotKeyDetector::<u64>::new(2048).unwrap().sampled(16);
    for k in &stream {
        sampled.record(k);
    }
    let found: HashSet<u64> = sampled.top(100).into_iter().map(|h| h.key).collect();
    let sampled_recall = truth.intersection(&found).count();
    eprintln!("hot keys, sampled 1 in 16: recall {sampled_recall}/100");
    assert!(sampled_recall >= 90, "sampled recall {sampled_recall}/100");
    // Estimates bound the truth: count - error <= true <= count.
    for h in detector.top(100) {
        let true_count = by_count
            .iter()
            .find(|(k, _)| *k == h.key)
            .map_or(0, |(_, c)| *c);
        assert!(
            h.count >= true_count && h.count - h.error <= true_count,
            "{h:?} vs {true_count}"
        );
    }
}

#[test]
fn decay_lets_a_new_celebrity_take_over() {
    let d = HotKeyDetector::<u64>::with_options(64, 4, 1_000).unwrap();
    for _ in 0..20_000 {
        d.record(&1);
    }
    for i in 0..20_000u64 {
        d.record(&(if i % 2 == 0 { 2 } else { 1_000 + i }));
    }
    let top = d.top(2);
    assert_eq!(top[0].key, 2, "{top:?}");
    // Without decay the old celebrity would still lead.
    let no_decay = HotKeyDetector::<u64>::new(64).unwrap();
    for _ in 0..20_000 {
        no_decay.record(&1);
    }
    for i in 0..20_000u64 {
        no_decay.record(&(if i % 2 == 0 { 2 } else { 1_000 + i }));
    }
    assert_eq!(no_decay.top(1)[0].key, 1);
}

#[test]
fn bad_options_are_errors() {
    assert!(HotKeyDetector::<u64>::with_options(10, 0, 0).is_err());
    assert!(HotKeyDetector::<u64>::with_options(3, 4, 0).is_err());
    assert!(HotKeyDetector::<u64>::with_options(1 << 20, 1, 0).is_err());
}

#[test]
fn seeded_sampling_repeats_exactly() {
    let run = || {
        tierkit_shard::seed_sampler(7);
        let d = tierkit_shard::HotKeyDetector::<u64>::new(64)
            .unwrap()
            .sampled(8);
        for i in 0..20_000u64 {
            d.record(&(i % 97 * (i % 5)));
        }
        d.top(10)
            .into_iter()
            .map(|h| (h.key, h.count))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}
