//! The development transport: each message becomes an `.eml` file that any
//! mail client opens. Written to a temporary name and renamed, so a reader
//! never sees half a message.

use super::SendError;
use lettre::Message;
use std::path::{Path, PathBuf};

pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: PathBuf) -> Self {
        Outbox { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub async fn deliver(&self, message: &Message) -> Result<String, SendError> {
        let transient = |e: std::io::Error| SendError::Transient(format!("outbox {}: {e}", self.dir.display()));
        tokio::fs::create_dir_all(&self.dir).await.map_err(transient)?;
        let name = format!("{}.eml", ulid::Ulid::new());
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        tokio::fs::write(&tmp, message.formatted()).await.map_err(transient)?;
        tokio::fs::rename(&tmp, &path).await.map_err(transient)?;
        Ok(path.display().to_string())
    }
}
