//! The job's log: lines from the plugin's `log.write`, its stdout and
//! stderr, and notes from the host, capped at the plugin's log limit.
//!
//! A plugin that floods its log is not failed for it: lines past the cap are
//! dropped and the log says it was truncated. Writes to stdout and stderr
//! always succeed from the guest's side, because a failing write would make
//! most languages' `print` panic.

use bytes::Bytes;
use jobrunner_job::{LogLevel, LogLine, LogSource};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A partial line longer than this is logged as it is rather than held.
const MAX_PARTIAL_LINE: usize = 16 * 1024;
/// What a line costs beyond its message: its fields as stored (about
/// `{"at_ms":12345,"level":"info","source":"stdout","message":""},`) and,
/// within that, its size in memory here. Charged to every line, so that
/// empty lines cannot grow the log without bound (a plugin printing
/// newlines in a loop once stored 72 MiB in a 2-second attempt).
pub const LINE_OVERHEAD: u64 = 64;

#[derive(Debug)]
pub struct JobLog {
    started: Instant,
    lines: Vec<LogLine>,
    bytes: u64,
    cap: u64,
    truncated: bool,
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
}

impl JobLog {
    pub fn new(cap: u64) -> Self {
        JobLog {
            started: Instant::now(),
            lines: Vec::new(),
            bytes: 0,
            cap,
            truncated: false,
            partial_stdout: Vec::new(),
            partial_stderr: Vec::new(),
        }
    }

    pub fn push(&mut self, level: LogLevel, source: LogSource, message: String) {
        let len = json_len(&message) + LINE_OVERHEAD;
        if self.bytes + len > self.cap {
            if !self.truncated {
                self.truncated = true;
                self.lines.push(LogLine {
                    at_ms: self.started.elapsed().as_millis() as u64,
                    level: LogLevel::Warn,
                    source: LogSource::Host,
                    message: format!("log truncated: over the plugin's {} byte limit", self.cap),
                });
            }
            return;
        }
        self.bytes += len;
        self.lines.push(LogLine { at_ms: self.started.elapsed().as_millis() as u64, level, source, message });
    }

    /// Appends raw output from stdout or stderr, one line at a time.
    pub fn write_stream(&mut self, source: LogSource, bytes: &[u8]) {
        if self.truncated {
            return;
        }
        let level = if source == LogSource::Stderr { LogLevel::Warn } else { LogLevel::Info };
        let mut buf = std::mem::take(match source {
            LogSource::Stderr => &mut self.partial_stderr,
            _ => &mut self.partial_stdout,
        });
        buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&buf[start..start + nl]).into_owned();
            self.push(level, source, line);
            start += nl + 1;
        }
        buf.drain(..start);
        if buf.len() > MAX_PARTIAL_LINE {
            let line = String::from_utf8_lossy(&buf).into_owned();
            buf.clear();
            self.push(level, source, line);
        }
        match source {
            LogSource::Stderr => self.partial_stderr = buf,
            _ => self.partial_stdout = buf,
        }
    }

    /// Empties the log for the next job of a reused instance (its own
    /// clock, cap and truncation from zero).
    pub fn reset(&mut self) {
        *self = JobLog::new(self.cap);
    }

    /// Flushes unterminated output and hands back the lines.
    pub fn finish(&mut self) -> (Vec<LogLine>, bool) {
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let rest = std::mem::take(match source {
                LogSource::Stderr => &mut self.partial_stderr,
                _ => &mut self.partial_stdout,
            });
            if !rest.is_empty() {
                let level = if source == LogSource::Stderr { LogLevel::Warn } else { LogLevel::Info };
                self.push(level, source, String::from_utf8_lossy(&rest).into_owned());
            }
        }
        (std::mem::take(&mut self.lines), self.truncated)
    }

    /// Everything written to stderr so far, for recognising a panic.
    pub fn stderr_text(&self) -> String {
        let mut text: String =
            self.lines.iter().filter(|l| l.source == LogSource::Stderr).map(|l| format!("{}\n", l.message)).collect();
        text.push_str(&String::from_utf8_lossy(&self.partial_stderr));
        text
    }
}

/// The length of `s` as a JSON string's contents: what storing it costs,
/// escapes included (a line of quotes or control characters stores up to
/// six times its length). Counted rather than serialised, to allocate
/// nothing per line.
fn json_len(s: &str) -> u64 {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum()
}

/// stdout or stderr of one job, writing into its log.
#[derive(Clone)]
pub struct LogStream {
    pub log: Arc<Mutex<JobLog>>,
    pub source: LogSource,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.log.lock().unwrap().write_stream(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always room: past the cap the log drops what it is given.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.log.lock().unwrap().write_stream(self.source, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_output_is_split_into_lines_and_capped() {
        // Room for two short lines with their overhead, not a third.
        let mut log = JobLog::new(2 * LINE_OVERHEAD + 20);
        log.write_stream(LogSource::Stdout, b"hello\nwor");
        log.write_stream(LogSource::Stdout, b"ld\n");
        log.write_stream(LogSource::Stdout, b"this line is far too long for the cap\n");
        log.write_stream(LogSource::Stdout, b"dropped\n");
        let (lines, truncated) = log.finish();
        assert!(truncated);
        let texts: Vec<_> = lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(texts[0], "hello");
        assert_eq!(texts[1], "world");
        assert!(texts[2].starts_with("log truncated"));
        assert_eq!(lines.len(), 3);
    }

    /// Empty lines cost their overhead: a flood of them is cut at the cap,
    /// in what is kept in memory as in what would be stored.
    #[test]
    fn empty_lines_are_charged_and_capped() {
        let cap = 64 * 1024;
        let mut log = JobLog::new(cap);
        for _ in 0..100_000 {
            log.write_stream(LogSource::Stdout, b"\n\n\n\n");
            log.push(LogLevel::Info, LogSource::Plugin, String::new());
        }
        let (lines, truncated) = log.finish();
        assert!(truncated);
        assert!(lines.len() as u64 <= cap / LINE_OVERHEAD + 1, "{} lines kept", lines.len());
        let stored = serde_json::to_string(&lines).unwrap().len() as u64;
        assert!(stored <= cap + 200, "{stored} bytes stored for a {cap} byte cap");
    }

    /// Escapes count: a line of quotes stores twice its length.
    #[test]
    fn escaped_lines_are_charged_what_they_store() {
        let cap = 16 * 1024;
        let mut log = JobLog::new(cap);
        for _ in 0..1000 {
            log.push(LogLevel::Info, LogSource::Plugin, "\"\u{1}".repeat(50));
        }
        let (lines, _) = log.finish();
        let stored = serde_json::to_string(&lines).unwrap().len() as u64;
        assert!(stored <= cap + 200, "{stored} bytes stored for a {cap} byte cap");
    }

    #[test]
    fn unterminated_output_is_kept() {
        let mut log = JobLog::new(1000);
        log.write_stream(LogSource::Stderr, b"panicked at x");
        assert!(log.stderr_text().contains("panicked at x"));
        let (lines, _) = log.finish();
        assert_eq!(lines[0].message, "panicked at x");
        assert_eq!(lines[0].source, LogSource::Stderr);
    }
}
