//! Attachments: uploads (`POST /api/v2/uploads`, then `comment.uploads: [token]`), the files of
//! inbound mail (stored the same way), and downloads for those allowed to see the comment.

use opsdesk_core::mail::Attachment;
use opsdesk_core::model::Id;
use opsdesk_core::ticket::{CommentInput, Ticket};
use opsdesk_core::Invalid;
use opsdesk_store::{Cond, Conn, Page, Val};
use serde_json::{json, Value};

use crate::{Actor, App, AppError, Result};

/// Zendesk's default per-file limit.
pub const DEFAULT_MAX_BYTES: usize = 20 * 1024 * 1024;
/// How long an upload token can be used (Zendesk: three days).
pub const UPLOAD_TTL_SECS: i64 = 3 * 24 * 3600;
/// The most files one comment may carry.
pub const MAX_PER_COMMENT: usize = 100;

/// A random token of `n` hex characters.
pub(crate) fn random_token(n: usize) -> String {
    let bytes: Vec<u8> = (0..n.div_ceil(2)).map(|_| rand::random::<u8>()).collect();
    let mut s = hex::encode(bytes);
    s.truncate(n);
    s
}

/// A file name safe to store and show: no path, no control characters, at most 255 chars.
pub fn clean_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let s: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let s = s.trim().trim_matches('.').to_string();
    if s.is_empty() {
        "attachment".into()
    } else {
        s
    }
}

/// The part of a content type worth keeping (`type/subtype`), or octet-stream.
pub fn clean_content_type(ct: &str) -> String {
    let t = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = t.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/+-.".contains(c))
    });
    if ok {
        t
    } else {
        "application/octet-stream".into()
    }
}

/// The files of an upload token (at most a comment's worth).
async fn upload_of(c: &mut Conn, token: &str) -> Result<Vec<Attachment>> {
    Ok(c.list(
        &[Cond::Eq("upload_token", Val::from(token))],
        &Page::All {
            limit: MAX_PER_COMMENT as i64,
        },
    )
    .await?
    .items)
}

impl App {
    /// An attachment as Zendesk renders it.
    pub fn attachment_json(&self, a: &Attachment) -> Value {
        let name = percent_encode(&a.file_name);
        let content_url = format!(
            "{}/attachments/token/{}/?name={name}",
            self.public_url, a.token
        );
        json!({
            "id": a.id,
            "url": format!("{}/api/v2/attachments/{}.json", self.public_url, a.id),
            "file_name": a.file_name,
            "content_url": content_url,
            "mapped_content_url": content_url,
            "content_type": a.content_type,
            "size": a.size,
            "width": null,
            "height": null,
            "inline": a.inline,
            "deleted": false,
            "malware_access_override": false,
            "malware_scan_result": "not_scanned",
            "thumbnails": [],
        })
    }

    /// Store a file as an upload; its `upload_token` attaches it to a comment. `existing`
    /// adds the file to an upload that already has files (Zendesk's `token` parameter).
    pub(crate) async fn store_upload(
        &self,
        tx: &mut Conn,
        uploader: Option<Id>,
        file_name: &str,
        content_type: &str,
        content: Vec<u8>,
        upload_token: &str,
        inline_cid: Option<&str>,
    ) -> Result<Attachment> {
        let mut a = Attachment {
            id: 0,
            file_name: clean_file_name(file_name),
            content_type: clean_content_type(content_type),
            size: content.len() as i64,
            inline: inline_cid.is_some(),
            content_id: inline_cid.map(str::to_string),
            token: random_token(32),
            upload_token: Some(upload_token.to_string()),
            uploader_id: uploader,
            ticket_id: None,
            comment_id: None,
            public: true,
            created_at: self.now(),
        };
        tx.insert_attachment(&mut a, content).await?;
        Ok(a)
    }

    /// `POST /api/v2/uploads?filename=…[&token=…]`: store one file; returns the upload token
    /// and the attachment.
    pub async fn upload(
        &self,
        actor: &Actor,
        file_name: &str,
        content_type: &str,
        content: Vec<u8>,
        token: Option<&str>,
    ) -> Result<(String, Attachment)> {
        let mut inv = Invalid::new();
        if file_name.trim().is_empty() {
            inv.blank("filename", "Filename");
        }
        if content.len() > self.max_attachment_bytes {
            inv.invalid(
                "file",
                "File",
                &format!(
                    "is too large ({} bytes; the limit is {} bytes)",
                    content.len(),
                    self.max_attachment_bytes
                ),
            );
        }
        inv.into_result()?;
        let mut tx = self.store.write().await?;
        let token = match token {
            Some(t) => {
                let files: Vec<Attachment> = upload_of(&mut tx, t).await?;
                match files.first() {
                    Some(f) if f.uploader_id == Some(actor.id()) => t.to_string(),
                    _ => return Err(AppError::NotFound),
                }
            }
            None => random_token(24),
        };
        let a = self
            .store_upload(
                &mut tx,
                Some(actor.id()),
                file_name,
                content_type,
                content,
                &token,
                None,
            )
            .await?;
        tx.commit().await?;
        Ok((token, a))
    }

    /// The files of an upload token.
    pub async fn upload_files(&self, token: &str) -> Result<Vec<Attachment>> {
        let mut c = self.store.read().await?;
        upload_of(&mut c, token).await
    }

    /// `DELETE /api/v2/uploads/{token}`: drop an upload not yet attached to a comment.
    pub async fn delete_upload(&self, actor: &Actor, token: &str) -> Result<()> {
        let mut tx = self.store.write().await?;
        let files: Vec<Attachment> = upload_of(&mut tx, token).await?;
        if files.is_empty() || files.iter().any(|f| f.uploader_id != Some(actor.id())) {
            return Err(AppError::NotFound);
        }
        for f in &files {
            tx.delete::<Attachment>(f.id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The attachments a comment's `uploads` tokens name, rendered for the comment. An unknown
    /// or used token, or someone else's upload, is refused.
    pub(crate) async fn comment_uploads(
        &self,
        tx: &mut Conn,
        actor: &Actor,
        c: &CommentInput,
        inv: &mut Invalid,
    ) -> Result<Vec<Value>> {
        let Some(tokens) = c.uploads.as_ref().filter(|u| !u.is_empty()) else {
            return Ok(vec![]);
        };
        let mut out = vec![];
        for t in tokens {
            let files: Vec<Attachment> = upload_of(tx, t.as_str()).await?;
            let mine = files
                .iter()
                .all(|f| f.uploader_id.is_none() || f.uploader_id == Some(actor.id()));
            let now = self.now().as_second();
            let fresh = files
                .iter()
                .all(|f| f.created_at.as_second() + UPLOAD_TTL_SECS > now);
            if files.is_empty() || !mine || !fresh {
                inv.invalid(
                    "comment",
                    "Uploads",
                    &format!("upload token {t} is unknown or already used"),
                );
            }
            out.extend(files.iter().map(|f| self.attachment_json(f)));
        }
        if out.len() > MAX_PER_COMMENT {
            inv.invalid(
                "comment",
                "Uploads",
                &format!("a comment may carry at most {MAX_PER_COMMENT} files"),
            );
        }
        Ok(out)
    }

    /// After a write: the uploads its comments carry now belong to those comments.
    pub(crate) async fn claim_uploads(
        &self,
        tx: &mut Conn,
        t: &Ticket,
        events: &[Value],
    ) -> Result<()> {
        for e in events {
            if e.get("type").and_then(Value::as_str) != Some("Comment") {
                continue;
            }
            let ids: Vec<Id> = e
                .get("attachments")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.get("id").and_then(Value::as_i64))
                        .collect()
                })
                .unwrap_or_default();
            if ids.is_empty() {
                continue;
            }
            let (Some(cid), public) = (
                e.get("id").and_then(Value::as_i64),
                e.get("public").and_then(Value::as_bool).unwrap_or(true),
            ) else {
                continue;
            };
            tx.attach_uploads(&ids, t.id, cid, public).await?;
        }
        Ok(())
    }

    /// `GET /api/v2/attachments/{id}`.
    pub async fn get_attachment(&self, actor: &Actor, id: Id) -> Result<Attachment> {
        let mut c = self.store.read().await?;
        let a: Attachment = c.get(id).await?.ok_or(AppError::NotFound)?;
        self.check_attachment_access(&mut c, actor, &a).await?;
        Ok(a)
    }

    /// The download behind a content URL: the record and its bytes, for someone who may see
    /// the comment it belongs to (or who uploaded it, before it is attached).
    pub async fn attachment_download(
        &self,
        actor: &Actor,
        token: &str,
    ) -> Result<(Attachment, Vec<u8>)> {
        let mut c = self.store.read().await?;
        let a: Attachment = c
            .find(&[Cond::Eq("token", Val::from(token))])
            .await?
            .ok_or(AppError::NotFound)?;
        self.check_attachment_access(&mut c, actor, &a).await?;
        let bytes = c
            .attachment_content(a.id)
            .await?
            .ok_or(AppError::NotFound)?;
        Ok((a, bytes))
    }

    async fn check_attachment_access(
        &self,
        c: &mut Conn,
        actor: &Actor,
        a: &Attachment,
    ) -> Result<()> {
        if actor.is_staff() {
            return Ok(());
        }
        let allowed = match a.ticket_id {
            None => a.uploader_id == Some(actor.id()),
            Some(tid) => {
                a.public
                    && match c.get::<Ticket>(tid).await? {
                        Some(t) => self.can_view(c, actor, &t).await?,
                        None => false,
                    }
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }
}

/// Percent-encode everything but unreserved characters (URL query values, RFC 5987 names).
pub fn percent_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types_are_cleaned() {
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("C:\\Users\\a\\report.csv"), "report.csv");
        assert_eq!(clean_file_name("a\u{0}b\r\n.txt"), "ab.txt");
        assert_eq!(clean_file_name(".."), "attachment");
        assert_eq!(clean_file_name("résumé.pdf"), "résumé.pdf");
        assert_eq!(clean_content_type("Image/PNG; name=x.png"), "image/png");
        assert_eq!(
            clean_content_type("text/html\"><script>"),
            "application/octet-stream"
        );
        assert_eq!(clean_content_type(""), "application/octet-stream");
        assert_eq!(percent_encode("r é.pdf"), "r%20%C3%A9.pdf");
    }
}
