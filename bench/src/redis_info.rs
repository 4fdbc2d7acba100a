//! What Redis counts about itself, read with `INFO`: the commands it has
//! run (those inside Lua scripts included), to report commands per job.

use anyhow::{Context, Result};

/// The sum of `calls=` over `INFO commandstats`.
pub fn command_calls(conn: &mut redis::Connection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).context("INFO commandstats")?;
    Ok(parse_calls(&info))
}

fn parse_calls(info: &str) -> u64 {
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| l.split_once(":calls=")?.1.split(',').next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn calls_are_summed_over_commands() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5\r\n\
                    cmdstat_zadd:calls=32,usec=1\r\ncmdstat_info:calls=1,usec=3\r\n";
        assert_eq!(super::parse_calls(info), 43);
    }
}
