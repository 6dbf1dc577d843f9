//! Job leases (work one node at a time does, with its saved state) and job flags.

use serde_json::Value;

use crate::db::{Conn, Val};
use crate::{Result, StoreError};

/// A job lease: who holds it and the job's saved state.
#[derive(Debug, Clone)]
pub struct Lease {
    pub data: Value,
}

impl Conn {
    /// Take (or keep) the lease `name` for `holder` until `now + ttl`. Returns the job's saved
    /// state when the lease is ours, None when another holder's lease has not run out.
    pub async fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: i64,
        ttl: i64,
    ) -> Result<Option<Lease>> {
        self.exec(
            "INSERT INTO job_leases (name, holder, expires_at, data) VALUES ($1, '', 0, '{}') \
             ON CONFLICT (name) DO NOTHING",
            &[Val::from(name)],
        )
        .await?;
        let n = self
            .exec(
                "UPDATE job_leases SET holder = $2, expires_at = $3 \
                 WHERE name = $1 AND (holder = $2 OR expires_at < $4)",
                &[
                    Val::from(name),
                    Val::from(holder),
                    Val::Int(now + ttl),
                    Val::Int(now),
                ],
            )
            .await?;
        if n == 0 {
            return Ok(None);
        }
        let r = self
            .one(
                "SELECT data FROM job_leases WHERE name = $1",
                &[Val::from(name)],
            )
            .await?;
        Ok(Some(Lease { data: r.json(0)? }))
    }

    /// Save a job's state under its lease (fails with Conflict if the lease was lost).
    pub async fn save_lease(&mut self, name: &str, holder: &str, data: &Value) -> Result<()> {
        let n = self
            .exec(
                "UPDATE job_leases SET data = $3 WHERE name = $1 AND holder = $2",
                &[
                    Val::from(name),
                    Val::from(holder),
                    Val::Text(data.to_string()),
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("lease {name} lost")));
        }
        Ok(())
    }

    /// Give the lease up (the saved state stays).
    pub async fn release_lease(&mut self, name: &str, holder: &str) -> Result<()> {
        self.exec(
            "UPDATE job_leases SET expires_at = 0 WHERE name = $1 AND holder = $2",
            &[Val::from(name), Val::from(holder)],
        )
        .await?;
        Ok(())
    }

    /// Raise a flag for a job (e.g. "run now"), whoever holds its lease.
    pub async fn raise_job_flag(&mut self, name: &str) -> Result<()> {
        self.exec(
            "INSERT INTO job_leases (name, holder, expires_at, data) VALUES ($1, '', 0, '{\"raised\":true}') \
             ON CONFLICT (name) DO UPDATE SET data = excluded.data",
            &[Val::from(name)],
        )
        .await?;
        Ok(())
    }

    /// Lower a job's flag; true when it was raised.
    pub async fn take_job_flag(&mut self, name: &str) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE job_leases SET data = '{}' WHERE name = $1 AND data <> '{}'",
                &[Val::from(name)],
            )
            .await?;
        Ok(n > 0)
    }

    /// Whether a job's flag is raised (without lowering it).
    pub async fn job_flag(&mut self, name: &str) -> Result<bool> {
        Ok(self
            .opt(
                "SELECT 1 FROM job_leases WHERE name = $1 AND data <> '{}'",
                &[Val::from(name)],
            )
            .await?
            .is_some())
    }

    /// The saved state of a job (for status endpoints), without taking its lease.
    pub async fn lease_data(&mut self, name: &str) -> Result<Option<(String, i64, Value)>> {
        match self
            .opt(
                "SELECT holder, expires_at, data FROM job_leases WHERE name = $1",
                &[Val::from(name)],
            )
            .await?
        {
            Some(r) => Ok(Some((r.str(0)?, r.i64(1)?, r.json(2)?))),
            None => Ok(None),
        }
    }
}
