//! Per-node request limits: fixed one-minute windows per key (user, client address,
//! email). Shared by the API's rate limits and the web interface's sign-in limits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Fixed one-minute windows per user, like Zendesk's per-minute API limits. Per node: with
/// several nodes each enforces its own window.
pub struct RateLimiter<K = i64> {
    per_minute: u32,
    windows: Mutex<HashMap<K, (Instant, u32)>>,
}

/// The caller is over the limit; retry after this many seconds.
pub struct Limited {
    pub retry_after: u64,
    pub limit: u32,
}

impl<K: std::hash::Hash + Eq> RateLimiter<K> {
    /// Whether `key` is over the limit now, without counting.
    pub fn blocked(&self, key: &K) -> Option<Limited> {
        if self.per_minute == 0 {
            return None;
        }
        let now = Instant::now();
        let m = self.windows.lock().ok()?;
        let w = m.get(key)?;
        let age = now.duration_since(w.0);
        (age < Duration::from_secs(60) && w.1 >= self.per_minute).then(|| Limited {
            retry_after: Duration::from_secs(60).saturating_sub(age).as_secs().max(1),
            limit: self.per_minute,
        })
    }

    pub fn new(per_minute: u32) -> RateLimiter<K> {
        RateLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Count one request; `Ok(remaining)` or the time to wait.
    pub fn check(&self, user: K) -> Result<Option<u32>, Limited> {
        if self.per_minute == 0 {
            return Ok(None);
        }
        let now = Instant::now();
        let Ok(mut m) = self.windows.lock() else {
            return Ok(None);
        };
        if m.len() > 100_000 {
            m.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let w = m.entry(user).or_insert((now, 0));
        if now.duration_since(w.0) >= Duration::from_secs(60) {
            *w = (now, 0);
        }
        if w.1 >= self.per_minute {
            let left = Duration::from_secs(60).saturating_sub(now.duration_since(w.0));
            metrics::counter!("http_rate_limited_total").increment(1);
            return Err(Limited {
                retry_after: left.as_secs().max(1),
                limit: self.per_minute,
            });
        }
        w.1 += 1;
        Ok(Some(self.per_minute - w.1))
    }
}
