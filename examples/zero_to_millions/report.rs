//! Presentation: the summary table, the stage 9 dashboard, and the self-contained HTML report
//! (inline SVG with labelled axes, no dependencies).

use std::fmt::Write as _;
use std::time::Duration;

use super::{Metric, Report, Row};

/// Stage 9: every component's `stats()` in one table.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// The summary row.
    pub row: Row,
    /// Every component's counters, by stage.
    pub metrics: Vec<Metric>,
}

/// Stage 9: gathers the components' statistics the other stages collected.
#[must_use]
pub fn dashboard(metrics: Vec<Metric>) -> Dashboard {
    let components = metrics.len();
    let counters: usize = metrics.iter().map(|m| m.values.len()).sum();
    let mut row = Row {
        stage: 9,
        name: "logging & metrics".into(),
        changed: "every component's stats() in one dashboard".into(),
        ..Row::default()
    };
    row.notes.push(format!(
        "{components} components, {counters} counters: load balancers, replica set, caches, queue, shard map, SQLite nodes"
    ));
    Dashboard { row, metrics }
}

/// Human-readable rate: 1234 -> `1.2k`.
#[must_use]
pub fn rate(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.0}k", x / 1000.0)
    } else if x >= 1000.0 {
        format!("{:.1}k", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

fn dur(d: Duration) -> String {
    if d.is_zero() {
        "<1us".into()
    } else if d < Duration::from_millis(1) {
        format!("{}us", d.as_micros())
    } else {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    }
}

/// A figure of a stage that served requests, or `-` for a stage that served none.
fn measured(row: &Row, figure: impl FnOnce() -> String) -> String {
    if row.requests == 0 {
        "-".into()
    } else {
        figure()
    }
}

fn qps(row: &Row) -> String {
    if row.db_qps.is_empty() {
        return "-".into();
    }
    row.db_qps
        .iter()
        .map(|(_, q)| rate(*q))
        .collect::<Vec<_>>()
        .join("/")
}

/// The summary table, one row per stage.
#[must_use]
pub fn summary_table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>2}  {:<18} {:>9} {:>8} {:>8}  {:<26} {:>6} {:>6} {:>5}",
        "#", "stage", "req/s", "p50", "p99", "DB q/s per node", "hit%", "errors", "lost"
    );
    let _ = writeln!(out, "{}", "-".repeat(100));
    for r in &report.rows {
        let _ = writeln!(
            out,
            "{:>2}  {:<18} {:>9} {:>8} {:>8}  {:<26} {:>6} {:>6} {:>5}",
            r.stage,
            r.name,
            measured(r, || rate(r.throughput)),
            measured(r, || dur(r.p50)),
            measured(r, || dur(r.p99)),
            qps(r),
            r.hit_ratio
                .map_or("-".to_string(), |h| format!("{:.1}", h * 100.0)),
            r.errors,
            r.lost
        );
    }
    out
}

/// What changed and the measured story, per stage.
#[must_use]
pub fn stage_notes(report: &Report) -> String {
    let mut out = String::new();
    for r in &report.rows {
        let _ = writeln!(out, "{:>2}. {} — {}", r.stage, r.name, r.changed);
        for n in &r.notes {
            let _ = writeln!(out, "      {n}");
        }
        if !r.db_qps.is_empty() {
            let nodes: Vec<String> = r
                .db_qps
                .iter()
                .map(|(n, q)| format!("{n} {}", rate(*q)))
                .collect();
            let _ = writeln!(out, "      DB q/s: {}", nodes.join(", "));
        }
    }
    out
}

/// The stage 9 dashboard as text.
#[must_use]
pub fn dashboard_table(d: &Dashboard) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>2}  {:<22} {:<18} value",
        "st", "component", "counter"
    );
    for m in &d.metrics {
        for (i, (k, v)) in m.values.iter().enumerate() {
            let (st, comp) = if i == 0 {
                (m.stage.to_string(), m.component.as_str())
            } else {
                (String::new(), "")
            };
            let _ = writeln!(out, "{st:>2}  {comp:<22} {k:<18} {v}");
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// How a bar chart maps values to lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scale {
    /// From 0 to the largest value.
    Linear,
    /// Powers of ten, for values that span orders of magnitude (a CDN next to a queue).
    Log,
}

/// "Nice" tick values for an axis from 0 (linear) or the decade below the smallest value (log)
/// to at least `max`.
fn ticks(scale: Scale, min: f64, max: f64) -> Vec<f64> {
    match scale {
        Scale::Linear => {
            let raw = max / 4.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 2.5, 5.0, 10.0]
                .iter()
                .map(|m| m * mag)
                .find(|s| *s >= raw)
                .unwrap_or(10.0 * mag);
            (0..=((max / step).ceil() as usize))
                .map(|i| i as f64 * step)
                .collect()
        }
        Scale::Log => {
            let lo = min.max(1e-9).log10().floor() as i32;
            let hi = max.max(1e-9).log10().ceil().max(f64::from(lo + 1)) as i32;
            (lo..=hi).map(|e| 10f64.powi(e)).collect()
        }
    }
}

/// A short number: 1234 -> `1.2k`, 2500000 -> `2.5M`, 0.5 -> `0.5`.
fn short(x: f64) -> String {
    if x >= 1e6 {
        format!("{}M", trim(x / 1e6))
    } else if x >= 1e3 {
        format!("{}k", trim(x / 1e3))
    } else {
        trim(x)
    }
}

/// At most one decimal at or above 1, three significant digits below (0.005, 0.12), no
/// trailing zeros.
fn trim(x: f64) -> String {
    let s = if x >= 1.0 || x == 0.0 {
        format!("{x:.1}")
    } else {
        let decimals = (2 - x.log10().floor() as i32).clamp(1, 9) as usize;
        format!("{x:.decimals$}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A horizontal bar chart with a labelled value axis. A `None` value is a row with nothing to
/// measure (drawn as an empty row with a note, never as a zero-length bar).
fn bars(
    title: &str,
    axis: &str,
    data: &[(String, Option<f64>)],
    color: &str,
    scale: Scale,
) -> String {
    let (w, bar_h, left, right) = (720.0, 24.0, 190.0, 80.0);
    let plot_w = w - left - right;
    let top = 30.0;
    let h = top + bar_h * data.len() as f64 + 44.0;
    let values: Vec<f64> = data
        .iter()
        .filter_map(|(_, v)| *v)
        .filter(|v| *v > 0.0)
        .collect();
    let max = values.iter().copied().fold(0.0, f64::max).max(1e-9);
    let min = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(max);
    let ticks = ticks(scale, min, max);
    let (t0, t1) = (ticks[0], *ticks.last().unwrap_or(&max));
    let pos = |v: f64| match scale {
        Scale::Linear => plot_w * v / t1.max(1e-9),
        Scale::Log => {
            let (a, b) = (t0.log10(), t1.log10());
            plot_w * ((v.max(t0).log10() - a) / (b - a).max(1e-9))
        }
    };
    let base = top + bar_h * data.len() as f64;
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><text x="4" y="16" font-weight="bold">{}</text>"##,
        esc(title)
    );
    for t in &ticks {
        let x = left + pos(*t);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{base}" stroke="#e4e4e4"/><text x="{x:.1}" y="{ty}" text-anchor="middle" fill="#555">{}</text>"##,
            short(*t),
            ty = base + 14.0,
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{base}" x2="{r}" y2="{base}" stroke="#777"/><line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#777"/><text x="{cx}" y="{ay}" text-anchor="middle" fill="#333">{}{}</text>"##,
        esc(axis),
        if scale == Scale::Log {
            " (log scale)"
        } else {
            ""
        },
        r = left + plot_w,
        cx = left + plot_w / 2.0,
        ay = base + 32.0,
    );
    for (i, (label, v)) in data.iter().enumerate() {
        let y = top + bar_h * i as f64 + 4.0;
        let ty = y + 13.0;
        let _ = write!(
            s,
            r#"<text x="{x}" y="{ty}" text-anchor="end">{l}</text>"#,
            x = left - 6.0,
            l = esc(label),
        );
        match v {
            Some(v) => {
                let len = pos(*v).max(1.0);
                let _ = write!(
                    s,
                    r##"<rect x="{left}" y="{y}" width="{len:.1}" height="{bh}" fill="{color}"/><text x="{vx:.1}" y="{ty}" fill="#222">{val}</text>"##,
                    bh = bar_h - 8.0,
                    vx = left + len + 4.0,
                    val = short(*v),
                );
            }
            None => {
                let _ = write!(
                    s,
                    r##"<text x="{x}" y="{ty}" fill="#999" font-style="italic">no requests in this stage</text>"##,
                    x = left + 6.0,
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// A line chart of one series over time, with labelled axes.
fn line(title: &str, y_axis: &str, x_axis: &str, pts: &[(f64, f64)], color: &str) -> String {
    let (w, h, left, bottom, top) = (720.0, 200.0, 60.0, 44.0, 28.0);
    let plot_w = w - left - 20.0;
    let plot_h = h - top - bottom;
    let xmax = pts.iter().map(|p| p.0).fold(0.0, f64::max).max(1e-9);
    let ymax = pts.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-9);
    let xt = ticks(Scale::Linear, 0.0, xmax);
    let yt = ticks(Scale::Linear, 0.0, ymax);
    let (xr, yr) = (*xt.last().unwrap_or(&xmax), *yt.last().unwrap_or(&ymax));
    let px = |x: f64| left + plot_w * x / xr.max(1e-9);
    let py = |y: f64| top + plot_h - plot_h * y / yr.max(1e-9);
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><text x="4" y="16" font-weight="bold">{}</text>"##,
        esc(title)
    );
    for t in &yt {
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{r}" y2="{y:.1}" stroke="#eee"/><text x="{lx}" y="{ty:.1}" text-anchor="end" fill="#555">{}</text>"##,
            short(*t),
            y = py(*t),
            r = left + plot_w,
            lx = left - 6.0,
            ty = py(*t) + 4.0,
        );
    }
    for t in &xt {
        let _ = write!(
            s,
            r##"<text x="{x:.1}" y="{ty}" text-anchor="middle" fill="#555">{}</text>"##,
            short(*t),
            x = px(*t),
            ty = top + plot_h + 14.0,
        );
    }
    let path: Vec<String> = pts
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
        .collect();
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#777"/><line x1="{left}" y1="{top}" x2="{left}" y2="{b}" stroke="#777"/><polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/><text x="{cx}" y="{xl}" text-anchor="middle" fill="#333">{}</text><text transform="translate(14 {cy}) rotate(-90)" text-anchor="middle" fill="#333">{}</text>"##,
        path.join(" "),
        esc(x_axis),
        esc(y_axis),
        b = top + plot_h,
        r = left + plot_w,
        cx = left + plot_w / 2.0,
        xl = h - 8.0,
        cy = top + plot_h / 2.0,
    );
    s.push_str("</svg>");
    s
}

/// The self-contained HTML page.
#[must_use]
pub fn html(report: &Report) -> String {
    let mut body = String::new();
    let label = |r: &Row| format!("{}. {}", r.stage, r.name);
    let load = |r: &Row, v: f64| (label(r), (r.requests > 0).then_some(v));
    let charts = [
        bars(
            "Throughput per stage",
            "requests per second",
            &report
                .rows
                .iter()
                .map(|r| load(r, r.throughput))
                .collect::<Vec<_>>(),
            "#3a7bd5",
            Scale::Log,
        ),
        bars(
            "p99 latency per stage",
            "milliseconds",
            &report
                .rows
                .iter()
                .map(|r| load(r, r.p99.as_secs_f64() * 1000.0))
                .collect::<Vec<_>>(),
            "#e07a2f",
            Scale::Log,
        ),
        bars(
            "Busiest database node per stage",
            "queries per second",
            &report
                .rows
                .iter()
                .filter(|r| !r.db_qps.is_empty())
                .map(|r| {
                    (
                        label(r),
                        Some(r.db_qps.iter().map(|(_, q)| *q).fold(0.0, f64::max)),
                    )
                })
                .collect::<Vec<_>>(),
            "#8e44ad",
            Scale::Linear,
        ),
    ];
    for c in charts {
        let _ = write!(body, "<div>{c}</div>");
    }
    if let Some(c) = &report.cache {
        // The hit ratio is also the share of database reads the cache removes: one chart.
        let data: Vec<(String, Option<f64>)> = c
            .runs
            .iter()
            .map(|r| (r.policy.to_string(), Some(r.hit_ratio * 100.0)))
            .collect();
        let _ = write!(
            body,
            "<div>{}</div>",
            bars(
                "Stage 4: hit ratio of each cache policy on the same load (= database reads removed)",
                "hit ratio, %",
                &data,
                "#27ae60",
                Scale::Linear,
            )
        );
    }
    if let Some(b) = &report.balanced {
        let data: Vec<(String, Option<f64>)> = b
            .per_server
            .iter()
            .map(|(id, n)| (format!("server {id}"), Some(*n as f64)))
            .collect();
        let _ = write!(
            body,
            "<div>{}</div>",
            bars(
                "Stage 2: requests per web server (2 killed, 5 added)",
                "requests served",
                &data,
                "#3a7bd5",
                Scale::Linear,
            )
        );
    }
    if let Some(q) = &report.queue {
        let depth: Vec<(f64, f64)> = q
            .timeline
            .iter()
            .map(|s| (s.t_ms as f64, s.depth as f64))
            .collect();
        let workers: Vec<(f64, f64)> = q
            .timeline
            .iter()
            .map(|s| (s.t_ms as f64, s.workers as f64))
            .collect();
        let _ = write!(
            body,
            "<div>{}</div><div>{}</div>",
            line(
                "Stage 8: queue depth over time",
                "messages waiting",
                "milliseconds since the stage started",
                &depth,
                "#c0392b",
            ),
            line(
                "Stage 8: workers over time",
                "workers",
                "milliseconds since the stage started",
                &workers,
                "#2980b9",
            )
        );
    }
    if let Some(s) = &report.sharding {
        let data: Vec<(String, Option<f64>)> = s
            .load_before_pin
            .iter()
            .map(|(id, n)| (format!("before pin: shard {id}"), Some(*n as f64)))
            .chain(
                s.load_after_pin
                    .iter()
                    .map(|(id, n)| (format!("after pin: shard {id}"), Some(*n as f64))),
            )
            .collect();
        let _ = write!(
            body,
            "<div>{}</div>",
            bars(
                "Stage 10: queries per shard, before and after the celebrity is pinned to its own shard 9",
                "queries",
                &data,
                "#16a085",
                Scale::Linear,
            )
        );
    }
    let mut table = String::from(
        "<table><tr><th>#</th><th>stage</th><th>what changed</th><th>req/s</th><th>p50</th><th>p99</th><th>DB q/s per node</th><th>hit ratio</th><th>errors</th><th>lost</th></tr>",
    );
    for r in &report.rows {
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}<ul>{}</ul></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.stage,
            esc(&r.name),
            esc(&r.changed),
            r.notes
                .iter()
                .map(|n| format!("<li>{}</li>", esc(n)))
                .collect::<String>(),
            measured(r, || rate(r.throughput)),
            measured(r, || dur(r.p50)),
            measured(r, || dur(r.p99)),
            esc(&r
                .db_qps
                .iter()
                .map(|(n, q)| format!("{n} {}", rate(*q)))
                .collect::<Vec<_>>()
                .join(", ")),
            r.hit_ratio
                .map_or("-".into(), |h| format!("{:.1}%", h * 100.0)),
            r.errors,
            r.lost
        );
    }
    table.push_str("</table>");
    let dash = report
        .dashboard
        .as_ref()
        .map(|d| {
            format!(
                "<h2>Stage 9: dashboard</h2><pre>{}</pre>",
                esc(&dashboard_table(d))
            )
        })
        .unwrap_or_default();
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>tierkit: zero to millions</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:4px 6px;vertical-align:top}}ul{{margin:4px 0;padding-left:18px;color:#555}}div{{margin:1em 0}}</style>
</head><body><h1>From zero to millions, measured</h1>
<p>seed {seed}, total run time {elapsed:.1?}. Every number comes from this run.</p>
<h2>The journey at a glance</h2>{body}<h2>Stage by stage</h2>{table}{dash}</body></html>
"#,
        seed = report.seed,
        elapsed = report.elapsed,
    )
}
