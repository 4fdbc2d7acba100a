//! The queue engine against a real `redis-server` started by the test:
//! every state transition, leases and fencing tokens, retries, operations,
//! rate limits, schedules, retention, waking, and a Redis restart.

use jobrunner_queue::{
    AfterFailure, Backoff, Completion, Connection, Consumer, Failure, JobOptions, Keep, LeaseState, NewJob, Queue,
    Schedule, State, Timing,
};
use std::time::{Duration, Instant};
use testkit::redis::RedisServer;

async fn queue(redis: &RedisServer, name: &str) -> Queue {
    Queue::new(Connection::connect(&redis.url()).await.unwrap(), name).unwrap()
}

fn job(payload: &str) -> NewJob {
    NewJob { id: None, job_type: "noop".into(), payload: payload.into(), options: JobOptions::default() }
}

fn with(f: impl FnOnce(&mut JobOptions)) -> NewJob {
    let mut j = job("{}");
    f(&mut j.options);
    j
}

/// Enqueues `n` plain jobs into an empty queue and leases them all.
async fn lease_plain(q: &Queue, n: usize) -> Vec<jobrunner_queue::Leased> {
    q.enqueue_bulk((0..n).map(|_| job("{}")).collect()).await.unwrap();
    let leased = q.fetch(n, LEASE).await.unwrap().jobs;
    assert_eq!(leased.len(), n, "every job enqueued is leased");
    leased
}

fn done(l: &jobrunner_queue::Leased) -> Completion {
    Completion {
        id: l.id.clone(),
        token: l.token.clone(),
        result: Some("{\"ok\":true}".into()),
        progress: Some(100),
        log: None,
        run: None,
    }
}

/// A queue script as a program in another language runs it, as
/// docs/queue-protocol.md says: `common.lua`, `prelude.lua`, then the
/// script's body.
fn raw_script(body: &str) -> redis::Script {
    redis::Script::new(&format!(
        "{}\n{}\n{}",
        include_str!("../src/lua/common.lua"),
        include_str!("../src/lua/prelude.lua"),
        body
    ))
}

/// A call of `script` on `queue`'s keys, its arguments still to add.
fn on_keys<'a>(script: &'a redis::Script, queue: &str) -> redis::ScriptInvocation<'a> {
    let mut inv = script.prepare_invoke();
    for k in &jobrunner_queue::keys::Keys::new("jr", queue).all {
        inv.key(k);
    }
    inv
}

const LEASE: Duration = Duration::from_secs(30);
const KEEP_ALL: Keep = Keep { count: None, age_ms: None };

#[tokio::test]
async fn enqueue_fetch_complete_and_idempotent_ids() {
    let redis = RedisServer::start();
    let q = queue(&redis, "basic").await;
    let a = q.enqueue(NewJob { id: Some("order-1".into()), ..job(r#"{"n":1}"#) }).await.unwrap();
    assert!(a.created);
    assert_eq!(a.state, "waiting");
    let again = q.enqueue(NewJob { id: Some("order-1".into()), ..job(r#"{"n":2}"#) }).await.unwrap();
    assert!(!again.created, "an existing id is returned, not replaced");
    assert_eq!(q.counts().await.unwrap().waiting, 1);

    let f = q.fetch(10, LEASE).await.unwrap();
    assert_eq!(f.jobs.len(), 1);
    let l = &f.jobs[0];
    assert_eq!((l.id.as_str(), l.attempt), ("order-1", 1));
    assert_eq!(l.spec.payload.get(), r#"{"n":1}"#);
    assert_eq!(q.get("order-1").await.unwrap().unwrap().state, State::Active);
    assert_eq!(q.complete(&[done(l)], KEEP_ALL).await.unwrap(), vec![true]);
    let r = q.get("order-1").await.unwrap().unwrap();
    assert_eq!(r.state, State::Completed);
    assert_eq!(r.result, Some(serde_json::json!({"ok": true})));
    assert_eq!(r.progress, Some(100));
    // Completing twice is refused: the token was consumed.
    assert_eq!(q.complete(&[done(l)], KEEP_ALL).await.unwrap(), vec![false]);
}

#[tokio::test]
async fn bad_jobs_are_refused_before_anything_is_written() {
    let redis = RedisServer::start();
    let q = queue(&redis, "bad").await;
    let e = q.enqueue_bulk(vec![job("{}"), job("{not json")]).await.unwrap_err();
    assert!(format!("{e:#}").contains("job 1: payload is not valid JSON"), "{e:#}");
    assert_eq!(q.counts().await.unwrap().waiting, 0, "the valid job was not written either");
    assert!(q.enqueue(with(|o| o.attempts = Some(0))).await.is_err());
    assert!(q.enqueue(NewJob { id: Some("a{b}".into()), ..job("{}") }).await.is_err());
    assert!(Queue::new(Connection::connect(&redis.url()).await.unwrap(), "no spaces").is_err());
}

#[tokio::test]
async fn priority_then_fifo() {
    let redis = RedisServer::start();
    let q = queue(&redis, "prio").await;
    for (id, p) in [("low-1", 0), ("high-1", 10), ("low-2", 0), ("high-2", 10), ("mid", 5)] {
        q.enqueue(NewJob { id: Some(id.into()), ..with(|o| o.priority = Some(p)) }).await.unwrap();
    }
    let ids: Vec<String> = q.fetch(10, LEASE).await.unwrap().jobs.into_iter().map(|l| l.id).collect();
    assert_eq!(ids, ["high-1", "high-2", "mid", "low-1", "low-2"]);
}

#[tokio::test]
async fn bulk_enqueue_in_one_call() {
    let redis = RedisServer::start();
    let q = queue(&redis, "bulk").await;
    let jobs: Vec<NewJob> = (0..2500).map(|i| job(&format!("{{\"i\":{i}}}"))).collect();
    let out = q.enqueue_bulk(jobs).await.unwrap();
    assert_eq!(out.len(), 2500);
    assert!(out.iter().all(|e| e.created));
    assert_eq!(q.counts().await.unwrap().waiting, 2500);
    // FIFO.
    let first = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    assert_eq!(first.spec.payload.get(), r#"{"i":0}"#);
    // A batch mixing an id that exists, a new id, a made one and a delayed
    // job: each answer is its own job's, in order.
    let existing = out[7].id.clone();
    let batch = vec![
        NewJob { id: Some(existing.clone()), ..job("{}") },
        NewJob { id: Some("given".into()), ..job("{}") },
        job("{}"),
        with(|o| o.delay_ms = 60_000),
        NewJob { id: Some(first.id.clone()), ..job("{}") },
    ];
    let out = q.enqueue_bulk(batch).await.unwrap();
    let seen: Vec<(bool, &str)> = out.iter().map(|e| (e.created, e.state.as_str())).collect();
    assert_eq!(seen, [(false, "waiting"), (true, "waiting"), (true, "waiting"), (true, "delayed"), (false, "active")]);
    assert_eq!(
        (out[0].id.as_str(), out[1].id.as_str(), out[4].id.as_str()),
        (existing.as_str(), "given", first.id.as_str())
    );
    assert_ne!(out[2].id, out[3].id);
}

/// A bulk enqueue lands whole or not at all: Redis refusing writes (out of
/// memory) partway through a large one leaves none of it, where calls of a
/// thousand jobs each left the first ones enqueued under ids the caller
/// never saw. Past `MAX_BULK` it is refused before Redis is asked.
#[tokio::test]
async fn a_bulk_enqueue_lands_whole_or_not_at_all() {
    let redis = RedisServer::start_with_maxmemory("64mb", "noeviction");
    let q = queue(&redis, "whole").await;
    let padding = "x".repeat(1000);
    let big = |tag: &str| -> Vec<NewJob> {
        (0..10_000)
            .map(|i| NewJob { id: Some(format!("{tag}-{i}")), ..job(&format!("{{\"pad\":\"{padding}\"}}")) })
            .collect()
    };
    // Read with plain commands: a Redis out of memory may refuse scripts.
    let waiting = || -> u64 { ::redis::cmd("ZCARD").arg("jr:{whole}:wait").query(&mut redis.connection()).unwrap() };
    let has = |id: &str| -> bool {
        ::redis::cmd("HEXISTS").arg("jr:{whole}:specs").arg(id).query(&mut redis.connection()).unwrap()
    };
    // Bulks of 10 MB until Redis refuses one: each before it landed whole
    // (a script that has begun to write may finish past the limit), and
    // the refused one left nothing.
    let mut landed = 0;
    let err = loop {
        let tag = format!("t{landed}");
        match q.enqueue_bulk(big(&tag)).await {
            Ok(out) => {
                assert_eq!(out.len(), 10_000);
                landed += 1;
                assert_eq!(waiting(), 10_000 * landed);
                assert!(landed < 20, "Redis never ran out of memory");
            }
            Err(e) => {
                assert!(!has(&format!("{tag}-0")) && !has(&format!("{tag}-9999")), "the refused bulk left jobs");
                break e;
            }
        }
    };
    assert!(format!("{err:#}").contains("OOM"), "{err:#}");
    assert!(landed >= 1);
    assert_eq!(waiting(), 10_000 * landed, "nothing of the refused bulk landed");
    let err = q.enqueue_bulk((0..10_001).map(|_| job("{}")).collect()).await.unwrap_err();
    assert!(err.to_string().contains("at most 10000"), "{err}");
}

/// `max_waiting` bounds the jobs not yet started: single, lean and bulk
/// enqueues past it are refused whole with `QueueFull`, and none of it is
/// written; delayed jobs count; 0 lifts the bound.
#[tokio::test]
async fn a_full_queue_refuses_enqueues_whole() {
    let redis = RedisServer::start();
    let q = queue(&redis, "bounded").await;
    q.set_max_waiting(5).await.unwrap();
    for _ in 0..4 {
        q.enqueue(job("{}")).await.unwrap();
    }
    q.enqueue(with(|o| o.delay_ms = 60_000)).await.unwrap();
    let full = |e: anyhow::Error| e.downcast::<jobrunner_queue::QueueFull>().expect("a QueueFull");
    let e = full(q.enqueue(job("{}")).await.unwrap_err());
    assert_eq!((e.waiting, e.max, e.adding), (5, 5, 1));
    assert!(e.to_string().contains("queue `bounded` is full"), "{e}");
    let e = full(q.enqueue(NewJob { id: Some("given".into()), ..job("{}") }).await.unwrap_err());
    assert_eq!(e.adding, 1);
    // A leased job still counts; finished, it makes room for one, and a
    // bulk of two is refused whole.
    let leased = q.fetch(1, LEASE).await.unwrap().jobs;
    assert!(q.enqueue(job("{}")).await.is_err());
    q.complete(&[done(&leased[0])], KEEP_ALL).await.unwrap();
    let e = full(q.enqueue_bulk(vec![job("{}"), job("{}")]).await.unwrap_err());
    assert_eq!((e.waiting, e.adding), (4, 2));
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.delayed), (3, 1), "nothing of the refused bulk was written");
    q.enqueue_bulk(vec![job("{}")]).await.unwrap();
    q.set_max_waiting(0).await.unwrap();
    q.enqueue_bulk((0..10).map(|_| job("{}")).collect()).await.unwrap();
    assert_eq!(q.counts().await.unwrap().waiting, 14);
}

/// Plain jobs (no delay, priority 0, no group) go to the script in its
/// short layout, id and spec only; a batch of them with given ids still
/// keeps an id that exists and creates a repeated one once.
#[tokio::test]
async fn plain_jobs_with_given_ids_in_the_short_layout() {
    let redis = RedisServer::start();
    let q = queue(&redis, "short").await;
    let named = |id: &str, payload: &str| NewJob { id: Some(id.into()), ..job(payload) };
    q.enqueue(named("old", r#"{"v":"first"}"#)).await.unwrap();
    let out = q
        .enqueue_bulk(vec![named("old", r#"{"v":"second"}"#), named("new", "{}"), named("new", r#"{"v":"again"}"#)])
        .await
        .unwrap();
    let seen: Vec<(&str, bool, &str)> = out.iter().map(|e| (e.id.as_str(), e.created, e.state.as_str())).collect();
    assert_eq!(seen, [("old", false, "waiting"), ("new", true, "waiting"), ("new", false, "waiting")]);
    let ids: Vec<(String, String)> =
        q.fetch(10, LEASE).await.unwrap().jobs.into_iter().map(|l| (l.id, l.spec.payload.get().to_string())).collect();
    assert_eq!(ids, [("old".to_string(), r#"{"v":"first"}"#.to_string()), ("new".to_string(), "{}".to_string())]);
    // The enqueue time is the spec's; the `created` hash is no longer written.
    let record = q.get("new").await.unwrap().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(record.created_at <= now && now - record.created_at < 60_000, "{}", record.created_at);
    let created: u64 = redis::cmd("HLEN").arg("jr:{short}:created").query(&mut redis.connection()).unwrap();
    assert_eq!(created, 0);
}

/// A producer in another language runs `common.lua`, `prelude.lua` and
/// `enqueue.lua` itself, as docs/queue-protocol.md says: both layouts work, a job sent
/// either way runs like one from Rust, and a bad flags argument is refused
/// with a message rather than read as something else.
#[tokio::test]
async fn enqueue_from_another_language() {
    let redis = RedisServer::start();
    let q = queue(&redis, "polyglot").await;
    let script = raw_script(include_str!("../src/lua/enqueue.lua"));
    let keys = jobrunner_queue::keys::Keys::new("jr", "polyglot");
    let mut conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let spec = |n: u32| format!(r#"{{"type":"noop","payload":{{"n":{n}}},"created_at":1795324749099}}"#);
    let call = |flags: &str, jobs: Vec<Vec<String>>| {
        let mut inv = on_keys(&script, "polyglot");
        inv.arg(&keys.wake_channel).arg(jobs.len()).arg(flags);
        for j in &jobs {
            for a in j {
                inv.arg(a);
            }
        }
        inv
    };
    let long = |id: &str, n: u32, delay: u64, priority: u32| {
        vec![id.to_string(), spec(n), delay.to_string(), priority.to_string(), String::new()]
    };
    let out: Vec<redis::Value> = call("0", vec![long("l1", 1, 0, 0), long("l2", 2, 60_000, 0), long("l3", 3, 0, 7)])
        .invoke_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(out, [redis::Value::Int(1), redis::Value::Int(2), redis::Value::Int(1)]);
    let out: Vec<redis::Value> =
        call("2", vec![vec!["s1".into(), spec(4)], vec!["l1".into(), spec(5)]]).invoke_async(&mut conn).await.unwrap();
    assert_eq!(out, [redis::Value::Int(1), redis::Value::BulkString(b"waiting".to_vec())]);
    let counts = q.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.delayed), (3, 1));
    // Priority first, then first in, first out; the existing `l1` kept its spec.
    let jobs: Vec<(String, String)> =
        q.fetch(10, LEASE).await.unwrap().jobs.into_iter().map(|l| (l.id, l.spec.payload.get().to_string())).collect();
    let want: Vec<(String, String)> =
        [("l3", 3), ("l1", 1), ("s1", 4)].iter().map(|(i, n)| (i.to_string(), format!(r#"{{"n":{n}}}"#))).collect();
    assert_eq!(jobs, want);
    assert_eq!(q.get("s1").await.unwrap().unwrap().created_at, 1795324749099, "the spec's enqueue time");

    for bad in ["4", "-1", "yes", "1.5"] {
        let e = call(bad, vec![vec!["x".into(), spec(6)]]).invoke_async::<redis::Value>(&mut conn).await.unwrap_err();
        assert!(e.to_string().contains("the third argument (flags) must be 0, 1, 2 or 3"), "{bad}: {e}");
    }
    // The long layout sent with the short layout's flag, and a wrong count.
    let e = call("2", vec![long("y", 7, 0, 0)]).invoke_async::<redis::Value>(&mut conn).await.unwrap_err();
    assert!(e.to_string().contains("5 arguments after the first 3 for 1 jobs in the short layout"), "{e}");
    let mut wrong_count = call("0", vec![long("z", 8, 0, 0)]);
    wrong_count.arg("extra");
    let e = wrong_count.invoke_async::<redis::Value>(&mut conn).await.unwrap_err();
    assert!(e.to_string().contains("6 arguments after the first 3 for 1 jobs in the long layout"), "{e}");
    for id in ["x", "y", "z", "0"] {
        assert!(q.get(id).await.unwrap().is_none(), "a refused call writes nothing ({id})");
    }
}

/// The scripts work on whole batches, with one Redis call for the lot
/// rather than one per job: a batch must still come out as its jobs would
/// one at a time (a repeated id, a stale token, a job acked twice).
#[tokio::test]
async fn batches_behave_as_their_jobs_one_at_a_time() {
    let redis = RedisServer::start();
    let q = queue(&redis, "batches").await;
    let named = |id: &str, j: NewJob| NewJob { id: Some(id.into()), ..j };
    let out = q
        .enqueue_bulk(vec![
            named("a", job(r#"{"n":1}"#)),
            named(
                "b",
                with(|o| {
                    o.priority = Some(5);
                    o.backoff = Some(Backoff::None);
                }),
            ),
            named("a", job(r#"{"n":2}"#)),
            named("d", with(|o| o.delay_ms = 3_600_000)),
            named("d", job("{}")),
            grouped("g".into(), "g1"),
        ])
        .await
        .unwrap();
    let got: Vec<(&str, bool, &str)> = out.iter().map(|e| (e.id.as_str(), e.created, e.state.as_str())).collect();
    assert_eq!(
        got,
        [
            ("a", true, "waiting"),
            ("b", true, "waiting"),
            ("a", false, "waiting"),
            ("d", true, "delayed"),
            ("d", false, "delayed"),
            ("g", true, "waiting"),
        ]
    );

    let leased = q.fetch(10, LEASE).await.unwrap().jobs;
    let ids: Vec<&str> = leased.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["b", "a", "g"], "priority first, then the order they came in");
    assert_eq!(leased[1].spec.payload.get(), r#"{"n":1}"#, "the first of a repeated id is kept");
    assert!(leased.iter().all(|l| l.attempt == 1));
    let mut tokens: Vec<&str> = leased.iter().map(|l| l.token.as_str()).collect();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "each lease has its own token");

    let (b, a, g) = (&leased[0], &leased[1], &leased[2]);
    let stale_b = Completion { token: "0".into(), ..done(b) };
    let verdicts = q.complete(&[done(a), stale_b, done(a), done(g)], KEEP_ALL).await.unwrap();
    assert_eq!(verdicts, [true, false, false, true], "a stale token and a second ack are refused");
    assert_eq!(q.get("b").await.unwrap().unwrap().state, State::Active);
    let a_record = q.get("a").await.unwrap().unwrap();
    assert_eq!((a_record.state, a_record.progress), (State::Completed, Some(100)));
    assert_eq!(a_record.result, Some(serde_json::json!({"ok": true})));

    // A retry counts the attempt, and the next lease's token is newer.
    let failed = q.fail(&b.id, &b.token, &Failure::Retry("again".into()), None, None).await.unwrap();
    assert_eq!(failed, AfterFailure::Waiting);
    let again = q.fetch(10, LEASE).await.unwrap().jobs;
    assert_eq!((again[0].id.as_str(), again[0].attempt), ("b", 2));
    assert!(again[0].token.parse::<u64>().unwrap() > b.token.parse::<u64>().unwrap());
    assert_eq!(q.complete(&[done(&again[0])], KEEP_ALL).await.unwrap(), [true]);
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.delayed, c.active, c.completed), (0, 1, 0, 3));
}

/// Completions with nothing to store (no result, progress or log) go in
/// the short layout, id, token and run only; they must be checked and
/// recorded as the long layout's are, and a call whose arguments do not
/// add up is refused with a message, writing nothing. The layouts without
/// a run (2 and 5 fields, from runners before it) are still taken.
#[tokio::test]
async fn plain_completions_in_the_short_layout() {
    let redis = RedisServer::start();
    let q = queue(&redis, "plain-acks").await;
    let leased = lease_plain(&q, 3).await;
    let plain = |l: &jobrunner_queue::Leased| Completion { result: None, progress: None, ..done(l) };
    let stale = Completion { token: "0".into(), ..plain(&leased[1]) };
    let verdicts = q.complete(&[plain(&leased[0]), stale, plain(&leased[0]), plain(&leased[2])], KEEP_ALL).await;
    assert_eq!(verdicts.unwrap(), [true, false, false, true], "a stale token and a second ack are refused");
    for l in [&leased[0], &leased[2]] {
        let r = q.get(&l.id).await.unwrap().unwrap();
        assert_eq!((r.state, r.progress, r.result), (State::Completed, None, None));
    }
    assert_eq!(q.get(&leased[1].id).await.unwrap().unwrap().state, State::Active);
    // A completion with a result goes in the long layout and keeps it.
    let with_result = Completion { result: Some("{\"n\":1}".into()), ..plain(&leased[1]) };
    assert_eq!(q.complete(&[with_result], KEEP_ALL).await.unwrap(), [true]);
    let r = q.get(&leased[1].id).await.unwrap().unwrap();
    assert_eq!(r.result, Some(serde_json::json!({"n": 1})));

    // The raw script with a count that does not match its arguments, for
    // a job whose lease is current: refused, and the job stays active.
    q.enqueue(job("{}")).await.unwrap();
    let live = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    let script = raw_script(include_str!("../src/lua/complete.lua"));
    let mut conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let (id, token) = (live.id.as_str(), live.token.as_str());
    for (width, args) in
        [("2", vec![id, token, ""]), ("5", vec![id, token]), ("3", vec![id, token]), ("4", vec![id, token, "", ""])]
    {
        let mut inv = on_keys(&script, "plain-acks");
        inv.arg(1).arg(-1).arg(0).arg(width);
        for a in &args {
            inv.arg(a);
        }
        let e = inv.invoke_async::<redis::Value>(&mut conn).await.unwrap_err();
        assert!(e.to_string().contains(&format!("arguments for 1 jobs of {width} fields")), "{width}: {e}");
    }
    assert_eq!(q.get(id).await.unwrap().unwrap().state, State::Active, "a refused call writes nothing");
    assert_eq!(q.counts().await.unwrap().completed, 3);
    let mut inv = on_keys(&script, "plain-acks");
    inv.arg(1).arg(-1).arg(0).arg(2).arg(id).arg(token);
    assert_eq!(inv.invoke_async::<Vec<i64>>(&mut conn).await.unwrap(), [1], "an older runner's short layout");
    let r = q.get(id).await.unwrap().unwrap();
    assert_eq!((r.state, r.run), (State::Completed, None));
}

/// A lease counts its attempt when it is written, but until its runner says
/// the job started (a start mark, or its outcome), a stall of that lease
/// gives the attempt back: the job was fetched ahead or handed off and its
/// runner died before running it. A job with one attempt that never ran
/// therefore runs; one that ran and stalled fails, with the stall's reason.
#[tokio::test]
async fn a_lease_that_expires_unstarted_comes_back_unspent() {
    let redis = RedisServer::start();
    let q = queue(&redis, "unstarted").await;
    let short = Duration::from_millis(40);
    let one = |id: &str| NewJob { id: Some(id.into()), ..with(|o| o.attempts = Some(1)) };
    // Through bulk enqueue and the lean single enqueue (no id: its own).
    q.enqueue_bulk(vec![one("ran"), one("buffered")]).await.unwrap();
    let lean = q.enqueue(with(|o| o.attempts = Some(1))).await.unwrap().id;
    let leased = q.fetch(3, short).await.unwrap().jobs;
    assert_eq!(leased.len(), 3);
    let ran = leased.iter().find(|l| l.id == "ran").unwrap();
    q.mark_started(&[(ran.id.clone(), ran.token.clone())]).await.unwrap();
    // A mark with a stale token changes nothing.
    q.mark_started(&[("buffered".into(), "1".into())]).await.unwrap();

    let back = wait_for_jobs(&q, 2).await;
    let mut ids: Vec<&str> = back.iter().map(|l| l.id.as_str()).collect();
    ids.sort();
    let mut want = vec!["buffered", lean.as_str()];
    want.sort();
    assert_eq!(ids, want, "the two that never started come back");
    assert!(back.iter().all(|l| l.attempt == 1), "on the attempt they never ran: {back:?}");
    let r = q.get("ran").await.unwrap().unwrap();
    assert_eq!((r.state, r.attempts_made, r.errors[0].kind.as_str()), (State::Failed, 1, "stalled"));
    let b = q.get("buffered").await.unwrap().unwrap();
    assert!(b.errors.is_empty(), "no error recorded for a job that did not run: {:?}", b.errors);
    assert_eq!(q.complete(&back.iter().map(done).collect::<Vec<_>>(), KEEP_ALL).await.unwrap(), [true, true]);

    // The idle hand-off: the job is leased by its enqueue, on its way to
    // a consumer that dies before it starts it.
    let consumer = Consumer::new(q.clone());
    wait_for_push_channels(&redis, "unstarted", 1).await;
    assert!(consumer.next(5, short, Duration::from_secs(20)).await.unwrap().is_empty());
    let handed = q.enqueue(NewJob { id: Some("handed".into()), ..with(|o| o.attempts = Some(1)) }).await.unwrap();
    assert_eq!(handed.state, "active");
    drop(consumer);
    let back = wait_for_jobs(&q, 1).await;
    assert_eq!((back[0].id.as_str(), back[0].attempt), ("handed", 1));
    // Its start marked with its completion: completing is running.
    assert_eq!(q.complete(&[done(&back[0])], KEEP_ALL).await.unwrap(), [true]);
    let unstarted: u64 = ::redis::cmd("HLEN").arg("jr:{unstarted}:unstarted").query(&mut redis.connection()).unwrap();
    assert_eq!(unstarted, 0);

    // A job that takes its runner down within milliseconds of starting, so
    // that its start is never marked, does not come back for ever: its
    // eleventh stall spends its attempt.
    q.enqueue(one("poison")).await.unwrap();
    for round in 1..=10 {
        let l = wait_for_jobs(&q, 1).await;
        assert_eq!((l[0].id.as_str(), l[0].attempt), ("poison", 1), "round {round}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while q.get("poison").await.unwrap().unwrap().state != State::Failed {
        assert!(Instant::now() < deadline, "the poison job never failed");
        let _ = q.fetch(1, short).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(q.get("poison").await.unwrap().unwrap().stalls, 11);
}

/// Fetches (with a short lease) until `n` jobs came back.
async fn wait_for_jobs(q: &Queue, n: usize) -> Vec<jobrunner_queue::Leased> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = vec![];
    while got.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} jobs came back", got.len());
        let f = q.fetch(n - got.len(), Duration::from_millis(40)).await.unwrap();
        got.extend(f.jobs);
        if got.len() < n {
            tokio::time::sleep(f.next_due.unwrap_or(Duration::from_millis(5)).min(Duration::from_millis(50))).await;
        }
    }
    got
}

#[tokio::test]
async fn an_expired_lease_is_a_stall_and_the_stale_token_is_refused() {
    let redis = RedisServer::start();
    let q = queue(&redis, "lease").await;
    q.enqueue(with(|o| o.backoff = Some(Backoff::None))).await.unwrap();
    let first = q.fetch(1, Duration::from_millis(50)).await.unwrap().jobs.remove(0);
    // Extending with the right token works while the lease is held.
    assert_eq!(
        q.extend(&[(first.id.clone(), first.token.clone())], Duration::from_millis(50)).await.unwrap(),
        vec![LeaseState::Held]
    );
    // Let the lease lapse; the next fetch reaps it and hands the job out again.
    let deadline = Instant::now() + Duration::from_secs(5);
    let second = loop {
        let mut f = q.fetch(1, LEASE).await.unwrap();
        if let Some(l) = f.jobs.pop() {
            break l;
        }
        assert!(Instant::now() < deadline, "the stalled job never came back");
        tokio::time::sleep(f.next_due.unwrap_or(Duration::from_millis(5))).await;
    };
    assert_eq!(second.id, first.id);
    assert_eq!(second.attempt, 2);
    assert_ne!(second.token, first.token);
    // The first worker wakes up late: every kind of ack is refused.
    assert_eq!(q.complete(&[done(&first)], KEEP_ALL).await.unwrap(), vec![false]);
    assert_eq!(
        q.fail(&first.id, &first.token, &Failure::Permanent("x".into()), None, None).await.unwrap(),
        AfterFailure::Stale
    );
    // Another lease holds the job now: taken, not merely ended.
    assert_eq!(q.extend(&[(first.id.clone(), first.token.clone())], LEASE).await.unwrap(), vec![LeaseState::Taken]);
    assert!(!q.progress(&first.id, &first.token, 50).await.unwrap());
    let r = q.get(&first.id).await.unwrap().unwrap();
    assert_eq!(r.stalls, 1);
    assert_eq!(r.errors[0].kind, "stalled");
    assert_eq!(q.complete(&[done(&second)], KEEP_ALL).await.unwrap(), vec![true]);
    // A completion recorded before an extension: the lease ended, no one
    // took it (a runner need not stop anything, nor shout).
    assert_eq!(q.extend(&[(second.id.clone(), second.token.clone())], LEASE).await.unwrap(), vec![LeaseState::Ended]);
}

#[tokio::test]
async fn failures_follow_the_policy() {
    let redis = RedisServer::start();
    let q = queue(&redis, "retries").await;
    q.enqueue(NewJob {
        id: Some("j".into()),
        ..with(|o| {
            o.attempts = Some(3);
            o.backoff = Some(Backoff::Fixed { delay_ms: 60_000 });
        })
    })
    .await
    .unwrap();
    let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    let after =
        q.fail(&l.id, &l.token, &Failure::Retry("boom".into()), Some(40), Some("[\"line\"]".into())).await.unwrap();
    let AfterFailure::Delayed { run_at_ms } = after else { panic!("{after:?}") };
    let r = q.get("j").await.unwrap().unwrap();
    assert_eq!(r.state, State::Delayed);
    assert_eq!(r.state_since_or_until, Some(run_at_ms));
    assert_eq!(r.progress, Some(40));
    assert_eq!(r.log, Some(serde_json::json!(["line"])));
    assert_eq!(r.errors[0].error, "boom");

    // Promote it, fail it with retry-after, promote, then permanently.
    assert_eq!(q.promote("j").await.unwrap(), "promoted");
    let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    assert_eq!(l.attempt, 2);
    let after =
        q.fail(&l.id, &l.token, &Failure::RetryAfter(Duration::from_secs(5), "busy".into()), None, None).await.unwrap();
    assert!(matches!(after, AfterFailure::Delayed { .. }));
    q.promote("j").await.unwrap();
    let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    assert_eq!(
        q.fail(&l.id, &l.token, &Failure::Retry("again".into()), None, None).await.unwrap(),
        AfterFailure::Failed,
        "attempts exhausted"
    );
    let r = q.get("j").await.unwrap().unwrap();
    assert_eq!(r.state, State::Failed);
    assert_eq!(r.errors.len(), 3);
    assert_eq!(r.result.unwrap()["failed_reason"], "again");

    // Retry brings it back with its attempts reset; a permanent failure ends it at once.
    assert_eq!(q.retry("j").await.unwrap(), "retried");
    assert_eq!(q.retry("j").await.unwrap(), "waiting", "a waiting job is not retried");
    let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    assert_eq!(l.attempt, 1);
    assert_eq!(
        q.fail(&l.id, &l.token, &Failure::Permanent("bad input".into()), None, None).await.unwrap(),
        AfterFailure::Failed
    );
    assert_eq!(q.retry("nope").await.unwrap(), "missing");
}

#[tokio::test]
async fn default_options_are_left_out_of_the_stored_spec_and_still_apply() {
    let redis = RedisServer::start();
    let q = queue(&redis, "defaults").await;
    let id = q.enqueue(job(r#"{"n":1}"#)).await.unwrap().id;
    let mut c = redis.connection();
    let spec: String = redis::cmd("HGET").arg("jr:{defaults}:specs").arg(&id).query(&mut c).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&spec).unwrap();
    assert_eq!(stored["opts"], serde_json::json!({}), "default options are not stored: {spec}");
    assert_eq!(q.get(&id).await.unwrap().unwrap().options, JobOptions::default(), "and read back in full");
    // The scripts apply the defaults too: the default backoff is exponential
    // from 1 s with a jitter of a fifth, so a failed first attempt waits
    // 0.8 to 1 s (without it, the job would be retried at once).
    let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let after = q.fail(&l.id, &l.token, &Failure::Retry("boom".into()), None, None).await.unwrap();
    let AfterFailure::Delayed { run_at_ms } = after else { panic!("{after:?}") };
    let delay = run_at_ms.saturating_sub(before);
    assert!((750..=1100).contains(&delay), "delayed {delay} ms");
    // An option that differs is stored, and only it.
    let id = q.enqueue(with(|o| o.attempts = Some(7))).await.unwrap().id;
    let spec: String = redis::cmd("HGET").arg("jr:{defaults}:specs").arg(&id).query(&mut c).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&spec).unwrap();
    assert_eq!(stored["opts"], serde_json::json!({"attempts": 7}), "{spec}");
}

#[tokio::test]
async fn exponential_backoff_grows() {
    let redis = RedisServer::start();
    let q = queue(&redis, "expo").await;
    q.enqueue(NewJob {
        id: Some("e".into()),
        ..with(|o| {
            o.attempts = Some(5);
            o.backoff = Some(Backoff::Exponential { delay_ms: 10_000, max_delay_ms: 0, jitter: 0.0 });
        })
    })
    .await
    .unwrap();
    let mut delays = vec![];
    for _ in 0..3 {
        let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let AfterFailure::Delayed { run_at_ms } =
            q.fail(&l.id, &l.token, &Failure::Retry("x".into()), None, None).await.unwrap()
        else {
            panic!()
        };
        delays.push((run_at_ms - before + 500) / 1000);
        q.promote("e").await.unwrap();
    }
    assert_eq!(delays, [10, 20, 40]);
}

#[tokio::test]
async fn operations_and_paging() {
    let redis = RedisServer::start();
    let q = queue(&redis, "ops").await;
    for i in 0..30 {
        q.enqueue(NewJob { id: Some(format!("w{i:02}")), ..job("{}") }).await.unwrap();
    }
    q.enqueue(NewJob { id: Some("later".into()), ..with(|o| o.delay_ms = 3_600_000) }).await.unwrap();
    let page1 = q.list(State::Waiting, 0, 10).await.unwrap();
    let page3 = q.list(State::Waiting, 20, 10).await.unwrap();
    assert_eq!(page1[0].id, "w00");
    assert_eq!(page3[9].id, "w29");
    assert_eq!(q.list(State::Delayed, 0, 10).await.unwrap()[0].id, "later");

    q.pause().await.unwrap();
    assert!(q.counts().await.unwrap().paused);
    assert!(q.fetch(5, LEASE).await.unwrap().jobs.is_empty(), "a paused queue hands out nothing");
    q.resume().await.unwrap();
    assert_eq!(q.fetch(5, LEASE).await.unwrap().jobs.len(), 5);

    assert_eq!(q.remove("w10").await.unwrap(), "waiting");
    assert_eq!(q.remove("w10").await.unwrap(), "missing");
    assert!(q.get("w10").await.unwrap().is_none());
    let drained = q.drain().await.unwrap();
    assert_eq!(drained, 24 + 1, "the other waiting jobs and the delayed one");
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.delayed, c.active), (0, 0, 5));
}

#[tokio::test]
async fn retry_all_and_clean() {
    let redis = RedisServer::start();
    let q = queue(&redis, "clean").await;
    let jobs: Vec<NewJob> = (0..20).map(|_| with(|o| o.attempts = Some(1))).collect();
    q.enqueue_bulk(jobs).await.unwrap();
    for l in q.fetch(20, LEASE).await.unwrap().jobs {
        q.fail(&l.id, &l.token, &Failure::Retry("x".into()), None, None).await.unwrap();
    }
    assert_eq!(q.counts().await.unwrap().failed, 20);
    assert_eq!(q.retry_all_failed().await.unwrap(), 20);
    let batch = q.fetch(20, LEASE).await.unwrap().jobs;
    q.complete(&batch.iter().map(done).collect::<Vec<_>>(), KEEP_ALL).await.unwrap();
    assert_eq!(q.clean(State::Completed, Duration::ZERO, 15).await.unwrap(), 15);
    assert_eq!(q.counts().await.unwrap().completed, 5);
    assert!(q.clean(State::Waiting, Duration::ZERO, 1).await.is_err());
}

#[tokio::test]
async fn retention_bounds_memory() {
    let redis = RedisServer::start();
    let q = queue(&redis, "keep").await;
    // Some jobs with a priority, a group, a log: the trim skips per-job
    // hashes that are empty, and must still clear the ones that are not.
    let jobs = (0..50)
        .map(|i| match i % 3 {
            0 => with(|o| o.priority = Some(5)),
            1 => with(|o| o.group = Some(format!("g{i}"))),
            _ => job("{}"),
        })
        .collect();
    q.enqueue_bulk(jobs).await.unwrap();
    let batch = q.fetch(50, LEASE).await.unwrap().jobs;
    let completions: Vec<Completion> =
        batch.iter().map(|l| Completion { log: Some(r#"["a line"]"#.into()), ..done(l) }).collect();
    q.complete(&completions, Keep { count: Some(5), age_ms: None }).await.unwrap();
    assert_eq!(q.counts().await.unwrap().completed, 5);
    // The removed jobs' data is gone too, not only their place in the set.
    let mut c = redis.connection();
    let specs: u64 = redis::cmd("HLEN").arg("jr:{keep}:specs").query(&mut c).unwrap();
    assert_eq!(specs, 5);
    let kept: Vec<String> = redis::cmd("ZRANGE").arg("jr:{keep}:completed").arg(0).arg(-1).query(&mut c).unwrap();
    for hash in ["specs", "attempts", "created", "results", "logs", "progress", "prios", "groups", "tokens"] {
        let fields: Vec<String> = redis::cmd("HKEYS").arg(format!("jr:{{keep}}:{hash}")).query(&mut c).unwrap();
        // `tokens` also holds the field that pins its encoding (not a job).
        let jobs = fields.iter().filter(|f| f.as_str() != TOKENS_PIN);
        assert!(jobs.clone().all(|f| kept.contains(f)), "{hash} keeps removed jobs: {fields:?} (kept: {kept:?})");
    }
}

/// The field `fetch` keeps in the tokens hash (docs/queue-protocol.md).
const TOKENS_PIN: &str = "pinned encoding";

#[tokio::test]
async fn lease_tokens_stay_in_a_hashtable() {
    // Redis keeps a small hash as a listpack, searched end to end on every
    // lookup; the tokens hash, checked for every completion, must not be one.
    let redis = RedisServer::start();
    let q = queue(&redis, "pinned").await;
    let leased = lease_plain(&q, 3).await;
    let mut c = redis.connection();
    let encoding: String = redis::cmd("OBJECT").arg("ENCODING").arg("jr:{pinned}:tokens").query(&mut c).unwrap();
    assert_eq!(encoding, "hashtable");
    // The leases still fence: a wrong token is refused, the right ones pass.
    let stale = Completion { token: "1".repeat(12), ..done(&leased[0]) };
    assert_eq!(q.complete(&[stale], KEEP_ALL).await.unwrap(), vec![false]);
    assert_eq!(q.complete(&leased.iter().map(done).collect::<Vec<_>>(), KEEP_ALL).await.unwrap(), vec![true; 3]);
    // With no lease left, the pin alone remains, so the key (and its
    // encoding) outlive the queue's quiet spells.
    let fields: Vec<String> = redis::cmd("HKEYS").arg("jr:{pinned}:tokens").query(&mut c).unwrap();
    assert_eq!(fields, vec![TOKENS_PIN.to_string()]);
    let encoding: String = redis::cmd("OBJECT").arg("ENCODING").arg("jr:{pinned}:tokens").query(&mut c).unwrap();
    assert_eq!(encoding, "hashtable");
}

#[tokio::test]
async fn rate_limit_per_queue() {
    let redis = RedisServer::start();
    let q = queue(&redis, "limited").await;
    q.set_rate_limit(5, Duration::from_secs(60)).await.unwrap();
    q.enqueue_bulk((0..20).map(|_| job("{}")).collect()).await.unwrap();
    assert_eq!(q.fetch(10, LEASE).await.unwrap().jobs.len(), 5);
    let f = q.fetch(10, LEASE).await.unwrap();
    assert!(f.jobs.is_empty());
    assert!(f.rate_limited.unwrap() > Duration::from_secs(50));
    q.set_rate_limit(0, Duration::ZERO).await.unwrap();
    assert_eq!(q.fetch(10, LEASE).await.unwrap().jobs.len(), 10);
}

/// Scripts Redis has run so far (each fetch is one).
fn script_calls(redis: &RedisServer) -> u64 {
    let info: String = ::redis::cmd("INFO").arg("commandstats").query(&mut redis.connection()).unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_eval"))
        .filter_map(|l| l.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits until a consumer started after Redis had run `before` scripts is
/// subscribed to its wake-ups and has fetched (finding nothing): it armed
/// its wake-up before that fetch, so from then on an enqueue must wake it.
async fn wait_until_waiting(redis: &RedisServer, before: u64) {
    testkit::wait_until("the consumer to be waiting", Duration::from_secs(10), || {
        let channels: Vec<String> = ::redis::cmd("PUBSUB").arg("CHANNELS").query(&mut redis.connection()).unwrap();
        !channels.is_empty() && script_calls(redis) > before
    })
    .await;
}

#[tokio::test]
async fn a_waiting_consumer_wakes_on_enqueue_and_on_a_due_delayed_job() {
    let redis = RedisServer::start();
    let q = queue(&redis, "wake").await;
    let consumer = std::sync::Arc::new(Consumer::new(q.clone()));
    let c = consumer.clone();
    let before = script_calls(&redis);
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let jobs = c.next(1, LEASE, Duration::from_secs(20)).await.unwrap();
        (jobs, started.elapsed())
    });
    wait_until_waiting(&redis, before).await;
    q.enqueue(job(r#"{"x":1}"#)).await.unwrap();
    let (jobs, waited) = waiter.await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(waited < Duration::from_secs(10), "woken by the enqueue, not by the 20 s limit ({waited:?})");

    q.enqueue(with(|o| o.delay_ms = 300)).await.unwrap();
    let early = q.fetch(1, LEASE).await.unwrap();
    assert!(early.jobs.is_empty(), "not before it is due");
    assert!(early.next_due.unwrap() <= Duration::from_millis(300));
    let started = Instant::now();
    let jobs = consumer.next(1, LEASE, Duration::from_secs(20)).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(10));

    // A consumer already asleep (nothing to wait for) when a delayed job
    // arrives is woken to learn its due time, rather than sleeping on.
    let c = consumer.clone();
    let before = script_calls(&redis);
    let waiter = tokio::spawn(async move { c.next(1, LEASE, Duration::from_secs(3600)).await.unwrap() });
    wait_until_waiting(&redis, before).await;
    q.enqueue(with(|o| o.delay_ms = 200)).await.unwrap();
    let jobs = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("woken for the delayed job, not left asleep for an hour")
        .unwrap();
    assert_eq!(jobs.len(), 1);
}

/// A consumer asleep until its job's lease ends is woken when that job
/// fails with a short backoff, and takes the retry when it is due, not when
/// the lease would have ended.
#[tokio::test]
async fn a_retry_with_a_short_backoff_wakes_a_sleeping_consumer() {
    let redis = RedisServer::start();
    let q = queue(&redis, "retry-wake").await;
    let consumer = std::sync::Arc::new(Consumer::new(q.clone()));
    q.enqueue(with(|o| o.backoff = Some(Backoff::Fixed { delay_ms: 100 }))).await.unwrap();
    let leased = consumer.next(1, LEASE, Duration::from_secs(20)).await.unwrap().remove(0);
    let c = consumer.clone();
    let before = script_calls(&redis);
    let waiter = tokio::spawn(async move { c.next(1, LEASE, Duration::from_secs(3600)).await.unwrap() });
    wait_until_waiting(&redis, before).await;
    let after = q.fail(&leased.id, &leased.token, &Failure::Retry("boom".into()), None, None).await.unwrap();
    assert!(matches!(after, AfterFailure::Delayed { .. }), "{after:?}");
    // The lease is 30 s: a consumer left asleep would take it only then.
    let jobs = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("woken for the retry, not left asleep until the lease's end")
        .unwrap();
    assert_eq!((jobs[0].id.as_str(), jobs[0].attempt), (leased.id.as_str(), 2));
}

/// Waits until `n` consumers of queue `name` listen on channels of their own.
async fn wait_for_push_channels(redis: &RedisServer, name: &str, n: usize) {
    let pattern = format!("jr:{{{name}}}:wake:*");
    testkit::wait_until("consumers' own channels", Duration::from_secs(10), || {
        let channels: Vec<String> =
            ::redis::cmd("PUBSUB").arg("CHANNELS").arg(&pattern).query(&mut redis.connection()).unwrap();
        channels.len() == n
    })
    .await;
}

fn idle_registrations(redis: &RedisServer, name: &str) -> u64 {
    ::redis::cmd("HLEN").arg(format!("jr:{{{name}}}:idle")).query(&mut redis.connection()).unwrap()
}

#[tokio::test]
async fn an_idle_consumer_is_handed_a_new_job_with_no_fetch_and_gives_back_what_it_holds() {
    let redis = RedisServer::start();
    let q = queue(&redis, "handoff").await;
    let consumer = Consumer::new(q.clone());
    wait_for_push_channels(&redis, "handoff", 1).await;
    // A fetch that comes back short (1 of 5) has drained the queue: the
    // consumer is registered as idle.
    q.enqueue(job("{}")).await.unwrap();
    assert_eq!(consumer.next(5, LEASE, Duration::from_secs(20)).await.unwrap().len(), 1);
    assert_eq!(idle_registrations(&redis, "handoff"), 1);

    // The next job is leased to it by the enqueue itself, and reaches it
    // without another script call.
    let b = q.enqueue(NewJob { id: Some("b".into()), ..job(r#"{"n":2}"#) }).await.unwrap();
    assert_eq!((b.created, b.state.as_str()), (true, "active"));
    assert_eq!(q.get("b").await.unwrap().unwrap().state.as_str(), "active");
    let calls = script_calls(&redis);
    let handed = consumer.next(5, LEASE, Duration::from_secs(20)).await.unwrap();
    assert_eq!(script_calls(&redis), calls, "no fetch was needed");
    assert_eq!(handed.len(), 1);
    assert_eq!((handed[0].id.as_str(), handed[0].attempt, handed[0].spec.payload.get()), ("b", 1, r#"{"n":2}"#));
    // Its token is the lease's: it completes, and a made-up one would not.
    let mut forged = done(&handed[0]);
    forged.token = "1".into();
    assert_eq!(q.complete(&[forged], KEEP_ALL).await.unwrap(), [false]);
    assert_eq!(q.complete(&[done(&handed[0])], KEEP_ALL).await.unwrap(), [true]);

    // A job handed to a consumer that has not taken it yet goes back to its
    // caller when the consumer retires; after that, jobs wait in line.
    q.enqueue(NewJob { id: Some("c".into()), ..job("{}") }).await.unwrap();
    let kept = consumer.retire().await.unwrap();
    assert_eq!(kept.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["c"]);
    assert_eq!(idle_registrations(&redis, "handoff"), 0);
    assert!(q.release(&kept[0].id, &kept[0].token).await.unwrap());
    assert_eq!(q.enqueue(job("{}")).await.unwrap().state, "waiting");

    // A consumer that went without retiring left its registration behind:
    // nobody listens on its channel, so the next enqueue drops the
    // registration and leaves its job waiting.
    let other = Consumer::new(q.clone());
    wait_for_push_channels(&redis, "handoff", 2).await;
    assert_eq!(other.next(5, LEASE, Duration::from_secs(20)).await.unwrap().len(), 2);
    assert_eq!(idle_registrations(&redis, "handoff"), 1);
    drop(other);
    wait_for_push_channels(&redis, "handoff", 1).await;
    assert_eq!(q.enqueue(NewJob { id: Some("d".into()), ..job("{}") }).await.unwrap().state, "waiting");
    assert_eq!(idle_registrations(&redis, "handoff"), 0);
    let fetched = q.fetch(5, LEASE).await.unwrap().jobs;
    assert_eq!(fetched.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["d"]);

    // Fencing tokens given by hand-offs and by fetches come from the one
    // counter: every lease so far has a token of its own, in order.
    let tokens: Vec<u64> =
        [&handed[0], &kept[0], &fetched[0]].iter().map(|l| l.token.parse().expect("a numeric token")).collect();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

/// What one queue holds after the same story told through `Queue::enqueue`
/// (a new job to start now in no group: the lean `push` script) or through
/// `enqueue_bulk` of one (the `enqueue` script): the waiting scores, the
/// queue's fair-queueing time and token counter, the groups' sequences,
/// the attempts and leases, and the events in order. Ids differ (each
/// call makes its own), so they are left out.
async fn enqueue_story(redis: &RedisServer, name: &str, lean: bool) -> Vec<String> {
    let q = queue(redis, name).await;
    let put = |q: Queue| async move {
        if lean {
            q.enqueue(job("{}")).await.unwrap()
        } else {
            q.enqueue_bulk(vec![job("{}")]).await.unwrap().remove(0)
        }
    };
    let mut states = vec![];
    // Two wait; a consumer takes both, comes back short and idles.
    states.push(put(q.clone()).await.state);
    states.push(put(q.clone()).await.state);
    let consumer = Consumer::new(q.clone());
    wait_for_push_channels(redis, name, 1).await;
    assert_eq!(consumer.next(5, LEASE, Duration::from_secs(20)).await.unwrap().len(), 2);
    // The next is handed to it, with no fetch.
    states.push(put(q.clone()).await.state);
    let calls = script_calls(redis);
    let handed = consumer.next(5, LEASE, Duration::from_secs(20)).await.unwrap();
    assert_eq!(script_calls(redis), calls, "{name}: a handed-off job needs no fetch");
    assert_eq!((handed.len(), handed[0].attempt), (1, 1), "{name}");
    // A paused queue hands nothing off: the job waits, and no wake-up goes.
    q.pause().await.unwrap();
    states.push(put(q.clone()).await.state);
    q.resume().await.unwrap();
    assert!(consumer.retire().await.unwrap().is_empty());

    let mut c = redis.connection();
    let k = |n: &str| format!("jr:{{{name}}}:{n}");
    let scores: Vec<(String, String)> =
        redis::cmd("ZRANGE").arg(k("wait")).arg(0).arg(-1).arg("WITHSCORES").query(&mut c).unwrap();
    let meta: Vec<Option<String>> = redis::cmd("HMGET").arg(k("meta")).arg("vt").arg("token").query(&mut c).unwrap();
    let gvt: Vec<String> = redis::cmd("HGETALL").arg(k("gvt")).query(&mut c).unwrap();
    let mut attempts: Vec<String> = redis::cmd("HVALS").arg(k("attempts")).query(&mut c).unwrap();
    attempts.sort();
    let active: u64 = redis::cmd("ZCARD").arg(k("active")).query(&mut c).unwrap();
    let tokens: u64 = redis::cmd("HLEN").arg(k("tokens")).query(&mut c).unwrap();
    let specs: u64 = redis::cmd("HLEN").arg(k("specs")).query(&mut c).unwrap();
    let unstarted: u64 = redis::cmd("HLEN").arg(k("unstarted")).query(&mut c).unwrap();
    let events: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(k("events")).arg("-").arg("+").query(&mut c).unwrap();
    let events: Vec<String> = events.into_iter().map(|(_, fields)| fields[0].1.clone()).collect();
    vec![
        format!("states {states:?}"),
        format!("waiting scores {:?}", scores.iter().map(|(_, s)| s).collect::<Vec<_>>()),
        format!("vt and token {meta:?}"),
        format!("group sequences {gvt:?}"),
        format!("attempts {attempts:?}, active {active}, lease tokens {tokens}, specs {specs}, unstarted {unstarted}"),
        format!("events {events:?}"),
    ]
}

/// `Queue::enqueue` sends a new job to start now in no group through the
/// lean `push` script (`common.lua` and its body, ten keys): it must
/// leave Redis as `enqueue.lua` would, hand-off, place in line, sequences
/// and events alike.
#[tokio::test]
async fn the_lean_single_enqueue_writes_what_the_enqueue_script_writes() {
    let redis = RedisServer::start();
    let lean = enqueue_story(&redis, "lean", true).await;
    let full = enqueue_story(&redis, "full", false).await;
    assert_eq!(lean, full);
    // And the story is the one told: two waited, one was handed off, one
    // waited behind the pause, which is the one still in line.
    assert_eq!(lean[0], r#"states ["waiting", "waiting", "active", "waiting"]"#);
    assert!(lean[1].starts_with("waiting scores [\""), "{}", lean[1]);
    assert_eq!(lean[4], "attempts [\"1\", \"1\", \"1\"], active 3, lease tokens 4, specs 4, unstarted 3");
    assert_eq!(lean[5], r#"events ["added", "added", "added", "paused", "added", "resumed"]"#);
    // The lean path was the one taken: Redis has run `push` (`common.lua`
    // then `push.lua`, as `scripts.rs` puts them together).
    let push =
        redis::Script::new(concat!(include_str!("../src/lua/common.lua"), "\n", include_str!("../src/lua/push.lua")));
    let loaded: Vec<bool> =
        redis::cmd("SCRIPT").arg("EXISTS").arg(push.get_hash()).query(&mut redis.connection()).unwrap();
    assert_eq!(loaded, [true]);
}

#[tokio::test]
async fn schedules_fire_each_tick_exactly_once_across_runners() {
    let redis = RedisServer::start();
    let q = queue(&redis, "sched").await;
    let s = Schedule {
        id: "digest".into(),
        job_type: "noop".into(),
        payload: serde_json::json!({"kind": "digest"}),
        options: JobOptions::default(),
        timing: Timing::Every { every_ms: 1000 },
        source: Default::default(),
    };
    let info = q.upsert_schedule(&s).await.unwrap();
    assert!(info.next_run_ms > 0);
    assert_eq!(q.list_schedules().await.unwrap()[0].schedule, s);
    // Four "runners" race to fire the ticks until two have fired.
    let runners: Vec<_> = (0..4)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut fired = 0;
                let deadline = Instant::now() + Duration::from_secs(15);
                while Instant::now() < deadline {
                    let (n, next) = q.fire_due_schedules().await.unwrap();
                    fired += n;
                    if q.counts().await.unwrap().waiting >= 2 {
                        break;
                    }
                    tokio::time::sleep(next.unwrap_or(Duration::from_millis(10)).min(Duration::from_millis(50))).await;
                }
                fired
            })
        })
        .collect();
    let mut total = 0;
    for r in runners {
        total += r.await.unwrap();
    }
    let waiting = q.list(State::Waiting, 0, 10).await.unwrap();
    assert_eq!(total, waiting.len(), "every fired tick is one job");
    assert!((2..=3).contains(&waiting.len()), "{}", waiting.len());
    assert!(waiting.iter().all(|j| j.id.starts_with("sched:digest:")));
    assert!(q.remove_schedule("digest").await.unwrap());
    assert!(!q.remove_schedule("digest").await.unwrap());
}

#[tokio::test]
async fn events_are_recorded() {
    let redis = RedisServer::start();
    let q = queue(&redis, "events").await;
    q.enqueue(NewJob { id: Some("ev".into()), ..job("{}") }).await.unwrap();
    let l = q.fetch(1, LEASE).await.unwrap().jobs.remove(0);
    q.complete(&[done(&l)], KEEP_ALL).await.unwrap();
    let events = q.events("0", 100).await.unwrap();
    let names: Vec<&str> = events.iter().map(|(_, f)| f[0].1.as_str()).collect();
    assert_eq!(names, ["added", "completed"]);
    let after = q.events(&events[0].0, 100).await.unwrap();
    assert_eq!(after.len(), 1);

    // A batch of completions is one event that names every job of it, and
    // counts as each of them in the throughput.
    q.enqueue_bulk((0..3).map(|i| NewJob { id: Some(format!("ev{i}")), ..job("{}") }).collect()).await.unwrap();
    let leased = q.fetch(3, LEASE).await.unwrap().jobs;
    let acks: Vec<Completion> = leased.iter().map(done).collect();
    assert_eq!(q.complete(&acks, KEEP_ALL).await.unwrap(), [true, true, true]);
    let last = q.events(&after[0].0, 100).await.unwrap();
    let names: Vec<&str> = last.iter().map(|(_, f)| f[0].1.as_str()).collect();
    assert_eq!(names, ["added", "completed"]);
    assert_eq!(Queue::event_ids(&last[1].1), ["ev0", "ev1", "ev2"]);
    assert_eq!(Queue::event_ids(&events[1].1), ["ev"]);
    assert_eq!(q.completed_in(Duration::from_secs(60)).await.unwrap(), 4);
    assert_eq!(q.completed_per_minute(2).await.unwrap().iter().sum::<u64>(), 4);
}

#[tokio::test]
async fn the_queue_survives_a_redis_restart() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always", "--save", ""]);
    let q = queue(&redis, "restart").await;
    q.enqueue_bulk((0..10).map(|_| job("{}")).collect()).await.unwrap();
    redis.restart();
    // The connection comes back by itself; jobs survived in the AOF.
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        match q.fetch(10, LEASE).await {
            Ok(f) => break f.jobs.len(),
            Err(_) => {
                assert!(Instant::now() < deadline, "no reconnection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(got, 10);
    // The scripts were loaded again (NOSCRIPT handled) and a consumer works too.
    let consumer = Consumer::new(q.clone());
    q.enqueue(job("{}")).await.unwrap();
    assert_eq!(consumer.next(5, LEASE, Duration::from_secs(10)).await.unwrap().len(), 1);
}

fn grouped(id: String, group: &str) -> NewJob {
    NewJob { id: Some(id), ..with(|o| o.group = Some(group.into())) }
}

#[tokio::test]
async fn a_noisy_group_does_not_starve_a_quiet_one() {
    let redis = RedisServer::start();
    let q = queue(&redis, "fair").await;
    q.enqueue_bulk((0..500).map(|i| grouped(format!("noisy-{i:03}"), "noisy")).collect()).await.unwrap();
    assert_eq!(q.fetch(10, LEASE).await.unwrap().jobs.len(), 10);
    // The quiet group arrives behind 490 waiting noisy jobs...
    q.enqueue_bulk((0..3).map(|i| grouped(format!("quiet-{i}"), "quiet")).collect()).await.unwrap();
    // ...and is served alongside the noisy group, not after it.
    let next: Vec<String> = q.fetch(6, LEASE).await.unwrap().jobs.into_iter().map(|l| l.id).collect();
    assert_eq!(next, ["noisy-010", "quiet-0", "noisy-011", "quiet-1", "noisy-012", "quiet-2"]);
}

#[tokio::test]
async fn each_group_has_its_own_rate_limit_and_keeps_its_order() {
    let redis = RedisServer::start();
    let q = queue(&redis, "glimit").await;
    q.set_group_rate_limit(2, Duration::from_millis(400)).await.unwrap();
    let mut jobs: Vec<NewJob> = (0..5).map(|i| grouped(format!("a{i}"), "a")).collect();
    jobs.extend((0..5).map(|i| grouped(format!("b{i}"), "b")));
    q.enqueue_bulk(jobs).await.unwrap();
    let mut got: Vec<String> = q.fetch(10, LEASE).await.unwrap().jobs.into_iter().map(|l| l.id).collect();
    got.sort();
    assert_eq!(got, ["a0", "a1", "b0", "b1"], "two per group per window");
    assert_eq!(q.counts().await.unwrap().delayed, 6, "the rest wait out the window");
    // After the window, the next two of each group, in their original order.
    let deadline = Instant::now() + Duration::from_secs(10);
    let next = loop {
        let f = q.fetch(10, LEASE).await.unwrap();
        if !f.jobs.is_empty() {
            break f.jobs.into_iter().map(|l| l.id).collect::<Vec<_>>();
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(f.next_due.unwrap_or(Duration::from_millis(10))).await;
    };
    assert_eq!(next, ["a2", "b2", "a3", "b3"]);
    q.set_group_rate_limit(0, Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn an_acl_user_with_a_password_connects_from_the_url() {
    let redis = RedisServer::start();
    let mut admin = redis.connection();
    // A user that may touch only the runner's keys and channels.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "jobs", "on", ">s3cret", "~jr:*", "&jr:*", "+@all"])
        .query(&mut admin)
        .unwrap();
    let url = format!("redis://jobs:s3cret@127.0.0.1:{}/", redis.port);
    let q = Queue::new(Connection::connect(&url).await.unwrap(), "acl").unwrap();
    q.enqueue(job("{}")).await.unwrap();
    assert_eq!(q.fetch(1, LEASE).await.unwrap().jobs.len(), 1);
    let wrong = format!("redis://jobs:nope@127.0.0.1:{}/", redis.port);
    let err = Connection::connect(&wrong).await.err().expect("a wrong password is refused");
    let text = format!("{err:#}");
    assert!(text.contains("cannot connect to Redis") && !text.contains("nope"), "{text}");
}

#[tokio::test]
async fn finished_jobs_are_counted_and_keep_their_runs() {
    let redis = RedisServer::start();
    let q = queue(&redis, "runs").await;
    // Three completed in one batch (two plain ones with runs, one with an
    // output and a run: both layouts), one retried then failed for good.
    q.enqueue_bulk((0..3).map(|i| NewJob { id: Some(format!("c{i}")), ..job("{}") }).collect()).await.unwrap();
    let retried_at_once = |o: &mut JobOptions| {
        o.attempts = Some(2);
        o.backoff = Some(Backoff::None);
    };
    q.enqueue(NewJob { id: Some("f".into()), ..with(retried_at_once) }).await.unwrap();
    let leased = q.fetch(4, LEASE).await.unwrap().jobs;
    let (fail, rest): (Vec<_>, Vec<_>) = leased.iter().partition(|l| l.id == "f");
    let run = |ms: u64| Some(jobrunner_queue::RunMark::new(ms, "host-a:42"));
    let plain: Vec<Completion> =
        rest[..2].iter().map(|l| Completion { run: run(1_000), ..Completion::of(l) }).collect();
    assert_eq!(q.complete(&plain, KEEP_ALL).await.unwrap(), [true, true]);
    let full = Completion { run: run(2_000), ..done(rest[2]) };
    assert_eq!(q.complete(&[full], KEEP_ALL).await.unwrap(), [true]);
    let f = fail[0];
    let failure = Failure::Retry("boom".into());
    q.fail_run(&f.id, &f.token, &failure, None, None, run(3_000).as_ref()).await.unwrap();
    let again = q.fetch(1, LEASE).await.unwrap().jobs;
    q.fail_run(&again[0].id, &again[0].token, &failure, None, None, run(4_000).as_ref()).await.unwrap();

    let c0 = q.get("c0").await.unwrap().unwrap();
    assert_eq!(c0.run, Some(jobrunner_queue::Run { started: 1_000, runner: "host-a:42".into() }));
    assert_eq!(q.get(&rest[2].id).await.unwrap().unwrap().run.unwrap().started, 2_000);
    let failed = q.get("f").await.unwrap().unwrap();
    assert_eq!(failed.state, State::Failed);
    let starts: Vec<_> = failed.errors.iter().map(|e| (e.attempt, e.started, e.runner.as_deref())).collect();
    assert_eq!(starts, [(1, Some(3_000), Some("host-a:42")), (2, Some(4_000), Some("host-a:42"))]);
    assert!(failed.run.is_none(), "a failed job has no completing run");

    // A retried attempt is not a failure for good: 3 completed, 1 failed.
    let h = q.history().await.unwrap();
    let counted = jobrunner_queue::stats::Finished { completed: 3, failed: 1 };
    assert_eq!((h.total, h.last_hour(), h.today()), (counted, counted, counted));
    assert_eq!(h.minutes.last().unwrap().finished, counted, "all in the minute under way");
    assert_eq!(q.finished_total().await.unwrap(), counted);

    // Removing a job removes its run.
    let mut c = redis.connection();
    let runs = |c: &mut redis::Connection| -> u64 { redis::cmd("HLEN").arg("jr:{runs}:runs").query(c).unwrap() };
    assert_eq!(runs(&mut c), 3);
    q.remove("c0").await.unwrap();
    assert_eq!(runs(&mut c), 2);
}
