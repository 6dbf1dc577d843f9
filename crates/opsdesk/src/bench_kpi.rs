//! `opsdesk bench kpi`: every KPI report over a million tickets and ten million facts.
//! Figures only (docs/benchmarks.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use opsdesk_app::fields::FieldKind;
use opsdesk_app::people::{GroupInput, OrganizationInput, UserInput};
use opsdesk_app::{Actor, App};
use opsdesk_core::{clock, FixedClock};
use serde_json::json;

use crate::bench::fresh_store;
use crate::demo::simple;

#[derive(clap::Args)]
pub struct KpiBenchArgs {
    /// Tickets.
    #[arg(long, default_value_t = 1_000_000)]
    tickets: i64,
    /// KPI facts per ticket (created, replies, notes, the solve, durations, an SLA outcome).
    #[arg(long, default_value_t = 10)]
    facts_per_ticket: i64,
    /// Days of history the tickets are spread over.
    #[arg(long, default_value_t = 730)]
    days: i64,
    /// Times each report is run.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Use this PostgreSQL database instead of a fresh SQLite file.
    #[arg(long)]
    postgres: Option<String>,
}

fn err(e: opsdesk_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub async fn run(a: KpiBenchArgs) -> Result<()> {
    let backend = if a.postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "opsdesk bench kpi: {} tickets, {} facts over {} days, backend {backend}",
        a.tickets,
        a.tickets * a.facts_per_ticket,
        a.days
    );
    let (store, _dir) = fresh_store(&a.postgres, "kpi").await?;
    // The clock stands at the end of the history, so default ranges (the last twelve weeks)
    // fall in it.
    let first_day = 20_000; // 2024-10-04
    let end = clock::from_unix((first_day + a.days) * 86_400 + 12 * 3600);
    let app = App::new(store.clone(), Arc::new(FixedClock::new(end)));
    app.prepare().await.map_err(err)?;
    let mut tx = store.write().await?;
    let admin = app
        .create_user_cli(
            &mut tx,
            UserInput {
                name: Some("Bench Admin".into()),
                email: Some(Some("bench@opsdesk.example".into())),
                role: Some("admin".into()),
                ..Default::default()
            },
        )
        .await
        .map_err(err)?;
    let mut agents = vec![];
    for i in 0..40 {
        let u = app
            .create_user_cli(
                &mut tx,
                UserInput {
                    name: Some(format!("Engineer {i}")),
                    email: Some(Some(format!("engineer{i}@opsdesk.example"))),
                    role: Some("agent".into()),
                    ..Default::default()
                },
            )
            .await
            .map_err(err)?;
        agents.push(u.id);
    }
    tx.commit().await?;
    let admin = Actor { user: admin };
    for f in [
        simple("support_level", "Support level", "text"),
        simple("org_region", "Region", "text"),
    ] {
        app.save_custom_field(&admin, FieldKind::Organization, None, f)
            .await
            .map_err(err)?;
    }
    let mut orgs = vec![];
    for i in 0..200 {
        let mut fields = BTreeMap::new();
        let plan = ["priority", "standard", "standard", "expired", "community"][i % 5];
        fields.insert("support_level".to_string(), json!(plan));
        fields.insert(
            "org_region".to_string(),
            json!(["amer", "emea", "apac"][i % 3]),
        );
        let o = app
            .create_organization(
                &admin,
                OrganizationInput {
                    name: Some(format!("Customer {i}")),
                    organization_fields: Some(fields),
                    ..Default::default()
                },
            )
            .await
            .map_err(err)?;
        orgs.push(o.id);
    }
    let mut groups = vec![];
    for g in ["AMER", "EMEA", "APAC", "US Federal", "Licensing", "Billing"] {
        let g = app
            .save_group(
                &admin,
                None,
                GroupInput {
                    name: Some(g.into()),
                    ..Default::default()
                },
            )
            .await
            .map_err(err)?;
        groups.push(g.id);
    }
    // The facts, 50,000 tickets per statement, as a bulk load: indexes built afterwards.
    let t0 = Instant::now();
    let defs = {
        let mut tx = store.write().await?;
        let d = tx.drop_kpi_fact_indexes().await?;
        tx.commit().await?;
        d
    };
    let batch = 50_000;
    let mut done = 0;
    while done < a.tickets {
        let n = batch.min(a.tickets - done);
        let days_from = first_day + done * a.days / a.tickets;
        let days_span = (n * a.days / a.tickets).max(1);
        let mut tx = store.write().await?;
        tx.insert_synthetic_kpi_facts(
            1 + done,
            n,
            a.facts_per_ticket,
            days_from,
            days_span,
            (agents[0], agents.len() as i64),
            (groups[0], groups.len() as i64),
            (orgs[0], orgs.len() as i64),
        )
        .await?;
        tx.commit().await?;
        done += n;
    }
    {
        let t = Instant::now();
        let mut tx = store.write().await?;
        tx.create_indexes(&defs).await?;
        tx.commit().await?;
        println!(
            "indexes built in {:.1} s (setup)",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let mut tx = store.write().await?;
        tx.roll_up_kpi_facts().await?;
        tx.commit().await?;
        println!("daily counts in {:.1} s (setup)", t.elapsed().as_secs_f64());
    }
    if a.postgres.is_some() {
        // Index-only scans need the visibility map, as autovacuum would leave it.
        let mut c = store.read().await?;
        c.exec("VACUUM ANALYZE kpi_facts", &[]).await?;
    } else {
        let mut tx = store.write().await?;
        tx.exec("ANALYZE", &[]).await?;
        tx.commit().await?;
    }
    println!(
        "inserted {} facts in {:.1} s (setup)",
        a.tickets * a.facts_per_ticket,
        t0.elapsed().as_secs_f64()
    );

    let year_ago = clock::format(clock::from_unix(end.as_second() - 364 * 86_400));
    let year_from = &year_ago[..10];
    let week = {
        let d = opsdesk_core::kpi::date_of(first_day + a.days - 7);
        let w = d.iso_week_date();
        format!("{}-W{:02}", w.year(), w.week())
    };
    let all_from = opsdesk_core::kpi::date_of(first_day).to_string();
    let cases: Vec<(&str, String)> = vec![
        ("tickets", String::new()),
        ("tickets", format!("period=month&from={year_from}")),
        ("tickets", format!("period=month&from={all_from}")),
        ("tickets", "by=group".into()),
        ("tickets", format!("by=plan&period=month&from={year_from}")),
        ("sla_achievement", String::new()),
        ("sla_achievement", "by=group".into()),
        ("sla_achievement", format!("period=month&from={year_from}")),
        ("first_reply_time", String::new()),
        ("first_reply_time", "by=assignee".into()),
        ("first_reply_time", format!("period=month&from={year_from}")),
        ("next_reply_time", String::new()),
        ("full_resolution_time", "by=plan".into()),
        ("requester_wait_time", "by=region".into()),
        ("resolution_to_wait_ratio", String::new()),
        ("reopen_rate", String::new()),
        ("one_touch", "by=group".into()),
        ("satisfaction", String::new()),
        ("engineer_activity", format!("week={week}")),
        ("engineer_activity", String::new()),
        ("baselines", format!("week={week}")),
        ("baselines", String::new()),
        ("week_in_review", format!("week={week}")),
    ];
    // The first run of a duration report computes its closed buckets from the facts and
    // keeps them; the runs after it read what was kept.
    println!(
        "{:<52} {:>6} {:>9} {:>9} {:>9}",
        "report", "rows", "first ms", "p50 ms", "max ms"
    );
    let mut worst: (Duration, String) = (Duration::ZERO, String::new());
    for (metric, q) in cases {
        let params: BTreeMap<String, String> = url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect();
        let mut lat = vec![];
        let mut rows = 0;
        for _ in 0..a.repeats.max(2) {
            let t = Instant::now();
            if metric == "week_in_review" {
                app.week_in_review(&admin, &params).await.map_err(err)?;
                rows = 1;
            } else {
                rows = app
                    .kpi_report(&admin, metric, &params)
                    .await
                    .map_err(err)?
                    .rows
                    .len();
            }
            lat.push(t.elapsed());
        }
        let first = lat[0];
        lat.sort_unstable();
        let p50 = lat[lat.len() / 2];
        let max = lat[lat.len() - 1];
        let label = if q.is_empty() {
            metric.to_string()
        } else {
            format!("{metric}?{q}")
        };
        println!(
            "{label:<52} {rows:>6} {:>9.1} {:>9.1} {:>9.1}",
            first.as_secs_f64() * 1e3,
            p50.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
        if p50 > worst.0 {
            worst = (p50, label);
        }
    }
    println!(
        "slowest median: {} at {:.1} ms",
        worst.1,
        worst.0.as_secs_f64() * 1e3
    );

    // A ticket of a closed month moves to another group: the next report by group computes
    // that month again, and reads the others.
    let by_group = format!("period=month&from={year_from}&by=group");
    let params: BTreeMap<String, String> = url::form_urlencoded::parse(by_group.as_bytes())
        .into_owned()
        .collect();
    let report = || app.kpi_report(&admin, "first_reply_time", &params);
    report().await.map_err(err)?;
    let t = Instant::now();
    report().await.map_err(err)?;
    let kept = t.elapsed();
    // Three quarters through the history: inside the last year, in a closed month.
    let moved_ticket = a.tickets * 3 / 4;
    {
        let mut c = store.read().await?;
        let row = c
            .one(
                "SELECT assignee_id, group_id, organization_id, priority, channel, plan, region \
                 FROM kpi_facts WHERE ticket_id = $1 LIMIT 1",
                &[opsdesk_store::Val::Int(moved_ticket)],
            )
            .await?;
        let dims = opsdesk_core::kpi::Dims {
            assignee_id: row.opt_i64(0)?,
            group_id: Some(
                groups[0]
                    + (row.opt_i64(1)?.unwrap_or(groups[0]) - groups[0] + 1) % groups.len() as i64,
            ),
            organization_id: row.opt_i64(2)?,
            form_id: None,
            priority: row.opt_str(3)?,
            channel: row.str(4)?,
            plan: row.opt_str(5)?,
            region: row.opt_str(6)?,
        };
        drop(c);
        let mut tx = store.write().await?;
        tx.set_kpi_dims(moved_ticket, &dims, &["group_id"]).await?;
        tx.commit().await?;
    }
    let t = Instant::now();
    report().await.map_err(err)?;
    println!(
        "first_reply_time?{by_group}: kept {:.1} ms; after ticket {moved_ticket} moved group {:.1} ms",
        kept.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );

    // The worker that keeps the dashboards' durations ready: its first run after the cases
    // above, then a run with nothing changed.
    for run in ["first", "again"] {
        let t = Instant::now();
        app.keep_kpi_durations().await.map_err(err)?;
        println!(
            "keep_kpi_durations ({run}): {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }

    // The dashboards: the real pages, served on 127.0.0.1 and read by a signed-in admin.
    app.set_password(None, admin.id(), "bench-password-123")
        .await
        .map_err(err)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = opsdesk_http::router(app.clone(), &Default::default())
        .merge(opsdesk_web::router(app.clone()));
    let server = tokio::spawn(opsdesk_http::serve_router(listener, router, async move {
        let _ = stop_rx.await;
    }));
    let cookie =
        crate::bench_web::sign_in(&base, "bench@opsdesk.example", "bench-password-123").await?;
    let client = reqwest::Client::new();
    println!(
        "{:<52} {:>6} {:>9} {:>9}",
        "dashboard page", "KB", "p50 ms", "max ms"
    );
    for path in [
        "/manager".to_string(),
        "/manager?weeks=52".to_string(),
        format!("/manager/team?week={week}"),
        format!("/manager/engineers/{}", agents[0]),
        format!("/manager/week?week={week}"),
    ] {
        let mut lat = vec![];
        let mut size = 0;
        for _ in 0..a.repeats.max(1) {
            let t = Instant::now();
            let r = client
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
            size = r.bytes().await?.len();
            lat.push(t.elapsed());
        }
        lat.sort_unstable();
        println!(
            "{path:<52} {:>6.1} {:>9.1} {:>9.1}",
            size as f64 / 1024.0,
            lat[lat.len() / 2].as_secs_f64() * 1e3,
            lat[lat.len() - 1].as_secs_f64() * 1e3
        );
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}
