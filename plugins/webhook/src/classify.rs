//! What a receiver's status code means for the job.

use std::time::{Duration, SystemTime};

/// The longest Retry-After honoured; a longer one is clamped, so a receiver
/// cannot park a job for weeks.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retry,
    RetryAfter(Duration),
    Permanent,
}

pub fn classify(status: u16, retry_after: Option<&str>, now: SystemTime) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        429 | 503 => match retry_after.and_then(|v| parse_retry_after(v, now)) {
            Some(delay) => Verdict::RetryAfter(delay.min(MAX_RETRY_AFTER)),
            None => Verdict::Retry,
        },
        408 => Verdict::Retry,
        400..=499 => Verdict::Permanent,
        // 5xx, and anything else unexpected (1xx, 3xx: redirects are not
        // followed), may well change later.
        _ => Verdict::Retry,
    }
}

/// Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        let now = SystemTime::now();
        assert_eq!(classify(200, None, now), Verdict::Delivered);
        assert_eq!(classify(204, None, now), Verdict::Delivered);
        assert_eq!(classify(400, None, now), Verdict::Permanent);
        assert_eq!(classify(404, None, now), Verdict::Permanent);
        assert_eq!(classify(410, None, now), Verdict::Permanent);
        assert_eq!(classify(408, None, now), Verdict::Retry);
        assert_eq!(classify(429, None, now), Verdict::Retry);
        assert_eq!(classify(500, None, now), Verdict::Retry);
        assert_eq!(classify(502, Some("7"), now), Verdict::Retry);
        assert_eq!(classify(503, Some("7"), now), Verdict::RetryAfter(Duration::from_secs(7)));
        assert_eq!(classify(429, Some("120"), now), Verdict::RetryAfter(Duration::from_secs(120)));
        assert_eq!(classify(429, Some("99999999"), now), Verdict::RetryAfter(MAX_RETRY_AFTER));
        assert_eq!(classify(429, Some("soon"), now), Verdict::Retry);
    }

    #[test]
    fn retry_after_as_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now), Some(Duration::from_secs(60)));
        // A date in the past means "now".
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
    }
}
