//! The harness's results as a Markdown table: each measure's median with
//! its min and max over the runs, BullMQ's beside it when it ran, the
//! ratio, and the target with whether it was met.

use crate::stats::{Runs, human};

/// Which way is better for a measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Better {
    Higher,
    Lower,
    /// Reported, with no target and no ratio.
    Neither,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub measure: String,
    pub unit: &'static str,
    pub runner: Runs,
    pub bullmq: Option<Runs>,
    pub better: Better,
    /// A bound the runner's median must meet (`≥` for Higher, `≤` for Lower).
    pub bound: Option<f64>,
    /// A least ratio over BullMQ (runner's advantage) the runner must meet.
    pub min_ratio: Option<f64>,
}

impl Row {
    pub fn new(measure: impl Into<String>, unit: &'static str, runner: Runs, better: Better) -> Row {
        Row { measure: measure.into(), unit, runner, bullmq: None, better, bound: None, min_ratio: None }
    }

    /// How many times better the runner's median is than BullMQ's.
    pub fn ratio(&self) -> Option<f64> {
        let b = self.bullmq?;
        match self.better {
            Better::Higher => Some(self.runner.median / b.median),
            Better::Lower => Some(b.median / self.runner.median),
            Better::Neither => None,
        }
    }

    /// Whether the runner's median meets the bound (`None`: no bound).
    fn bound_met(&self) -> Option<bool> {
        let b = self.bound?;
        Some(match self.better {
            Better::Lower => self.runner.median <= b,
            _ => self.runner.median >= b,
        })
    }

    /// Whether the ratio over BullMQ meets the least one (`None`: no such
    /// target; a target without BullMQ's side to compare is not missed).
    fn ratio_met(&self) -> Option<bool> {
        Some(self.ratio()? >= self.min_ratio?)
    }

    /// What this row missed, named, or `None` when it met every target.
    pub fn missed(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.bound_met() == Some(false) {
            let sign = if self.better == Better::Lower { "≤" } else { "≥" };
            parts.push(format!(
                "{} {} {} {} (median {})",
                self.measure,
                sign,
                human(self.bound.unwrap_or_default()),
                self.unit,
                human(self.runner.median)
            ));
        }
        if self.ratio_met() == Some(false) {
            parts.push(format!(
                "{}: ≥ {}× BullMQ (ratio {:.2}×)",
                self.measure,
                self.min_ratio.unwrap_or_default(),
                self.ratio().unwrap_or_default()
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    fn target(&self) -> String {
        let mut parts = Vec::new();
        if let (Some(b), Some(ok)) = (self.bound, self.bound_met()) {
            let sign = if self.better == Better::Lower { "≤" } else { "≥" };
            parts.push(format!("{sign} {} {}", human(b), mark(ok)));
        }
        if let Some(want) = self.min_ratio {
            match self.ratio_met() {
                Some(ok) => parts.push(format!("≥ {want}× BullMQ {}", mark(ok))),
                None => parts.push(format!("≥ {want}× BullMQ (not compared)")),
            }
        }
        parts.join(", ")
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The table, one row per measure.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| measure | unit | runner: median (min to max) | BullMQ: median (min to max) | ratio | target |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in rows {
        let bullmq = r.bullmq.map(|b| b.to_string()).unwrap_or_else(|| "—".into());
        let ratio = r.ratio().map(|x| format!("{x:.1}×")).unwrap_or_else(|| "—".into());
        out.push_str(&format!(
            "| {} | {} | **{}** | {} | {} | {} |\n",
            r.measure,
            r.unit,
            r.runner,
            bullmq,
            ratio,
            r.target()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_point_the_right_way_and_targets_are_checked() {
        let mut drain = Row::new("drain", "jobs/s", Runs::of(&[30e3, 33e3, 36e3]), Better::Higher);
        drain.bullmq = Some(Runs::of(&[10e3]));
        drain.min_ratio = Some(3.0);
        assert_eq!(drain.ratio(), Some(3.3));
        let mut p99 = Row::new("p99", "ms", Runs::of(&[1.0]), Better::Lower);
        p99.bullmq = Some(Runs::of(&[3.0]));
        p99.bound = Some(2.0);
        assert_eq!(p99.ratio(), Some(3.0));
        let table = markdown(&[drain, p99]);
        assert!(
            table.contains(
                "| drain | jobs/s | **33.0k (30.0k to 36.0k)** | 10.0k (10.0k to 10.0k) | 3.3× | ≥ 3× BullMQ met |"
            ),
            "{table}"
        );
        assert!(table.contains("≤ 2 met"), "{table}");
        let mut slow = Row::new("slow", "ms", Runs::of(&[9.0]), Better::Lower);
        slow.bound = Some(5.0);
        assert!(markdown(&[slow.clone()]).contains("≤ 5 MISSED"));
        assert_eq!(slow.missed().as_deref(), Some("slow ≤ 5 ms (median 9)"));
        assert_eq!(drain_missed(3.0, 10e3, 40e3).as_deref(), Some("d: ≥ 3× BullMQ (ratio 0.25×)"));
        assert_eq!(drain_missed(3.0, 40e3, 10e3), None);
        // No BullMQ side: not compared, so not missed.
        let mut alone = Row::new("d", "jobs/s", Runs::of(&[1.0]), Better::Higher);
        alone.min_ratio = Some(3.0);
        assert_eq!(alone.missed(), None);
    }

    fn drain_missed(min_ratio: f64, ours: f64, theirs: f64) -> Option<String> {
        let mut row = Row::new("d", "jobs/s", Runs::of(&[ours]), Better::Higher);
        row.bullmq = Some(Runs::of(&[theirs]));
        row.min_ratio = Some(min_ratio);
        row.missed()
    }
}
