//! `opsdesk bench mail`: inbound messages through the SMTP listener into tickets, in process,
//! on a fresh database. Figures only (docs/benchmarks.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use opsdesk_app::mail::MailConfig;
use opsdesk_app::spool::Spool;
use opsdesk_app::App;
use opsdesk_core::mail::InboundEmail;
use opsdesk_core::SystemClock;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::bench::{fresh_store, report};

#[derive(clap::Args)]
pub struct MailBenchArgs {
    /// Messages to send.
    #[arg(long, default_value_t = 5_000)]
    messages: usize,
    /// Concurrent SMTP connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Distinct senders (each one's first message also creates its user).
    #[arg(long, default_value_t = 1_000)]
    senders: usize,
    /// Use this PostgreSQL database instead of a fresh SQLite file.
    #[arg(long)]
    postgres: Option<String>,
    /// Spool everything first, then ingest: each side measured alone.
    #[arg(long)]
    separate: bool,
}

const SUPPORT: &str = "support@bench.opsdesk.test";

/// Message `i`: every third one is its sender's reply (In-Reply-To) to the message before it.
fn message(i: usize, senders: usize) -> Vec<u8> {
    let is_reply = i % 3 == 2;
    let who = sender(i, senders);
    let reply = if is_reply {
        format!("In-Reply-To: <bench-{}@customer.example>\r\n", i - 1)
    } else {
        String::new()
    };
    format!(
        "From: Customer {who} <customer{who}@customer.example>\r\nTo: Support <{SUPPORT}>\r\n\
         Subject: Pipeline {i} is stuck in pending\r\nMessage-ID: <bench-{i}@customer.example>\r\n\
         {reply}Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello,\r\n\r\nour pipeline number {i} has been pending for an hour. The runner shows as\r\n\
         online but picks up no jobs. Could you have a look?\r\n\r\nThanks,\r\nCustomer {who}\r\n\r\n\
         On Mon, Nov 30, 2026 at 9:00 AM Support <{SUPPORT}> wrote:\r\n> earlier message\r\n"
    )
    .into_bytes()
}

fn sender(i: usize, senders: usize) -> usize {
    let i = if i % 3 == 2 { i - 1 } else { i };
    i % senders.max(1)
}

async fn expect<R: AsyncBufReadExt + Unpin>(r: &mut R, code: &str) -> Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            bail!("connection closed waiting for {code}");
        }
        if line.len() >= 4 && &line[3..4] == "-" {
            continue;
        }
        if !line.starts_with(code) {
            bail!("expected {code}, got {line:?}");
        }
        return Ok(());
    }
}

pub async fn run(a: MailBenchArgs) -> Result<()> {
    let n = a.messages.max(1);
    println!(
        "opsdesk bench mail: {n} messages over {} SMTP connections, {} senders, backend {}",
        a.connections,
        a.senders,
        if a.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    let (store, dir) = fresh_store(&a.postgres, "mail").await?;
    let mut app = App::new(store.clone(), Arc::new(SystemClock));
    app.prepare().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let spool_dir =
        std::env::temp_dir().join(format!("opsdesk-bench-mail-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&spool_dir);
    app.spool = Some(Arc::new(Spool::open(&spool_dir)?));
    app.mail = Arc::new(MailConfig {
        support_addresses: vec![SUPPORT.into()],
        // Every message is a distinct sender's or a reply; no auto-reply limit applies here.
        auto_reply_limit_per_hour: i64::MAX,
        ..Default::default()
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let smtp = tokio::spawn(opsdesk_mail::smtp::serve(
        listener,
        Default::default(),
        app.clone(),
        stop_rx.clone(),
    ));
    // With --separate, ingest starts only once every message is spooled, so each side is
    // measured alone; otherwise both run at once, as in production.
    let mut worker = if a.separate {
        None
    } else {
        Some(opsdesk_mail::ingest::spawn(app.clone(), stop_rx.clone()))
    };

    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = vec![];
    for _ in 0..a.connections.max(1) {
        let next = next.clone();
        let senders = a.senders;
        tasks.push(tokio::spawn(async move {
            let sock = tokio::net::TcpStream::connect(addr).await?;
            sock.set_nodelay(true)?;
            let (r, mut w) = sock.into_split();
            let mut r = BufReader::new(r);
            expect(&mut r, "220").await?;
            w.write_all(b"EHLO bench.client\r\n").await?;
            expect(&mut r, "250").await?;
            let mut lat = vec![];
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let msg = message(i, senders);
                let s = Instant::now();
                w.write_all(
                    format!(
                        "MAIL FROM:<customer{}@customer.example>\r\n",
                        sender(i, senders)
                    )
                    .as_bytes(),
                )
                .await?;
                expect(&mut r, "250").await?;
                w.write_all(format!("RCPT TO:<{SUPPORT}>\r\n").as_bytes())
                    .await?;
                expect(&mut r, "250").await?;
                w.write_all(b"DATA\r\n").await?;
                expect(&mut r, "354").await?;
                w.write_all(&msg).await?;
                w.write_all(b".\r\n").await?;
                expect(&mut r, "250").await?;
                lat.push(s.elapsed());
            }
            w.write_all(b"QUIT\r\n").await?;
            anyhow::Ok(lat)
        }));
    }
    let mut lat = vec![];
    for t in tasks {
        lat.extend(t.await.context("SMTP client task")??);
    }
    let accepted = t0.elapsed();
    report("SMTP accepted (spooled)", n, accepted, lat);
    let t1 = Instant::now();
    if worker.is_none() {
        worker = Some(opsdesk_mail::ingest::spawn(app.clone(), stop_rx.clone()));
    }
    // Wait until every message is in the database.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut c = store.read().await?;
    loop {
        let done = c.count::<InboundEmail>(&[]).await?;
        if done as usize >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {done} of {n} messages ingested after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(c);
    let all = t0.elapsed();
    if a.separate {
        let ing = t1.elapsed();
        println!(
            "{:<28} {n:>7} in {:>6.2} s  {:>8.0}/s  (spool to tickets, ingest alone)",
            "ingest",
            ing.as_secs_f64(),
            n as f64 / ing.as_secs_f64()
        );
    }
    println!(
        "{:<28} {n:>7} in {:>6.2} s  {:>8.0}/s  (first send to last ticket written)",
        "SMTP to tickets",
        all.as_secs_f64(),
        n as f64 / all.as_secs_f64()
    );
    let mut c = store.read().await?;
    let states: Vec<(String, i64)> = {
        let mut v = vec![];
        for s in ["ticket", "comment", "note", "suspended"] {
            v.push((
                s.to_string(),
                c.count::<InboundEmail>(&[opsdesk_store::Cond::Eq(
                    "state",
                    opsdesk_store::Val::from(s),
                )])
                .await?,
            ));
        }
        v
    };
    println!("outcomes: {states:?}");
    drop(c);
    let _ = stop_tx.send(true);
    let _ = smtp.await;
    if let Some(w) = worker {
        let _ = w.await;
    }
    store.close().await;
    if let Some(url) = &a.postgres {
        let admin = opsdesk_store::Store::open_postgres(url, None, 2).await?;
        let mut c = admin.write().await?;
        c.exec(
            &format!("DROP SCHEMA bench_mail_{} CASCADE", std::process::id()),
            &[],
        )
        .await?;
        c.commit().await?;
        admin.close().await;
    }
    let _ = std::fs::remove_dir_all(&spool_dir);
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(())
}
