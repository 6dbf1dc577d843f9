//! The email channel's records and the pure parts of threading: attachments, the record kept
//! for every inbound message, the `[#123]` subject tag, and the shapes of the reply address and
//! Message-ID opsdesk sends (their signatures are checked in the app, which holds the key).

use serde::{Deserialize, Serialize};

use crate::clock::{ts, Timestamp};
use crate::model::Id;

/// A file attached to a comment: from an inbound message or the uploads API. The bytes live
/// beside the record in the store; `token` names the download URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: Id,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    /// Shown in the body (an inline image referred to by `cid:`), not listed as a file.
    #[serde(default)]
    pub inline: bool,
    #[serde(default)]
    pub content_id: Option<String>,
    /// The download URL's secret part.
    pub token: String,
    /// Set while the file is an upload not yet attached to a comment (`uploads` API).
    #[serde(default)]
    pub upload_token: Option<String>,
    #[serde(default)]
    pub uploader_id: Option<Id>,
    #[serde(default)]
    pub ticket_id: Option<Id>,
    #[serde(default)]
    pub comment_id: Option<Id>,
    /// Whether the comment it belongs to is public (end-users may download only those).
    #[serde(default = "yes")]
    pub public: bool,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
}

fn yes() -> bool {
    true
}

/// What became of an inbound message.
pub mod state {
    /// A new ticket was made from it.
    pub const TICKET: &str = "ticket";
    /// It was added to a ticket as a comment.
    pub const COMMENT: &str = "comment";
    /// It was added to a ticket as an internal note for review (a reply from someone who is
    /// not on the ticket).
    pub const NOTE: &str = "note";
    /// A delivery-status notification: recorded against the recipient that bounced.
    pub const BOUNCE: &str = "bounce";
    /// Bulk or list mail, or mail from this instance itself: kept, not turned into a ticket.
    pub const SUSPENDED: &str = "suspended";
    /// From an unknown sender while the instance accepts only known users.
    pub const REJECTED: &str = "rejected";
}

/// The record of one inbound message, unique by `message_key` (its Message-ID, or a hash of
/// the raw message when it has none), so a message ingested twice is recognised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundEmail {
    pub id: Id,
    pub message_key: String,
    /// Without angle brackets.
    pub message_id: Option<String>,
    /// One of [`state`].
    pub state: String,
    /// Why the message was handled as it was (threading rule, suspension cause).
    pub reason: String,
    pub ticket_id: Option<Id>,
    pub audit_id: Option<Id>,
    pub from_address: Option<String>,
    pub from_name: Option<String>,
    pub subject: String,
    #[serde(default)]
    pub recipients: Vec<String>,
    /// `auto_replied`, `bulk` or `bounce` when the message said it was automatic.
    #[serde(default)]
    pub auto: Option<String>,
    pub size: i64,
    /// For suspended mail: the text, so an agent can read it and recover it.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
}

/// The ticket id in a `[#123]` subject tag (the last one, as replies prefix their own).
pub fn subject_ticket_tag(subject: &str) -> Option<Id> {
    let mut found = None;
    let mut rest = subject;
    while let Some(i) = rest.find("[#") {
        let after = &rest[i + 2..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with(']') {
            if let Ok(id) = digits.parse::<Id>() {
                if id > 0 {
                    found = Some(id);
                }
            }
        }
        rest = after;
    }
    found
}

/// The ticket and signature in a reply address `local+id123-abcdef012345@domain`.
pub fn reply_token(address: &str) -> Option<(Id, &str)> {
    let local = address.split('@').next()?;
    let tag = local.split_once('+')?.1;
    let rest = tag.strip_prefix("id")?;
    let (id, sig) = rest.split_once('-')?;
    let id = id.parse::<Id>().ok().filter(|i| *i > 0)?;
    (!sig.is_empty() && sig.chars().all(|c| c.is_ascii_hexdigit())).then_some((id, sig))
}

/// The ticket, outbox message and signature of a Message-ID opsdesk sent:
/// `opsdesk.<ticket>.<message>.<signature>@domain` (without angle brackets).
pub fn own_message_id(id: &str) -> Option<(Id, Id, &str)> {
    let local = id.split('@').next()?;
    let mut parts = local.split('.');
    if parts.next()? != "opsdesk" {
        return None;
    }
    let ticket = parts.next()?.parse::<Id>().ok().filter(|i| *i > 0)?;
    let message = parts.next()?.parse::<Id>().ok()?;
    let sig = parts.next()?;
    (parts.next().is_none() && !sig.is_empty() && sig.chars().all(|c| c.is_ascii_hexdigit()))
        .then_some((ticket, message, sig))
}

/// Zendesk's Mail API for agents: `#status solved`, `#priority high`, `#type incident`,
/// `#tags a b`, `#public false` on the first lines of an agent's reply. Returns the commands
/// (name, value) and the text after them. Reading stops at the first line that is not a known
/// command, so a message starting with an ordinary `#` keeps it.
pub fn agent_commands(text: &str) -> (Vec<(String, String)>, String) {
    const KNOWN: &[&str] = &["status", "priority", "type", "tags", "public"];
    let mut commands = vec![];
    let mut rest = text;
    loop {
        let (line, after) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let l = line.trim();
        if l.is_empty() && !commands.is_empty() {
            rest = after;
            continue;
        }
        let Some(cmd) = l.strip_prefix('#') else {
            break;
        };
        let (name, value) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
        let name = name.to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) || commands.len() >= 10 {
            break;
        }
        commands.push((name, value.trim().to_string()));
        rest = after;
        if after.is_empty() {
            break;
        }
    }
    if commands.is_empty() {
        return (commands, text.to_string());
    }
    (commands, rest.trim().to_string())
}

/// The line placed above quoted history in notifications; text below it in a reply is dropped.
pub const REPLY_DELIMITER: &str = "##- Please type your reply above this line -##";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tags() {
        assert_eq!(subject_ticket_tag("Re: [#42] Cannot push"), Some(42));
        assert_eq!(subject_ticket_tag("Fwd: [#1] a [#77] b"), Some(77));
        assert_eq!(subject_ticket_tag("[#] [#x1] [#0] #5"), None);
        assert_eq!(subject_ticket_tag("[#12"), None);
        assert_eq!(subject_ticket_tag("[#99999999999999999999999]"), None);
        assert_eq!(subject_ticket_tag("résumé [#8] ünïcode"), Some(8));
    }

    #[test]
    fn reply_tokens() {
        assert_eq!(
            reply_token("support+id42-0123456789ab@opsdesk.test"),
            Some((42, "0123456789ab"))
        );
        assert_eq!(reply_token("support@opsdesk.test"), None);
        assert_eq!(reply_token("support+id42@opsdesk.test"), None);
        assert_eq!(reply_token("support+id0-ab@x"), None);
        assert_eq!(reply_token("support+idx-ab@x"), None);
        assert_eq!(reply_token("support+id4-zz@x"), None);
    }

    #[test]
    fn agent_commands_on_the_first_lines() {
        let (c, body) = agent_commands("#status solved\n#Tags fixed  upgraded\n\nAll done.\nBye");
        assert_eq!(
            c,
            vec![
                ("status".to_string(), "solved".to_string()),
                ("tags".to_string(), "fixed  upgraded".to_string())
            ]
        );
        assert_eq!(body, "All done.\nBye");
        let (c, body) = agent_commands("#1 priority is the runner\nthanks");
        assert!(c.is_empty());
        assert_eq!(body, "#1 priority is the runner\nthanks");
        let (c, body) = agent_commands("#public false");
        assert_eq!(c, vec![("public".to_string(), "false".to_string())]);
        assert_eq!(body, "");
        assert_eq!(agent_commands("").0, vec![]);
    }

    #[test]
    fn own_message_ids() {
        assert_eq!(
            own_message_id("opsdesk.42.7.abcdef@opsdesk.test"),
            Some((42, 7, "abcdef"))
        );
        assert_eq!(own_message_id("opsdesk.42.7@opsdesk.test"), None);
        assert_eq!(own_message_id("plain-1@customer.example"), None);
        assert_eq!(own_message_id("opsdesk.42.7.ab.cd@x"), None);
    }
}
