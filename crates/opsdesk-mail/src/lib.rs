//! The email channel's edges: MIME parsing and quoted-reply trimming ([`parse`]), the SMTP
//! listener ([`smtp`]), the worker that ingests the spool ([`ingest`]) and outgoing SMTP
//! ([`transport`]). What a message does to tickets is decided in `opsdesk_app::mail`.

pub mod ingest;
pub mod parse;
pub mod smtp;
pub mod transport;

pub use parse::{parse, trim_reply, ParseError};
