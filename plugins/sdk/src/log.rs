//! Log lines and progress for the current job. The host keeps them with the
//! job (capped by the operator's log limit); stdout and stderr land there too.

use crate::jobrunner::plugin::log::{self, Level};

pub fn debug(message: &str) {
    log::write(Level::Debug, message);
}

pub fn info(message: &str) {
    log::write(Level::Info, message);
}

pub fn warn(message: &str) {
    log::write(Level::Warn, message);
}

pub fn error(message: &str) {
    log::write(Level::Error, message);
}

/// Reports progress from 0 to 100.
pub fn progress(percent: u8) {
    log::progress(percent.min(100));
}
