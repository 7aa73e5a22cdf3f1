//! The flagship example in CI: a shortened journey (`--quick`), asserted on its typed results,
//! not on its printed output.

// journey.rs allows `dead_code` and `unreachable_pub` for itself: its items are `pub` for the
// example and this test (both private module trees), and this test reads only the results.
#[path = "../examples/zero_to_millions/journey.rs"]
mod journey;

use journey::{Options, Report};

fn quick_run(seed: u64) -> Report {
    match journey::run(&Options::quick(seed)) {
        Ok(r) => r,
        Err(e) => panic!("the quick journey failed: {e}"),
    }
}

#[test]
fn zero_to_millions_quick() {
    let report = quick_run(7);
    assert_eq!(
        report.rows.iter().map(|r| r.stage).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<u8>>(),
        "one summary row per stage"
    );
    for r in &report.rows {
        if r.stage != 9 {
            assert!(r.requests > 0, "stage {} measured nothing", r.stage);
            assert!(r.throughput > 0.0, "stage {} has no throughput", r.stage);
        }
    }

    // Stage 2: the killed server was ejected and no request started after that hit it; the new
    // server took traffic; retries hid the failures from the users.
    let lb = report.balanced.as_ref().expect("stage 2 ran");
    assert!(lb.detected, "outlier detection ejected the killed server");
    assert_eq!(
        lb.failed_after_detection, 0,
        "failed requests after detection"
    );
    assert!(
        lb.failed_before_detection > 0,
        "the kill was noticed at all"
    );
    assert!(lb.added_served > 0, "the added server received traffic");
    assert_eq!(
        lb.row.errors, 0,
        "retries on another server hide the failover"
    );

    // Stage 3: replicas served most reads, read-your-writes held, the promotion happened and
    // its lost-write report matches the writes the users had acknowledged.
    let rep = report.replication.as_ref().expect("stage 3 ran");
    assert!(
        rep.replica_reads * 2 > rep.reads,
        "replicas served {} of {} reads",
        rep.replica_reads,
        rep.reads
    );
    assert_eq!(rep.stale_own_reads, 0, "read-your-writes violations");
    assert!(rep.promoted, "a replica was promoted");
    assert_eq!(rep.lost_writes, rep.lost_writes_verified);

    // Stage 4: the cache cut database reads by at least its hit ratio, for every policy.
    let cache = report.cache.as_ref().expect("stage 4 ran");
    assert_eq!(cache.runs.len(), 3);
    for run in &cache.runs {
        assert!(run.hit_ratio > 0.0, "{} never hit", run.policy);
        assert!(
            run.db_read_cut + 1e-9 >= run.hit_ratio,
            "{}: reads cut {:.3} < hit ratio {:.3}",
            run.policy,
            run.db_read_cut,
            run.hit_ratio
        );
    }

    // Stage 5: versioned assets are never stale after a deploy.
    let cdn = report.cdn.as_ref().expect("stage 5 ran");
    assert_eq!(cdn.stale_versioned, 0);
    assert!(cdn.origin_requests < cdn.requests);

    // Stage 6: no session lost with the shared store; sticky sessions lose some.
    let s = report.sessions.as_ref().expect("stage 6 ran");
    assert_eq!(
        s.shared.lost_sessions, 0,
        "sessions lost with the shared store"
    );
    assert!(
        s.sticky.lost_sessions > 0,
        "removing servers logs sticky users out"
    );

    // Stage 7: after the data center failure everything goes to the other one.
    let dc = report.multi_dc.as_ref().expect("stage 7 ran");
    assert!(
        dc.east_share_before > 0.4,
        "us-east took its share while up"
    );
    assert!(dc.requests_after > 0);
    assert!(
        dc.east_share_after < 1e-9,
        "nothing served by a dead data center"
    );

    // Stage 8: no job lost; crashes happened and were recovered.
    let q = report.queue.as_ref().expect("stage 8 ran");
    assert_eq!(q.lost, 0, "jobs lost");
    assert_eq!(q.processed, q.published);
    assert!(q.crashes > 0, "the workers crashed");
    assert!(q.peak_workers > 1, "the pool grew with the queue");

    // Stage 9: the dashboard gathered every stage's components.
    let d = report.dashboard.as_ref().expect("stage 9 ran");
    for stage in [1u8, 2, 3, 4, 5, 6, 7, 8, 10] {
        assert!(
            d.metrics.iter().any(|m| m.stage == stage),
            "no component of stage {stage} in the dashboard"
        );
    }

    // Stage 10: the celebrity was found; growing the ring moved about 1/5 of the keys.
    let sh = report.sharding.as_ref().expect("stage 10 ran");
    assert_eq!(
        sh.detected,
        Some(sh.celebrity),
        "the hot-key detector found the celebrity"
    );
    assert!(
        (sh.moved_fraction - 0.2).abs() <= 0.2 * 0.25,
        "moved {:.3} of the keys",
        sh.moved_fraction
    );
    assert_eq!(sh.lost, 0, "rows lost or duplicated by the migrations");
}

#[test]
fn same_seed_same_workload() {
    let opts = Options {
        stages: vec![5, 6, 8, 10],
        ..Options::quick(11)
    };
    let run = || match journey::run(&opts) {
        Ok(r) => r,
        Err(e) => panic!("the quick journey failed: {e}"),
    };
    let (a, b) = (run(), run());
    let cdn = |r: &Report| r.cdn.as_ref().map(|c| c.requests);
    assert_eq!(cdn(&a), cdn(&b), "asset requests");
    let sticky = |r: &Report| r.sessions.as_ref().map(|s| s.sticky.lost_sessions);
    assert_eq!(sticky(&a), sticky(&b), "sticky sessions lost");
    let jobs = |r: &Report| r.queue.as_ref().map(|q| q.published);
    assert_eq!(jobs(&a), jobs(&b), "photo jobs published");
    let celebrity = |r: &Report| r.sharding.as_ref().map(|s| s.celebrity);
    assert_eq!(celebrity(&a), celebrity(&b), "the celebrity");
}
