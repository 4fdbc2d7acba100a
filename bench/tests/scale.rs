//! The harness's `scale` measure, run in CI: the harness binary drains no-op
//! jobs with 1, 2 and 3 runner processes (the test build of `runner`) on
//! one Redis, and prints how throughput grows and what each job costs
//! Redis and the runners in CPU. The figures in `docs/performance.md` are
//! the same measure on the release build (`cargo xtask bench --only
//! scale`); these, from a debug build with the rest of the suite running
//! beside it, are only printed.

use std::process::Command;

#[test]
fn the_scale_measure_drains_with_one_two_and_three_runners() {
    let harness = std::path::PathBuf::from(env!("CARGO_BIN_EXE_harness"));
    // `cargo test --workspace` builds every binary of the workspace into
    // the same folder.
    let runner = harness.with_file_name("runner");
    assert!(runner.exists(), "no runner binary beside the harness: {}", runner.display());
    let out = Command::new(&harness)
        .args(["--only", "scale", "--runs", "1", "--scale-jobs", "3000", "--runner"])
        .arg(&runner)
        .output()
        .expect("the harness runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the harness failed:\n{table}\n{}", String::from_utf8_lossy(&out.stderr));
    println!("{table}");
    for runners in ["1 runner:", "2 runners:", "3 runners:"] {
        let row = table
            .lines()
            .find(|l| l.contains(&format!("scale, {runners} drain")))
            .unwrap_or_else(|| panic!("no drain row for {runners} in\n{table}"));
        // | measure | unit | **median (min to max)** | ...: a rate, as
        // `1.23k` or `456`.
        let cell = row.split('|').nth(3).unwrap().trim().trim_matches('*');
        let median = cell.split_whitespace().next().unwrap();
        let (digits, scale) = match median.strip_suffix('k') {
            Some(d) => (d, 1e3),
            None => (median.strip_suffix('M').map_or(median, |d| d), if median.ends_with('M') { 1e6 } else { 1.0 }),
        };
        let rate: f64 = digits.parse::<f64>().unwrap_or_else(|_| panic!("not a rate: {row}")) * scale;
        assert!(rate > 0.0, "{row}");
    }
}
