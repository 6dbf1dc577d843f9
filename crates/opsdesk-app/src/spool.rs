//! The durable spool inbound mail is written to before it is acknowledged (docs/email.md).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The durable spool: a message is acknowledged (SMTP 250, exit 0, HTTP 202) only after it is
/// written here and synced; the ingest worker takes it from `new/` and removes it once the
/// database has it, so a message survives a crash or a database outage in between.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    seq: AtomicU64,
}

impl Spool {
    /// Open (and create) a spool directory with `tmp/`, `new/` and `failed/`.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        for sub in ["tmp", "new", "failed"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            seq: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write a message durably; returns its path in `new/`.
    pub fn accept(&self, raw: &[u8]) -> std::io::Result<PathBuf> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!(
            "{nanos:020}.{}.{}.{}.eml",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed),
            crate::attachments::random_token(8)
        );
        let tmp = self.dir.join("tmp").join(&name);
        let new = self.dir.join("new").join(&name);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(raw)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &new)?;
        // The rename is durable once the directory is synced.
        std::fs::File::open(self.dir.join("new"))?.sync_all()?;
        Ok(new)
    }

    /// Messages waiting, oldest first.
    pub fn pending(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.dir.join("new"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        v.sort();
        Ok(v)
    }

    /// A message the database now holds.
    pub fn done(&self, path: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// A message that can never be ingested: kept in `failed/` with the reason beside it.
    pub fn fail(&self, path: &Path, reason: &str) -> std::io::Result<()> {
        let Some(name) = path.file_name() else {
            return Ok(());
        };
        let to = self.dir.join("failed").join(name);
        std::fs::write(to.with_extension("reason"), reason)?;
        match std::fs::rename(path, &to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Remove files older than `age` from `tmp/`: writes a crash interrupted, which were never
    /// acknowledged.
    pub fn sweep_tmp(&self, age: std::time::Duration) {
        let Ok(dir) = std::fs::read_dir(self.dir.join("tmp")) else {
            return;
        };
        for e in dir.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|el| el > age);
            if old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// How many messages wait (for metrics and readiness).
    pub fn depth(&self) -> usize {
        self.pending().map(|v| v.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_is_durable_and_ordered() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("opsdesk-spool-{}", rand::random::<u32>()));
        let s = Spool::open(&dir)?;
        let a = s.accept(b"one")?;
        let b = s.accept(b"two")?;
        assert_eq!(s.pending()?, vec![a.clone(), b.clone()]);
        assert_eq!(std::fs::read(&a)?, b"one");
        s.done(&a)?;
        s.done(&a)?;
        s.fail(&b, "unreadable")?;
        assert!(s.pending()?.is_empty());
        assert_eq!(std::fs::read_dir(dir.join("failed"))?.count(), 2);
        std::fs::remove_dir_all(dir)
    }
}
