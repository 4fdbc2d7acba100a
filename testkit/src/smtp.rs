//! A real SMTP server (mailin-embedded) on a free loopback port that keeps
//! every message it accepts, for checking what the runner delivered.

use mailin_embedded::response::{self, Response};
use mailin_embedded::{Handler, Server};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

#[derive(Clone, Default)]
struct Sink {
    received: Arc<Mutex<Vec<Received>>>,
    current: Received,
}

impl Handler for Sink {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Received { from: from.to_string(), to: to.to_vec(), data: String::new() };
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.data.push_str(&String::from_utf8_lossy(buf));
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.received.lock().unwrap().push(std::mem::take(&mut self.current));
        response::OK
    }

    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        response::OK
    }
}

pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl SmtpSink {
    /// Starts the server on its own thread; it lives as long as the process.
    pub fn start() -> SmtpSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = Sink::default();
        let received = sink.received.clone();
        let mut server = Server::new(sink);
        server.with_name("testkit").with_tcp_listener(listener);
        std::thread::spawn(move || {
            // The error type is not Send; a failure shows as refused connections.
            let _ = server.serve();
        });
        SmtpSink { port, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}
