//! Time. Instants are UTC with whole-second precision (as Zendesk's API shows them).

use std::sync::atomic::{AtomicI64, Ordering};

pub use jiff::Timestamp;

/// Source of "now". Domain code never reads the system time directly.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The real clock, truncated to whole seconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        truncate(Timestamp::now())
    }
}

/// A clock tests can move.
#[derive(Debug)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    pub fn new(at: Timestamp) -> Self {
        FixedClock(AtomicI64::new(at.as_second()))
    }
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.as_second(), Ordering::SeqCst);
    }
    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        from_unix(self.0.load(Ordering::SeqCst))
    }
}

/// Drop sub-second precision.
pub fn truncate(t: Timestamp) -> Timestamp {
    from_unix(t.as_second())
}

/// Seconds since the epoch to a timestamp (clamped to jiff's range, never panics).
pub fn from_unix(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(if secs < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// Zendesk's rendering: `2026-11-23T12:00:00Z`.
pub fn format(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parse an ISO-8601 instant (`2026-11-23T12:00:00Z`, with offset, or a bare date as midnight UTC).
pub fn parse(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(truncate(t));
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    None
}

/// Serde adapter for `Timestamp` in Zendesk's format.
pub mod ts {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp: {s}")))
    }
}

/// Serde adapter for `Option<Timestamp>` in Zendesk's format.
pub mod ts_opt {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(*t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => parse(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp: {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_zendesk() {
        let t = parse("2026-11-23T12:34:56.789Z").unwrap();
        assert_eq!(format(t), "2026-11-23T12:34:56Z");
        assert_eq!(format(parse("2026-01-02").unwrap()), "2026-01-02T00:00:00Z");
        assert_eq!(
            format(parse("2026-01-02T01:00:00+01:00").unwrap()),
            "2026-01-02T00:00:00Z"
        );
        assert!(parse("yesterday").is_none());
    }

    #[test]
    fn fixed_clock_moves() {
        let c = FixedClock::new(parse("2026-01-01T00:00:00Z").unwrap());
        c.advance_secs(3600);
        assert_eq!(format(c.now()), "2026-01-01T01:00:00Z");
    }
}
