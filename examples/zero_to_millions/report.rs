//! Presentation: the summary table, the stage 9 dashboard, and the self-contained HTML report
//! (hand-written inline SVG, no dependencies).

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
            if r.requests == 0 {
                "-".to_string()
            } else {
                rate(r.throughput)
            },
            if r.requests == 0 {
                "-".into()
            } else {
                dur(r.p50)
            },
            if r.requests == 0 {
                "-".into()
            } else {
                dur(r.p99)
            },
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

/// A horizontal bar chart: one bar per (label, value).
fn bars(title: &str, unit: &str, data: &[(String, f64)], color: &str) -> String {
    let w = 640.0;
    let bar_h = 22.0;
    let left = 170.0;
    let h = 40.0 + bar_h * data.len() as f64;
    let max = data.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-9);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><text x="4" y="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, (label, v)) in data.iter().enumerate() {
        let y = 28.0 + bar_h * i as f64;
        let len = (w - left - 90.0) * v / max;
        let _ = write!(
            s,
            r#"<text x="{x}" y="{ty}" text-anchor="end">{l}</text><rect x="{left}" y="{y}" width="{len:.1}" height="{bh}" fill="{color}"/><text x="{vx:.1}" y="{ty}">{val} {unit}</text>"#,
            x = left - 6.0,
            ty = y + 14.0,
            l = esc(label),
            bh = bar_h - 6.0,
            vx = left + len + 4.0,
            val = if *v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            },
        );
    }
    s.push_str("</svg>");
    s
}

/// A line chart of (x, y) series on shared axes.
/// One line of a chart: name, color, points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

fn lines(title: &str, series: &[Series<'_>], x_unit: &str) -> String {
    let (w, h, pad) = (640.0, 220.0, 36.0);
    let xmax = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(x, _)| *x))
        .fold(0.0, f64::max)
        .max(1e-9);
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><text x="4" y="16" font-weight="bold">{}</text><line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"/><text x="{r}" y="{t}" text-anchor="end">{xmax:.0} {x_unit}</text>"##,
        esc(title),
        b = h - pad,
        r = w - 10.0,
        t = h - 18.0,
    );
    for (k, (name, color, pts)) in series.iter().enumerate() {
        let ymax = pts.iter().map(|(_, y)| *y).fold(0.0, f64::max).max(1e-9);
        let path: Vec<String> = pts
            .iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    pad + (w - pad - 10.0) * x / xmax,
                    h - pad - (h - pad - 30.0) * y / ymax
                )
            })
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/><text x="{lx}" y="{ly}" fill="{color}">{} (max {ymax:.0})</text>"#,
            path.join(" "),
            esc(name),
            lx = pad + 10.0 + 200.0 * k as f64,
            ly = 32.0,
        );
    }
    s.push_str("</svg>");
    s
}

/// The self-contained HTML page.
#[must_use]
pub fn html(report: &Report) -> String {
    let mut body = String::new();
    let label = |r: &Row| format!("{}. {}", r.stage, r.name);
    let with_load: Vec<&Row> = report.rows.iter().filter(|r| r.requests > 0).collect();
    let charts = [
        bars(
            "Throughput per stage",
            "req/s",
            &with_load
                .iter()
                .map(|r| (label(r), r.throughput))
                .collect::<Vec<_>>(),
            "#3a7bd5",
        ),
        bars(
            "p99 latency per stage",
            "ms",
            &with_load
                .iter()
                .map(|r| (label(r), r.p99.as_secs_f64() * 1000.0))
                .collect::<Vec<_>>(),
            "#e07a2f",
        ),
        bars(
            "Busiest database node",
            "q/s",
            &with_load
                .iter()
                .filter(|r| !r.db_qps.is_empty())
                .map(|r| {
                    (
                        label(r),
                        r.db_qps.iter().map(|(_, q)| *q).fold(0.0, f64::max),
                    )
                })
                .collect::<Vec<_>>(),
            "#8e44ad",
        ),
    ];
    for c in charts {
        let _ = write!(body, "<div>{c}</div>");
    }
    if let Some(c) = &report.cache {
        let data: Vec<(String, f64)> = c
            .runs
            .iter()
            .map(|r| (format!("{} hit ratio", r.policy), r.hit_ratio * 100.0))
            .chain(
                c.runs
                    .iter()
                    .map(|r| (format!("{} DB reads cut", r.policy), r.db_read_cut * 100.0)),
            )
            .collect();
        let _ = write!(
            body,
            "<div>{}</div>",
            bars(
                "Stage 4: cache policies on the same load",
                "%",
                &data,
                "#27ae60"
            )
        );
    }
    if let Some(b) = &report.balanced {
        let data: Vec<(String, f64)> = b
            .per_server
            .iter()
            .map(|(id, n)| (format!("server {id}"), *n as f64))
            .collect();
        let _ = write!(
            body,
            "<div>{}</div>",
            bars(
                "Stage 2: requests per web server (2 killed, 5 added)",
                "req",
                &data,
                "#3a7bd5"
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
            "<div>{}</div>",
            lines(
                "Stage 8: queue depth and workers over time",
                &[
                    ("queue depth", "#c0392b", depth),
                    ("workers", "#2980b9", workers)
                ],
                "ms"
            )
        );
    }
    if let Some(s) = &report.sharding {
        let data: Vec<(String, f64)> = s
            .load_before_pin
            .iter()
            .map(|(id, n)| (format!("before pin: shard {id}"), *n as f64))
            .chain(
                s.load_after_pin
                    .iter()
                    .map(|(id, n)| (format!("after pin: shard {id}"), *n as f64)),
            )
            .collect();
        let _ = write!(
            body,
            "<div>{}</div>",
            bars(
                "Stage 10: queries per shard (shard 9 = the celebrity's)",
                "q",
                &data,
                "#16a085"
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
            if r.requests == 0 {
                "-".into()
            } else {
                rate(r.throughput)
            },
            dur(r.p50),
            dur(r.p99),
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
