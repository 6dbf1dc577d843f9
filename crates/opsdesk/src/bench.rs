//! `opsdesk bench …`: figures, never pass/fail. See docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Subcommand;
use opsdesk_app::people::UserInput;
use opsdesk_app::App;
use opsdesk_core::ticket::{creation_events, Audit, Comment, Ticket, Via};
use opsdesk_core::{Clock, SystemClock};
use opsdesk_store::{DbConfig, Store};
use serde_json::json;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The trigger engine alone: one ticket update against N active triggers (no IO).
    Rules {
        #[arg(long, default_value_t = 200)]
        triggers: usize,
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
    },
    /// Mixed, realistic traffic against a running server (e.g. one serving `opsdesk demo`
    /// data): ticket creates, agent updates with comments, ticket reads, list pages, searches,
    /// user lookups. Reports throughput and latency per operation, and with --pid the server's
    /// CPU and memory.
    Load(LoadArgs),
    /// Create tickets through `POST /api/v2/tickets.json` at a given concurrency against an
    /// in-process server on a fresh database, then insert the same rows directly (the floor).
    CreateTickets {
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Tickets to create in each phase.
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// Use this PostgreSQL database instead of a fresh SQLite file (it must be empty).
        #[arg(long)]
        postgres: Option<String>,
        /// Active triggers on the server during the HTTP phase (each create runs the cycle).
        #[arg(long, default_value_t = 0)]
        triggers: usize,
    },
    /// Business-hours arithmetic alone: measuring a year-long span and adding a year's worth
    /// of business time on GitLab's 24x5 Pacific schedule and on office hours with holidays.
    BusinessHours {
        #[arg(long, default_value_t = 20_000)]
        iterations: usize,
    },
    /// Automation runs over N tickets that are not closed (on a fresh database, with a clock
    /// moved forward so time conditions hold): 20 automations, two of which match 5% of the
    /// tickets each (bounded at 1,000 per automation per run), six runs.
    Automations {
        #[arg(long, default_value_t = 100_000)]
        tickets: usize,
        /// Use this PostgreSQL database instead of a fresh SQLite file.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Search and export over generated tickets (subjects and comments drawn from a
    /// 20,000-word vocabulary with a Zipf-like frequency, tags, statuses, assignees): latency of
    /// free-text, structured and count queries, and incremental export throughput.
    Search(SearchArgs),
    /// Inbound mail: messages through the SMTP listener (spooled, then ingested into tickets,
    /// a third of them replies threaded by In-Reply-To) on a fresh database, in process.
    Mail(crate::bench_mail::MailBenchArgs),
    /// SLAs: recomputing every open ticket's SLA (a policy with four business-hours targets per
    /// priority) and the breach scheduler's lookup over a million SLA rows.
    Sla(crate::bench_sla::SlaBenchArgs),
    /// KPIs: every report (by week, month, group, plan, engineer; the baselines and the week
    /// in review) over a million tickets and ten million facts.
    Kpi(crate::bench_kpi::KpiBenchArgs),
    /// Web pages: the agent's ticket page and a view's 50-row page, one request at a time,
    /// against a running server (e.g. one serving `opsdesk demo` data).
    Web(crate::bench_web::WebBenchArgs),
}

#[derive(clap::Args)]
pub struct SearchArgs {
    #[arg(long, default_value_t = 100_000)]
    tickets: usize,
    /// Comments per ticket (the first is the description).
    #[arg(long, default_value_t = 5)]
    comments: usize,
    /// Queries of each kind.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Keep the generated SQLite database here and reuse it on the next run (same --tickets).
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
    /// Use this PostgreSQL database (a schema named after --tickets is reused when present).
    #[arg(long)]
    postgres: Option<String>,
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn report(label: &str, n: usize, elapsed: Duration, mut lat: Vec<Duration>) -> f64 {
    lat.sort_unstable();
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "{label:<28} {n:>7} in {:>6.2} s  {:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
        elapsed.as_secs_f64(),
        rate,
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    rate
}

pub(crate) async fn fresh_store(
    postgres: &Option<String>,
    tag: &str,
) -> Result<(Store, Option<std::path::PathBuf>)> {
    match postgres {
        Some(url) => {
            let schema = format!("bench_{tag}_{}", std::process::id());
            let admin = Store::open_postgres(url, None, 2).await?;
            let mut c = admin.write().await?;
            c.exec(&format!("CREATE SCHEMA {schema}"), &[]).await?;
            c.commit().await?;
            admin.close().await;
            Ok((
                Store::open(&DbConfig::Postgres {
                    url: url.clone(),
                    schema: Some(schema),
                    max_connections: 32,
                })
                .await?,
                None,
            ))
        }
        None => {
            let dir =
                std::env::temp_dir().join(format!("opsdesk-bench-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            Ok((
                Store::open_sqlite(&dir.join("opsdesk.db")).await?,
                Some(dir),
            ))
        }
    }
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Load(a) => load(a).await,
        BenchCommand::Rules {
            triggers,
            iterations,
        } => {
            rules_bench(triggers.max(1), iterations.max(1));
            Ok(())
        }
        BenchCommand::CreateTickets {
            concurrency,
            requests,
            postgres,
            triggers,
        } => create_tickets(concurrency.max(1), requests.max(1), postgres, triggers).await,
        BenchCommand::BusinessHours { iterations } => business_hours_bench(iterations.max(1)),
        BenchCommand::Automations { tickets, postgres } => {
            automations_bench(tickets.max(1), postgres).await
        }
        BenchCommand::Search(a) => search_bench(a).await,
        BenchCommand::Mail(a) => crate::bench_mail::run(a).await,
        BenchCommand::Sla(a) => crate::bench_sla::run(a).await,
        BenchCommand::Kpi(a) => crate::bench_kpi::run(a).await,
        BenchCommand::Web(a) => crate::bench_web::run(a).await,
    }
}

async fn create_tickets(
    concurrency: usize,
    n: usize,
    postgres: Option<String>,
    triggers: usize,
) -> Result<()> {
    println!(
        "opsdesk bench create-tickets: {n} tickets, concurrency {concurrency}, {triggers} triggers, backend {}",
        if postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );

    // Phase 1: through the HTTP API.
    let (store, dir) = fresh_store(&postgres, "http").await?;
    let app = App::new(store.clone(), Arc::new(SystemClock));
    app.prepare().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = store.write().await?;
    let admin = bench_admin(&app, &mut tx).await?;
    let requester = app
        .create_user_cli(
            &mut tx,
            UserInput {
                name: Some("Bench Customer".into()),
                email: Some(Some("customer@opsdesk.example".into())),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tx.commit().await?;
    let actor = opsdesk_app::Actor {
        user: admin.clone(),
    };
    for r in bench_rules(triggers) {
        app.save_rule::<opsdesk_core::rules::Trigger>(
            &actor,
            None,
            opsdesk_app::rules::TriggerInput {
                title: Some(r.title),
                conditions: Some(r.conditions),
                actions: Some(r.actions),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating bench triggers: {e}"))?;
    }
    let token = app
        .create_token("bench@opsdesk.example", None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(opsdesk_http::serve(
        listener,
        app.clone(),
        Default::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let url = format!("http://{addr}/api/v2/tickets.json");
    let auth = format!("{}/token", admin.email.clone().unwrap_or_default());
    let rid0 = requester.id;
    let body = move |i: usize| json!({"ticket": {"subject": format!("Benchmark ticket {i}"), "comment": {"body": "The pipeline is stuck in pending since this morning. Could you have a look?"}, "requester_id": rid0, "priority": "normal", "tags": ["bench", "load"]}});
    // Warm up.
    for i in 0..20 {
        client
            .post(&url)
            .basic_auth(&auth, Some(&token))
            .json(&body(i))
            .send()
            .await?
            .error_for_status()?;
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = vec![];
    for _ in 0..concurrency {
        let (client, url, auth, token, next) = (
            client.clone(),
            url.clone(),
            auth.clone(),
            token.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let s = Instant::now();
                match client
                    .post(&url)
                    .basic_auth(&auth, Some(&token))
                    .json(&body(i))
                    .send()
                    .await
                {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                    }
                    _ => errors += 1,
                }
                lat.push(s.elapsed());
            }
            (lat, errors)
        }));
    }
    let mut lat = vec![];
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let http_elapsed = t0.elapsed();
    let _ = stop_tx.send(());
    let _ = server.await;
    let http_rate = report("POST /api/v2/tickets.json", n, http_elapsed, lat);
    if errors > 0 {
        println!("  {errors} requests failed");
    }
    store.close().await;
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }

    // Phase 2: the floor — the same rows (ticket, audit, comment) straight into the store.
    let (store, dir) = fresh_store(&postgres, "floor").await?;
    store.migrate().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clock = SystemClock;
    let t0 = Instant::now();
    let mut tasks = vec![];
    for _ in 0..concurrency {
        let (store, next) = (store.clone(), next.clone());
        let rid = requester.id;
        let now = clock.now();
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let s = Instant::now();
                let mut t = Ticket::blank(0, Via::api(), now);
                t.subject = Some(format!("Benchmark ticket {i}"));
                t.raw_subject = t.subject.clone();
                t.requester_id = rid;
                t.submitter_id = rid;
                t.tags = vec!["bench".into(), "load".into()];
                t.description = "The pipeline is stuck in pending since this morning. Could you have a look?".into();
                let c = Comment { id: 0, kind: "Comment".into(), ticket_id: 0, audit_id: 0, author_id: rid, body: t.description.clone(), html_body: format!("<p>{}</p>", t.description), plain_body: t.description.clone(), public: true, attachments: vec![], via: Via::api(), metadata: json!({}), created_at: now };
                let mut events = creation_events(&t);
                events.push(json!({"type": "Comment", "body": c.body, "html_body": c.html_body, "public": true, "author_id": rid}));
                let mut audit = Audit { id: 0, ticket_id: 0, author_id: rid, via: Via::api(), metadata: json!({}), events, created_at: now };
                let mut comments = vec![c];
                let r: Result<()> = async {
                    let mut tx = store.write().await?;
                    tx.create_ticket(&mut t, &mut audit, &mut comments).await?;
                    tx.commit().await?;
                    Ok(())
                }
                .await;
                r.context("direct insert")?;
                lat.push(s.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut lat = vec![];
    for t in tasks {
        lat.extend(t.await??);
    }
    let floor_rate = report("floor: direct store inserts", n, t0.elapsed(), lat);
    store.close().await;
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
    println!(
        "floor / HTTP throughput: {:.2} (1.0: the HTTP layer costs nothing; the aim is under 3)",
        floor_rate / http_rate.max(1e-9)
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An agent's or admin's email.
    #[arg(long)]
    email: String,
    /// That user's API token.
    #[arg(long)]
    token: String,
    /// How long to run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The server's process id, to report its CPU time and resident memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Random seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The --email user's password: adds the web pages to the mix (the agent's ticket and
    /// view pages, and a customer's portal pages: a customer made for the run, with ten
    /// requests). The demo's: opsdesk-demo.
    #[arg(long)]
    web_password: Option<String>,
}

/// (utime + stime in seconds, VmRSS in KiB) of a process, from /proc.
fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks / 100.0, rss))
}

const OPS: &[(&str, u32)] = &[
    ("create ticket", 10),
    ("update + comment", 20),
    ("show ticket", 15),
    ("list tickets", 10),
    ("audits", 10),
    ("search", 10),
    ("show user", 5),
    ("view count", 10),
    ("view execute", 10),
    ("page: ticket", 5),
    ("page: view", 5),
    ("portal: requests", 5),
    ("portal: request", 5),
];
/// The first of the web page operations (left out without --web-password).
const FIRST_PAGE_OP: usize = 9;

async fn load(a: LoadArgs) -> Result<()> {
    use rand::{Rng, SeedableRng};
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    let api = format!("{}/api/v2", a.url.trim_end_matches('/'));
    let auth = (format!("{}/token", a.email), a.token.clone());
    // Ticket and user ids to work on: the newest page of each.
    let first: serde_json::Value = client
        .get(format!("{api}/tickets.json?page[size]=100&sort=-id"))
        .basic_auth(&auth.0, Some(&auth.1))
        .send()
        .await?
        .error_for_status()
        .context("listing tickets (is the server up, the token right?)")?
        .json()
        .await?;
    let mut ticket_ids: Vec<i64> = first["tickets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|t| t["status"] != "closed")
                .filter_map(|t| t["id"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    let users: serde_json::Value = client
        .get(format!("{api}/users.json?page[size]=100"))
        .basic_auth(&auth.0, Some(&auth.1))
        .send()
        .await?
        .json()
        .await?;
    let user_ids: Vec<i64> = users["users"]
        .as_array()
        .map(|a| a.iter().filter_map(|u| u["id"].as_i64()).collect())
        .unwrap_or_default();
    let requester = users["users"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["role"] == "end-user"))
        .and_then(|u| u["id"].as_i64());
    if ticket_ids.is_empty() {
        // An empty instance: make a few tickets to update.
        for i in 0..20 {
            let r: serde_json::Value = client.post(format!("{api}/tickets.json")).basic_auth(&auth.0, Some(&auth.1)).json(&json!({"ticket": {"subject": format!("load seed {i}"), "comment": {"body": "seed"}}})).send().await?.json().await?;
            ticket_ids.extend(r["ticket"]["id"].as_i64());
        }
    }
    // Views to count and execute: the instance's, or two typical ones made for the run.
    let views: serde_json::Value = client
        .get(format!("{api}/views.json"))
        .basic_auth(&auth.0, Some(&auth.1))
        .send()
        .await?
        .json()
        .await?;
    let mut view_ids: Vec<i64> = views["views"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["id"].as_i64()).collect())
        .unwrap_or_default();
    if view_ids.is_empty() {
        for body in [
            json!({"view": {"title": "Load: unsolved", "all": [{"field": "status", "operator": "less_than", "value": "solved"}], "output": {"columns": ["subject", "requester", "updated"], "sort_by": "updated", "sort_order": "desc"}}}),
            json!({"view": {"title": "Load: urgent and high", "all": [{"field": "status", "operator": "less_than", "value": "solved"}, {"field": "priority", "operator": "greater_than", "value": "normal"}]}}),
        ] {
            let r: serde_json::Value = client
                .post(format!("{api}/views.json"))
                .basic_auth(&auth.0, Some(&auth.1))
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
            view_ids.extend(r["view"]["id"].as_i64());
        }
    }
    anyhow::ensure!(
        !view_ids.is_empty(),
        "no views to exercise (the token's user may not create views)"
    );
    // Web sessions: the agent's, and a customer's with their own requests.
    let web = match &a.web_password {
        None => None,
        Some(pw) => {
            let base = a.url.trim_end_matches('/').to_string();
            let agent = crate::bench_web::sign_in(&base, &a.email, pw).await?;
            // A customer of the run's own (never an existing user's password), with tickets.
            let cust = format!("bench-load-{}@opsdesk.example", std::process::id());
            let cust_pw = "bench-load-password";
            let made: serde_json::Value = client
                .post(format!("{api}/users.json"))
                .basic_auth(&auth.0, Some(&auth.1))
                .json(&json!({"user": {"name": "Bench Load Customer", "email": cust, "role": "end-user", "password": cust_pw}}))
                .send()
                .await?
                .error_for_status()
                .context("creating the run's customer (the token's user must be an admin)")?
                .json()
                .await?;
            let cid = made["user"]["id"].as_i64().context("no customer id")?;
            let mut their = vec![];
            for i in 0..10 {
                let r: serde_json::Value = client
                    .post(format!("{api}/tickets.json"))
                    .basic_auth(&auth.0, Some(&auth.1))
                    .json(&json!({"ticket": {"subject": format!("Bench load request {i}"), "comment": {"body": "Our runner is offline."}, "requester_id": cid}}))
                    .send()
                    .await?
                    .json()
                    .await?;
                their.extend(r["ticket"]["id"].as_i64());
            }
            let customer = crate::bench_web::sign_in(&base, &cust, cust_pw).await?;
            Some(std::sync::Arc::new((base, agent, customer, their)))
        }
    };
    let weights: Vec<u32> = OPS
        .iter()
        .enumerate()
        .map(|(i, o)| {
            if i >= FIRST_PAGE_OP && web.is_none() {
                0
            } else {
                o.1
            }
        })
        .collect();
    let before = a.pid.and_then(proc_usage);
    let until = Instant::now() + Duration::from_secs(a.seconds);
    let total: u32 = weights.iter().sum();
    let mut tasks = vec![];
    for w in 0..a.concurrency {
        let (client, api, auth, ticket_ids, user_ids, view_ids) = (
            client.clone(),
            api.clone(),
            auth.clone(),
            ticket_ids.clone(),
            user_ids.clone(),
            view_ids.clone(),
        );
        let seed = a.seed + w as u64;
        let (weights, web) = (weights.clone(), web.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut lat: Vec<Vec<Duration>> = vec![vec![]; OPS.len()];
            let mut errs = vec![0usize; OPS.len()];
            while Instant::now() < until {
                let mut roll = rng.gen_range(0..total);
                let op = weights.iter().position(|w| if roll < *w { true } else { roll -= *w; false }).unwrap_or(0);
                let tid = ticket_ids[rng.gen_range(0..ticket_ids.len())];
                let req = match op {
                    0 => client.post(format!("{api}/tickets.json")).json(&json!({"ticket": {"subject": "Load: pipeline stuck", "comment": {"body": "Our pipelines are stuck in pending."}, "requester_id": requester, "priority": "normal", "tags": ["load"]}})),
                    1 => client.put(format!("{api}/tickets/{tid}.json")).json(&json!({"ticket": {"status": if rng.gen_bool(0.5) { "open" } else { "pending" }, "comment": {"body": "Looking into it; will update shortly.", "public": rng.gen_bool(0.6)}}})),
                    2 => client.get(format!("{api}/tickets/{tid}.json?include=users,groups,organizations")),
                    3 => client.get(format!("{api}/tickets.json?per_page=50&page={}", rng.gen_range(1..20))),
                    4 => client.get(format!("{api}/tickets/{tid}/audits.json")),
                    5 => {
                        // Structured, free-text and mixed queries, as agents type them.
                        const QS: [&str; 5] = [
                            "type:ticket status:open",
                            "type:ticket runner",
                            "type:ticket status<solved assignee:none",
                            "type:ticket \"pipeline stuck\" created>30days",
                            "billing priority>normal",
                        ];
                        client.get(format!("{api}/search.json")).query(&[("query", QS[rng.gen_range(0..QS.len())])])
                    }
                    7 => client.get(format!("{api}/views/{}/count.json", view_ids[rng.gen_range(0..view_ids.len())])),
                    8 => client.get(format!("{api}/views/{}/execute.json?per_page=50", view_ids[rng.gen_range(0..view_ids.len())])),
                    9..=12 => {
                        let Some(w) = web.as_deref() else { continue };
                        let (base, agent, customer, theirs) = w;
                        let (url, cookie) = match op {
                            9 => (format!("{base}/agent/tickets/{tid}"), agent),
                            10 => (format!("{base}/agent/views/{}", view_ids[rng.gen_range(0..view_ids.len())]), agent),
                            11 => (format!("{base}/portal"), customer),
                            _ => (format!("{base}/portal/tickets/{}", theirs[rng.gen_range(0..theirs.len())]), customer),
                        };
                        let s = Instant::now();
                        match client.get(url).header("cookie", cookie.as_str()).send().await {
                            Ok(r) if r.status().is_success() => {
                                let _ = r.bytes().await;
                            }
                            _ => errs[op] += 1,
                        }
                        lat[op].push(s.elapsed());
                        continue;
                    }
                    _ => client.get(format!("{api}/users/{}.json", user_ids.get(rng.gen_range(0..user_ids.len().max(1))).copied().unwrap_or(1))),
                };
                let s = Instant::now();
                match req.basic_auth(&auth.0, Some(&auth.1)).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => errs[op] += 1,
                }
                lat[op].push(s.elapsed());
            }
            (lat, errs)
        }));
    }
    let mut lat: Vec<Vec<Duration>> = vec![vec![]; OPS.len()];
    let mut errs = vec![0usize; OPS.len()];
    for t in tasks {
        let (l, e) = t.await?;
        for i in 0..OPS.len() {
            lat[i].extend(&l[i]);
            errs[i] += e[i];
        }
    }
    let after = a.pid.and_then(proc_usage);
    println!(
        "opsdesk bench load: {} s, concurrency {}, {}",
        a.seconds, a.concurrency, a.url
    );
    println!(
        "{:<18} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "operation", "count", "errors", "per s", "p50 ms", "p95 ms", "p99 ms"
    );
    let mut all = 0;
    for (i, (name, _)) in OPS.iter().enumerate() {
        if weights[i] == 0 {
            continue;
        }
        let mut l = std::mem::take(&mut lat[i]);
        l.sort_unstable();
        all += l.len();
        println!(
            "{:<18} {:>8} {:>8} {:>9.0} {:>9.2} {:>9.2} {:>9.2}",
            name,
            l.len(),
            errs[i],
            l.len() as f64 / a.seconds as f64,
            percentile(&l, 0.50).as_secs_f64() * 1e3,
            percentile(&l, 0.95).as_secs_f64() * 1e3,
            percentile(&l, 0.99).as_secs_f64() * 1e3
        );
    }
    println!(
        "{:<18} {:>8} {:>8} {:>9.0}",
        "all",
        all,
        errs.iter().sum::<usize>(),
        all as f64 / a.seconds as f64
    );
    if let (Some((c0, _)), Some((c1, rss))) = (before, after) {
        println!(
            "server: {:.0} % CPU (of one core) over the run, {:.1} MB resident at the end",
            (c1 - c0) / a.seconds as f64 * 100.0,
            rss as f64 / 1024.0
        );
    }
    Ok(())
}

/// N synthetic triggers of ten kinds (tags, status changes, comment words, priorities, …) that
/// mostly do not fire: what a large instance's trigger list looks like to the engine.
fn bench_rules(n: usize) -> Vec<opsdesk_core::rules::Rule> {
    use opsdesk_core::rules::{Action, Condition, Conditions, Rule};
    let c = |f: &str, o: &str, v: serde_json::Value| Condition {
        field: f.into(),
        operator: o.into(),
        value: v,
    };
    let a = |f: &str, v: serde_json::Value| Action {
        field: f.into(),
        value: v,
    };
    (0..n as i64)
        .map(|i| {
            let (all, actions) = match i % 10 {
                0 => (
                    vec![
                        c("update_type", "is", json!("Change")),
                        c("current_tags", "includes", json!(format!("team_{i}"))),
                    ],
                    vec![a("group_id", json!(i))],
                ),
                1 => (
                    vec![
                        c("status", "changed", json!(null)),
                        c("status", "value", json!("solved")),
                        c("group_id", "is", json!(i)),
                    ],
                    vec![a("current_tags", json!("solved_by_rule"))],
                ),
                2 => (
                    vec![c(
                        "comment_includes_word",
                        "includes",
                        json!(format!("keyword{i} other{i}")),
                    )],
                    vec![a("priority", json!("high"))],
                ),
                3 => (
                    vec![
                        c("priority", "is", json!("urgent")),
                        c("organization_id", "is", json!(i)),
                    ],
                    vec![a("current_tags", json!("vip"))],
                ),
                4 => (
                    vec![
                        c("via_id", "is", json!("email")),
                        c(
                            "subject_includes_word",
                            "includes",
                            json!(format!("refund{i}")),
                        ),
                    ],
                    vec![a("group_id", json!(i))],
                ),
                5 => (
                    vec![
                        c("assignee_id", "is", json!(i)),
                        c("status", "less_than", json!("solved")),
                    ],
                    vec![a("current_tags", json!(format!("owner_{i}")))],
                ),
                6 => (
                    vec![c("custom_fields_7", "is", json!(format!("plan_{i}")))],
                    vec![a("priority", json!("normal"))],
                ),
                7 => (
                    vec![
                        c("role", "is", json!("end_user")),
                        c("current_tags", "not_includes", json!("x")),
                    ],
                    vec![a("status", json!("open"))],
                ),
                8 => (
                    vec![c("requester_id", "is", json!(i))],
                    vec![a("current_tags", json!("known"))],
                ),
                _ => (
                    vec![
                        c("ticket_is_public", "is", json!("private")),
                        c("group_id", "is", json!(i)),
                    ],
                    vec![a("remove_tags", json!("tmp"))],
                ),
            };
            Rule {
                id: i + 1,
                title: format!("Trigger {i}"),
                position: i,
                conditions: Conditions { all, any: vec![] },
                actions,
            }
        })
        .collect()
}

fn rules_bench(n: usize, iterations: usize) {
    use opsdesk_core::rules::{run_cycle, CommentFacts, Facts};
    let rules = bench_rules(n);
    let mut before = Ticket::blank(1, Via::api(), SystemClock.now());
    before.requester_id = 10_000;
    before.subject = Some("Pipeline stuck in pending".into());
    before.description = "Our pipelines have been stuck since this morning".into();
    before.tags = vec!["gitlab_com".into(), "team_3".into()];
    before.priority = Some(opsdesk_core::ticket::Priority::Normal);
    let mut after = before.clone();
    after.status = opsdesk_core::ticket::Status::Open;
    after.assignee_id = Some(5);
    let facts = Facts {
        previous: Some(before),
        comment: Some(CommentFacts {
            public: true,
            body: "We are looking into it and will update you shortly".into(),
        }),
        current_user: 5,
        current_role: opsdesk_core::model::Role::Agent,
        requester_fields: Default::default(),
        organization_fields: Default::default(),
        now: None,
        metrics: None,
        schedule: None,
        next_breach_at: None,
        sla_event: None,
    };
    let warm = run_cycle(&rules, after.clone(), &facts);
    let t0 = Instant::now();
    let mut fired = 0;
    for _ in 0..iterations {
        let r = run_cycle(&rules, after.clone(), &facts);
        fired += r.firings.len();
    }
    let per = t0.elapsed().as_secs_f64() / iterations as f64;
    println!(
        "opsdesk bench rules: {n} active triggers, {} fired per update ({} passes): {:.1} µs per update ({iterations} updates)",
        warm.firings.len(),
        warm.trace["passes"],
        per * 1e6
    );
    let _ = fired;
}

/// The benchmarks' admin user.
async fn bench_admin(app: &App, tx: &mut opsdesk_store::Conn) -> Result<opsdesk_core::model::User> {
    app.create_user_cli(
        tx,
        UserInput {
            name: Some("Bench Admin".into()),
            email: Some(Some("bench@opsdesk.example".into())),
            role: Some("admin".into()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn automations_bench(n: usize, postgres: Option<String>) -> Result<()> {
    use opsdesk_core::rules::{Action, Automation, Condition, Conditions};
    use opsdesk_core::ticket::Status;
    use opsdesk_core::FixedClock;
    println!(
        "opsdesk bench automations: {n} tickets not closed, 20 automations, backend {}",
        if postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    let (store, dir) = fresh_store(&postgres, "auto").await?;
    let clock = Arc::new(FixedClock::new(SystemClock.now()));
    let app = App::new(store.clone(), clock.clone());
    app.prepare().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = store.write().await?;
    let admin = bench_admin(&app, &mut tx).await?;
    tx.commit().await?;
    // Tickets straight into the store (with their metrics), 1,000 per transaction.
    let t0 = Instant::now();
    let now = clock.now();
    insert_bench_tickets(&store, admin.id, n, now, |i, t| {
        t.subject = Some(format!("Automation bench {i}"));
        t.status = match i % 20 {
            0 => Status::Solved,
            1 => Status::Pending,
            _ => Status::Open,
        };
        t.tags = vec![format!("team_{}", i % 50)];
    })
    .await?;
    if store.backend() == "postgres" {
        // As autovacuum would after a bulk load: without statistics the planner reads the
        // whole id range for each batch.
        let mut c = store.write().await?;
        c.exec("ANALYZE", &[]).await?;
        c.commit().await?;
    }
    println!("loaded {n} tickets in {:.1} s", t0.elapsed().as_secs_f64());
    let c = |f: &str, o: &str, v: serde_json::Value| Condition {
        field: f.into(),
        operator: o.into(),
        value: v,
    };
    let a = |f: &str, v: serde_json::Value| Action {
        field: f.into(),
        value: v,
    };
    let actor = opsdesk_app::Actor {
        user: admin.clone(),
    };
    let mut defs = vec![
        (
            "Close 4 days after solved",
            vec![
                c("status", "is", json!("solved")),
                c("SOLVED", "greater_than", json!("96")),
            ],
            vec![a("status", json!("closed"))],
        ),
        (
            "Nudge pending",
            vec![
                c("status", "is", json!("pending")),
                c("PENDING", "greater_than", json!("48")),
                c("current_tags", "not_includes", json!("nudged")),
            ],
            vec![
                a("current_tags", json!("nudged")),
                a(
                    "notification_user",
                    json!([
                        "requester_id",
                        "Still there?",
                        "We are waiting for you on {{ticket.title}}"
                    ]),
                ),
            ],
        ),
    ];
    for i in 0..18 {
        defs.push((
            "Idle",
            vec![
                c("status", "is", json!("open")),
                c("updated_at", "greater_than", json!(1000 + i)),
                c("current_tags", "includes", json!(format!("never_{i}"))),
            ],
            vec![a("priority", json!("high"))],
        ));
    }
    for (i, (title, all, actions)) in defs.into_iter().enumerate() {
        app.save_rule::<Automation>(
            &actor,
            None,
            opsdesk_app::rules::TriggerInput {
                title: Some(format!("{title} {i}")),
                conditions: Some(Conditions { all, any: vec![] }),
                actions: Some(actions),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating bench automations: {e}"))?;
    }
    clock.advance_secs(100 * 3600);
    // 5,000 solved and 5,000 pending tickets match; 1,000 per automation per run: five runs
    // act on 2,000 tickets each, the sixth only examines.
    for run in 1..=6 {
        let label = format!("run {run}");
        let t0 = Instant::now();
        let r = app
            .run_automations_if_due()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| anyhow::anyhow!("the run did not start"))?;
        let el = t0.elapsed().as_secs_f64();
        println!(
            "{label:<24} examined {:>7} updated {:>5} in {el:>6.2} s  ({:>8.0} tickets examined/s)",
            r.examined,
            r.updated,
            r.examined as f64 / el
        );
        clock.advance_secs(3600);
    }
    store.close().await;
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(())
}

fn business_hours_bench(iterations: usize) -> Result<()> {
    use opsdesk_core::business_hours::Schedule;
    let day = 24 * 60;
    let gitlab = Schedule::new("America/Los_Angeles", &[(15 * 60, 5 * day + 17 * 60)], &[])
        .map_err(|e| anyhow::anyhow!(e))?;
    let holidays: Vec<(jiff::civil::Date, jiff::civil::Date)> = (0..12)
        .map(|m| {
            let d = jiff::civil::date(2026, m + 1, 10);
            (d, d)
        })
        .collect();
    let office: Vec<(u32, u32)> = (1..=5)
        .map(|d| (d * day + 9 * 60, d * day + 17 * 60))
        .collect();
    let office =
        Schedule::new("Europe/Berlin", &office, &holidays).map_err(|e| anyhow::anyhow!(e))?;
    let from = 1_767_225_600; // 2026-01-01T00:00:00Z
    let to = from + 365 * 86_400;
    for (name, s) in [
        ("GitLab 24x5 Pacific", &gitlab),
        ("office hours, 12 holidays", &office),
    ] {
        // The first call builds the week table's blocks for these years (once per schedule).
        let t0 = Instant::now();
        let year = s.business_seconds(from, to);
        let cold = t0.elapsed();
        let t0 = Instant::now();
        let mut acc = 0i64;
        for i in 0..iterations {
            acc = acc.wrapping_add(s.business_seconds(from + (i as i64 % 3600), to));
        }
        let measure = t0.elapsed().as_secs_f64() / iterations as f64;
        let t0 = Instant::now();
        for i in 0..iterations {
            acc = acc.wrapping_add(s.add(from + (i as i64 % 3600), year - 3600).unwrap_or(0));
        }
        let add = t0.elapsed().as_secs_f64() / iterations as f64;
        println!(
            "{name:<28} measure a year: {:>7.2} µs   add a year of business time: {:>7.2} µs   first call {:>6.0} µs   ({} business hours in the year; checksum {})",
            measure * 1e6,
            add * 1e6,
            cold.as_secs_f64() * 1e6,
            year / 3600,
            acc % 7
        );
    }
    Ok(())
}

/// A pronounceable word for rank `i` of the vocabulary.
fn vocab_word(i: usize) -> String {
    const C: &[u8] = b"bcdfghjklmnprstvz";
    const V: &[u8] = b"aeiou";
    let mut w = String::new();
    let mut n = i + 17;
    while n > 0 || w.len() < 4 {
        w.push(C[n % C.len()] as char);
        n /= C.len();
        w.push(V[n % V.len()] as char);
        n /= V.len();
    }
    w
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Zipf-like rank in 0..n: small ranks are far more frequent.
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
    }
}

const VOCAB: usize = 20_000;

async fn search_bench(a: SearchArgs) -> Result<()> {
    use opsdesk_app::search::SortParams;
    use opsdesk_core::search::Kind;
    use opsdesk_core::ticket::{Priority, Status};
    let backend = if a.postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "opsdesk bench search: {} tickets x {} comments, backend {backend}",
        a.tickets, a.comments
    );
    let (store, cleanup) = match (&a.postgres, &a.keep) {
        (Some(url), _) => {
            let schema = format!("bench_search_{}", a.tickets);
            let admin = Store::open_postgres(url, None, 2).await?;
            let mut c = admin.write().await?;
            c.exec(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"), &[])
                .await?;
            c.commit().await?;
            admin.close().await;
            let s = Store::open(&DbConfig::Postgres {
                url: url.clone(),
                schema: Some(schema),
                max_connections: 8,
            })
            .await?;
            (s, None)
        }
        (None, Some(dir)) => {
            std::fs::create_dir_all(dir)?;
            (Store::open_sqlite(&dir.join("opsdesk.db")).await?, None)
        }
        (None, None) => {
            let (s, d) = fresh_store(&None, "search").await?;
            (s, d)
        }
    };
    store.migrate().await?;
    let clock = Arc::new(SystemClock);
    let app = App::new(store.clone(), clock.clone());
    app.prepare().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let existing = {
        let mut c = store.read().await?;
        c.int("SELECT COUNT(*) FROM tickets", &[]).await?
    };
    let admin = {
        let mut c = store.read().await?;
        c.user_by_email("bench@opsdesk.example").await?
    };
    let admin = match admin {
        Some(u) => u,
        None => {
            let mut tx = store.write().await?;
            let u = bench_admin(&app, &mut tx).await?;
            tx.commit().await?;
            u
        }
    };
    let actor = opsdesk_app::Actor {
        user: admin.clone(),
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let now = clock.now().as_second();
    if (existing as usize) < a.tickets {
        let t0 = Instant::now();
        let todo = a.tickets - existing as usize;
        let words = |rng: &mut Rng, n: usize| {
            (0..n)
                .map(|_| vocab_word(rng.zipf(VOCAB)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        for chunk in (0..todo).collect::<Vec<_>>().chunks(1000) {
            let mut tx = store.write().await?;
            for &i in chunk {
                let at = opsdesk_core::clock::from_unix(
                    now - 365 * 86_400 + (i as i64 * 31_536_000 / todo.max(1) as i64),
                );
                let mut t = Ticket::blank(0, Via::api(), at);
                t.subject = Some(words(&mut rng, 6));
                t.raw_subject = t.subject.clone();
                t.requester_id = admin.id;
                t.submitter_id = admin.id;
                t.assignee_id = (rng.below(10) > 0).then(|| 1_000 + rng.below(50) as i64);
                t.group_id = Some(1 + rng.below(6) as i64);
                t.organization_id = Some(1 + rng.below(500) as i64);
                t.status = Status::ALL[rng.below(6)];
                t.priority = Some(Priority::ALL[rng.below(4)]);
                t.tags = (0..rng.below(4))
                    .map(|_| format!("tag_{}", rng.zipf(200)))
                    .collect();
                t.tags.sort();
                t.tags.dedup();
                let mut comments = vec![];
                let mut events = creation_events(&t);
                for k in 0..a.comments.max(1) {
                    let body = words(&mut rng, 30);
                    if k == 0 {
                        t.description = body.clone();
                    }
                    events.push(json!({"type": "Comment", "body": body, "public": true, "author_id": admin.id}));
                    comments.push(Comment {
                        id: 0,
                        kind: "Comment".into(),
                        ticket_id: 0,
                        audit_id: 0,
                        author_id: admin.id,
                        body: body.clone(),
                        html_body: String::new(),
                        plain_body: body,
                        public: k == 0 || rng.below(4) > 0,
                        attachments: vec![],
                        via: Via::api(),
                        metadata: json!({}),
                        created_at: at,
                    });
                }
                let mut audit = Audit {
                    id: 0,
                    ticket_id: 0,
                    author_id: admin.id,
                    via: Via::api(),
                    metadata: json!({}),
                    events,
                    created_at: at,
                };
                tx.create_ticket(&mut t, &mut audit, &mut comments).await?;
                tx.set_ticket_tags(t.id, &[], &t.tags).await?;
            }
            tx.commit().await?;
        }
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "generated {todo} tickets with {} comments in {secs:.1} s ({:.0} tickets/s)",
            todo * a.comments.max(1),
            todo as f64 / secs
        );
        if a.postgres.is_some() {
            // What autovacuum would do on a server that has it on: statistics for the planner
            // and a current visibility map for index-only scans.
            let t0 = Instant::now();
            store.read().await?.script("VACUUM ANALYZE").await?;
            println!("VACUUM ANALYZE in {:.1} s", t0.elapsed().as_secs_f64());
        }
    } else {
        println!("reusing {existing} tickets");
    }
    // Queries: words from the middle of the vocabulary (each in roughly 0.05-1% of comments).
    let mut run = |label: &'static str, make: &dyn Fn(&mut Rng) -> String| {
        let qs: Vec<String> = (0..a.queries).map(|_| make(&mut rng)).collect();
        (label, qs)
    };
    let sets = vec![
        run("free text, one word", &|r| {
            format!("type:ticket {}", vocab_word(50 + r.below(2_000)))
        }),
        run("free text, two words", &|r| {
            format!(
                "type:ticket {} {}",
                vocab_word(10 + r.below(300)),
                vocab_word(10 + r.below(300))
            )
        }),
        run("phrase", &|r| {
            format!(
                "type:ticket \"{} {}\"",
                vocab_word(r.below(20)),
                vocab_word(r.below(20))
            )
        }),
        run("structured", &|r| {
            format!(
                "type:ticket status<solved tags:tag_{} assignee:{}",
                r.zipf(200),
                1_000 + r.below(50)
            )
        }),
        run("structured, status+tag", &|r| {
            format!("type:ticket status:open tags:tag_{}", r.below(40))
        }),
        run("text + structured", &|r| {
            format!(
                "type:ticket {} status<solved group:{}",
                vocab_word(50 + r.below(2_000)),
                1 + r.below(6)
            )
        }),
    ];
    println!("query kind                     n   p50 ms   p95 ms   p99 ms  mean hits");
    for (label, qs) in &sets {
        let mut lat = vec![];
        let mut hits = 0i64;
        for q in qs {
            let t = Instant::now();
            let (_, n) = app
                .search(&actor, q, Some(Kind::Ticket), SortParams::default(), 1, 100)
                .await
                .map_err(|e| anyhow::anyhow!("{q}: {e}"))?;
            lat.push(t.elapsed());
            hits += n;
        }
        print_lat(label, &mut lat, hits as f64 / qs.len() as f64);
    }
    for (label, qs) in sets.iter().filter(|s| s.0.starts_with("structured")) {
        let mut lat = vec![];
        for q in qs {
            let t = Instant::now();
            app.search_count(&actor, q, Some(Kind::Ticket))
                .await
                .map_err(|e| anyhow::anyhow!("{q}: {e}"))?;
            lat.push(t.elapsed());
        }
        print_lat(&format!("count: {label}"), &mut lat, f64::NAN);
    }
    // Incremental export: the whole cursor stream, 1,000 per page, rendered to JSON.
    let t0 = Instant::now();
    let mut after = (-1, 0);
    let mut total = 0usize;
    let mut bytes = 0usize;
    loop {
        let (page, done) = app
            .changes_after::<Ticket>(&actor, 0, after, 1000, true)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        total += page.len();
        for c in &page {
            bytes += serde_json::to_vec(&c.doc)?.len();
        }
        if let Some(l) = page.last() {
            after = (l.change_seq, l.doc.id);
        }
        if done {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "incremental export (cursor): {total} tickets in {secs:.2} s = {:.0} tickets/s ({:.0} MB of JSON)",
        total as f64 / secs,
        bytes as f64 / 1e6
    );
    store.close().await;
    if let Some(d) = cleanup {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(())
}

fn print_lat(label: &str, lat: &mut [Duration], mean_hits: f64) {
    lat.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label:<26} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>10.0}",
        lat.len(),
        ms(percentile(lat, 0.50)),
        ms(percentile(lat, 0.95)),
        ms(percentile(lat, 0.99)),
        mean_hits
    );
}

/// Benchmarks: `n` tickets straight into the store, 1,000 per transaction, each with its audit,
/// first comment, tags and metrics; `shape` sets what differs per ticket.
pub(crate) async fn insert_bench_tickets(
    store: &Store,
    requester: opsdesk_core::model::Id,
    n: usize,
    now: opsdesk_core::Timestamp,
    shape: impl Fn(usize, &mut Ticket),
) -> Result<()> {
    use opsdesk_core::ticket_metrics::{TicketMetrics, WriteFacts};
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut tx = store.write().await?;
        for &i in chunk {
            let mut t = Ticket::blank(0, Via::api(), now);
            t.requester_id = requester;
            t.submitter_id = requester;
            t.assignee_id = Some(requester);
            t.description = "bench".into();
            shape(i, &mut t);
            t.raw_subject = t.subject.clone();
            let c = Comment {
                id: 0,
                kind: "Comment".into(),
                ticket_id: 0,
                audit_id: 0,
                author_id: requester,
                body: "bench".into(),
                html_body: "<p>bench</p>".into(),
                plain_body: "bench".into(),
                public: true,
                attachments: vec![],
                via: Via::api(),
                metadata: json!({}),
                created_at: now,
            };
            let mut events = creation_events(&t);
            events.push(json!({"type": "Comment", "body": "bench", "html_body": "<p>bench</p>", "public": true, "author_id": requester}));
            let mut audit = Audit {
                id: 0,
                ticket_id: 0,
                author_id: requester,
                via: Via::api(),
                metadata: json!({}),
                events,
                created_at: now,
            };
            tx.create_ticket(&mut t, &mut audit, &mut [c]).await?;
            tx.set_ticket_tags(t.id, &[], &t.tags).await?;
            let m = TicketMetrics::observe(
                None,
                None,
                &t,
                WriteFacts {
                    author_id: requester,
                    ..Default::default()
                },
                now,
            );
            tx.put_ticket_metrics(&m).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}
