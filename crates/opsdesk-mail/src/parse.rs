//! Raw MIME to [`ParsedEmail`]: addresses, threading headers, the new text of a reply (quoted
//! history trimmed), files, and whether the message was automatic. Never panics on any input
//! (a fuzz target checks); a message that is not mail at all is a [`ParseError`].

use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};
use opsdesk_app::mail::{AutoKind, MailFile, ParsedEmail, LOOP_HEADER};
use opsdesk_core::mail::REPLY_DELIMITER;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the message has no headers or body that can be read as mail")]
    NotMail,
}

/// The most recipients, references and files kept from one message.
const MAX_LIST: usize = 100;

fn clean_id(s: &str) -> Option<String> {
    let t = s
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!t.is_empty() && t.len() <= 250 && !t.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then(|| t.to_string())
}

fn id_list(v: &HeaderValue) -> Vec<String> {
    let mut out: Vec<String> = match v {
        HeaderValue::Text(t) => t.split_whitespace().filter_map(clean_id).collect(),
        HeaderValue::TextList(l) => l
            .iter()
            .flat_map(|t| t.split_whitespace())
            .filter_map(clean_id)
            .collect(),
        _ => vec![],
    };
    out.truncate(MAX_LIST);
    out
}

fn addresses(a: Option<&Address>) -> Vec<(String, Option<String>)> {
    let Some(a) = a else { return vec![] };
    let list: Vec<&mail_parser::Addr> = match a {
        Address::List(l) => l.iter().collect(),
        Address::Group(g) => g.iter().flat_map(|g| g.addresses.iter()).collect(),
    };
    list.into_iter()
        .filter_map(|x| {
            let addr = x.address.as_deref()?.trim().to_lowercase();
            (!addr.is_empty() && addr.contains('@')).then(|| {
                (
                    addr,
                    x.name
                        .as_deref()
                        .map(|n| n.trim().trim_matches('"').trim().to_string())
                        .filter(|n| !n.is_empty()),
                )
            })
        })
        .take(MAX_LIST)
        .collect()
}

fn header_text<'a>(m: &'a mail_parser::Message<'a>, name: &'a str) -> Option<&'a str> {
    m.header_raw(name).map(str::trim)
}

/// Parse a raw message.
pub fn parse(raw: &[u8]) -> Result<ParsedEmail, ParseError> {
    let m = MessageParser::default()
        .parse(raw)
        .ok_or(ParseError::NotMail)?;
    if m.headers().is_empty() {
        return Err(ParseError::NotMail);
    }
    let from = addresses(m.from())
        .into_iter()
        .next()
        .or_else(|| addresses(m.sender()).into_iter().next());
    let mut cc = addresses(m.to());
    cc.extend(addresses(m.cc()));
    let mut recipients: Vec<String> = cc.iter().map(|(a, _)| a.clone()).collect();
    for h in m.headers() {
        let n = h.name().to_ascii_lowercase();
        if n == "delivered-to" || n == "x-original-to" {
            if let Some(v) = raw_header_value(raw, h.offset_start(), h.offset_end()) {
                for a in v.split(',') {
                    let a = a
                        .trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_lowercase();
                    if a.contains('@') && !recipients.contains(&a) {
                        recipients.push(a);
                    }
                }
            }
        }
    }
    recipients.truncate(MAX_LIST);
    let subject = m.subject().unwrap_or("").trim().to_string();
    let auto = classify(&m, from.as_ref().map(|f| f.0.as_str()));
    let (bounced, bounced_message_ids) = if auto == Some(AutoKind::Bounce) {
        (bounced_recipients(&m), returned_message_ids(raw))
    } else {
        (vec![], vec![])
    };
    let full = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let text = trim_reply(&full);
    let mut files = vec![];
    for part in m.attachments().take(MAX_LIST) {
        let content: Vec<u8> = match &part.body {
            PartType::Message(_) => raw
                .get(part.offset_body as usize..part.offset_end as usize)
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            PartType::Text(t) | PartType::Html(t) => t.as_bytes().to_vec(),
            PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
            PartType::Multipart(_) => continue,
        };
        let ct = part
            .content_type()
            .map(|c| match c.subtype() {
                Some(s) => format!("{}/{}", c.ctype(), s),
                None => c.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        let disposition_inline = part.content_disposition().is_some_and(|d| d.is_inline());
        let explicit_attachment = part
            .content_disposition()
            .is_some_and(|d| d.is_attachment());
        let inline_cid = part
            .content_id()
            .and_then(clean_id)
            .filter(|_| !explicit_attachment || disposition_inline);
        let name = part
            .attachment_name()
            .map(str::to_string)
            .unwrap_or_else(|| match ct.as_str() {
                "message/rfc822" => "forwarded-message.eml".into(),
                "message/delivery-status" => "delivery-status.txt".into(),
                "text/rfc822-headers" => "headers.txt".into(),
                _ => format!("attachment.{}", ct.rsplit('/').next().unwrap_or("bin")),
            });
        files.push(MailFile {
            file_name: name,
            content_type: ct,
            content,
            inline_cid,
        });
    }
    let loop_id = header_text(&m, LOOP_HEADER).map(str::to_string);
    Ok(ParsedEmail {
        message_id: m.message_id().and_then(clean_id),
        in_reply_to: id_list(m.in_reply_to()),
        references: id_list(m.references()),
        from_address: from.as_ref().map(|f| f.0.clone()),
        from_name: from.and_then(|f| f.1),
        recipients,
        cc,
        subject,
        text,
        files,
        auto,
        bounced,
        bounced_message_ids,
        loop_id,
        raw_sha256: content_hash(raw),
        size: raw.len(),
    })
}

/// SHA-256 of a message without its transport headers (Received, Delivered-To, X-Original-To,
/// Return-Path): what identifies a message without a Message-ID when an MTA delivers it again,
/// with a new Received line, after losing our 250.
fn content_hash(raw: &[u8]) -> String {
    const TRANSPORT: &[&[u8]] = &[
        b"received:",
        b"delivered-to:",
        b"x-original-to:",
        b"return-path:",
    ];
    let mut h = Sha256::new();
    let mut rest = raw;
    let mut skipping = false;
    loop {
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        let blank = line == b"\r\n" || line == b"\n" || line.is_empty();
        if blank {
            // The end of the header: the rest is the body.
            h.update(rest);
            break;
        }
        let continuation = line[0] == b' ' || line[0] == b'\t';
        if !continuation {
            let lower: Vec<u8> = line.iter().take(16).map(u8::to_ascii_lowercase).collect();
            skipping = TRANSPORT.iter().any(|t| lower.starts_with(t));
        }
        if !skipping {
            h.update(line);
        }
        rest = &rest[end..];
    }
    hex::encode(h.finalize())
}

/// The unparsed value of a header between its offsets (for headers mail-parser does not know).
fn raw_header_value(raw: &[u8], start: u32, end: u32) -> Option<String> {
    let bytes = raw.get(start as usize..end as usize)?;
    Some(String::from_utf8_lossy(bytes).trim().to_string())
}

/// Why a message was automatic: a bounce, an auto-reply, or bulk mail (in that order: an
/// out-of-office reply that also says `Precedence: bulk` is still an auto-reply to a ticket).
fn classify(m: &mail_parser::Message, from: Option<&str>) -> Option<AutoKind> {
    let local = from
        .and_then(|f| f.split('@').next())
        .unwrap_or("")
        .to_ascii_lowercase();
    let report = m.content_type().is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case("multipart")
            && c.subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && c.attribute("report-type")
                .is_some_and(|r| r.eq_ignore_ascii_case("delivery-status"))
    });
    if report || local == "mailer-daemon" || local == "postmaster" {
        return Some(AutoKind::Bounce);
    }
    let h = |n: &str| header_text(m, n).map(|v| v.to_ascii_lowercase());
    if h("auto-submitted").is_some_and(|v| !v.starts_with("no"))
        || h("x-autoreply").is_some()
        || h("x-autorespond").is_some()
        || h("x-autogenerated").is_some_and(|v| v.contains("reply"))
    {
        return Some(AutoKind::AutoReplied);
    }
    if h("precedence").is_some_and(|v| matches!(v.as_str(), "bulk" | "junk" | "list"))
        || h("list-id").is_some()
        || h("list-unsubscribe").is_some()
    {
        return Some(AutoKind::Bulk);
    }
    None
}

/// The Message-IDs in a delivery report's returned message or headers (every `Message-ID:`
/// line after the report's own header block).
fn returned_message_ids(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let body = match text.find("\r\n\r\n").or_else(|| text.find("\n\n")) {
        Some(i) => &text[i..],
        None => return vec![],
    };
    let mut out: Vec<String> = body
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("message-id")
                .then(|| clean_id(v))
                .flatten()
        })
        .collect();
    out.truncate(MAX_LIST);
    out
}

/// The failed recipients of a delivery-status notification.
fn bounced_recipients(m: &mail_parser::Message) -> Vec<String> {
    let mut out = vec![];
    if let Some(v) = header_text(m, "X-Failed-Recipients") {
        out.extend(v.split(',').map(|a| a.trim().to_lowercase()));
    }
    for part in m.parts.iter() {
        let is_status = part.content_type().is_some_and(|c| {
            c.ctype().eq_ignore_ascii_case("message")
                && c.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("delivery-status"))
        });
        if !is_status {
            continue;
        }
        let text = String::from_utf8_lossy(part.contents()).into_owned();
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("final-recipient")
                || k.trim().eq_ignore_ascii_case("original-recipient")
            {
                let addr = v.rsplit(';').next().unwrap_or("").trim().to_lowercase();
                if addr.contains('@') {
                    out.push(addr);
                }
            }
        }
    }
    out.retain(|a| a.contains('@'));
    out.sort();
    out.dedup();
    out.truncate(MAX_LIST);
    out
}

/// The new text of a reply: everything before opsdesk's reply delimiter, a client's "On …
/// wrote:" line, an Outlook header block (`From:` then `Sent:`) or "Original Message"
/// separator, and trailing `>` quotes. A forwarded message's body is kept: it is the content.
/// When trimming would leave nothing, the whole text is kept.
pub fn trim_reply(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let lines: Vec<&str> = text.lines().collect();
    let mut cut = lines.len();
    let mut forwarded = false;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let lower = t.to_lowercase();
        if lower.contains("forwarded message") || lower.starts_with("begin forwarded message") {
            forwarded = true;
        }
        if t.contains(REPLY_DELIMITER) {
            cut = i;
            break;
        }
        if forwarded {
            continue;
        }
        if is_wrote_line(t)
            || (i + 1 < lines.len()
                && is_wrote_line(&format!("{t} {}", lines[i + 1].trim()))
                && !t.starts_with('>'))
        {
            cut = i;
            break;
        }
        if lower.starts_with("-----original message-----")
            || lower.starts_with("----- original message -----")
        {
            cut = i;
            break;
        }
        if (lower.starts_with("from:") || lower.starts_with("*from:*"))
            && lines[i + 1..].iter().take(3).any(|l| {
                let l = l.trim().to_lowercase();
                l.starts_with("sent:") || l.starts_with("*sent:*")
            })
        {
            // An Outlook reply header; a line of underscores above it goes too.
            cut = if i > 0
                && lines[i - 1].trim().chars().all(|c| c == '_')
                && !lines[i - 1].trim().is_empty()
            {
                i - 1
            } else {
                i
            };
            break;
        }
    }
    let mut kept: Vec<&str> = lines[..cut].to_vec();
    // Trailing quoted lines and blank lines.
    while let Some(last) = kept.last() {
        let l = last.trim();
        if l.is_empty() || (l.starts_with('>') && !forwarded) {
            kept.pop();
        } else {
            break;
        }
    }
    let out = kept.join("\n").trim().to_string();
    if out.is_empty() {
        text.trim().to_string()
    } else {
        out
    }
}

/// "On Mon, Nov 30, 2026 at 10:00 AM Support <support@x> wrote:" and its translations.
fn is_wrote_line(t: &str) -> bool {
    let l = t.to_lowercase();
    let starts = ["on ", "le ", "am ", "el ", "il ", "op ", "em "];
    let ends = [
        "wrote:",
        "a écrit :",
        "a écrit:",
        "schrieb:",
        "escribió:",
        "ha scritto:",
        "schreef:",
        "escreveu:",
    ];
    starts.iter().any(|s| l.starts_with(s)) && ends.iter().any(|e| l.ends_with(e)) && l.len() < 400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_replies() {
        assert_eq!(
            trim_reply("Thanks, that worked.\n\nOn Mon, Nov 30, 2026 at 10:00 AM Support <s@x> wrote:\n> old\n> older"),
            "Thanks, that worked."
        );
        // A wrapped "wrote:" line.
        assert_eq!(
            trim_reply(
                "New.\nOn Mon, Nov 30, 2026 at 10:00 AM Support <\nsupport@x> wrote:\n> old"
            ),
            "New."
        );
        assert_eq!(
            trim_reply("Above\n##- Please type your reply above this line -##\nbelow"),
            "Above"
        );
        assert_eq!(
            trim_reply("Hi\r\n\r\n________________________________\r\nFrom: Support <s@x>\r\nSent: Monday\r\nTo: me\r\n\r\nold"),
            "Hi"
        );
        assert_eq!(trim_reply("Hi\n-----Original Message-----\nold"), "Hi");
        assert_eq!(trim_reply("Hi there\n> quoted\n>\n> more\n"), "Hi there");
        // Nothing left: keep it all.
        assert_eq!(trim_reply("> only quotes"), "> only quotes");
        // A forwarded message is content.
        let fwd = "FYI\n\n---------- Forwarded message ---------\nFrom: Dave <d@x>\nDate: Mon\nSubject: VPN\nTo: c@x\n\nThe VPN drops";
        assert_eq!(trim_reply(fwd), fwd);
        // "on" at the start of a normal line is not a quote header.
        assert_eq!(
            trim_reply("On second thought it works.\nThanks"),
            "On second thought it works.\nThanks"
        );
    }

    #[test]
    fn the_content_hash_ignores_transport_headers() {
        let a =
            b"Received: from a by b; Mon\r\n  continued\r\nFrom: x@y\r\nSubject: s\r\n\r\nbody\r\n";
        let b = b"Delivered-To: s@d\r\nReceived: from c by d; Tue\r\nFrom: x@y\r\nSubject: s\r\n\r\nbody\r\n";
        let c = b"From: x@y\r\nSubject: s\r\n\r\nbody!\r\n";
        assert_eq!(content_hash(a), content_hash(b));
        assert_ne!(content_hash(a), content_hash(c));
        assert_eq!(content_hash(b""), content_hash(b""));
    }

    #[test]
    fn not_mail_is_an_error_and_nothing_panics() {
        assert!(parse(b"").is_err());
        for junk in [
            &b"\x00\x01\x02"[..],
            b"From: <>\r\n\r\n",
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x--",
            b"Subject: =?utf-8?B?////?=\r\n\r\nhi",
        ] {
            let _ = parse(junk);
        }
    }
}
