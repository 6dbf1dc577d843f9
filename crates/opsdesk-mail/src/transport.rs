//! Outgoing mail over SMTP (lettre, rustls): `opsdesk serve --smtp-relay URL`, where URL is
//! `smtps://user:pass@host:465`, `smtp://host:587?tls=required` (STARTTLS) or `smtp://host:25`
//! (plain, for a relay on the same machine).

use std::future::Future;
use std::pin::Pin;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use opsdesk_app::mail::{Mailer, OutgoingMail, SendFailure};

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMailer {
    pub fn from_url(url: &str) -> Result<SmtpMailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("--smtp-relay {url:?}: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(30)))
            .build();
        Ok(SmtpMailer { transport })
    }
}

fn permanent(message: String) -> SendFailure {
    SendFailure {
        message,
        permanent: true,
    }
}

/// The lettre message for an outgoing mail.
pub fn build(m: &OutgoingMail) -> Result<Message, SendFailure> {
    let from: Mailbox = Mailbox::new(
        Some(m.from_name.clone()).filter(|n| !n.is_empty()),
        m.from
            .parse()
            .map_err(|e| permanent(format!("bad From address {}: {e}", m.from)))?,
    );
    let to = Mailbox::new(
        m.to_name.clone().filter(|n| !n.is_empty()),
        m.to.parse()
            .map_err(|e| permanent(format!("bad recipient address {}: {e}", m.to)))?,
    );
    let mut b = Message::builder()
        .from(from)
        .to(to)
        .subject(m.subject.clone())
        .message_id(Some(format!("<{}>", m.message_id)));
    if let Some(r) = &m.reply_to {
        b = b.reply_to(
            r.parse::<lettre::Address>()
                .map(|a| Mailbox::new(None, a))
                .map_err(|e| permanent(format!("bad Reply-To {r}: {e}")))?,
        );
    }
    if let Some(i) = &m.in_reply_to {
        b = b.in_reply_to(format!("<{i}>"));
    }
    if !m.references.is_empty() {
        let refs: Vec<String> = m.references.iter().map(|r| format!("<{r}>")).collect();
        b = b.references(refs.join(" "));
    }
    for (k, v) in &m.headers {
        let name = HeaderName::new_from_ascii(k.clone())
            .map_err(|_| permanent(format!("bad header name {k}")))?;
        b = b.raw_header(HeaderValue::new(name, v.clone()));
    }
    b.multipart(MultiPart::alternative_plain_html(
        m.text.clone(),
        m.html.clone(),
    ))
    .map_err(|e| permanent(format!("building the message: {e}")))
}

impl Mailer for SmtpMailer {
    fn send<'a>(
        &'a self,
        mail: &'a OutgoingMail,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendFailure>> + Send + 'a>> {
        Box::pin(async move {
            let msg = build(mail)?;
            match self.transport.send(msg).await {
                Ok(_) => Ok(()),
                Err(e) => Err(SendFailure {
                    permanent: e.is_permanent(),
                    message: if e.is_permanent() {
                        format!("refused by the relay: {e}")
                    } else {
                        format!("relay unavailable: {e}")
                    },
                }),
            }
        })
    }
}
