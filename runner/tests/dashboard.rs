//! The dashboard through `app()` against a real Redis: pages show what the
//! queue holds, actions need the CSRF token, sign-in and session cookies,
//! Basic auth, the live event stream, and assets served without a token.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use runner::api::{ApiState, app, auth::Tokens};
use runner::queue::{Connection, Failure, JobOptions, NewJob, Queue};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";

async fn setup(tokens: Tokens) -> (axum::Router, Queue, testkit::redis::RedisServer) {
    let redis = testkit::redis::RedisServer::start();
    let connection = Connection::connect(&redis.url()).await.unwrap();
    let state = Arc::new(ApiState {
        connection: connection.clone(),
        registry: None,
        metrics: Arc::new(runner::metrics::Metrics::new()),
        consumed: vec!["emails".into()],
        tokens: Arc::new(tokens),
        bull: Default::default(),
    });
    (app(state, 1 << 20), Queue::new(connection, "emails").unwrap(), redis)
}

async fn send(router: &axum::Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = router.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn get(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::get(uri);
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::empty()).unwrap()
}

fn post_form(uri: &str, form: &str, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    r.body(Body::from(form.to_string())).unwrap()
}

fn csrf_from(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..at + 64].to_string()
}

/// A job that has failed for good, with an error recorded.
async fn failed_job(q: &Queue, id: &str) {
    let options = JobOptions { attempts: 1, ..Default::default() };
    q.enqueue(NewJob {
        id: Some(id.into()),
        job_type: "email".into(),
        payload: r#"{"to":"a@example.com"}"#.into(),
        options,
    })
    .await
    .unwrap();
    let l = q.fetch(1, Duration::from_secs(30)).await.unwrap().jobs.remove(0);
    q.fail(&l.id, &l.token, &Failure::Permanent("SMTP said <550> no such mailbox".into()), None, None).await.unwrap();
}

#[tokio::test]
async fn pages_show_the_queue_and_actions_need_the_csrf_token() {
    let (router, q, _redis) = setup(Tokens::default()).await;
    failed_job(&q, "f1").await;
    let (s, _, page) = send(&router, get("/dashboard", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("emails") && page.contains(r#"data-count="emails:failed""#));
    let (_, _, page) = send(&router, get("/dashboard/queues/emails?state=failed", None)).await;
    assert!(page.contains("f1"), "the failed job is listed");
    // The error is escaped, not injected.
    assert!(page.contains("SMTP said &lt;550&gt; no such mailbox"), "{page}");
    let csrf = csrf_from(&page);
    let (s, _, page) = send(&router, get("/dashboard/queues/emails/jobs/f1", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("a@example.com") && page.contains("Errors per attempt"));

    let (s, _, body) = send(&router, post_form("/dashboard/queues/emails/jobs/f1/retry", "csrf=forged", None)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("CSRF"));
    assert_eq!(q.get("f1").await.unwrap().unwrap().state.as_str(), "failed", "nothing happened");
    let (s, headers, _) =
        send(&router, post_form("/dashboard/queues/emails/jobs/f1/retry", &format!("csrf={csrf}"), None)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/dashboard/queues/emails/jobs/f1");
    assert_eq!(q.get("f1").await.unwrap().unwrap().state.as_str(), "waiting");

    let (s, _, _) = send(&router, post_form("/dashboard/queues/emails/do/pause", &format!("csrf={csrf}"), None)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(q.counts().await.unwrap().paused);
    send(&router, post_form("/dashboard/queues/emails/do/resume", &format!("csrf={csrf}"), None)).await;
    send(&router, post_form("/dashboard/queues/emails/jobs/f1/remove", &format!("csrf={csrf}"), None)).await;
    assert!(q.get("f1").await.unwrap().is_none());
    for page in ["/dashboard/plugins", "/dashboard/schedules", "/dashboard/assets/app.css", "/dashboard/assets/app.js"]
    {
        assert_eq!(send(&router, get(page, None)).await.0, StatusCode::OK, "{page}");
    }
}

#[tokio::test]
async fn signing_in_and_the_read_only_session() {
    let (router, q, _redis) = setup(Tokens::new(Some(ADMIN), Some(READER))).await;
    failed_job(&q, "f2").await;
    let (s, headers, _) = send(&router, get("/dashboard", None)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/dashboard/login");
    assert_eq!(send(&router, get("/dashboard/login", None)).await.0, StatusCode::OK);
    assert_eq!(send(&router, get("/dashboard/assets/app.css", None)).await.0, StatusCode::OK);
    let (s, _, page) = send(&router, post_form("/dashboard/login", "token=wrong", None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(page.contains("not valid"));

    let (s, headers, _) = send(&router, post_form("/dashboard/login", &format!("token={ADMIN}"), None)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    assert!(!cookie.contains(ADMIN), "the cookie is not the token");
    assert!(headers[header::SET_COOKIE].to_str().unwrap().contains("HttpOnly; SameSite=Strict"));
    let (s, _, page) = send(&router, get("/dashboard/queues/emails?state=failed", Some(&cookie))).await;
    assert_eq!(s, StatusCode::OK);
    let csrf = csrf_from(&page);

    // The read-only session sees pages but cannot act.
    let (_, headers, _) = send(&router, post_form("/dashboard/login", &format!("token={READER}"), None)).await;
    let reader = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    assert_eq!(send(&router, get("/dashboard", Some(&reader))).await.0, StatusCode::OK);
    let (s, _, _) =
        send(&router, post_form("/dashboard/queues/emails/jobs/f2/retry", &format!("csrf={csrf}"), Some(&reader)))
            .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) =
        send(&router, post_form("/dashboard/queues/emails/jobs/f2/retry", &format!("csrf={csrf}"), Some(&cookie)))
            .await;
    assert_eq!(s, StatusCode::SEE_OTHER);

    // Basic auth with the token as password works too.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("ops:{ADMIN}"));
    let req =
        Request::get("/dashboard").header(header::AUTHORIZATION, format!("Basic {basic}")).body(Body::empty()).unwrap();
    assert_eq!(send(&router, req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_live_stream_sends_counts() {
    let (router, q, _redis) = setup(Tokens::default()).await;
    q.enqueue(NewJob { id: None, job_type: "t".into(), payload: "{}".into(), options: JobOptions::default() })
        .await
        .unwrap();
    let res = router.clone().oneshot(get("/dashboard/live", None)).await.unwrap();
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.unwrap().unwrap().unwrap();
    let text = String::from_utf8_lossy(frame.data_ref().unwrap()).into_owned();
    assert!(
        text.contains("event: counts") && text.contains(r#""emails":{"#) && text.contains(r#""waiting":1"#),
        "{text}"
    );
}
