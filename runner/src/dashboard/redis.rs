//! The Redis page: what the server behind the queues is, and whether it is
//! all right: version and mode (a cluster's nodes one row each), memory
//! used and at its peak against `maxmemory`, the eviction policy (with the
//! warning where it can drop jobs), persistence, clients, operations per
//! second, and the queues' estimated share of memory.

use crate::dashboard::layout;
use crate::web::ApiState;
use crate::web::error::ApiResult;
use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use jobrunner_queue::server_info::{self, NodeInfo};
use maud::{Markup, html};
use std::sync::Arc;

/// Bytes as a person reads them (binary units, as Redis's own `INFO` does).
pub fn bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

/// Seconds as days, hours and minutes.
fn uptime(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn memory(n: &NodeInfo) -> Markup {
    html! {
        (bytes(n.used_memory))
        @if let Some(share) = n.memory_use() {
            " of " (bytes(n.maxmemory)) " "
            @let pct = (share * 100.0).round();
            span class=(if share >= 0.9 { "bad" } else { "muted" }) { "(" (pct) "%)" }
        } @else { " " span.muted { "(no maxmemory)" } }
    }
}

fn persistence(n: &NodeInfo) -> Markup {
    html! {
        @if n.aof_enabled { "append-only file" } @else { "no append-only file" }
        @if n.rdb_last_save_s > 0 {
            ", last snapshot " (crate::dashboard::when(n.rdb_last_save_s * 1000))
            " (" (n.rdb_changes_since_last_save) " writes since)"
        }
    }
}

pub async fn page(AxState(state): AxState<Arc<ApiState>>) -> ApiResult<Response> {
    let bull_prefixes: Vec<String> = state.bull.values().map(|b| b.prefix().to_string()).collect();
    let mut prefixes = vec![state.connection.prefix()];
    prefixes.extend(bull_prefixes.iter().map(String::as_str));
    // Several BullMQ queues usually share one prefix.
    prefixes.sort_unstable();
    prefixes.dedup();
    let info = server_info::read(&state.connection, &prefixes).await?;
    let durability = jobrunner_queue::durability::read(&state.connection).await.ok();
    let first = info.nodes.first().cloned().unwrap_or_default();
    let content = html! {
        h1 { "Redis" }
        @if let Some(d) = &durability {
            @if let Some(risk) = d.eviction_risk() { p.bad.banner #redis-risk { (risk) } }
            @if let Some(warning) = d.persistence_warning() { p.bad.banner #redis-persistence { (warning) } }
            @if let Some(note) = d.eviction_note() { p.muted { (note) } }
        }
        dl.facts #redis-summary {
            dt { "Version" } dd #redis-version { (first.version) }
            dt { "Mode" } dd #redis-mode {
                @if info.cluster { "cluster of " (info.nodes.len()) " nodes" } @else { "standalone (" (first.role) ")" }
            }
            @if !info.cluster {
                dt { "Memory" } dd #redis-memory { (memory(&first)) }
                dt { "Peak memory" } dd { (bytes(first.used_memory_peak)) }
                dt { "maxmemory-policy" } dd #redis-policy { code { (first.maxmemory_policy) } }
                dt { "Persistence" } dd #redis-persistence-state { (persistence(&first)) }
                dt { "Clients" } dd #redis-clients { (first.connected_clients) " connected, " (first.blocked_clients) " blocked" }
                dt { "Operations" } dd #redis-ops { (first.ops_per_sec) " a second" }
                dt { "Keys" } dd { (first.keys) }
                dt { "Evicted keys" } dd { span class=(if first.evicted_keys > 0 { "bad" } else { "" }) { (first.evicted_keys) } }
                dt { "Up for" } dd { (uptime(first.uptime_s)) }
            }
            dt { "Queues' share of memory" } dd #redis-share {
                @match &info.share {
                    Some(Ok(s)) if s.fraction().is_some() => {
                        @let f = s.fraction().unwrap_or(0.0);
                        "about " ((f * 100.0).round()) "% "
                        span.muted { "(estimated from " (s.sampled) " random keys, " (s.queue_keys) " of them the queues'; keys under " @for (i, p) in prefixes.iter().enumerate() { @if i > 0 { ", " } code { (p) ":" } } ")" }
                    }
                    Some(Ok(_)) => span.muted { "no keys to sample" },
                    Some(Err(why)) => span.muted { "not estimated: " (why) },
                    None => span.muted { "not estimated on a cluster" },
                }
            }
        }
        @if info.cluster {
            h2 { "Nodes" }
            div.scroll { table #redis-nodes {
                thead { tr {
                    th { "Node" } th { "Role" } th { "Version" } th { "Memory" } th { "Policy" }
                    th.num { "Clients" } th.num { "Ops/s" } th.num { "Keys" } th { "Persistence" }
                } }
                tbody { @for n in &info.nodes { tr {
                    td { (n.address.as_deref().unwrap_or("")) } td { (n.role) } td { (n.version) }
                    td { (memory(n)) } td { code { (n.maxmemory_policy) } }
                    td.num { (n.connected_clients) } td.num { (n.ops_per_sec) } td.num { (n.keys) }
                    td { (persistence(n)) }
                } } }
            } }
        }
        p.muted { "Read from INFO on each node when the page loads; the share of memory samples "
            (server_info::SAMPLE_KEYS) " random keys with MEMORY USAGE (two round trips, whatever the number of keys)." }
    };
    Ok(layout("Redis", ("", ""), state.tokens.required(), content).into_response())
}
