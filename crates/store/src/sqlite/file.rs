//! `DatabaseFile`: the SQLite file a store opened, and whether its path still names that file
//! and may still be written. A fault found once stays until the process restarts.

use crate::StoreError;
use rustix::fs::{Access, AtFlags, CWD};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// How often the file is looked at when nothing else looks (the watcher). Every store call
/// looks too, so this bounds how late an idle node notices.
pub(super) const LOOK_INTERVAL: Duration = Duration::from_millis(250);

/// The file as it was when the store opened it.
#[derive(Debug)]
pub(crate) struct DatabaseFile {
    path: PathBuf,
    device: u64,
    inode: u64,
    /// Its birth time where the file system keeps one: a file made after a removal may get the
    /// freed inode number.
    born: Option<std::time::SystemTime>,
    fault: OnceLock<String>,
}

impl DatabaseFile {
    /// The file at `path` as it is now, just opened; `None` when no file is there (an
    /// in-memory database).
    pub(super) fn opened(path: &Path) -> Option<Arc<DatabaseFile>> {
        let path = std::path::absolute(path).ok()?;
        let metadata = std::fs::metadata(&path).ok()?;
        Some(Arc::new(DatabaseFile {
            path,
            device: metadata.dev(),
            inode: metadata.ino(),
            born: metadata.created().ok(),
            fault: OnceLock::new(),
        }))
    }

    /// `Gone` when the path no longer names the opened file or it cannot be written any more,
    /// now or at any earlier look. Costs a `stat` and three `faccessat` calls, no open: closing a
    /// descriptor of the file would drop SQLite's POSIX locks on it.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if let Some(reason) = self.fault.get() {
            return Err(StoreError::Gone(reason.clone()));
        }
        let Some(reason) = self.fault_now() else {
            return Ok(());
        };
        if self.fault.set(reason.clone()).is_ok() {
            // Logged once, by the look that found it. The path is the operator's configuration.
            tracing::error!(
                file = %self.path.display(),
                "{reason}: every database call fails from now on (readiness too); restore the \
                 file and restart patd"
            );
        }
        Err(StoreError::Gone(reason))
    }

    /// Looks at the file every `LOOK_INTERVAL` until the store is dropped, so that readiness
    /// fails and the error is logged even while no request comes.
    pub(super) fn watch(file: &Arc<DatabaseFile>) {
        let file: Weak<DatabaseFile> = Arc::downgrade(file);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(LOOK_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(file) = file.upgrade() else {
                    return;
                };
                if file.check().is_err() {
                    return;
                }
            }
        });
    }

    fn fault_now(&self) -> Option<String> {
        let path = self.path.display();
        let metadata = match std::fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Some(format!(
                    "the database file {path} was removed while patd ran"
                ));
            }
            Err(err) => {
                return Some(format!(
                    "the database file {path} cannot be looked at: {err}"
                ))
            }
        };
        if (metadata.dev(), metadata.ino(), metadata.created().ok())
            != (self.device, self.inode, self.born)
        {
            return Some(format!(
                "the database file {path} was replaced by another file while patd ran"
            ));
        }
        // An immutable (chattr +i) or read-only -shm makes SQLite's next write to its mapping a
        // SIGBUS, so this is looked at before SQLite is asked anything (SECURITY.md).
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            match rustix::fs::accessat(CWD, name.as_os_str(), Access::WRITE_OK, AtFlags::EACCESS) {
                Ok(()) => {}
                // SQLite makes the -wal and -shm files when it needs them.
                Err(rustix::io::Errno::NOENT) if !suffix.is_empty() => {}
                Err(errno) => {
                    let err = std::io::Error::from(errno);
                    return Some(format!(
                        "the database file {path}{suffix} can no longer be written ({err})"
                    ));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_or_replaced_file_is_a_fault_that_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patd.db");
        std::fs::write(&path, b"one").unwrap();
        let file = DatabaseFile::opened(&path).unwrap();
        assert!(file.check().is_ok());
        std::fs::remove_file(&path).unwrap();
        let removed = file.check().unwrap_err().to_string();
        assert!(
            removed.contains("was removed") && removed.contains("patd.db"),
            "{removed}"
        );
        std::fs::write(&path, b"two").unwrap();
        assert_eq!(
            file.check().unwrap_err().to_string(),
            removed,
            "the first fault stays"
        );

        let replaced = DatabaseFile::opened(&path).unwrap();
        let other = dir.path().join("other.db");
        std::fs::write(&other, b"three").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let fault = replaced.check().unwrap_err().to_string();
        assert!(fault.contains("was replaced"), "{fault}");
    }
}
