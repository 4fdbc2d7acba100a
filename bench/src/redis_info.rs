//! What Redis counts about itself, read with `INFO`: the commands it has
//! run (those inside Lua scripts included), to report commands per job,
//! the CPU time it has used, to report Redis's CPU per job, and the memory
//! its data takes, to report Redis's memory per waiting job.

use anyhow::{Context, Result};

/// The sum of `calls=` over `INFO commandstats`.
pub fn command_calls(conn: &mut redis::Connection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).context("INFO commandstats")?;
    Ok(parse_calls(&info))
}

/// Seconds of CPU the server has used, user and system (`INFO cpu`).
pub fn cpu_seconds(conn: &mut redis::Connection) -> Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query(conn).context("INFO cpu")?;
    parse_cpu(&info).context("no used_cpu_user or used_cpu_sys in INFO cpu")
}

fn parse_cpu(info: &str) -> Option<f64> {
    Some(field(info, "used_cpu_user")? + field(info, "used_cpu_sys")?)
}

/// Bytes Redis has allocated (`used_memory` of `INFO memory`).
pub fn used_memory(conn: &mut redis::Connection) -> Result<f64> {
    let info: String = redis::cmd("INFO").arg("memory").query(conn).context("INFO memory")?;
    field(&info, "used_memory").context("no used_memory in INFO memory")
}

/// A `name:number` line of `INFO`.
fn field(info: &str, name: &str) -> Option<f64> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse::<f64>().ok())
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

    #[test]
    fn cpu_is_user_plus_system() {
        let info = "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\nused_cpu_sys_children:9.0\r\n";
        assert_eq!(super::parse_cpu(info), Some(3.75));
        assert_eq!(super::parse_cpu("# CPU\r\n"), None);
    }
}
