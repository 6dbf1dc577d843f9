//! opsdesk domain: types, validation and the ticket projection.
//!
//! Pure: no IO, no async, no system clock. Time comes in through [`Clock`].

pub mod business_hours;
pub mod clock;
pub mod error;
pub mod fields;
pub mod kpi;
pub mod mail;
pub mod model;
pub mod outbox;
pub mod placeholders;
pub mod rules;
pub mod search;
pub mod sla;
pub mod ticket;
pub mod ticket_metrics;

pub use clock::{Clock, FixedClock, SystemClock, Timestamp};
pub use error::{DomainError, FieldError, Invalid};
