//! The inbound mail path on arbitrary bytes: MIME parsing, reply trimming and the threading
//! helpers never panic, and what they return stays within its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsdesk_core::mail::{own_message_id, reply_token, subject_ticket_tag};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = opsdesk_mail::parse(data) {
        assert!(p.recipients.len() <= 100 && p.files.len() <= 100);
        assert!(p.references.len() <= 100 && p.in_reply_to.len() <= 100);
        let _ = subject_ticket_tag(&p.subject);
        for r in &p.recipients {
            let _ = reply_token(r);
        }
        for r in p.in_reply_to.iter().chain(&p.references) {
            let _ = own_message_id(r);
        }
        let _ = opsdesk_mail::trim_reply(&p.text);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = opsdesk_mail::trim_reply(s);
        let _ = subject_ticket_tag(s);
    }
});
