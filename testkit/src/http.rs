//! An HTTP server on loopback that records every request and answers with
//! what the test scripted for its path (a status, headers and a body).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(|s| s.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, headers: vec![], body: vec![] }
    }

    pub fn json(value: serde_json::Value) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    replies: Mutex<HashMap<String, Reply>>,
}

/// The server; it stops when the test's runtime ends.
#[derive(Clone)]
pub struct HttpRecorder {
    pub port: u16,
    shared: Arc<Shared>,
}

impl HttpRecorder {
    pub async fn start() -> HttpRecorder {
        Self::serve(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    /// Serves on a listener bound elsewhere: inside a host of a
    /// `netns::Network` (`Network::listen`), say. `url` still names
    /// loopback; the hosts reach it at their network's address.
    pub fn start_on(listener: std::net::TcpListener) -> HttpRecorder {
        listener.set_nonblocking(true).unwrap();
        Self::serve(tokio::net::TcpListener::from_std(listener).unwrap())
    }

    fn serve(listener: tokio::net::TcpListener) -> HttpRecorder {
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(record).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        HttpRecorder { port, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Scripts the reply for `path` (default: 200 with an empty body).
    pub fn reply(&self, path: &str, reply: Reply) {
        self.shared.replies.lock().unwrap().insert(path.to_string(), reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    shared.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        headers: headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect(),
        body: body.to_vec(),
    });
    let reply = shared.replies.lock().unwrap().get(&path).cloned().unwrap_or(Reply::status(200));
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    response
}
