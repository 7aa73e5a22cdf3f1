//! Scatter-gather under virtual time (tokio's paused clock: timeouts without real waiting), and
//! the merge helpers against naive models.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use tierkit_shard::ShardId;
use tierkit_shard::merge::{concat, merge_sorted, top_k_by_key};
use tierkit_shard::scatter::{ScatterOptions, ShardFailure, scatter};

#[tokio::test(start_paused = true)]
async fn reports_answers_errors_timeouts_and_panics() {
    let targets = (0..6).map(|i| (ShardId(i), i));
    let opts = ScatterOptions::default().timeout(Duration::from_millis(100));
    let got = scatter(targets, opts, |_, i| async move {
        match i {
            2 => Err(format!("shard {i} is down")),
            3 => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(0)
            }
            4 => panic!("shard 4 bug"),
            _ => {
                tokio::time::sleep(Duration::from_millis(10 * u64::from(i))).await;
                Ok(i * 10)
            }
        }
    })
    .await;
    assert!(got.is_partial());
    assert_eq!(
        got.ok,
        vec![(ShardId(0), 0), (ShardId(1), 10), (ShardId(5), 50)]
    );
    assert_eq!(
        got.failed,
        vec![
            (
                ShardId(2),
                ShardFailure::Error("shard 2 is down".to_string())
            ),
            (
                ShardId(3),
                ShardFailure::Timeout(Duration::from_millis(100))
            ),
            (ShardId(4), ShardFailure::Panicked),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let opts = ScatterOptions::default().concurrency(3);
    let got = scatter((0..20).map(|i| (ShardId(i), ())), opts, |_, ()| {
        let (running, peak) = (running.clone(), peak.clone());
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, ()>(())
        }
    })
    .await;
    assert_eq!(got.ok.len(), 20);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_gather_cancels_the_queries() {
    let finished = Arc::new(AtomicUsize::new(0));
    let f2 = finished.clone();
    let gather = scatter(
        (0..4).map(|i| (ShardId(i), ())),
        ScatterOptions::default(),
        move |_, ()| {
            let finished = f2.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(())
            }
        },
    );
    // Give up after 10 ms: the gather future is dropped with every query still sleeping.
    assert!(
        tokio::time::timeout(Duration::from_millis(10), gather)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(finished.load(Ordering::SeqCst), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn merge_matches_sorting_the_concatenation(mut lists in prop::collection::vec(prop::collection::vec(0u32..100, 0..20), 0..6)) {
        for l in &mut lists {
            l.sort_unstable();
        }
        let mut expected = concat(lists.clone());
        expected.sort_unstable();
        prop_assert_eq!(merge_sorted(lists), expected);
    }

    #[test]
    fn top_k_matches_a_sort(lists in prop::collection::vec(prop::collection::vec(0u32..50, 0..20), 0..6), k in 0usize..15) {
        let mut expected = concat(lists.clone());
        expected.sort_by(|a, b| b.cmp(a));
        expected.truncate(k);
        prop_assert_eq!(top_k_by_key(lists, k, |x| *x), expected);
    }
}
