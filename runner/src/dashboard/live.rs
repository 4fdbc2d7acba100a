//! The dashboard's live feed: a server-sent event stream with every queue's
//! counts each second (`counts`), the jobs finished for good across queues
//! so far (`finished`, whose change each second the overview's live chart
//! draws), and each job event from the queues' event streams (`job`), read
//! after the last one sent, so nothing is scanned. BullMQ-backed queues
//! send their counts and totals (their events are BullMQ's own).

use crate::web::ApiState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use jobrunner_queue::Queue;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const TICK: Duration = Duration::from_secs(1);

pub async fn stream(
    State(state): State<Arc<ApiState>>,
) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let stream = futures::stream::unfold(
        (state, HashMap::<String, String>::new(), true),
        |(state, mut last, first)| async move {
            if !first {
                tokio::time::sleep(TICK).await;
            }
            let mut events = Vec::new();
            let mut counts = serde_json::Map::new();
            let mut finished = jobrunner_queue::stats::Finished::default();
            // A queue Redis could not answer for this second: its rate is
            // not drawn rather than drawn as a drop to zero.
            let mut complete = true;
            for name in state.queue_names().await.unwrap_or_default() {
                let Ok(any) = state.queue(&name) else { continue };
                if let Ok(c) = any.counts().await {
                    counts.insert(name.clone(), serde_json::to_value(c).unwrap_or_default());
                }
                match any.finished_total().await {
                    Ok(f) => finished.add(f),
                    Err(_) => complete = false,
                }
                let Some(q) = any.native() else { continue };
                // On the first tick, start from the newest event rather than replay history.
                if first {
                    if let Ok(Some(id)) = q.latest_event_id().await {
                        last.insert(name.clone(), id);
                    }
                    continue;
                }
                let after = last.get(&name).cloned().unwrap_or_else(|| "0".into());
                if let Ok(new) = q.events(&after, 100).await {
                    if let Some((id, _)) = new.last() {
                        last.insert(name.clone(), id.clone());
                    }
                    for (_, fields) in new {
                        let event = fields.first().map(|(_, v)| v.as_str());
                        // A batch's event names each of its jobs.
                        for id in Queue::event_ids(&fields) {
                            let data = serde_json::json!({"queue": name, "event": event, "id": id});
                            events.push(Event::default().event("job").data(data.to_string()));
                        }
                    }
                }
            }
            events.push(Event::default().event("counts").data(serde_json::Value::Object(counts).to_string()));
            if complete {
                let data = serde_json::json!({ "completed": finished.completed, "failed": finished.failed });
                events.push(Event::default().event("finished").data(data.to_string()));
            }
            Some((futures::stream::iter(events.into_iter().map(Ok)), (state, last, false)))
        },
    )
    .flatten();
    Sse::new(stream).keep_alive(KeepAlive::default())
}
