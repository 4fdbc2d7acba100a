//! `runner user hash`: prints the argon2id hash of a password, for a
//! `[[http.users]]` entry. The password is read from standard input (its
//! first line), never from the command line, where the shell's history and
//! the process list would keep it.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::io::BufRead;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Read a password from standard input and print its hash
    /// (`printf '%s' "$PASSWORD" | runner user hash`).
    Hash,
}

pub fn run(cmd: UserCommand) -> Result<ExitCode> {
    match cmd {
        UserCommand::Hash => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
            let password = line.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!("no password on standard input (printf '%s' \"$PASSWORD\" | runner user hash)");
            }
            if password.chars().count() < 12 {
                bail!("a password of fewer than 12 characters is too easy to guess; choose a longer one");
            }
            println!("{}", crate::passwords::hash_password(password)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
