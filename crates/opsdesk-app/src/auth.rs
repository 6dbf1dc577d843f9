//! Authentication: API tokens (SHA-256 hashed; tokens are random and high-entropy) and
//! passwords (argon2id). Successful password checks are cached briefly so basic-auth clients
//! do not pay for argon2 on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use opsdesk_core::model::{Id, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{Actor, App, AppError, Result};

const CACHE_TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct AuthCache {
    /// sha256(email \0 password) -> (user id, password hash it was checked against, when)
    passwords: Mutex<HashMap<String, (Id, String, Instant)>>,
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random API token (40 url-safe characters).
pub fn new_token() -> String {
    let mut b = [0u8; 30];
    rand::thread_rng().fill_bytes(&mut b);
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    b.iter()
        .flat_map(|x| {
            [
                ALPHABET[(*x as usize) % 62],
                ALPHABET[(*x as usize / 2 + 7) % 62],
            ]
        })
        .take(40)
        .map(char::from)
        .collect()
}

pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("hashing password: {e}")))
}

/// An argon2 hash of a random password, to check against when there is no account.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password(&new_token()).unwrap_or_default())
}

fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Check a new password's strength (length only, as a floor).
pub fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < 8 {
        return Err(opsdesk_core::Invalid::one(
            "password",
            "InvalidValue",
            "Password: is too short (minimum is 8 characters)",
        )
        .into());
    }
    if password.len() > 1024 {
        return Err(opsdesk_core::Invalid::one(
            "password",
            "InvalidValue",
            "Password: is too long",
        )
        .into());
    }
    Ok(())
}

fn usable(user: User) -> Result<Actor> {
    if !user.active || user.suspended {
        return Err(AppError::Unauthorized);
    }
    Ok(Actor { user })
}

impl App {
    /// HTTP basic: `email/token:TOKEN` (username `email/token`, password the token) or
    /// `email:password`.
    pub async fn authenticate_basic(&self, username: &str, secret: &str) -> Result<Actor> {
        if let Some(email) = username.strip_suffix("/token") {
            let user = self.user_for_token(secret).await?;
            if !user
                .email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email.trim()))
            {
                return Err(AppError::Unauthorized);
            }
            return usable(user);
        }
        self.authenticate_password(username, secret).await
    }

    pub async fn authenticate_bearer(&self, token: &str) -> Result<Actor> {
        usable(self.user_for_token(token).await?)
    }

    async fn user_for_token(&self, token: &str) -> Result<User> {
        if token.is_empty() || token.len() > 200 {
            return Err(AppError::Unauthorized);
        }
        let mut c = self.store.read().await?;
        c.user_by_token_hash(&hash_token(token))
            .await?
            .ok_or(AppError::Unauthorized)
    }

    pub async fn authenticate_password(&self, email: &str, password: &str) -> Result<Actor> {
        if email.is_empty() || password.is_empty() || password.len() > 1024 {
            return Err(AppError::Unauthorized);
        }
        let key = hash_token(&format!(
            "{}\0{}",
            email.trim().to_ascii_lowercase(),
            password
        ));
        let mut c = self.store.read().await?;
        let auth = c.user_auth_by_email(email).await?;
        drop(c);
        let Some((auth, hash)) = auth.and_then(|a| a.password_hash.clone().map(|h| (a, h))) else {
            // Unknown address, or no password: spend the time a real check takes, so the
            // answer's timing does not tell which addresses have accounts.
            let pw = password.to_string();
            let _ = tokio::task::spawn_blocking(move || verify_password(&pw, dummy_hash())).await;
            return Err(AppError::Unauthorized);
        };
        let cached = {
            let m = self
                .auth_cache
                .passwords
                .lock()
                .map_err(|_| AppError::Internal("auth cache poisoned".into()))?;
            m.get(&key).is_some_and(|(id, h, at)| {
                *id == auth.user.id && *h == hash && at.elapsed() < CACHE_TTL
            })
        };
        if !cached {
            let (pw, h) = (password.to_string(), hash.clone());
            let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &h))
                .await
                .map_err(|e| AppError::Internal(e.to_string()))?;
            if !ok {
                return Err(AppError::Unauthorized);
            }
            let mut m = self
                .auth_cache
                .passwords
                .lock()
                .map_err(|_| AppError::Internal("auth cache poisoned".into()))?;
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(key, (auth.user.id, hash, Instant::now()));
        }
        usable(auth.user)
    }

    /// Create an API token for the user with this email; returns the token (shown once).
    pub async fn create_token(&self, email: &str, description: Option<&str>) -> Result<String> {
        let mut tx = self.store.write().await?;
        let user = tx.user_by_email(email).await?.ok_or(AppError::NotFound)?;
        let token = new_token();
        tx.insert_token(
            user.id,
            &hash_token(&token),
            description,
            self.now().as_second(),
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Set (or replace) a user's password. Admins may set anyone's; users their own.
    pub async fn set_password(
        &self,
        actor: Option<&Actor>,
        user_id: Id,
        password: &str,
    ) -> Result<()> {
        if let Some(a) = actor {
            a.require_admin()?;
        }
        self.store_password(user_id, password).await
    }

    /// A user changes their own password, proving the previous one.
    pub async fn change_own_password(
        &self,
        actor: &Actor,
        previous: &str,
        password: &str,
    ) -> Result<()> {
        let email = actor.user.email.clone().unwrap_or_default();
        if self.authenticate_password(&email, previous).await.is_err() {
            return Err(opsdesk_core::Invalid::one(
                "previous_password",
                "InvalidValue",
                "Previous password: is not correct",
            )
            .into());
        }
        self.store_password(actor.id(), password).await
    }

    async fn store_password(&self, user_id: Id, password: &str) -> Result<()> {
        check_password(password)?;
        let pw = password.to_string();
        let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??;
        let mut tx = self.store.write().await?;
        tx.set_password_hash(user_id, Some(&hash)).await?;
        // A new password ends the user's web sessions (the browser signs in again).
        tx.delete_sessions_of(user_id).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_hashed() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 40);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), a);
    }

    #[test]
    fn passwords_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
