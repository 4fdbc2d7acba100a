//! The dashboard through `app()` against a real Redis: pages show what the
//! queue holds, actions need the CSRF token, sign-in and session cookies,
//! Basic auth, the live event stream, and assets served without a token.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use jobrunner_queue::{Connection, Failure, JobOptions, NewJob, Queue};
use runner::server::app;
use runner::web::{ApiState, auth::Tokens};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";

async fn setup(tokens: Tokens) -> (axum::Router, Queue, testkit::redis::RedisServer) {
    setup_with(tokens, Default::default()).await
}

async fn setup_with(
    tokens: Tokens,
    web: runner::web::WebOptions,
) -> (axum::Router, Queue, testkit::redis::RedisServer) {
    let redis = testkit::redis::RedisServer::start();
    let connection = Connection::connect(&redis.url()).await.unwrap();
    let state = Arc::new(ApiState {
        connection: connection.clone(),
        registry: None,
        metrics: Arc::new(runner::metrics::Metrics::new()),
        consumed: vec!["emails".into()],
        tokens: Arc::new(tokens),
        bull: Default::default(),
        redis_policy: Default::default(),
        web,
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
    let options = JobOptions { attempts: Some(1), ..Default::default() };
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
    // The queue's policy, each value with its source.
    q.set_policy(&jobrunner_queue::QueuePolicy { rate: Some("20/1m".parse().unwrap()), ..Default::default() })
        .await
        .unwrap();
    let (_, _, page) = send(&router, get("/dashboard/queues/emails", None)).await;
    let policy = &page[page.find("id=\"policy\"").expect("the policy table")..];
    assert!(policy.contains("<td>20/1m</td><td class=\"muted\">config</td>"), "{policy}");
    assert!(policy.contains("<td>3</td><td class=\"muted\">default</td>"), "{policy}");
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

/// A flow's parent shows its children's counts and a page of them, each
/// linked to its own page, with the next page linked; a child links back
/// to its parent; the queue page has a tab for parents waiting.
#[tokio::test]
async fn a_flow_parent_shows_its_children_paged_and_a_child_links_back() {
    let (router, q, _redis) = setup(Tokens::default()).await;
    let children: Vec<serde_json::Value> =
        (0..60)
        .map(|i| serde_json::json!({"queue": "emails", "id": format!("kid-{i:02}"), "type": "email", "on_failure": "ignore"}))
        .collect();
    let flow: jobrunner_queue::FlowJob = serde_json::from_value(
        serde_json::json!({"queue": "emails", "id": "campaign", "type": "report", "children": children}),
    )
    .unwrap();
    jobrunner_queue::add_flow(q.connection(), flow).await.unwrap();
    let leased = q.fetch(1, Duration::from_secs(30)).await.unwrap().jobs;
    q.fail(&leased[0].id, &leased[0].token, &Failure::Permanent("mailbox <full>".into()), None, None).await.unwrap();
    q.relay_outcomes().await.unwrap();

    let (s, _, page) = send(&router, get("/dashboard/queues/emails/jobs/campaign", None)).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains("60 children: 59 pending, 0 completed, 1 failed, 0 removed."), "{page}");
    assert!(page.contains(r#"href="/dashboard/queues/emails/jobs/kid-00""#), "{page}");
    assert!(page.contains("mailbox &lt;full&gt;"), "the child's reason, escaped: {page}");
    assert!(page.contains(r#"href="/dashboard/queues/emails/jobs/campaign?from=51""#), "the next page: {page}");
    assert!(!page.contains("kid-50"), "a page at a time");
    let (_, _, page) = send(&router, get("/dashboard/queues/emails/jobs/campaign?from=51", None)).await;
    assert!(page.contains("kid-59") && !page.contains(">emails / kid-49<"), "{page}");

    let (_, _, page) = send(&router, get("/dashboard/queues/emails/jobs/kid-10", None)).await;
    assert!(page.contains(r#"href="/dashboard/queues/emails/jobs/campaign""#), "the child links to its parent: {page}");
    let (_, _, page) = send(&router, get("/dashboard/queues/emails?state=waiting_children", None)).await;
    assert!(page.contains("campaign"), "{page}");
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

/// Named users (`[[http.users]]`) sign in with a name and password: an
/// admin may act, a reader only read; a wrong password, or a token given
/// with a user's name, signs nobody in; Basic auth takes them too.
#[tokio::test]
async fn named_users_sign_in_with_their_passwords() {
    use runner::web::session::Role;
    use runner::web::users::User;
    let user = |name: &str, role, password: &str| User {
        name: name.into(),
        role,
        hash: runner::passwords::hash_password(password).unwrap(),
    };
    let users = vec![user("ana", Role::Admin, "ana-long-password"), user("bo", Role::Read, "bo-long-password")];
    let (router, q, redis) = setup(Tokens::new(Some(ADMIN), None).with_users(users)).await;
    failed_job(&q, "u1").await;

    let (s, _, page) = send(&router, post_form("/dashboard/login", "name=ana&token=wrong-password", None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(page.contains("name and password do not match"), "{page}");
    let (s, _, _) = send(&router, post_form("/dashboard/login", &format!("name=ana&token={ADMIN}"), None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a token is not a user's password");

    let sign_in = |form: &'static str| {
        let router = router.clone();
        async move {
            let (s, headers, _) = send(&router, post_form("/dashboard/login", form, None)).await;
            assert_eq!(s, StatusCode::SEE_OTHER, "{form}");
            headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string()
        }
    };
    let ana = sign_in("name=ana&token=ana-long-password").await;
    let bo = sign_in("name=bo&token=bo-long-password").await;
    // The session in Redis names the user, and holds no password.
    let values: Vec<String> = {
        let mut c = redis.connection();
        let keys: Vec<String> = ::redis::cmd("KEYS").arg("jr:session:*").query(&mut c).unwrap();
        keys.iter().map(|k| ::redis::cmd("GET").arg(k).query(&mut c).unwrap()).collect()
    };
    assert!(values.contains(&"admin:ana".to_string()) && values.contains(&"read:bo".to_string()), "{values:?}");

    let (_, _, page) = send(&router, get("/dashboard/queues/emails?state=failed", Some(&bo))).await;
    let csrf = csrf_from(&page);
    let retry =
        |cookie: &str| post_form("/dashboard/queues/emails/jobs/u1/retry", &format!("csrf={csrf}"), Some(cookie));
    assert_eq!(send(&router, retry(&bo)).await.0, StatusCode::FORBIDDEN, "a reader may not act");
    assert_eq!(send(&router, retry(&ana)).await.0, StatusCode::SEE_OTHER);

    use base64::Engine;
    let basic = |cred: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(cred));
    let api = |cred: &str| {
        Request::get("/api/v1/queues").header(header::AUTHORIZATION, basic(cred)).body(Body::empty()).unwrap()
    };
    assert_eq!(send(&router, api("bo:bo-long-password")).await.0, StatusCode::OK);
    assert_eq!(send(&router, api("bo:ana-long-password")).await.0, StatusCode::UNAUTHORIZED);
}

/// The dashboard without tokens, on `connection`, consuming no queue.
fn open_router(connection: Connection) -> axum::Router {
    let state = Arc::new(ApiState {
        connection,
        registry: None,
        metrics: Arc::new(runner::metrics::Metrics::new()),
        consumed: vec![],
        tokens: Arc::new(Tokens::default()),
        bull: Default::default(),
        redis_policy: Default::default(),
        web: Default::default(),
    });
    app(state, 1 << 20)
}

/// The overview says what Redis would do to the jobs: an eviction policy
/// that can drop them, and no persistence.
#[tokio::test]
async fn the_overview_warns_of_a_redis_that_would_lose_jobs() {
    let redis = testkit::redis::RedisServer::start_with_maxmemory("64mb", "allkeys-lru");
    let router = open_router(Connection::connect(&redis.url()).await.unwrap());
    let (s, _, page) = send(&router, get("/dashboard", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("id=\"redis-risk\"") && page.contains("`allkeys-lru`"), "{page}");
    assert!(page.contains("id=\"redis-persistence\""), "no AOF, no snapshots: {page}");
}

fn session_cookie(headers: &axum::http::HeaderMap) -> String {
    headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string()
}

/// Sessions are random ids kept in Redis: each sign-in its own, `Secure`
/// behind TLS, ended by signing out, and gone when they expire.
#[tokio::test]
async fn sessions_are_random_expire_and_end_on_sign_out() {
    let web = runner::web::WebOptions { session_ttl: Duration::from_secs(2), ..Default::default() };
    let (router, _q, redis) = setup_with(Tokens::new(Some(ADMIN), None), web).await;
    let sign_in = |proto: Option<&'static str>| {
        let mut r = Request::post("/dashboard/login").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(p) = proto {
            r = r.header("x-forwarded-proto", p);
        }
        r.body(Body::from(format!("token={ADMIN}"))).unwrap()
    };
    let (_, first, _) = send(&router, sign_in(None)).await;
    let (_, second, _) = send(&router, sign_in(Some("https"))).await;
    let (a, b) = (session_cookie(&first), session_cookie(&second));
    assert_ne!(a, b, "each sign-in is a session of its own");
    assert_eq!(a.len(), "jr_session=".len() + 64);
    let set = first[header::SET_COOKIE].to_str().unwrap();
    assert!(set.contains("HttpOnly; SameSite=Strict; Max-Age=2") && !set.contains("Secure"), "{set}");
    assert!(second[header::SET_COOKIE].to_str().unwrap().ends_with("; Secure"), "behind TLS, Secure");
    // Redis holds the digest of the id, not the id.
    let keys: Vec<String> = redis::cmd("KEYS").arg("jr:session:*").query(&mut redis.connection()).unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| !k.contains(&a["jr_session=".len()..])));

    // Signing out ends the session; the other one lives on.
    let (s, _, page) = send(&router, get("/dashboard", Some(&a))).await;
    assert_eq!(s, StatusCode::OK);
    let csrf = csrf_from(&page);
    let (s, headers, _) = send(&router, post_form("/dashboard/logout", &format!("csrf={csrf}"), Some(&a))).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(send(&router, get("/dashboard", Some(&a))).await.0, StatusCode::SEE_OTHER, "signed out");
    assert_eq!(send(&router, get("/dashboard", Some(&b))).await.0, StatusCode::OK);
    // A forged or made-up id signs nobody in.
    assert_eq!(
        send(&router, get("/dashboard", Some(&format!("jr_session={}", "0".repeat(64))))).await.0,
        StatusCode::SEE_OTHER
    );
    // And the session expires.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while send(&router, get("/dashboard", Some(&b))).await.0 == StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "the session never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn with_headers(mut req: Request<Body>, headers: &[(&str, &str)]) -> Request<Body> {
    for (k, v) in headers {
        req.headers_mut().insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    req
}

/// A web page of another origin cannot drive the runner in the browser's
/// name, with its cookie, its cached Basic credentials, or (no token) by
/// the runner's being on loopback; nor can a DNS-rebinding page.
#[tokio::test]
async fn cross_site_and_rebinding_requests_are_refused() {
    // No token: loopback only, and only to loopback names.
    let (router, q, _redis) = setup(Tokens::default()).await;
    let pause = || Request::post("/api/v1/queues/emails/pause").body(Body::empty()).unwrap();
    let (s, _, body) =
        send(&router, with_headers(get("/api/v1/queues", None), &[("host", "rebound.evil.example:8080")])).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("loopback names"), "{body}");
    let (s, _, _) = send(&router, with_headers(get("/api/v1/queues", None), &[("host", "127.0.0.1:8080")])).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, body) =
        send(&router, with_headers(pause(), &[("host", "127.0.0.1:8080"), ("origin", "https://evil.example")])).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("another origin"), "{body}");
    let (s, _, _) =
        send(&router, with_headers(pause(), &[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")])).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(!q.counts().await.unwrap().paused, "nothing refused took effect");
    // The runner's own page, and a client that is no browser, may.
    let (s, _, _) =
        send(&router, with_headers(pause(), &[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(send(&router, with_headers(pause(), &[("host", "localhost:8080")])).await.0, StatusCode::OK);

    // A token: the browser's credentials change nothing through the API
    // without a request no form can send.
    let (router, q, _redis) = setup(Tokens::new(Some(ADMIN), None)).await;
    let (_, headers, _) = send(&router, post_form("/dashboard/login", &format!("token={ADMIN}"), None)).await;
    let cookie = session_cookie(&headers);
    let (s, _, body) = send(&router, with_headers(pause(), &[("cookie", &cookie)])).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("X-Requested-With"), "{body}");
    use base64::Engine;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("ops:{ADMIN}")));
    assert_eq!(send(&router, with_headers(pause(), &[("authorization", &basic)])).await.0, StatusCode::FORBIDDEN);
    assert!(!q.counts().await.unwrap().paused);
    let (s, _, _) = send(&router, with_headers(pause(), &[("cookie", &cookie), ("x-requested-with", "fetch")])).await;
    assert_eq!(s, StatusCode::OK);
    let bearer = format!("Bearer {ADMIN}");
    let resume = Request::post("/api/v1/queues/emails/resume").body(Body::empty()).unwrap();
    assert_eq!(send(&router, with_headers(resume, &[("authorization", &bearer)])).await.0, StatusCode::OK);
    // A dashboard form from another origin is refused, CSRF token or not.
    let (_, _, page) = send(&router, get("/dashboard", Some(&cookie))).await;
    let csrf = csrf_from(&page);
    let form = post_form("/dashboard/queues/emails/do/pause", &format!("csrf={csrf}"), Some(&cookie));
    let (s, _, _) =
        send(&router, with_headers(form, &[("host", "jobs.example.com"), ("origin", "https://evil.example")])).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(!q.counts().await.unwrap().paused);
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

/// The Redis page: the server's version, memory against `maxmemory` with
/// its policy (and the warning where it can drop jobs), clients, and the
/// queues' share of memory estimated from a sample of keys.
#[tokio::test]
async fn the_redis_page_shows_the_server_and_the_queues_share() {
    let redis = testkit::redis::RedisServer::start_with_maxmemory("64mb", "allkeys-lru");
    let connection = Connection::connect(&redis.url()).await.unwrap();
    let q = Queue::new(connection.clone(), "emails").unwrap();
    for i in 0..20 {
        let job = NewJob {
            id: Some(format!("j{i}")),
            job_type: "t".into(),
            payload: "{}".into(),
            options: JobOptions::default(),
        };
        q.enqueue(job).await.unwrap();
    }
    // A key that is not the queues', of about the same size as theirs together.
    let mut c = redis.connection();
    let _: () = ::redis::cmd("SET").arg("app:blob").arg("x".repeat(20_000)).query(&mut c).unwrap();
    let version: String = ::redis::cmd("INFO")
        .arg("server")
        .query::<String>(&mut c)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap()
        .trim()
        .to_string();
    let router = open_router(connection);
    let (s, _, page) = send(&router, get("/dashboard/redis", None)).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains(&format!("<dd id=\"redis-version\">{version}</dd>")), "{page}");
    assert!(page.contains("standalone (master)"), "{page}");
    assert!(page.contains(" of 64.0 MiB"), "memory against maxmemory: {page}");
    assert!(page.contains("<code>allkeys-lru</code>") && page.contains("id=\"redis-risk\""), "{page}");
    assert!(page.contains("connected, 0 blocked"), "{page}");
    let share = page.split("id=\"redis-share\">").nth(1).unwrap();
    assert!(share.starts_with("about "), "a share estimated: {share}");
    let pct: u32 = share["about ".len()..].split('%').next().unwrap().parse().unwrap();
    assert!(pct > 0 && pct < 100, "the queues hold some of the memory, not all: {pct}%");
    assert!(share.contains("<code>jr:</code>"), "{share}");
}

/// The Busy page: the runners connected, with their slots in use, and the
/// jobs running now, each with its runner, how long it has run (from the
/// runner's heartbeat), its plugin's version, progress and a Cancel that
/// comes back to the page.
#[tokio::test]
async fn the_busy_page_shows_runners_and_running_jobs() {
    let (router, q, _redis) = setup(Tokens::default()).await;
    let (s, _, page) = send(&router, get("/dashboard/busy", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("id=\"no-runners\"") && page.contains("id=\"no-running\""), "{page}");

    for id in ["long", "young"] {
        let job = NewJob {
            id: Some(id.into()),
            job_type: "resize".into(),
            payload: "{}".into(),
            options: JobOptions::default(),
        };
        q.enqueue(job).await.unwrap();
    }
    let leased = q.fetch(2, Duration::from_secs(60)).await.unwrap().jobs;
    assert_eq!(leased.len(), 2);
    let long = leased.iter().find(|l| l.id == "long").unwrap();
    assert!(q.progress(&long.id, &long.token, 40).await.unwrap());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut info = jobrunner_queue::runners::RunnerInfo {
        id: "worker-7:4242".into(),
        hostname: "worker-7".into(),
        pid: 4242,
        version: "9.9.9".into(),
        started_at_ms: now - 3_600_000,
        queues: vec!["emails".into()],
        slots: [("emails".to_string(), jobrunner_queue::runners::Slots { running: 2, concurrency: 8 })].into(),
        plugins: vec![jobrunner_queue::runners::PluginBrief {
            name: "thumbnails".into(),
            version: "1.4.0".into(),
            job_types: vec!["resize".into()],
            ..Default::default()
        }],
        // The heartbeat saw only the job that has run for 90 s.
        running: vec![jobrunner_queue::runners::RunningJob {
            queue: "emails".into(),
            id: "long".into(),
            job_type: "resize".into(),
            started_at_ms: now - 90_000,
        }],
        ..Default::default()
    };
    jobrunner_queue::runners::beat(q.connection(), &mut info).await.unwrap();

    let (s, _, page) = send(&router, get("/dashboard/busy", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("worker-7") && page.contains(" pid 4242") && page.contains("9.9.9"), "{page}");
    assert!(page.contains(">emails</a>: 2 / 8"), "slots in use: {page}");
    let rows = page.split("id=\"running\"").nth(1).unwrap();
    let long_at = rows.find(">long</a>").expect("the long job listed");
    let young_at = rows.find(">young</a>").expect("the young job listed");
    assert!(long_at < young_at, "the longest-running first");
    assert!(rows.contains("thumbnails 1.4.0"), "the plugin's version: {rows}");
    assert!(rows.contains("1 min 30 s") || rows.contains("1 min 31 s"), "running for: {rows}");
    assert!(rows.contains("just started"), "a job no heartbeat has seen: {rows}");
    assert!(rows.contains("aria-valuenow=\"40\""), "its progress: {rows}");

    // Cancel from the Busy page comes back to it.
    let csrf = csrf_from(&page);
    let (s, headers, _) = send(
        &router,
        post_form("/dashboard/queues/emails/jobs/young/cancel", &format!("csrf={csrf}&back=%2Fdashboard%2Fbusy"), None),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/dashboard/busy");
    // A `back` off the dashboard is not followed.
    let (s, headers, _) = send(
        &router,
        post_form(
            "/dashboard/queues/emails/jobs/long/cancel",
            &format!("csrf={csrf}&back=https%3A%2F%2Fevil.example"),
            None,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/dashboard/queues/emails/jobs/long");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Jobs of `job_type` with payload `{"user": {"id": N}}`, leased.
async fn leased_jobs(q: &Queue, job_type: &str, ids: &[(&str, u64)]) -> Vec<jobrunner_queue::Leased> {
    for (id, user) in ids {
        let job = NewJob {
            id: Some(id.to_string()),
            job_type: job_type.into(),
            payload: format!(r#"{{"user":{{"id":{user}}},"note":"n{user}"}}"#),
            options: JobOptions { attempts: Some(1), ..Default::default() },
        };
        q.enqueue(job).await.unwrap();
    }
    q.fetch(ids.len(), Duration::from_secs(30)).await.unwrap().jobs
}

/// The overview: jobs finished today, in the last hour and in all; the
/// history chart per minute, or per hour over a day or a week; a span it
/// does not know is a 400 saying so; the live stream's totals.
#[tokio::test]
async fn the_overview_counts_and_charts_finished_jobs() {
    let (router, q, _redis) = setup(Tokens::default()).await;
    let leased = leased_jobs(&q, "email", &[("a", 1), ("b", 2), ("c", 3), ("d", 4)]).await;
    let (done, bad): (Vec<_>, Vec<_>) = leased.iter().partition(|l| l.id != "d");
    let acks: Vec<_> = done.iter().map(|l| jobrunner_queue::Completion::of(l)).collect();
    q.complete(&acks, jobrunner_queue::DEFAULTS.keep_completed).await.unwrap();
    q.fail(&bad[0].id, &bad[0].token, &Failure::Permanent("no".into()), None, None).await.unwrap();

    let (s, _, page) = send(&router, get("/dashboard", None)).await;
    assert_eq!(s, StatusCode::OK);
    let totals = &page[page.find("id=\"totals\"").expect("the totals")..];
    let totals = &totals[..totals.find("</div></div>").unwrap()];
    assert!(
        totals.contains("Today (UTC)")
            && totals.contains(r#"<strong class="ok" data-total="completed">3</strong> completed"#),
        "{totals}"
    );
    assert!(totals.contains(r#"<strong class="bad" data-total="failed">1</strong> failed"#), "{totals}");
    let history = &page[page.find("id=\"history\"").expect("the history chart")..];
    assert!(history.contains(": 3 completed, 1 failed in this minute"), "the minute under way: {history}");
    assert_eq!(history.matches("class=\"hit\"").count(), 60, "an hour of minutes");
    assert!(page.contains("id=\"live\""), "the live chart's frame");
    assert!(page.contains("data-latency=\"emails\""), "the queue's latency");

    let (_, _, page) = send(&router, get("/dashboard?span=day", None)).await;
    let history = &page[page.find("id=\"history\"").unwrap()..];
    assert_eq!(history.matches("class=\"hit\"").count(), 24);
    assert!(history.contains("in this hour"));
    let (_, _, page) = send(&router, get("/dashboard?span=week", None)).await;
    assert_eq!(page[page.find("id=\"history\"").unwrap()..].matches("class=\"hit\"").count(), 168);
    let (s, _, body) = send(&router, get("/dashboard?span=year", None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("span must be"), "{body}");

    // The live stream sends the totals each second, for the live chart.
    let res = router.clone().oneshot(get("/dashboard/live", None)).await.unwrap();
    let mut body = res.into_body();
    let mut text = String::new();
    while !text.contains("event: finished") {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(frame.data_ref().unwrap()));
    }
    assert!(text.contains(r#"{"completed":3,"failed":1}"#), "{text}");
}

/// A queue's list: when each job started and finished and how long it
/// ran; filtered by type and by a payload field (saying what it read);
/// several jobs retried or removed at once, each counted, with the CSRF
/// token checked and a bound on how many.
#[tokio::test]
async fn the_queue_page_filters_and_acts_on_several_jobs() {
    let (router, q, _redis) = setup(Tokens::default()).await;
    let leased = leased_jobs(&q, "email", &[("e1", 1), ("e2", 2), ("e3", 3)]).await;
    let sms = leased_jobs(&q, "sms", &[("s1", 1), ("s2", 2)]).await;
    let started = now_ms() - 1_500;
    let run = Some(jobrunner_queue::RunMark::new(started, "worker-7:1"));
    for l in leased.iter().chain(&sms) {
        q.fail_run(&l.id, &l.token, &Failure::Permanent(format!("{} broke", l.id)), None, None, run.as_ref())
            .await
            .unwrap();
    }
    let (_, _, page) = send(&router, get("/dashboard/queues/emails?state=failed", None)).await;
    let rows = &page[page.find("id=\"jobs\"").unwrap()..];
    assert_eq!(rows.matches("name=\"ids\"").count(), 5, "every failed job, each with a box");
    assert!(rows.contains("1.5 s") || rows.contains("1.6 s") || rows.contains("1.7 s"), "how long it ran: {rows}");

    let (_, _, page) = send(&router, get("/dashboard/queues/emails?state=failed&type=sms", None)).await;
    let rows = &page[page.find("id=\"jobs\"").unwrap()..];
    assert!(rows.contains(">s1</a>") && rows.contains(">s2</a>") && !rows.contains(">e1</a>"), "{rows}");
    assert!(page.contains("Filtered by reading 5 failed jobs"), "what the filter cost: {page}");
    let (_, _, page) =
        send(&router, get("/dashboard/queues/emails?state=failed&type=email&field=user.id&value=2", None)).await;
    let rows = &page[page.find("id=\"jobs\"").unwrap()..];
    assert_eq!(rows.matches("name=\"ids\"").count(), 1, "{rows}");
    assert!(rows.contains(">e2</a>"));
    // The tabs and the next page keep the filter.
    assert!(page.contains("/dashboard/queues/emails?state=waiting&amp;type=email&amp;field=user.id&amp;value=2"));

    let csrf = csrf_from(&page);
    let back = "%2Fdashboard%2Fqueues%2Femails%3Fstate%3Dfailed";
    let (s, headers, _) = send(
        &router,
        post_form(
            "/dashboard/queues/emails/bulk",
            &format!("csrf={csrf}&back={back}&action=retry&ids=e1&ids=s1&ids=nope"),
            None,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let location = headers[header::LOCATION].to_str().unwrap().to_string();
    assert!(location.starts_with("/dashboard/queues/emails?state=failed&action=retry&done=2&refused=1"), "{location}");
    for id in ["e1", "s1"] {
        assert_eq!(q.get(id).await.unwrap().unwrap().state.as_str(), "waiting", "{id} retried");
    }
    let (_, _, page) = send(&router, get(&location, None)).await;
    assert!(page.contains("retry: 2 jobs; 1 not (nope: missing)."), "the notice: {page}");

    let (s, _, _) = send(
        &router,
        post_form("/dashboard/queues/emails/bulk", &format!("csrf={csrf}&action=remove&ids=e2&ids=e3"), None),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(q.get("e2").await.unwrap().is_none() && q.get("e3").await.unwrap().is_none());

    let (s, _, body) =
        send(&router, post_form("/dashboard/queues/emails/bulk", "csrf=forged&action=remove&ids=s2", None)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(q.get("s2").await.unwrap().is_some(), "nothing removed");
    let many: String = (0..201).map(|i| format!("&ids=x{i}")).collect();
    let (s, _, body) =
        send(&router, post_form("/dashboard/queues/emails/bulk", &format!("csrf={csrf}&action=remove{many}"), None))
            .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("at most 200"), "{body}");
    let (s, _, body) =
        send(&router, post_form("/dashboard/queues/emails/bulk", &format!("csrf={csrf}&action=explode&ids=s2"), None))
            .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("no bulk action `explode`"), "{body}");
}

/// A job's page: each attempt with its start, end, duration, runner and
/// outcome (the last failure of a job failed for good says so); the
/// payload and output as collapsible JSON with copy; the log's levels.
#[tokio::test]
async fn the_job_page_shows_each_attempt_and_its_json() {
    let (router, q, _redis) = setup(Tokens::default()).await;
    let job = NewJob {
        id: Some("j1".into()),
        job_type: "email".into(),
        payload: r#"{"to":"a@example.com","items":[{"sku":"x1"},{"sku":"x2"}]}"#.into(),
        options: JobOptions { attempts: Some(3), backoff: Some(jobrunner_queue::Backoff::None), ..Default::default() },
    };
    q.enqueue(job).await.unwrap();
    let l = q.fetch(1, Duration::from_secs(30)).await.unwrap().jobs.remove(0);
    let first = jobrunner_queue::RunMark::new(now_ms() - 4_000, "worker-7:1");
    q.fail_run(&l.id, &l.token, &Failure::Retry("smtp timeout".into()), None, None, Some(&first)).await.unwrap();
    let l = q.fetch(1, Duration::from_secs(30)).await.unwrap().jobs.remove(0);
    let log = r#"[{"at_ms":3,"level":"warn","source":"plugin","message":"slow server"}]"#;
    let done = jobrunner_queue::Completion {
        result: Some(r#"{"sent":true,"id":"m-1"}"#.into()),
        log: Some(log.into()),
        run: Some(jobrunner_queue::RunMark::new(now_ms() - 250, "worker-8:2")),
        ..jobrunner_queue::Completion::of(&l)
    };
    q.complete(&[done], jobrunner_queue::DEFAULTS.keep_completed).await.unwrap();

    let (s, _, page) = send(&router, get("/dashboard/queues/emails/jobs/j1", None)).await;
    assert_eq!(s, StatusCode::OK);
    let timeline = &page[page.find("id=\"timeline\"").unwrap()..];
    let timeline = &timeline[..timeline.find("</table>").unwrap()];
    assert!(timeline.contains("worker-7:1") && timeline.contains("failed, retried (retry)"), "{timeline}");
    assert!(timeline.contains("worker-8:2") && timeline.contains("<strong>completed</strong>"), "{timeline}");
    assert!(!timeline.contains("failed for good"), "{timeline}");
    assert!(page.contains(r#"<span class="key">sku</span>"#), "the payload as a tree: {page}");
    assert!(page.contains("<details open>"), "open to two levels");
    assert!(page.contains(r#"data-copy="payload-raw""#) && page.contains(r#"id="payload-raw""#));
    assert!(page.contains(r#"<span class="key">sent</span>"#), "the result as a tree");
    assert!(page.contains(r#"<span class="badge warn">warn</span>"#) && page.contains("slow server"), "the log");

    // A job failed for good: its last attempt says so.
    failed_job(&q, "f1").await;
    let (_, _, page) = send(&router, get("/dashboard/queues/emails/jobs/f1", None)).await;
    assert!(page.contains("<strong>failed for good</strong> (permanent)"), "{page}");
    // A large document is shown raw, not as a tree of thousands of nodes.
    let big: Vec<u32> = (0..5_000).collect();
    let job = NewJob {
        id: Some("big".into()),
        job_type: "email".into(),
        payload: serde_json::json!({ "n": big }).to_string(),
        options: JobOptions::default(),
    };
    q.enqueue(job).await.unwrap();
    let (_, _, page) = send(&router, get("/dashboard/queues/emails/jobs/big", None)).await;
    assert!(!page.contains("class=\"tree\"") && page.contains("id=\"payload-raw\""));
}

/// The Plugins page adds up the runners' figures per plugin version:
/// rates, duration percentiles, instantiation, peak memory against the
/// cap, faults by kind.
#[tokio::test]
async fn the_plugins_page_adds_up_the_runners_figures() {
    use jobrunner_queue::plugin_stats::{Ended, PluginStats};
    let (router, q, _redis) = setup(Tokens::default()).await;
    let mut stats = PluginStats { memory_cap: 64 << 20, ..Default::default() };
    for ms in 1..=98 {
        stats.record(Ended::Completed, Duration::from_millis(ms), Some(Duration::from_micros(400)), 3 << 20, 1);
    }
    stats.record(Ended::Failed, Duration::from_millis(5), None, 3 << 20, 2);
    stats.record(Ended::Fault("timeout"), Duration::from_secs(30), None, 60 << 20, 3);
    for (id, version) in [("w1:1", "1.4.0"), ("w2:2", "1.4.0"), ("w2:2", "1.3.9")] {
        let mut info = jobrunner_queue::runners::RunnerInfo {
            id: id.into(),
            plugins: vec![jobrunner_queue::runners::PluginBrief {
                name: "thumbnails".into(),
                version: version.into(),
                job_types: if version == "1.4.0" { vec!["resize".into()] } else { vec![] },
                stats: stats.clone(),
            }],
            ..Default::default()
        };
        if id == "w2:2" && version == "1.3.9" {
            let current = jobrunner_queue::runners::list(q.connection()).await.unwrap();
            info.plugins.extend(current.into_iter().find(|r| r.id == "w2:2").unwrap().plugins);
        }
        jobrunner_queue::runners::beat(q.connection(), &mut info).await.unwrap();
    }
    let (s, _, page) = send(&router, get("/dashboard/plugins", None)).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("On other runners only") && page.contains("thumbnails"), "{page}");
    let current = &page[page.find("data-version=\"1.4.0\"").expect("the version loaded")..];
    let current = &current[..current.find("</tr>").unwrap()];
    // Two runners of 100 attempts each: 98% completed, 1% failed, 1% faults.
    for want in ["<td class=\"num\">2</td>", "<td class=\"num\">200</td>", "98%", "timeout 2", "60.0 MiB / 64.0 MiB"] {
        assert!(current.contains(want), "{want} in {current}");
    }
    assert!(current.contains("1.0%"), "failed and faulted rates: {current}");
    let old = &page[page.find("data-version=\"1.3.9\"").expect("the older version")..];
    assert!(old[..old.find("</tr>").unwrap()].contains("(not loaded)"));
}
