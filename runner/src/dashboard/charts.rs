//! The dashboard's charts, drawn on the server as SVG so they read without
//! JavaScript: bars of jobs completed (and failed, stacked above in red)
//! per minute or hour, each with a tooltip, and the axis said in HTML
//! beside the drawing (text inside a stretched SVG would be distorted).
//! The live chart is an empty frame that `assets/app.js` fills.

use crate::dashboard::when;
use jobrunner_queue::stats::Point;
use maud::{Markup, html};

/// The drawing's height, in its own units (the CSS sets the width).
const HEIGHT: f64 = 100.0;

/// A history chart: one stacked bar per point, oldest on the left.
/// `span` names a point ("minute", "hour").
pub fn history(points: &[Point], span: &str, id: &str) -> Markup {
    let max = points.iter().map(|p| p.finished.completed + p.finished.failed).max().unwrap_or(0);
    let scale = if max == 0 { 0.0 } else { (HEIGHT - 2.0) / max as f64 };
    let width = points.len().max(1);
    html! {
        figure.chart id=(id) {
            div.axis { span { (max) } span { "0" } }
            svg viewBox=(format!("0 0 {width} {HEIGHT}")) preserveAspectRatio="none" role="img"
                aria-label=(format!("jobs completed and failed per {span}")) {
                @for (i, p) in points.iter().enumerate() {
                    @let (c, f) = (p.finished.completed, p.finished.failed);
                    @let hc = c as f64 * scale;
                    @let hf = f as f64 * scale;
                    g {
                        title { (when(p.at_ms)) ": " (c) " completed, " (f) " failed in this " (span) }
                        // A bar of at least a sliver wherever anything
                        // finished, so a quiet minute is told from an empty one.
                        @if c > 0 { rect.done x=(i) y=(HEIGHT - hc.max(0.8)) width="0.8" height=(hc.max(0.8)) {} }
                        @if f > 0 { rect.failed x=(i) y=(HEIGHT - hc - hf.max(0.8)) width="0.8" height=(hf.max(0.8)) {} }
                        // The whole column takes the pointer, for the tooltip.
                        rect.hit x=(i) y="0" width="1" height=(HEIGHT) {}
                    }
                }
            }
            figcaption.muted {
                span { (points.first().map(|p| when(p.at_ms)).unwrap_or_default()) }
                span { "per " (span) ", UTC" }
                span { "now" }
            }
        }
    }
}

/// The live chart's frame: jobs completed and failed per second over the
/// last two minutes, drawn by `app.js` from the totals the live stream
/// sends each second.
pub fn live() -> Markup {
    html! {
        figure.chart #live data-seconds="120" {
            div.axis { span #live-max { "0" } span { "0" } }
            svg viewBox=(format!("0 0 120 {HEIGHT}")) preserveAspectRatio="none" role="img"
                aria-label="jobs completed and failed per second, live" {}
            figcaption.muted {
                span { "2 minutes ago" }
                span #live-now { "per second" }
                span { "now" }
            }
            noscript { p.muted { "The live chart needs JavaScript; the history below does not." } }
        }
    }
}

/// A queue's last hour per minute, small, for the overview's table.
pub fn sparkline(points: &[Point]) -> Markup {
    let max = points.iter().map(|p| p.finished.completed + p.finished.failed).max().unwrap_or(0).max(1) as f64;
    html! {
        svg.spark width="180" height="24" viewBox=(format!("0 0 {} 24", points.len() * 3)) role="img"
            aria-label="jobs finished per minute, last hour" {
            @for (i, p) in points.iter().enumerate() {
                @let (c, f) = (p.finished.completed, p.finished.failed);
                @if c + f > 0 {
                    @let h = ((c + f) as f64 / max * 23.0).max(1.0);
                    rect class=(if f > 0 { "failed" } else { "done" }) x=(i * 3) y=(24.0 - h) width="2" height=(h) {
                        title { (when(p.at_ms)) ": " (c) " completed, " (f) " failed" }
                    }
                }
            }
        }
    }
}
