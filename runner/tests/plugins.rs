//! The five built-in plugins, through the real host, against real local
//! servers: each on its happy path and on each failure its README promises.

mod common;

use common::{completed, job, permanent, setup};
use hmac::{Hmac, Mac};
use jobrunner_job::Outcome;
use serde_json::json;
use std::time::Duration;
use testkit::http::{HttpRecorder, Reply};

fn webhook_config(port: u16) -> String {
    format!(
        "[plugins.webhook]\nallowed_hosts = [\"127.0.0.1:{port}\"]\nallowed_networks = [\"127.0.0.0/8\"]\n[plugins.webhook.secrets]\nsigning_secret = \"whsec_test\"\n"
    )
}

#[tokio::test]
async fn webhook_signs_and_classifies_every_status() {
    let server = HttpRecorder::start().await;
    let s = setup(&webhook_config(server.port));
    let plugin = s.load("webhook_plugin").await;
    let send =
        |path: &str| job("webhook", json!({"url": server.url(path), "event": "booking.created", "data": {"id": 7}}));

    server.reply("/ok", Reply::status(204));
    let j = send("/ok");
    let r = plugin.run(&j).await;
    assert_eq!(completed(&r.outcome), json!({"status": 204, "attempt": 1}));

    // The receiver's view: verify the signature with an independent HMAC.
    let req = &server.requests()[0];
    assert_eq!(req.method, "POST");
    let ts = req.header("x-webhook-timestamp").unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"whsec_test").unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&req.body);
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(req.header("x-webhook-signature"), Some(expected.as_str()));
    assert_eq!(req.header("idempotency-key"), Some(j.id.as_str()));
    let body = req.json();
    assert_eq!(body["type"], "booking.created");
    assert_eq!(body["data"], json!({"id": 7}));
    assert_eq!(body["id"], j.id);

    server.reply("/gone", Reply::status(410).body("no such endpoint"));
    assert!(permanent(&plugin.run(&send("/gone")).await.outcome).contains("410: no such endpoint"));
    server.reply("/timeout", Reply::status(408));
    assert!(matches!(plugin.run(&send("/timeout")).await.outcome, Outcome::Retry { .. }));
    server.reply("/busy", Reply::status(429).header("retry-after", "7"));
    match plugin.run(&send("/busy")).await.outcome {
        Outcome::RetryAfter { delay, .. } => assert_eq!(delay, Duration::from_secs(7)),
        other => panic!("{other:?}"),
    }
    server.reply("/down", Reply::status(503).header("retry-after", "120"));
    assert!(
        matches!(plugin.run(&send("/down")).await.outcome, Outcome::RetryAfter { delay, .. } if delay == Duration::from_secs(120))
    );
    server.reply("/error", Reply::status(500));
    assert!(matches!(plugin.run(&send("/error")).await.outcome, Outcome::Retry { .. }));

    // Nobody listening: a transport error, retried.
    let closed = testkit::free_port();
    let s2 = setup(&webhook_config(closed));
    let p2 = s2.load("webhook_plugin").await;
    let r = p2.run(&job("webhook", json!({"url": format!("http://127.0.0.1:{closed}/x"), "event": "e"}))).await;
    assert!(matches!(r.outcome, Outcome::Retry { .. }), "{:?}", r.outcome);

    // A URL not allowed, or no secret: permanent.
    let r = plugin.run(&job("webhook", json!({"url": "http://10.0.0.1/x", "event": "e"}))).await;
    assert!(permanent(&r.outcome).contains("allowed hosts"));
    let s3 = setup(&format!(
        "[plugins.webhook]\nallowed_hosts = [\"127.0.0.1:{}\"]\nallowed_networks = [\"127.0.0.0/8\"]\n",
        server.port
    ));
    let p3 = s3.load("webhook_plugin").await;
    assert!(permanent(&p3.run(&send("/ok")).await.outcome).contains("signing_secret"));
}

#[tokio::test]
async fn email_renders_templates_into_the_outbox() {
    let s = setup(
        "[plugins.email]\nsender = \"Bookings <bookings@example.com>\"\n[plugins.email.config]\nbrand_name = \"Acme Events\"\n",
    );
    let plugin = s.load("email_plugin").await;
    let r = plugin
        .run(&job(
            "email",
            json!({"to": "ana@example.com", "template": "booking_confirmation",
                   "data": {"customer_name": "Ana", "booking_id": "B-17", "service_name": "Photos",
                            "vendor_name": "Lumen", "date": "2026-12-05"}}),
        ))
        .await;
    let out = completed(&r.outcome);
    assert_eq!(out["to"], 1);
    let eml = std::fs::read_to_string(&r.emails[0].delivered_to).unwrap();
    assert!(eml.contains("Subject: Your booking B-17 with Lumen is confirmed"), "{eml}");
    assert!(eml.contains("multipart/alternative"));
    assert!(eml.contains("Acme Events"));

    let r = plugin.run(&job("email", json!({"to": "not-an-address", "subject": "x", "text": "y"}))).await;
    assert!(permanent(&r.outcome).contains("invalid `to` address"));
    let r = plugin.run(&job("email", json!({"to": "a@example.com", "template": "welcome"}))).await;
    assert!(permanent(&r.outcome).contains("unknown template `welcome`"));
    let r = plugin.run(&job("email", json!({"to": "a@example.com", "template": "verify_email", "data": {}}))).await;
    // The missing variables are named, as the plugin's README promises.
    let m = permanent(&r.outcome);
    assert!(m.contains("`data.verify_url`") && m.contains("which the payload lacks"), "{m}");
}

#[tokio::test]
async fn email_is_delivered_by_smtp_and_retried_when_the_server_is_down() {
    let smtp = testkit::smtp::SmtpSink::start();
    let s = setup(&format!(
        "[mail]\nsender = \"jobs@example.com\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        smtp.port
    ));
    let plugin = s.load("email_plugin").await;
    let r = plugin
        .run(&job(
            "email",
            json!({"to": ["a@example.com", "b@example.com"], "cc": "c@example.com",
                                  "subject": "Raw", "text": "plain body", "html": "<b>html body</b>"}),
        ))
        .await;
    completed(&r.outcome);
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].to.len(), 3);
    assert!(got[0].data.contains("plain body") && got[0].data.contains("<b>html body</b>"));

    let s = setup(&format!(
        "[mail]\nsender = \"jobs@example.com\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"2s\"\n",
        testkit::free_port()
    ));
    let plugin = s.load("email_plugin").await;
    let r = plugin.run(&job("email", json!({"to": "a@example.com", "subject": "x", "text": "y"}))).await;
    assert!(matches!(r.outcome, Outcome::Retry { .. }), "{:?}", r.outcome);
}

fn app_config(plugin: &str, port: u16, extra: &str) -> String {
    format!(
        "[plugins.{plugin}]\nallowed_hosts = [\"127.0.0.1:{port}\"]\nallowed_networks = [\"127.0.0.0/8\"]\ncache_namespace = \"app\"\nmay_enqueue = [\"*:email\", \"*:webhook\"]\n[plugins.{plugin}.config]\napi_base_url = \"http://127.0.0.1:{port}/api\"\n{extra}\n[plugins.{plugin}.secrets]\napi_token = \"t0ken\"\n"
    )
}

#[tokio::test]
async fn vendor_notification_fans_out_once_per_window() {
    let api = HttpRecorder::start().await;
    api.reply(
        "/api/vendors/v1/contact",
        Reply::json(
            json!({"name": "Lumen", "email": "lumen@example.com", "webhook_url": "https://hooks.lumen.test/in"}),
        ),
    );
    api.reply("/api/vendors/v404/contact", Reply::status(404));
    let s = setup(&app_config("vendor-notification", api.port, "email_queue = \"emails\""));
    let plugin = s.load("vendor_notification_plugin").await;
    let payload = json!({"kind": "cart_add", "vendor_id": "v1", "client_id": "c1", "service_id": "s1"});
    let r = plugin.run(&job("vendor-notification", payload.clone())).await;
    assert_eq!(completed(&r.outcome), json!({"suppressed": false, "channels": ["email", "webhook"]}));
    let email = r.follow_ups.iter().find(|f| f.job_type == "email").unwrap();
    assert_eq!(email.queue, "emails");
    assert_eq!(email.payload["template"], "vendor_interest");
    assert_eq!(email.payload["to"], "lumen@example.com");
    let hook = r.follow_ups.iter().find(|f| f.job_type == "webhook").unwrap();
    assert_eq!(hook.payload["event"], "vendor.cart_add");
    assert_eq!(api.requests()[0].header("authorization"), Some("Bearer t0ken"));

    // Within the window: suppressed, and the contact came from the cache.
    let r = plugin.run(&job("vendor-notification", payload)).await;
    assert_eq!(completed(&r.outcome), json!({"suppressed": true}));
    assert!(r.follow_ups.is_empty());
    assert_eq!(api.requests().len(), 1);
    // Another service is another notification, with the contact cached.
    let r = plugin
        .run(&job(
            "vendor-notification",
            json!({"kind": "wishlist_add", "vendor_id": "v1", "client_id": "c1", "service_id": "s2"}),
        ))
        .await;
    assert_eq!(completed(&r.outcome)["suppressed"], false);
    assert_eq!(api.requests().len(), 1);

    let r = plugin
        .run(&job(
            "vendor-notification",
            json!({"kind": "cart_add", "vendor_id": "v404", "client_id": "c", "service_id": "s"}),
        ))
        .await;
    assert!(permanent(&r.outcome).contains("not found"));
    let r = plugin
        .run(&job(
            "vendor-notification",
            json!({"kind": "purchase", "vendor_id": "v", "client_id": "c", "service_id": "s"}),
        ))
        .await;
    assert!(permanent(&r.outcome).contains("invalid payload"));
}

#[tokio::test]
async fn response_reminder_climbs_the_ladder_and_stops_when_answered() {
    let api = HttpRecorder::start().await;
    api.reply("/api/vendors/v1/contact", Reply::json(json!({"name": "Lumen", "email": "lumen@example.com"})));
    api.reply("/api/clients/c1/contact", Reply::json(json!({"name": "Ana", "email": "ana@example.com"})));
    api.reply("/api/conversations/k1", Reply::json(json!({"answered": false})));
    api.reply("/api/conversations/k2", Reply::json(json!({"answered": true})));
    let s = setup(&app_config("response-reminder", api.port, ""));
    let plugin = s.load("response_reminder_plugin").await;
    let step = |conversation: &str, step: u32| {
        job(
            "response-reminder",
            json!({"vendor_id": "v1", "client_id": "c1", "conversation_id": conversation, "step": step}),
        )
    };

    let r = plugin.run(&step("k1", 1)).await;
    assert_eq!(completed(&r.outcome)["next_step"], 2);
    let next = r.follow_ups.iter().find(|f| f.job_type == "response-reminder").unwrap();
    assert_eq!(next.id, "reminder:k1:step:2");
    assert_eq!(next.delay_ms, Some(16 * 3600 * 1000));
    assert_eq!(next.payload["step"], 2);
    let reminder = r.follow_ups.iter().find(|f| f.job_type == "email").unwrap();
    assert_eq!(reminder.payload["template"], "response_reminder");
    assert_eq!(reminder.payload["data"]["hours_waiting"], 8);

    // The last step: a final reminder and the alternatives email to the client.
    let r = plugin.run(&step("k1", 4)).await;
    assert_eq!(completed(&r.outcome)["next_step"], serde_json::Value::Null);
    let alt = r.follow_ups.iter().find(|f| f.payload["template"] == "alternative_vendors").unwrap();
    assert_eq!(alt.payload["to"], "ana@example.com");
    assert!(!r.follow_ups.iter().any(|f| f.job_type == "response-reminder"));

    // Answered: stops, with nothing sent.
    let r = plugin.run(&step("k2", 2)).await;
    assert_eq!(completed(&r.outcome), json!({"stopped": true, "step": 2}));
    assert!(r.follow_ups.is_empty());

    assert!(permanent(&plugin.run(&step("k1", 9)).await.outcome).contains("outside the ladder"));
}

#[tokio::test]
async fn cache_warmup_stores_bodies_and_lists_failures() {
    let site = HttpRecorder::start().await;
    site.reply("/home", Reply::status(200).body("<h1>home</h1>"));
    site.reply("/pricing", Reply::status(200).body("<h1>pricing</h1>"));
    site.reply("/missing", Reply::status(404));
    site.reply("/flaky", Reply::status(502));
    let s = setup(&format!(
        "[plugins.cache-warmup]\nallowed_hosts = [\"127.0.0.1:{}\"]\nallowed_networks = [\"127.0.0.0/8\"]\ncache_namespace = \"shared\"\n[plugins.hostile]\ncache_namespace = \"shared\"\n",
        site.port
    ));
    let plugin = s.load("cache_warmup_plugin").await;
    let entry = |key: &str, path: &str| json!({"key": key, "url": site.url(path), "ttl_secs": 60, "tags": ["pages"]});
    let r = plugin
        .run(&job(
            "cache-warmup",
            json!({"entries": [entry("home", "/home"), entry("pricing", "/pricing"), entry("missing", "/missing")]}),
        ))
        .await;
    let out = completed(&r.outcome);
    assert_eq!(out["warmed"], 2);
    assert_eq!(out["failed"][0]["key"], "missing");
    assert_eq!(r.progress, Some(100));
    // Another plugin sharing the namespace reads what was warmed.
    let reader = s.load("hostile_plugin").await;
    let got = reader.run(&job("cache", json!({"key": "pricing"}))).await;
    assert_eq!(completed(&got.outcome)["value"], "<h1>pricing</h1>");

    let r = plugin.run(&job("cache-warmup", json!({"entries": [entry("flaky", "/flaky")]}))).await;
    assert!(matches!(r.outcome, Outcome::Retry { .. }), "{:?}", r.outcome);
    let r = plugin.run(&job("cache-warmup", json!({"entries": [entry("missing", "/missing")]}))).await;
    assert!(permanent(&r.outcome).contains("every entry failed"));
    assert!(permanent(&plugin.run(&job("cache-warmup", json!({"entries": []}))).await.outcome).contains("empty"));
}
