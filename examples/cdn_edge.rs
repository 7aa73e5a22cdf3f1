//! A CDN edge in front of an origin, over one simulated day: static assets are cached by bytes
//! with a default TTL, misses fall back to the origin (counted), entries expire on a mock clock
//! (no sleeping), and a deploy at noon ships `logo.png?v=2`: a new URL is a new key, so nothing
//! needs purging, and the old `?v=1` entry simply ages out.
//!
//! `cargo run --release --example cdn_edge` (deterministic: same output on every run).
//!
//! Prints the edge's request and byte hit ratios and origin fetches per six hours for the chosen
//! policy, then the whole day under every tierkit policy.

// Byte counts and request counts are far below 2^52: the float conversions only print ratios.
#![allow(clippy::cast_precision_loss)]

use std::collections::HashMap;
use std::error::Error;
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tierkit::cache::{CacheBuilder, CachePolicy, ManualClock, RemovalCause};

use tierkit_testkit as workload;

use workload::{SplitMix64, Zipf};

/// What the edge stores per URL: the body's size (the bytes are simulated) and a version tag.
#[derive(Debug, Clone)]
struct Asset {
    bytes: u64,
    etag: u64,
}

/// The origin web server: every fetch costs a round trip and its bytes.
#[derive(Debug, Default)]
struct Origin {
    fetches: u64,
    bytes: u64,
    /// Fetches per URL.
    by_url: HashMap<String, u64>,
}

impl Origin {
    fn fetch(&mut self, url: &str, size: u64) -> Asset {
        self.fetches += 1;
        self.bytes += size;
        *self.by_url.entry(url.to_string()).or_default() += 1;
        Asset {
            bytes: size,
            etag: workload::mix(url.len() as u64 ^ size),
        }
    }
}

const KB: u64 = 1024;
const MB: u64 = 1024 * KB;
/// The edge's cache budget, in bytes.
const EDGE_BYTES: u64 = 64 * MB;
/// Cached objects live this long unless the URL says otherwise.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// HTML is revalidated often: its own TTL.
const HTML_TTL: Duration = Duration::from_secs(60);
/// Requests per simulated minute; one day of them.
const PER_MINUTE: u64 = 200;
const PRODUCTS: usize = 4_000;

/// The site's shell: every page view loads these (the logo's URL changes at the noon deploy).
const SHELL: [(&str, u64); 5] = [
    ("/index.html", 14 * KB),
    ("/app.js?v=7", 310 * KB),
    ("/app.css?v=7", 62 * KB),
    ("/font.woff2", 84 * KB),
    ("/logo.png?v=1", 48 * KB),
];

/// The deploy at 12:00 ships a new logo under a new URL.
const DEPLOY_MINUTE: u64 = 12 * 60 + 30;
const LOGO_V1: &str = "/logo.png?v=1";
const LOGO_V2: &str = "/logo.png?v=2";

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    requests: u64,
    hits: u64,
    edge_bytes: u64,
    origin_fetches: u64,
    origin_bytes: u64,
}

impl Tally {
    fn hit_ratio(&self) -> f64 {
        100.0 * self.hits as f64 / self.requests.max(1) as f64
    }
    fn byte_hit_ratio(&self) -> f64 {
        100.0 * self.edge_bytes as f64 / (self.edge_bytes + self.origin_bytes).max(1) as f64
    }
}

/// The product image `id`: a size between 20 and 220 KB, fixed per id.
fn product(id: u64) -> (String, u64) {
    (
        format!("/img/p{id}.jpg"),
        20 * KB + workload::mix(id) % (200 * KB),
    )
}

struct Day {
    /// One tally per six hours.
    quarters: [Tally; 4],
    /// When (simulated minute) the edge reported `logo.png?v=1` gone, and why.
    logo_v1_gone: Option<(u64, RemovalCause)>,
    logo_v1_last_served: u64,
    logo_v2_first_hit: Option<u64>,
    edge_weight: u64,
    /// Origin fetches of the shell's URLs and the new logo.
    shell_fetches: Vec<(String, u64)>,
}

/// SipHash with fixed keys: the same hashes on every run, so the S3-FIFO ghost queue (which
/// remembers hashes) and every table decide the same way (the default `SipHashBuilder` is keyed
/// randomly per builder, which is what a server exposed to untrusted URLs wants).
type Fixed = BuildHasherDefault<DefaultHasher>;

type Run = fn() -> Result<Day, Box<dyn Error>>;

fn simulate<P: CachePolicy<String, Asset, Fixed>>() -> Result<Day, Box<dyn Error>> {
    let clock = ManualClock::new();
    let gone: Arc<Mutex<Vec<(String, RemovalCause, Duration)>>> = Arc::default();
    let listener_log = Arc::clone(&gone);
    let listener_clock = clock.clone();
    let mut edge: P = CacheBuilder::new(EDGE_BYTES)
        .hasher(Fixed::default())
        .weigher(|_url: &String, a: &Asset| a.bytes)
        .default_ttl(DEFAULT_TTL)
        .clock(clock.clone())
        .removal_listener(move |url: &String, _a: &Asset, cause| {
            if url == LOGO_V1
                && let Ok(mut log) = listener_log.lock()
            {
                log.push((url.clone(), cause, listener_clock.elapsed()));
            }
        })
        .build()?;

    let mut origin = Origin::default();
    let mut rng = SplitMix64::new(0xcd0e_d9e5);
    let zipf = Zipf::new(PRODUCTS, 0.9);
    let mut day = Day {
        quarters: [Tally::default(); 4],
        logo_v1_gone: None,
        logo_v1_last_served: 0,
        logo_v2_first_hit: None,
        edge_weight: 0,
        shell_fetches: Vec::new(),
    };
    let tick = Duration::from_secs(60) / u32::try_from(PER_MINUTE)?;
    for minute in 0..24 * 60 {
        let q = &mut day.quarters[usize::try_from(minute / 360)?];
        for _ in 0..PER_MINUTE {
            clock.advance(tick);
            // 40% of requests load the shell, 60% a product image (Zipf popularity).
            let (url, size) = if rng.below(10) < 4 {
                let (mut url, size) = SHELL[usize::try_from(rng.below(SHELL.len() as u64))?];
                if url == LOGO_V1 && minute >= DEPLOY_MINUTE {
                    url = LOGO_V2;
                }
                (url.to_string(), size)
            } else {
                product(zipf.sample(&mut rng))
            };
            q.requests += 1;
            if let Some(asset) = edge.get(&url) {
                q.hits += 1;
                q.edge_bytes += asset.bytes;
                if url == LOGO_V1 {
                    day.logo_v1_last_served = minute;
                }
                if url == LOGO_V2 && day.logo_v2_first_hit.is_none() {
                    day.logo_v2_first_hit = Some(minute);
                }
                continue;
            }
            // Miss: fetch from the origin and keep it at the edge.
            let asset = origin.fetch(&url, size);
            debug_assert_ne!(asset.etag, 0);
            q.origin_fetches += 1;
            q.origin_bytes += asset.bytes;
            if url.ends_with(".html") {
                edge.insert_with_ttl(url, asset, HTML_TTL);
            } else {
                edge.insert(url, asset);
            }
        }
    }
    day.edge_weight = edge.weight();
    // The last time the old logo left the edge: after the deploy nobody fetches it again.
    if let Ok(log) = gone.lock() {
        day.logo_v1_gone = log.last().map(|(_, cause, at)| (at.as_secs() / 60, *cause));
    }
    day.shell_fetches = SHELL
        .iter()
        .map(|(url, _)| *url)
        .chain([LOGO_V2])
        .map(|url| {
            (
                url.to_string(),
                origin.by_url.get(url).copied().unwrap_or(0),
            )
        })
        .collect();
    Ok(day)
}

fn hhmm(minute: u64) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn total(day: &Day) -> Tally {
    day.quarters.iter().fold(Tally::default(), |mut t, q| {
        t.requests += q.requests;
        t.hits += q.hits;
        t.edge_bytes += q.edge_bytes;
        t.origin_fetches += q.origin_fetches;
        t.origin_bytes += q.origin_bytes;
        t
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    println!(
        "Edge cache: {} MB by bytes, default TTL {} min (HTML {} s); {} requests/min for 24 h; \
         {} product images (Zipf 0.9) + the site shell; deploy of {LOGO_V2} at {}.\n",
        EDGE_BYTES / MB,
        DEFAULT_TTL.as_secs() / 60,
        HTML_TTL.as_secs(),
        PER_MINUTE,
        PRODUCTS,
        hhmm(DEPLOY_MINUTE),
    );
    let day = simulate::<tierkit::cache::S3FifoCache<String, Asset, Fixed>>()?;
    println!("S3-FIFO edge, per six hours:\n");
    println!(
        "| hours | requests | edge hit % | byte hit % | origin fetches | MB from edge | MB from origin |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, q) in day.quarters.iter().enumerate() {
        println!(
            "| {:02}-{:02} | {} | {:.1} | {:.1} | {} | {:.0} | {:.0} |",
            i * 6,
            i * 6 + 6,
            q.requests,
            q.hit_ratio(),
            q.byte_hit_ratio(),
            q.origin_fetches,
            q.edge_bytes as f64 / MB as f64,
            q.origin_bytes as f64 / MB as f64,
        );
    }
    let t = total(&day);
    println!(
        "| day | {} | {:.1} | {:.1} | {} | {:.0} | {:.0} |\n",
        t.requests,
        t.hit_ratio(),
        t.byte_hit_ratio(),
        t.origin_fetches,
        t.edge_bytes as f64 / MB as f64,
        t.origin_bytes as f64 / MB as f64,
    );
    println!(
        "TTL at work: origin fetches per shell URL over the day (HTML lives 60 s, the rest 1 h):"
    );
    for (url, n) in &day.shell_fetches {
        println!("  {url:<16} {n:>5}");
    }
    println!("\nVersioning instead of purging:");
    println!(
        "  {LOGO_V1} last served from the edge at {}",
        hhmm(day.logo_v1_last_served)
    );
    match day.logo_v2_first_hit {
        Some(m) => println!(
            "  {LOGO_V2} first served from the edge at {}, right after its first origin fetch",
            hhmm(m)
        ),
        None => println!("  {LOGO_V2} never hit the edge"),
    }
    match day.logo_v1_gone {
        Some((m, cause)) => println!(
            "  {LOGO_V1} left the edge for good at {} ({cause:?}): nobody asks for it after the \
             deploy, so it ages out without a purge",
            hhmm(m)
        ),
        None => println!("  {LOGO_V1} was still held at midnight (expired, not yet purged)"),
    }
    println!(
        "  edge holds {:.1} MB of {} MB at midnight\n",
        day.edge_weight as f64 / MB as f64,
        EDGE_BYTES / MB
    );

    println!("The same day under every policy:\n");
    println!("| policy | edge hit % | byte hit % | origin fetches | MB from origin |");
    println!("|---|---:|---:|---:|---:|");
    let runs: [(&str, Run); 4] = [
        (
            "LRU",
            simulate::<tierkit::cache::LruCache<String, Asset, Fixed>>,
        ),
        (
            "LFU",
            simulate::<tierkit::cache::LfuCache<String, Asset, Fixed>>,
        ),
        (
            "FIFO",
            simulate::<tierkit::cache::FifoCache<String, Asset, Fixed>>,
        ),
        (
            "S3-FIFO",
            simulate::<tierkit::cache::S3FifoCache<String, Asset, Fixed>>,
        ),
    ];
    for (name, run) in runs {
        let t = total(&run()?);
        println!(
            "| {name} | {:.1} | {:.1} | {} | {:.0} |",
            t.hit_ratio(),
            t.byte_hit_ratio(),
            t.origin_fetches,
            t.origin_bytes as f64 / MB as f64
        );
    }
    let origin_only = t.requests;
    println!(
        "\nWithout the edge the origin would serve all {origin_only} requests ({:.0} MB).",
        (t.edge_bytes + t.origin_bytes) as f64 / MB as f64
    );
    Ok(())
}
