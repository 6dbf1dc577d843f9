//! The inbound SMTP listener (`opsdesk serve --smtp-listen 127.0.0.1:2525`): ESMTP with
//! PIPELINING, SIZE, 8BITMIME, SMTPUTF8 and STARTTLS when a certificate is configured.
//! Recipients are checked against the support addresses at RCPT; a message is answered 250
//! only after it is written to the spool and synced, so an acknowledged message is never
//! lost. The database is not touched here: ingest runs from the spool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use opsdesk_app::App;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// The listener's settings.
#[derive(Clone)]
pub struct SmtpConfig {
    /// The name in the greeting and EHLO answer.
    pub hostname: String,
    /// The largest message accepted, in bytes (SIZE).
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    pub max_connections: usize,
    /// Connections one client address may hold at once (the rest get 421), so one client
    /// cannot take every slot.
    pub max_connections_per_ip: usize,
    /// Idle time before a session is closed.
    pub idle_timeout: Duration,
    /// STARTTLS, when a certificate and key are configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            hostname: "opsdesk".into(),
            max_message_bytes: 35 * 1024 * 1024,
            max_recipients: 100,
            max_connections: 256,
            max_connections_per_ip: 32,
            idle_timeout: Duration::from_secs(300),
            tls: None,
        }
    }
}

/// A TLS acceptor from PEM files.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("reading {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading {}: {e}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("reading {}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let cfg = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Accept SMTP sessions until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    cfg: SmtpConfig,
    app: App,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let per_ip: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>> =
        Arc::default();
    let cfg = Arc::new(cfg);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let (mut sock, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "smtp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let _ = sock
                .write_all(b"421 4.7.0 Too many connections, try again later\r\n")
                .await;
            continue;
        };
        let Some(ip_slot) = IpSlot::take(&per_ip, peer.ip(), cfg.max_connections_per_ip) else {
            let _ = sock
                .write_all(b"421 4.7.0 Too many connections from your address\r\n")
                .await;
            continue;
        };
        let app = app.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ip_slot = ip_slot;
            let _ = sock.set_nodelay(true);
            match session(sock, &cfg, &app, peer, false).await {
                Ok(Some(plain)) => {
                    let Some(tls) = cfg.tls.clone() else { return };
                    match tls.accept(plain).await {
                        Ok(s) => {
                            if let Err(e) = session(s, &cfg, &app, peer, true).await {
                                tracing::debug!(error = %e, "smtp session ended");
                            }
                        }
                        Err(e) => {
                            tracing::info!(error = %e, peer = %peer, "STARTTLS handshake failed")
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "smtp session ended"),
            }
        });
    }
}

/// Write a reply, giving up (the session ends) when the client does not read it within the
/// idle timeout: a client that pipelines and never reads cannot hold a connection slot.
async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    bytes: &[u8],
    cfg: &SmtpConfig,
) -> std::io::Result<()> {
    match tokio::time::timeout(cfg.idle_timeout, io.get_mut().write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client did not read its replies",
        )),
    }
}

/// One connection counted against its client address while it lives.
struct IpSlot {
    map: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    ip: std::net::IpAddr,
}

impl IpSlot {
    fn take(
        map: &Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
        ip: std::net::IpAddr,
        max: usize,
    ) -> Option<IpSlot> {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            map: map.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// The longest command line accepted (RFC 5321: 512; a little slack for extensions).
const MAX_LINE: usize = 4096;

enum Line {
    Ok(Vec<u8>),
    TooLong,
    Eof,
}

async fn read_line<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(if buf.is_empty() && !too_long {
                Line::Eof
            } else if too_long {
                Line::TooLong
            } else {
                Line::Ok(std::mem::take(buf))
            });
        }
        let (used, done) = match avail.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if !too_long {
            if buf.len() + used > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&avail[..used]);
            }
        }
        r.consume(used);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Ok(std::mem::take(buf))
            });
        }
    }
}

/// The address in `FROM:<a@b> SIZE=1` / `TO:<a@b>`, and the parameters after it.
fn path_arg<'a>(rest: &'a str, prefix: &str) -> Option<(String, &'a str)> {
    let r = rest.trim_start();
    // Byte-wise: the prefix is ASCII, and `get` never splits a character.
    if !r
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    {
        return None;
    }
    let r = r[prefix.len()..].trim_start();
    let (addr, params) = if let Some(stripped) = r.strip_prefix('<') {
        let end = stripped.find('>')?;
        (&stripped[..end], &stripped[end + 1..])
    } else {
        let end = r.find(' ').unwrap_or(r.len());
        (&r[..end], &r[end..])
    };
    // A source route (`@a,@b:user@host`) keeps only the mailbox.
    let addr = addr.rsplit(':').next().unwrap_or("");
    Some((addr.trim().to_string(), params))
}

/// One SMTP session. Returns the stream when the client asked for STARTTLS (the caller wraps
/// it and runs a fresh session, as RFC 3207 requires).
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    cfg: &SmtpConfig,
    app: &App,
    peer: SocketAddr,
    tls: bool,
) -> std::io::Result<Option<S>> {
    let mut io = BufReader::new(stream);
    if !tls {
        send(
            &mut io,
            format!("220 {} ESMTP opsdesk\r\n", cfg.hostname).as_bytes(),
            cfg,
        )
        .await?;
    }
    let mut helo: Option<String> = None;
    let mut mail_from: Option<String> = None;
    let mut rcpts: Vec<String> = vec![];
    let mut buf = Vec::with_capacity(256);
    loop {
        let line =
            match tokio::time::timeout(cfg.idle_timeout, read_line(&mut io, MAX_LINE, &mut buf))
                .await
            {
                Err(_) => {
                    send(&mut io, b"421 4.4.2 Idle too long, closing\r\n", cfg).await?;
                    return Ok(None);
                }
                Ok(r) => r?,
            };
        let line = match line {
            Line::Eof => return Ok(None),
            Line::TooLong => {
                send(&mut io, b"500 5.5.2 Line too long\r\n", cfg).await?;
                continue;
            }
            Line::Ok(l) => l,
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        let verb = verb.to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" | "HELO" => {
                helo = Some(rest.trim().to_string());
                mail_from = None;
                rcpts.clear();
                if verb == "HELO" {
                    format!("250 {}\r\n", cfg.hostname)
                } else {
                    let mut r = format!(
                        "250-{}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-SIZE {}\r\n",
                        cfg.hostname, cfg.max_message_bytes
                    );
                    if cfg.tls.is_some() && !tls {
                        r.push_str("250-STARTTLS\r\n");
                    }
                    r.push_str("250 HELP\r\n");
                    r
                }
            }
            "STARTTLS" => {
                if tls || cfg.tls.is_none() {
                    "502 5.5.1 STARTTLS not available\r\n".into()
                } else {
                    send(&mut io, b"220 2.0.0 Ready to start TLS\r\n", cfg).await?;
                    io.get_mut().flush().await?;
                    // Anything pipelined after STARTTLS is discarded (RFC 3207).
                    return Ok(Some(io.into_inner()));
                }
            }
            "MAIL" => match (&helo, path_arg(rest, "FROM:")) {
                (None, _) => "503 5.5.1 Say EHLO first\r\n".into(),
                (_, None) => "501 5.5.4 Syntax: MAIL FROM:<address>\r\n".into(),
                (Some(_), Some((addr, params))) => {
                    let size = params.split_whitespace().find_map(|p| {
                        p.to_ascii_uppercase()
                            .strip_prefix("SIZE=")
                            // A SIZE too large to read is too large.
                            .map(|n| n.parse::<usize>().unwrap_or(usize::MAX))
                    });
                    if size.is_some_and(|s| s > cfg.max_message_bytes) {
                        format!(
                            "552 5.3.4 Message too big (limit {} bytes)\r\n",
                            cfg.max_message_bytes
                        )
                    } else {
                        mail_from = Some(addr);
                        rcpts.clear();
                        "250 2.1.0 Ok\r\n".into()
                    }
                }
            },
            "RCPT" => match (&mail_from, path_arg(rest, "TO:")) {
                (None, _) => "503 5.5.1 Need MAIL first\r\n".into(),
                (_, None) => "501 5.5.4 Syntax: RCPT TO:<address>\r\n".into(),
                (Some(_), Some((addr, _))) => {
                    if rcpts.len() >= cfg.max_recipients {
                        "452 4.5.3 Too many recipients\r\n".into()
                    } else if !addr.contains('@') || !app.mail.accepts(&addr) {
                        metrics::counter!("mail_rejected_total", "reason" => "recipient")
                            .increment(1);
                        format!("550 5.1.1 <{addr}>: no such support address here\r\n")
                    } else {
                        rcpts.push(addr.to_lowercase());
                        "250 2.1.5 Ok\r\n".into()
                    }
                }
            },
            "DATA" => {
                if mail_from.is_none() {
                    "503 5.5.1 Need MAIL first\r\n".into()
                } else if rcpts.is_empty() {
                    "554 5.5.1 No valid recipients\r\n".into()
                } else {
                    send(&mut io, b"354 End data with <CR><LF>.<CR><LF>\r\n", cfg).await?;
                    let r = receive(
                        &mut io,
                        cfg,
                        app,
                        peer,
                        helo.as_deref().unwrap_or(""),
                        &rcpts,
                    )
                    .await?;
                    mail_from = None;
                    rcpts.clear();
                    match r {
                        None => return Ok(None),
                        Some(r) => r,
                    }
                }
            }
            "RSET" => {
                mail_from = None;
                rcpts.clear();
                "250 2.0.0 Ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 Ok\r\n".into(),
            "VRFY" => "252 2.5.0 Cannot verify; send a message and it will be delivered\r\n".into(),
            "HELP" => "214 2.0.0 See RFC 5321\r\n".into(),
            "QUIT" => {
                send(&mut io, b"221 2.0.0 Bye\r\n", cfg).await?;
                return Ok(None);
            }
            "AUTH" => "502 5.5.1 Authentication is not offered\r\n".into(),
            _ => "500 5.5.2 Command not recognised\r\n".into(),
        };
        // With PIPELINING the client may have sent more; answer in order, flush when the
        // input runs dry.
        send(&mut io, reply.as_bytes(), cfg).await?;
        if io.buffer().is_empty() {
            io.get_mut().flush().await?;
        }
    }
}

/// Read DATA up to the lone dot, then spool it. Returns the reply (None: the client hung up).
async fn receive<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    cfg: &SmtpConfig,
    app: &App,
    peer: SocketAddr,
    helo: &str,
    rcpts: &[String],
) -> std::io::Result<Option<String>> {
    let mut msg: Vec<u8> = Vec::with_capacity(16 * 1024);
    // Where it came from, and who it was for (threading reads reply addresses from here when
    // they were Bcc'd).
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    msg.extend_from_slice(
        format!(
            "Received: from {} ([{}]) by {} (opsdesk) ; {}\r\n",
            helo.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(100)
                .collect::<String>(),
            peer.ip(),
            cfg.hostname,
            stamp
        )
        .as_bytes(),
    );
    for r in rcpts {
        msg.extend_from_slice(format!("Delivered-To: {r}\r\n").as_bytes());
    }
    let mut too_big = false;
    let mut buf = Vec::with_capacity(1024);
    // The end of data is <CRLF>.<CRLF> only: a lone "." line ended by a bare LF, or after a
    // bare LF, is data (no SMTP smuggling past the MTA in front).
    let mut after_crlf = true;
    loop {
        let line =
            match tokio::time::timeout(cfg.idle_timeout, read_line(io, 1 << 20, &mut buf)).await {
                Err(_) => return Ok(None),
                Ok(r) => r?,
            };
        let line = match line {
            Line::Eof => return Ok(None),
            Line::TooLong => {
                too_big = true;
                continue;
            }
            Line::Ok(l) => l,
        };
        if line == b".\r\n" && after_crlf {
            break;
        }
        after_crlf = line.ends_with(b"\r\n");
        let data = line.strip_prefix(b".").unwrap_or(&line);
        if msg.len() + data.len() > cfg.max_message_bytes {
            too_big = true;
        }
        if !too_big {
            msg.extend_from_slice(data);
        }
    }
    if too_big {
        metrics::counter!("mail_rejected_total", "reason" => "size").increment(1);
        return Ok(Some(format!(
            "552 5.3.4 Message too big (limit {} bytes)\r\n",
            cfg.max_message_bytes
        )));
    }
    let app2 = app.clone();
    let spooled = tokio::task::spawn_blocking(move || app2.spool_inbound(&msg)).await;
    Ok(Some(match spooled {
        Ok(Ok(path)) => {
            let id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("250 2.0.0 Ok: queued as {id}\r\n")
        }
        _ => "451 4.3.0 Temporary failure writing the message; try again\r\n".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_per_address() {
        let map = Arc::default();
        let ip: std::net::IpAddr = [127, 0, 0, 1].into();
        let a = IpSlot::take(&map, ip, 2);
        let b = IpSlot::take(&map, ip, 2);
        assert!(a.is_some() && b.is_some());
        assert!(IpSlot::take(&map, ip, 2).is_none());
        assert!(IpSlot::take(&map, [10, 0, 0, 1].into(), 2).is_some());
        drop(a);
        let c = IpSlot::take(&map, ip, 2);
        assert!(c.is_some());
        drop((b, c));
        assert!(map.lock().is_ok_and(|m| m.is_empty()));
    }

    #[test]
    fn paths() {
        assert_eq!(
            path_arg("FROM:<a@b.c> SIZE=10", "FROM:"),
            Some(("a@b.c".into(), " SIZE=10"))
        );
        assert_eq!(
            path_arg("from: <a@b.c>", "FROM:"),
            Some(("a@b.c".into(), ""))
        );
        assert_eq!(
            path_arg("TO:<@relay,@x:u@h>", "TO:"),
            Some(("u@h".into(), ""))
        );
        assert_eq!(path_arg("FROM:<>", "FROM:"), Some(("".into(), "")));
        assert_eq!(path_arg("TO:a@b", "TO:"), Some(("a@b".into(), "")));
        assert_eq!(path_arg("TO:<a@b", "TO:"), None);
        assert_eq!(path_arg("X", "FROM:"), None);
        // Not ASCII where the keyword should be: no match, no panic.
        assert_eq!(path_arg("€€", "FROM:"), None);
        assert_eq!(path_arg("FRO€M:<a@b>", "FROM:"), None);
    }
}
