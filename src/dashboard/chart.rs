//! The weight-over-time chart of a Canary's page: an inline SVG (no script, no library) drawn from
//! its decision record — the canary's weight at each analysis tick — and its weight now. Pure.

use chrono::{DateTime, Utc};

use super::html::esc;
use crate::api::DecisionRecord;

/// Drawing area inside the SVG's viewBox.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 40.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;
const RIGHT: f64 = 10.0;

/// Where one weight at one time goes in the viewBox, for a time span `from..=to`.
fn point(t: DateTime<Utc>, weight: i32, from: DateTime<Utc>, to: DateTime<Utc>) -> (f64, f64) {
    let span = (to - from).num_milliseconds() as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = if span <= 0.0 {
        LEFT + plot_w / 2.0
    } else {
        LEFT + plot_w * (t - from).num_milliseconds() as f64 / span
    };
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = TOP + plot_h * (1.0 - f64::from(weight.clamp(0, 100)) / 100.0);
    (x, y)
}

/// The chart of `decisions` (oldest first) followed by the weight `now`, as `<svg id="weight-chart">`.
pub fn weight_svg(decisions: &[DecisionRecord], now_weight: i32, now: DateTime<Utc>) -> String {
    let mut samples: Vec<(DateTime<Utc>, i32)> =
        decisions.iter().map(|d| (d.time, d.weight)).collect();
    if samples.last().is_none_or(|(t, _)| *t < now) {
        samples.push((now, now_weight));
    }
    let from = samples.first().map(|s| s.0).unwrap_or(now);
    let to = samples.last().map(|s| s.0).unwrap_or(now);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let label = if decisions.is_empty() {
        format!("Canary weight: no analysis ticks recorded yet; {now_weight}% now")
    } else {
        format!(
            "Canary weight over the last {} analysis ticks: from {}% to {now_weight}% now, peak {peak}%",
            decisions.len(),
            decisions[0].weight
        )
    };
    let mut out = format!(
        r#"<svg id="weight-chart" role="img" aria-label="{label}" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">"#,
        label = esc(&label)
    );
    // Grid lines and labels at 0, 50 and 100 %.
    for w in [0, 50, 100] {
        let (_, y) = point(from, w, from, to);
        out.push_str(&format!(
            r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{x2}" y2="{y:.1}"></line><text class="axis" x="{tx}" y="{ty:.1}" text-anchor="end">{w}%</text>"#,
            x2 = WIDTH - RIGHT,
            tx = LEFT - 6.0,
            ty = y + 4.0,
        ));
    }
    // A step line: the weight holds until the next tick changes it.
    let mut path = String::new();
    for (i, (t, w)) in samples.iter().enumerate() {
        let (x, y) = point(*t, *w, from, to);
        if i == 0 {
            path.push_str(&format!("M{x:.1} {y:.1}"));
        } else {
            path.push_str(&format!(" H{x:.1} V{y:.1}"));
        }
    }
    out.push_str(&format!(r#"<path class="weight-line" d="{path}"></path>"#));
    for d in decisions {
        let (x, y) = point(d.time, d.weight, from, to);
        out.push_str(&format!(
            r#"<circle class="tick" cx="{x:.1}" cy="{y:.1}" r="3"><title>{}</title></circle>"#,
            esc(&format!(
                "{} {}%: {}",
                d.time.format("%H:%M:%S"),
                d.weight,
                d.action
            ))
        ));
    }
    for (t, anchor, x) in [(from, "start", LEFT), (to, "end", WIDTH - RIGHT)] {
        out.push_str(&format!(
            r#"<text class="axis" x="{x}" y="{y}" text-anchor="{anchor}">{}</text>"#,
            t.format("%H:%M:%S"),
            y = HEIGHT - 6.0
        ));
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(secs: i64, weight: i32) -> DecisionRecord {
        let t0: DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
        DecisionRecord {
            time: t0 + chrono::Duration::seconds(secs),
            weight,
            action: format!("weight {weight}"),
            ..Default::default()
        }
    }

    #[test]
    fn the_chart_steps_through_each_ticks_weight_and_ends_at_the_weight_now() {
        let d = vec![tick(0, 0), tick(10, 20), tick(20, 40)];
        let now = d[2].time + chrono::Duration::seconds(10);
        let svg = weight_svg(&d, 40, now);
        assert!(svg.starts_with(r#"<svg id="weight-chart" role="img" aria-label="Canary weight over the last 3 analysis ticks: from 0% to 40% now, peak 40%""#), "{svg}");
        // 0% is the bottom of the plot (y = 136), 100% the top (y = 10); x spans 40..590 over 30 s.
        let plot = |secs: f64| 40.0 + 550.0 * secs / 30.0;
        let y = |w: f64| 10.0 + 126.0 * (1.0 - w / 100.0);
        let want = format!(
            r#"d="M40.0 {:.1} H{:.1} V{:.1} H{:.1} V{:.1} H590.0 V{:.1}""#,
            y(0.0),
            plot(10.0),
            y(20.0),
            plot(20.0),
            y(40.0),
            y(40.0)
        );
        assert!(svg.contains(&want), "{want} in {svg}");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("<title>12:00:10 20%: weight 20</title>"));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn without_decisions_the_chart_says_so_and_still_draws_the_weight_now() {
        let now: DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
        let svg = weight_svg(&[], 0, now);
        assert!(svg.contains("no analysis ticks recorded yet; 0% now"));
        assert!(svg.contains(r#"d="M315.0 136.0""#), "{svg}");
    }
}
