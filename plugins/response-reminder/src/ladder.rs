//! The reminder ladder: when each step runs, in hours since the client wrote.

use std::time::Duration;

pub const DEFAULT_HOURS: &[u32] = &[8, 24, 48, 168];

#[derive(Debug, PartialEq, Eq)]
pub struct Ladder(Vec<u32>);

impl Ladder {
    /// Parses "8,24,48,168"; none gives the default. Rungs must rise strictly.
    pub fn parse(text: Option<&str>) -> Result<Ladder, String> {
        let Some(text) = text else {
            return Ok(Ladder(DEFAULT_HOURS.to_vec()));
        };
        let hours = text
            .split(',')
            .map(|h| h.trim().parse::<u32>().map_err(|_| format!("`{}` is not a whole number of hours", h.trim())))
            .collect::<Result<Vec<_>, _>>()?;
        if hours.is_empty() {
            return Err("the ladder is empty".into());
        }
        if hours.windows(2).any(|w| w[1] <= w[0]) {
            return Err(format!("rungs must rise strictly, got {text}"));
        }
        Ok(Ladder(hours))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Hours since the client wrote, at 1-based `step`.
    pub fn hours_at(&self, step: u32) -> u32 {
        self.0[step as usize - 1]
    }

    /// The delay from `step` to the next one, or none after the last.
    pub fn delay_after(&self, step: u32) -> Option<Duration> {
        let i = step as usize;
        (i < self.0.len()).then(|| Duration::from_secs(u64::from(self.0[i] - self.0[i - 1]) * 3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ladder_gaps() {
        let l = Ladder::parse(None).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l.delay_after(1), Some(Duration::from_secs(16 * 3600)));
        assert_eq!(l.delay_after(2), Some(Duration::from_secs(24 * 3600)));
        assert_eq!(l.delay_after(3), Some(Duration::from_secs(120 * 3600)));
        assert_eq!(l.delay_after(4), None);
        assert_eq!(l.hours_at(4), 168);
    }

    #[test]
    fn custom_and_invalid_ladders() {
        assert_eq!(Ladder::parse(Some("1, 2")).unwrap(), Ladder(vec![1, 2]));
        assert!(Ladder::parse(Some("8,8")).unwrap_err().contains("rise"));
        assert!(Ladder::parse(Some("8,x")).unwrap_err().contains("`x`"));
    }
}
