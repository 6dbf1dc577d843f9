//! Web sign-ins: sessions (a cookie's token, stored as its SHA-256, with the session's CSRF
//! token) and one-time sign-in links.

use opsdesk_core::model::{Id, User};

use crate::db::{Conn, Val};
use crate::Result;

/// A live session: its user and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub user: User,
    pub csrf: String,
    pub expires_at: i64,
}

impl Conn {
    pub async fn insert_session(
        &mut self,
        token_hash: &str,
        user_id: Id,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO web_sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[Val::from(token_hash), Val::Int(user_id), Val::from(csrf), Val::Int(now), Val::Int(expires_at)],
        )
        .await?;
        Ok(())
    }

    /// The unexpired session with this token hash, with its user.
    pub async fn session_by_hash(
        &mut self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<WebSession>> {
        let row = self
            .opt(
                "SELECT u.id, u.data, s.csrf, s.expires_at FROM web_sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
                &[Val::from(token_hash), Val::Int(now)],
            )
            .await?;
        match row {
            Some(r) => Ok(Some(WebSession {
                user: crate::docs::decode(&r)?,
                csrf: r.str(2)?,
                expires_at: r.i64(3)?,
            })),
            None => Ok(None),
        }
    }

    pub async fn delete_session(&mut self, token_hash: &str) -> Result<bool> {
        Ok(self
            .exec(
                "DELETE FROM web_sessions WHERE token_hash = $1",
                &[Val::from(token_hash)],
            )
            .await?
            > 0)
    }

    /// End every session of a user (a password change or deactivation).
    pub async fn delete_sessions_of(&mut self, user_id: Id) -> Result<u64> {
        self.exec(
            "DELETE FROM web_sessions WHERE user_id = $1",
            &[Val::Int(user_id)],
        )
        .await
    }

    /// Forget expired sessions and sign-in links.
    pub async fn delete_expired_sessions(&mut self, now: i64) -> Result<u64> {
        let a = self
            .exec(
                "DELETE FROM web_sessions WHERE expires_at <= $1",
                &[Val::Int(now)],
            )
            .await?;
        let b = self
            .exec(
                "DELETE FROM login_links WHERE expires_at <= $1",
                &[Val::Int(now)],
            )
            .await?;
        Ok(a + b)
    }

    pub async fn insert_login_link(
        &mut self,
        token_hash: &str,
        user_id: Id,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO login_links (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            &[Val::from(token_hash), Val::Int(user_id), Val::Int(now), Val::Int(expires_at)],
        )
        .await?;
        Ok(())
    }

    /// Use a sign-in link: the user it was for, once, before it expires.
    pub async fn take_login_link(&mut self, token_hash: &str, now: i64) -> Result<Option<Id>> {
        let row = self
            .opt(
                "UPDATE login_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
                &[Val::from(token_hash), Val::Int(now)],
            )
            .await?;
        row.map(|r| r.i64(0)).transpose()
    }
}
