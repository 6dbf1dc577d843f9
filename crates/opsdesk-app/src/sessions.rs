//! Web sign-in: sessions behind a cookie, and one-time sign-in links by email
//! (docs/web.md). Only hashes of the secrets are stored; a session dies with its expiry,
//! sign-out, a password change, or its user's deactivation or suspension.

use opsdesk_core::model::{Id, User};
use opsdesk_core::outbox::OutboxItem;
use serde_json::json;

use crate::auth::{hash_token, new_token};
use crate::{Actor, App, AppError, Result};

/// How long a web session lasts after sign-in.
pub const SESSION_SECONDS: i64 = 7 * 24 * 3600;
/// How long a mailed sign-in link stays usable.
pub const LOGIN_LINK_SECONDS: i64 = 15 * 60;

/// A signed-in browser: the cookie's token (shown once) and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    pub expires_at: i64,
}

impl App {
    /// Sign in with email and password; a new session.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<(Actor, NewSession)> {
        let actor = self.authenticate_password(email, password).await?;
        let s = self.open_session(actor.id()).await?;
        Ok((actor, s))
    }

    async fn open_session(&self, user_id: Id) -> Result<NewSession> {
        let now = self.now().as_second();
        let s = NewSession {
            token: new_token(),
            csrf: new_token(),
            expires_at: now + SESSION_SECONDS,
        };
        let mut tx = self.store.write().await?;
        tx.delete_expired_sessions(now).await?;
        tx.insert_session(&hash_token(&s.token), user_id, &s.csrf, now, s.expires_at)
            .await?;
        tx.commit().await?;
        Ok(s)
    }

    /// The signed-in user of a session cookie and the session's CSRF token.
    pub async fn web_session(&self, token: &str) -> Result<(Actor, String)> {
        if token.is_empty() || token.len() > 200 {
            return Err(AppError::Unauthorized);
        }
        let mut c = self.store.read().await?;
        let s = c
            .session_by_hash(&hash_token(token), self.now().as_second())
            .await?
            .ok_or(AppError::Unauthorized)?;
        if !s.user.active || s.user.suspended {
            return Err(AppError::Unauthorized);
        }
        Ok((Actor { user: s.user }, s.csrf))
    }

    pub async fn sign_out(&self, token: &str) -> Result<()> {
        let mut tx = self.store.write().await?;
        tx.delete_session(&hash_token(token)).await?;
        tx.delete_expired_sessions(self.now().as_second()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Mail a one-time sign-in link to the active user with this email, if there is one.
    /// Answers the same whether or not there is (the form must not tell who has an account).
    pub async fn send_login_link(&self, email: &str) -> Result<()> {
        let email = email.trim();
        if email.is_empty() || email.len() > 320 {
            return Ok(());
        }
        let now = self.now();
        let mut tx = self.store.write().await?;
        let Some(user) = tx.user_by_email(email).await? else {
            return Ok(());
        };
        // Links are for customers: staff sign in with their password.
        if !user.active || user.suspended || user.role.is_staff() {
            return Ok(());
        }
        let token = new_token();
        let hash = hash_token(&token);
        tx.insert_login_link(
            &hash,
            user.id,
            now.as_second(),
            now.as_second() + LOGIN_LINK_SECONDS,
        )
        .await?;
        let url = format!(
            "{}/portal/link/{token}",
            self.public_url.trim_end_matches('/')
        );
        let text = format!(
            "Hello {},\n\nUse this link to sign in to the help desk. It works once, within {} minutes:\n\n{url}\n\n\
             If you did not ask for it, ignore this message.",
            user.name,
            LOGIN_LINK_SECONDS / 60
        );
        let mut it = OutboxItem::pending(
            "email",
            format!("login-link:{}", &hash[..32]),
            None,
            None,
            json!({
                "to": email,
                "to_name": user.name,
                "subject": "Your sign-in link",
                "text": text,
                "html": crate::html::text_to_html(&text),
            }),
            now,
        );
        tx.insert(&mut it).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Use a mailed sign-in link: a new session for its user (once).
    pub async fn redeem_login_link(&self, token: &str) -> Result<(Actor, NewSession)> {
        if token.is_empty() || token.len() > 200 {
            return Err(AppError::Unauthorized);
        }
        let mut tx = self.store.write().await?;
        let user_id = tx
            .take_login_link(&hash_token(token), self.now().as_second())
            .await?
            .ok_or(AppError::Unauthorized)?;
        tx.commit().await?;
        let mut c = self.store.read().await?;
        let user = c
            .get::<User>(user_id)
            .await?
            .ok_or(AppError::Unauthorized)?;
        drop(c);
        if !user.active || user.suspended || user.role.is_staff() {
            return Err(AppError::Unauthorized);
        }
        let s = self.open_session(user.id).await?;
        Ok((Actor { user }, s))
    }
}
