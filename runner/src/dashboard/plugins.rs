//! The Plugins page: which plugin is failing, and what each may reach.
//! Per plugin, the operator's name first and its file second; per version
//! of it, the attempts it handled, its completion, failure and fault
//! rates, its duration percentiles, its instantiation time, its peak
//! memory against its cap and its faults by kind, added up over every
//! runner's heartbeat (`jobrunner_queue::plugin_stats`: figures since each
//! runner alive started); its grants (names of secrets, never values), its
//! limits, and its load and reload history with errors.

use crate::dashboard::busy::duration as duration_ms;
use crate::dashboard::redis::bytes;
use crate::dashboard::{layout, when};
use crate::registry::PluginStatus;
use crate::web::ApiState;
use crate::web::error::ApiResult;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use jobrunner_queue::plugin_stats::PluginStats;
use jobrunner_queue::runners;
use maud::{Markup, html};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One version's figures over every runner, and how many report it.
#[derive(Default)]
struct Version {
    stats: PluginStats,
    runners: usize,
    /// Loaded (serving types) on at least one runner.
    loaded: bool,
}

pub async fn page(AxState(state): AxState<Arc<ApiState>>) -> ApiResult<Response> {
    let mut statuses = state.registry.as_ref().map(|r| r.statuses()).unwrap_or_default();
    statuses.sort_by(|a, b| (&a.name, &a.file).cmp(&(&b.name, &b.file)));
    // A page without Redis still lists this runner's plugins; it says the
    // figures could not be read.
    let heartbeats = runners::list(&state.connection).await;
    let mut figures: BTreeMap<String, BTreeMap<String, Version>> = BTreeMap::new();
    for runner in heartbeats.as_deref().unwrap_or_default() {
        for p in &runner.plugins {
            let v = figures.entry(p.name.clone()).or_default().entry(p.version.clone()).or_default();
            v.stats.merge(&p.stats);
            v.runners += 1;
            v.loaded |= !p.job_types.is_empty();
        }
    }
    let here: Vec<&String> = statuses.iter().filter_map(|p| p.name.as_ref()).collect();
    let elsewhere: Vec<String> = figures.keys().filter(|n| !here.contains(n)).cloned().collect();
    let content = html! {
        h1 { "Plugins" }
        @match &heartbeats {
            Ok(_) => p.muted { "Figures add up every runner connected now, each since it started; "
                "a percentile is within 20% above the true value." },
            Err(e) => p.bad { "The runners' figures could not be read: " (format!("{e:#}")) },
        }
        @if statuses.is_empty() && elsewhere.is_empty() { p.muted { "No plugin is loaded." } }
        @for p in &statuses {
            (plugin(p, p.name.as_ref().and_then(|n| figures.get(n))))
        }
        @if !elsewhere.is_empty() {
            h2 { "On other runners only" }
            @for name in &elsewhere {
                section.plugin {
                    h3 { (name) }
                    (versions(&figures[name], None))
                }
            }
        }
    };
    Ok(layout("Plugins", ("", ""), state.tokens.required(), content).into_response())
}

fn plugin(p: &PluginStatus, figures: Option<&BTreeMap<String, Version>>) -> Markup {
    let name = p.name.clone().unwrap_or_else(|| p.file.display().to_string());
    html! {
        section.plugin data-plugin=(name) {
            h2 { (name) }
            p.muted {
                (p.file.display())
                @if let Some(declared) = &p.declared_name {
                    " · declares " (declared) " " (p.version.clone().unwrap_or_default())
                    @if let Some(c) = p.contract { " · contract " (c) }
                }
                @if let Some(sha) = &p.sha256 { " · sha256 " code { (sha.get(..12).unwrap_or(sha)) } }
            }
            @if p.loading { p { "Loading (compiling)…" } }
            @if let Some(e) = &p.last_error { p.bad.banner { "Last load failed: " (e) } }
            dl.facts {
                dt { "Job types" } dd { @if p.job_types.is_empty() { span.muted { "none" } } @else { (p.job_types.join(", ")) } }
                dt { "Loaded" } dd { (p.loaded_at_ms.map(when).unwrap_or_else(|| "never".into())) }
                @if let Some(l) = &p.limits {
                    dt { "Limits" } dd {
                        "timeout " (humantime::format_duration(l.timeout)) " · memory " (bytes(l.memory_bytes))
                        " · output " (bytes(l.output_bytes)) " · log " (bytes(l.log_bytes))
                        " · HTTP response " (bytes(l.http_response_bytes))
                    }
                }
            }
            @match figures {
                Some(f) => (versions(f, p.version.as_deref())),
                None => p.muted { "No runner reports figures for it yet." },
            }
            @if let Some(g) = &p.grants {
                h3 { "Grants" }
                dl.facts.grants {
                    dt { "HTTP hosts" } dd { (list(&g.allowed_hosts)) }
                    @if !g.allowed_networks.is_empty() { dt { "Networks" } dd { (list(&g.allowed_networks)) } }
                    dt { "May enqueue" } dd { "its own types, and " (list(&g.may_enqueue)) }
                    dt { "Email from" } dd { (list(&g.senders))
                        @if !g.senders.is_empty() { " to " (list(&g.recipient_domains)) ", at most " (g.max_emails) " a job" } }
                    dt { "Secrets" } dd.secrets { (list(&g.secrets)) @if !g.secrets.is_empty() { " " span.muted { "(names only)" } } }
                    dt { "Config" } dd { (list(&g.config)) }
                    dt { "Cache" } dd { "namespace " code { (g.cache_namespace) } ", up to " (bytes(g.cache_budget.max_bytes))
                        " and " (g.cache_budget.max_keys) " keys" }
                }
            }
            details {
                summary.muted { "Load and reload history (" (p.history.len()) ")" }
                ul { @for h in &p.history {
                    li class=(if h.outcome == "failed" { "bad" } else { "" }) { (when(h.at_ms)) " " (h.outcome) ": " (h.detail) }
                } }
            }
        }
    }
}

/// A plugin's versions, the one loaded here first.
fn versions(figures: &BTreeMap<String, Version>, current: Option<&str>) -> Markup {
    let mut order: Vec<(&String, &Version)> = figures.iter().collect();
    order.sort_by_key(|(v, f)| (Some(v.as_str()) != current, !f.loaded, std::cmp::Reverse(f.stats.since_ms)));
    html! {
        div.scroll { table.figures {
            thead { tr {
                th { "Version" } th.num { "Runners" } th.num { "Attempts" } th.num { "Completed" } th.num { "Failed" }
                th.num { "Faults" } th.num { "p50" } th.num { "p95" } th.num { "p99" } th.num { "Instantiation p50" }
                th.num { "Peak memory" } th { "Faults by kind" }
            } }
            tbody { @for (version, v) in order {
                @let s = &v.stats;
                tr data-version=(version) {
                    td { (if version.is_empty() { "(none)" } else { version }) @if !v.loaded { " " span.muted { "(not loaded)" } } }
                    td.num { (v.runners) }
                    td.num { (s.jobs) }
                    td.num { (percent(s.rate(s.completed))) }
                    td.num class=(if s.failed > 0 { "bad" } else { "" }) { (percent(s.rate(s.failed))) }
                    td.num class=(if s.faulted() > 0 { "bad" } else { "" }) { (percent(s.rate(s.faulted()))) }
                    td.num { (quantile(s, 0.5)) }
                    td.num { (quantile(s, 0.95)) }
                    td.num { (quantile(s, 0.99)) }
                    td.num { (s.instantiate.quantile(0.5).map(short).unwrap_or_else(|| "–".into())) }
                    td.num { (memory(s)) }
                    td { @if s.faults.is_empty() { span.muted { "none" } } @else {
                        (s.faults.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "))
                    } }
                }
            } }
        } }
    }
}

fn list(items: &[String]) -> Markup {
    html! { @if items.is_empty() { span.muted { "none" } } @else { (items.join(", ")) } }
}

fn percent(p: f64) -> String {
    if p == 0.0 || p >= 10.0 { format!("{p:.0}%") } else { format!("{p:.1}%") }
}

fn quantile(s: &PluginStats, q: f64) -> String {
    s.duration.quantile(q).map(short).unwrap_or_else(|| "–".into())
}

/// The peak against the cap, with the share, red past 80%.
fn memory(s: &PluginStats) -> Markup {
    if s.memory_peak == 0 {
        return html! { "–" };
    }
    let share = if s.memory_cap == 0 { 0.0 } else { s.memory_peak as f64 * 100.0 / s.memory_cap as f64 };
    html! {
        span class=(if share > 80.0 { "bad" } else { "" }) title=(format!("{share:.0}% of its cap")) {
            (bytes(s.memory_peak)) " / " (bytes(s.memory_cap))
        }
    }
}

/// A duration short, down to microseconds.
pub fn short(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        duration_ms(d.as_millis() as u64)
    }
}
