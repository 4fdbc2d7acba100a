//! Each host capability through the real host and real servers: outgoing
//! HTTP (allow-list, response cap), the cache (in memory and in a real
//! Redis), email (outbox and a real SMTP server), follow-up jobs, config.

mod common;

use common::{completed, job, permanent, setup, setup_with};
use jobrunner_host::EngineOptions;
use jobrunner_host::cache::Cache;
use jobrunner_job::Outcome;
use runner::cache::RedisCache;
use serde_json::json;
use testkit::http::{HttpRecorder, Reply};

#[tokio::test]
async fn http_reaches_allowed_hosts_only() {
    let server = HttpRecorder::start().await;
    server.reply("/data", Reply::json(json!({"ok": true})));
    let allowed = setup(&format!(
        "[plugins.hostile]\nallowed_hosts = [\"127.0.0.1:{}\"]\nallowed_networks = [\"127.0.0.0/8\"]\n",
        server.port
    ));
    let plugin = allowed.load("hostile_plugin").await;
    let r = plugin.run(&job("http-get", json!({"url": server.url("/data")}))).await;
    assert_eq!(completed(&r.outcome), json!({"status": 200, "bytes": 11}));
    assert_eq!(server.requests().len(), 1);

    // Same server, but the plugin may only reach another port.
    let denied = setup("[plugins.hostile]\nallowed_hosts = [\"127.0.0.1:1\"]\nallowed_networks = [\"127.0.0.0/8\"]\n");
    let plugin = denied.load("hostile_plugin").await;
    let r = plugin.run(&job("http-get", json!({"url": server.url("/data")}))).await;
    let m = permanent(&r.outcome);
    assert!(m.contains("not on this plugin's allowed hosts"), "{m}");
    assert!(r.log.iter().any(|l| l.message.contains("http denied")));
    assert_eq!(server.requests().len(), 1, "a denied request never leaves the host");
}

/// An allowed name is not enough: the address it resolves to must be one
/// the plugin may reach, and the request goes to that address. Loopback
/// (here: `localhost`, the IP literal `2130706433` in another notation,
/// and 127.0.0.1 itself) is refused unless `allowed_networks` grants it.
#[tokio::test]
async fn http_goes_only_to_addresses_the_plugin_may_reach() {
    let server = HttpRecorder::start().await;
    let p = server.port;
    let hosts = format!("allowed_hosts = [\"localhost:{p}\", \"2130706433:{p}\", \"127.0.0.1:{p}\"]\n");
    let urls =
        [format!("http://localhost:{p}/x"), format!("http://2130706433:{p}/x"), format!("http://127.0.0.1:{p}/x")];
    let names_only = setup(&format!("[plugins.hostile]\n{hosts}"));
    let plugin = names_only.load("hostile_plugin").await;
    for url in &urls {
        let r = plugin.run(&job("http-get", json!({"url": url}))).await;
        let m = permanent(&r.outcome);
        assert!(m.contains("may not reach"), "{url}: {m}");
        let denial = r.log.iter().find(|l| l.message.contains("http denied")).expect("the denial is logged");
        assert!(denial.message.contains("127.0.0.1 (loopback)"), "{}", denial.message);
    }
    assert_eq!(server.requests().len(), 0, "no refused request reached the server");
    // Granted the loopback network (IPv4 only: `localhost` may resolve to
    // ::1 first, where nothing listens), the same requests arrive.
    let granted = setup(&format!("[plugins.hostile]\n{hosts}allowed_networks = [\"127.0.0.0/8\"]\n"));
    let plugin = granted.load("hostile_plugin").await;
    for url in &urls {
        let r = plugin.run(&job("http-get", json!({"url": url}))).await;
        assert_eq!(completed(&r.outcome)["status"], 200, "{url}: {:?}", r.outcome);
    }
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn http_responses_are_capped() {
    let server = HttpRecorder::start().await;
    server.reply("/big", Reply::status(200).body(vec![b'x'; 300_000]));
    server.reply("/small", Reply::status(200).body(vec![b'x'; 1000]));
    let s = setup(&format!(
        "[plugins.hostile]\nallowed_hosts = [\"127.0.0.1:{}\"]\nallowed_networks = [\"127.0.0.0/8\"]\nmax_http_response_bytes = \"100KiB\"\n",
        server.port
    ));
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("http-get", json!({"url": server.url("/big")}))).await;
    assert!(permanent(&r.outcome).contains("response too large"), "{:?}", r.outcome);
    let r = plugin.run(&job("http-get", json!({"url": server.url("/small")}))).await;
    assert_eq!(completed(&r.outcome)["bytes"], 1000);
}

#[tokio::test]
async fn follow_ups_are_kept_only_when_the_attempt_succeeds() {
    let s = setup("[plugins.hostile]\nmay_enqueue = [\"emails:noop\"]\n");
    let plugin = s.load("hostile_plugin").await;
    let r =
        plugin.run(&job("enqueue", json!({"count": 3, "queue": "emails", "delay_ms": 500, "id_prefix": "f-"}))).await;
    assert_eq!(completed(&r.outcome), json!({"ids": ["f-0", "f-1", "f-2"]}));
    assert_eq!(r.follow_ups.len(), 3);
    assert_eq!(r.follow_ups[0].queue, "emails");
    assert_eq!(r.follow_ups[0].delay_ms, Some(500));
    assert!(r.follow_ups[0].explicit_id);

    let r = plugin.run(&job("fail-after-enqueue", json!({}))).await;
    assert!(matches!(r.outcome, Outcome::Retry { .. }));
    assert!(r.follow_ups.is_empty());
    assert!(r.log.iter().any(|l| l.message.contains("discarded")));

    // Bad follow-ups are refused with a reason the plugin sees.
    let r = plugin.run(&job("enqueue", json!({"queue": "bad queue"}))).await;
    assert!(permanent(&r.outcome).contains("queue name `bad queue`"));
    let r = plugin.run(&job("enqueue", json!({"count": 1001}))).await;
    assert!(permanent(&r.outcome).contains("at most 1000"));
}

async fn cache_round_trip(s: &common::Setup) {
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("cache", json!({"key": "a", "set": "1", "tags": ["t"]}))).await;
    assert_eq!(completed(&r.outcome)["value"], "1");
    plugin.run(&job("cache", json!({"key": "b", "set": "2", "tags": ["t"], "ttl_ms": 60000}))).await;
    let r = plugin.run(&job("cache", json!({"key": "a", "invalidate": "t"}))).await;
    assert_eq!(completed(&r.outcome), json!({"value": null, "invalidated": 2}));
    let r = plugin.run(&job("cache", json!({"key": "b"}))).await;
    assert_eq!(completed(&r.outcome)["value"], serde_json::Value::Null);
}

/// A plugin filling its cache in a loop is stopped at its budget, on the
/// queues' own Redis, while enqueues there keep succeeding; an entry with
/// no TTL gets the longest the budget allows.
#[tokio::test]
async fn a_cache_flood_stops_at_the_budget_and_the_queue_goes_on() {
    let redis = testkit::redis::RedisServer::start_with_maxmemory("96mb", "noeviction");
    let conn = jobrunner_queue::Connection::connect(&redis.url()).await.unwrap();
    let s = setup_with(
        "[plugins.hostile]\ncache_max_bytes = \"8MiB\"\ncache_max_ttl = \"1h\"\n",
        Cache::new(RedisCache::new(conn.clone())),
        EngineOptions { max_instances: 16, ..Default::default() },
    );
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("cache-flood", json!({}))).await;
    let out = completed(&r.outcome);
    assert_eq!(out["stored"], 7, "{out}");
    let why = out["refused"].as_str().unwrap();
    assert!(why.contains("at its budget") && why.contains("cache_max_bytes"), "{why}");
    let mut c = redis.connection();
    let ttl: i64 = redis::cmd("PTTL").arg("jr:cache:{hostile}:k:flood-0").query(&mut c).unwrap();
    assert!(ttl > 0 && ttl <= 3_600_000, "an entry without a TTL gets the budget's longest: {ttl}");
    // A second run writes the same keys again (each counted once) and is
    // refused at the same place: the namespace does not grow.
    let r = plugin.run(&job("cache-flood", json!({}))).await;
    assert_eq!(completed(&r.outcome)["stored"], 7);
    let held: u64 = redis::cmd("HGET").arg("jr:cache:{hostile}:usage").arg("bytes").query(&mut c).unwrap();
    assert!(held <= 8 << 20 && held > 7 << 20, "{held} bytes accounted");
    // What is left of the budget (under 1 MiB) still takes a small entry.
    let r = plugin.run(&job("cache", json!({"key": "t", "set": "v", "tags": ["x"]}))).await;
    assert_eq!(completed(&r.outcome)["value"], "v");
    // The queue on the same Redis is unharmed.
    let q = jobrunner_queue::Queue::new(conn, "default").unwrap();
    let jobs = (0..1000).map(|_| jobrunner_queue::NewJob {
        id: None,
        job_type: "noop".into(),
        payload: "{}".into(),
        options: Default::default(),
    });
    q.enqueue_bulk(jobs.collect()).await.unwrap();
    assert_eq!(q.counts().await.unwrap().waiting, 1000);
}

#[tokio::test]
async fn cache_in_memory() {
    cache_round_trip(&setup("")).await;
}

#[tokio::test]
async fn cache_in_redis_is_namespaced() {
    let redis = testkit::redis::RedisServer::start();
    let conn = jobrunner_queue::Connection::connect(&redis.url()).await.unwrap();
    let s = setup_with(
        "[plugins.hostile]\ncache_namespace = \"hostile-ns\"\n",
        Cache::new(RedisCache::new(conn)),
        EngineOptions { max_instances: 16, ..Default::default() },
    );
    cache_round_trip(&s).await;
    // The app's view: a key set by the plugin is where the docs say.
    let plugin = s.load("hostile_plugin").await;
    plugin.run(&job("cache", json!({"key": "shared", "set": "v", "ttl_ms": 60000}))).await;
    let mut c = redis.connection();
    let v: String = redis::cmd("GET").arg("jr:cache:{hostile-ns}:k:shared").query(&mut c).unwrap();
    assert_eq!(v, "v");
    let ttl: i64 = redis::cmd("PTTL").arg("jr:cache:{hostile-ns}:k:shared").query(&mut c).unwrap();
    assert!(ttl > 0 && ttl <= 60000);
    // A value the app writes is read by the plugin.
    let _: () = redis::cmd("SET").arg("jr:cache:{hostile-ns}:k:from-app").arg("hello").query(&mut c).unwrap();
    let r = plugin.run(&job("cache", json!({"key": "from-app"}))).await;
    assert_eq!(completed(&r.outcome)["value"], "hello");
}

/// A plugin enqueues its own job types into the queue of the job it
/// handles; anything else takes a `may_enqueue` grant, so that no plugin
/// reaches another's capabilities (a webhook's HTTP) through its job type.
#[tokio::test]
async fn follow_ups_need_a_grant_beyond_the_plugins_own_types_and_queue() {
    let s = setup("");
    let plugin = s.load("hostile_plugin").await;
    // `noop` is one of the hostile plugin's own types; "" is the job's queue.
    let r = plugin.run(&job("enqueue", json!({"count": 1}))).await;
    assert_eq!(r.follow_ups.len(), 1, "{:?}", r.outcome);
    let r = plugin.run(&job("enqueue", json!({"queue": "emails"}))).await;
    let m = permanent(&r.outcome);
    assert!(m.contains("may not enqueue `noop` jobs to queue `emails`") && m.contains("may_enqueue"), "{m}");
    assert!(r.log.iter().any(|l| l.message.starts_with("follow-up refused")));
    // A grant with a wildcard.
    let s = setup("[plugins.hostile]\nmay_enqueue = [\"*:noop\"]\n");
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("enqueue", json!({"queue": "emails"}))).await;
    assert_eq!(r.follow_ups.len(), 1, "{:?}", r.outcome);
    // A grant that is not QUEUE:TYPE is refused when the plugin loads.
    let s = setup("[plugins.hostile]\nmay_enqueue = [\"emails\"]\n");
    let path = testkit::wasm::path("hostile_plugin");
    let Err(e) = s.host.load_file(&path, |n| s.config.plugin_settings(n)).await else {
        panic!("a bad may_enqueue grant loaded")
    };
    assert!(format!("{e:#}").contains("plugins.hostile.may_enqueue"), "{e:#}");
}

/// The From address is the operator's: a plugin sends as its `sender`, or
/// as one of `senders`; `recipient_domains` bounds where mail goes, and
/// `max_emails` how much of it one attempt sends.
#[tokio::test]
async fn email_senders_recipients_and_count_are_granted() {
    let s = setup("[plugins.hostile]\nsender = \"Jobs <jobs@example.com>\"\n");
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("mail", json!({"to": "ana@example.com", "from": "ceo@example.com"}))).await;
    assert!(permanent(&r.outcome).contains("may not send as `ceo@example.com`"), "{:?}", r.outcome);
    let r = plugin.run(&job("mail", json!({"to": "ana@example.com", "from": "Jobs <JOBS@example.com>"}))).await;
    completed(&r.outcome);
    let s = setup(
        "[plugins.hostile]\nsenders = [\"*@mail.example.com\"]\nrecipient_domains = [\"example.com\"]\nmax_emails = 1\n",
    );
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("mail", json!({"to": "ana@eu.example.com", "from": "bot@mail.example.com"}))).await;
    completed(&r.outcome);
    let r = plugin.run(&job("mail", json!({"to": "eve@elsewhere.test", "from": "bot@mail.example.com"}))).await;
    assert!(permanent(&r.outcome).contains("may not mail `eve@elsewhere.test`"), "{:?}", r.outcome);
    assert!(r.emails.is_empty());
    // `max_emails = 0`: no email at all.
    let s = setup("[plugins.hostile]\nsender = \"jobs@example.com\"\nmax_emails = 0\n");
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("mail", json!({"to": "ana@example.com"}))).await;
    assert!(permanent(&r.outcome).contains("at most 0 emails per attempt (max_emails)"), "{:?}", r.outcome);
    // No sender, no senders: a plugin may not pick a From of its own.
    let s = setup("");
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("mail", json!({"to": "ana@example.com", "from": "me@example.com"}))).await;
    assert!(permanent(&r.outcome).contains("may not choose its From address"), "{:?}", r.outcome);
}

#[tokio::test]
async fn email_goes_to_the_outbox_by_default() {
    let s = setup("[plugins.hostile]\nsender = \"Jobs <jobs@example.com>\"\n");
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("mail", json!({"to": "ana@example.com", "subject": "Outbox test"}))).await;
    completed(&r.outcome);
    assert_eq!(r.emails.len(), 1);
    let path = &r.emails[0].delivered_to;
    assert!(path.starts_with(s.outbox().to_str().unwrap()), "{path}");
    let eml = std::fs::read_to_string(path).unwrap();
    assert!(eml.contains("Subject: Outbox test"));
    assert!(eml.contains("From: Jobs <jobs@example.com>"));

    // No sender anywhere: the outbox reaches no mailbox, so it goes as the
    // runner's own local address (with SMTP, such a config is refused).
    let s = setup("");
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("mail", json!({"to": "ana@example.com"}))).await;
    completed(&r.outcome);
    assert_eq!(r.emails[0].from, "jobrunner@localhost");
}

#[tokio::test]
async fn email_goes_to_a_real_smtp_server_and_a_dead_one_is_retried() {
    let smtp = testkit::smtp::SmtpSink::start();
    let config = format!(
        "[mail]\nsender = \"jobs@example.com\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        smtp.port
    );
    let s = setup(&config);
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("mail", json!({"to": "bo@example.com", "subject": "SMTP test"}))).await;
    completed(&r.outcome);
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to, vec!["bo@example.com"]);
    assert!(got[0].data.contains("Subject: SMTP test"));
    assert_eq!(r.emails[0].delivered_to, format!("smtp://127.0.0.1:{}", smtp.port));

    let dead = format!(
        "[mail]\nsender = \"jobs@example.com\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"2s\"\n",
        testkit::free_port()
    );
    let s = setup(&dead);
    let plugin = s.load("hostile_plugin").await;
    let r = plugin.run(&job("mail", json!({"to": "bo@example.com"}))).await;
    assert!(matches!(&r.outcome, Outcome::Retry { .. }), "{:?}", r.outcome);
}

#[tokio::test]
async fn config_values_reach_the_plugin() {
    let s = setup("[plugins.plugin-template.config]\ngreeting = \"Ahoy\"\n");
    let plugin = s.load("plugin_template").await;
    let r = plugin.run(&job("plugin-template", json!({"name": "Ada"}))).await;
    assert_eq!(completed(&r.outcome), json!({"message": "Ahoy, Ada!"}));
    assert_eq!(r.progress, Some(100));
    let r = plugin.run(&job("plugin-template", json!({"nom": "Ada"}))).await;
    assert!(permanent(&r.outcome).contains("unknown field `nom`"));
}
