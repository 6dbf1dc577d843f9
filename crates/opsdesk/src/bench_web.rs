//! `opsdesk bench web`: how fast the web interface's pages render, against a running server
//! (for example one serving `opsdesk demo` data): the ticket page and a view's 50-row page,
//! one request at a time, so each figure is one page's server time plus a loopback round
//! trip. Also the sign-in used by `bench load`'s page operations.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};

#[derive(clap::Args)]
pub struct WebBenchArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An agent's email (the demo's: agent1@opsdesk.example).
    #[arg(long, default_value = "agent1@opsdesk.example")]
    email: String,
    /// That agent's password (the demo's: opsdesk-demo).
    #[arg(long, default_value = "opsdesk-demo")]
    password: String,
    /// Requests of each page.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// Sign in through the form like a browser; the `Cookie` header of the new session.
pub async fn sign_in(base: &str, email: &str, password: &str) -> Result<String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = client
        .get(format!("{base}/login"))
        .send()
        .await
        .context("loading the sign-in page (is the server up?)")?;
    let login_cookie = set_cookie(&r, "opsdesk_login").context("no sign-in cookie")?;
    let html = r.text().await?;
    let i = html
        .find("name=\"csrf\" value=\"")
        .context("no csrf field on the sign-in page")?
        + 19;
    let csrf = &html[i..i + html[i..].find('"').unwrap_or(0)];
    let r = client
        .post(format!("{base}/login"))
        .header("cookie", format!("opsdesk_login={login_cookie}"))
        .form(&[("csrf", csrf), ("email", email), ("password", password)])
        .send()
        .await?;
    let session = set_cookie(&r, "opsdesk_session")
        .with_context(|| format!("signing in as {email} failed ({})", r.status()))?;
    Ok(format!("opsdesk_session={session}"))
}

fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// Every `{prefix}{id}` link on a page.
pub fn ids_after(html: &str, prefix: &str) -> Vec<i64> {
    let mut out: Vec<i64> = html
        .match_indices(prefix)
        .filter_map(|(i, _)| {
            let rest = &html[i + prefix.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

async fn page(client: &reqwest::Client, url: &str, cookie: &str) -> Result<(Duration, usize)> {
    let s = Instant::now();
    let r = client.get(url).header("cookie", cookie).send().await?;
    anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
    let n = r.bytes().await?.len();
    Ok((s.elapsed(), n))
}

pub async fn run(a: WebBenchArgs) -> Result<()> {
    let base = a.url.trim_end_matches('/').to_string();
    let cookie = sign_in(&base, &a.email, &a.password).await?;
    let client = reqwest::Client::new();
    let home = client
        .get(format!("{base}/agent/search"))
        .header("cookie", &cookie)
        .send()
        .await?
        .text()
        .await?;
    let views = ids_after(&home, "/agent/views/");
    anyhow::ensure!(
        !views.is_empty(),
        "the agent sees no views (run `opsdesk demo` first)"
    );
    let mut tickets = vec![];
    for v in &views {
        let html = client
            .get(format!("{base}/agent/views/{v}"))
            .header("cookie", &cookie)
            .send()
            .await?
            .text()
            .await?;
        tickets.extend(ids_after(&html, "/agent/tickets/"));
    }
    tickets.sort_unstable();
    tickets.dedup();
    anyhow::ensure!(!tickets.is_empty(), "the views show no tickets");
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    // Warm up: the first requests fill the connection pool and the rules cache.
    for _ in 0..20 {
        page(
            &client,
            &format!("{base}/agent/tickets/{}", tickets[0]),
            &cookie,
        )
        .await?;
    }
    let mut ticket_lat = vec![];
    let mut view_lat = vec![];
    let (mut tb, mut vb) = (0, 0);
    for _ in 0..a.requests {
        let t = tickets[rng.gen_range(0..tickets.len())];
        let (d, n) = page(&client, &format!("{base}/agent/tickets/{t}"), &cookie).await?;
        ticket_lat.push(d);
        tb += n;
        let v = views[rng.gen_range(0..views.len())];
        let (d, n) = page(&client, &format!("{base}/agent/views/{v}"), &cookie).await?;
        view_lat.push(d);
        vb += n;
    }
    println!(
        "opsdesk bench web: {} requests of each page, one at a time, {} views, {} tickets seen, {base}",
        a.requests,
        views.len(),
        tickets.len()
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "page", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean KB"
    );
    for (name, mut lat, bytes) in [
        ("ticket page", ticket_lat, tb),
        ("view page (50 rows)", view_lat, vb),
    ] {
        lat.sort_unstable();
        let p = |q: f64| crate::bench::percentile(&lat, q).as_secs_f64() * 1e3;
        println!(
            "{:<26} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
            name,
            p(0.50),
            p(0.95),
            p(0.99),
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            bytes as f64 / a.requests.max(1) as f64 / 1024.0
        );
    }
    Ok(())
}
