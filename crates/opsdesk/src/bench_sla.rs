//! `opsdesk bench sla`: recomputing SLA state over many tickets, and the breach scheduler's
//! lookup with a million open tickets. Figures only (docs/benchmarks.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use opsdesk_app::business_hours::ScheduleInput;
use opsdesk_app::sla::SlaPolicyInput;
use opsdesk_app::App;
use opsdesk_core::sla::PolicyMetric;
use opsdesk_core::ticket::{Priority, Status};
use opsdesk_core::{Clock, FixedClock, SystemClock};

use crate::bench::{fresh_store, insert_bench_tickets, report};

#[derive(clap::Args)]
pub struct SlaBenchArgs {
    /// Open tickets whose SLA is recomputed.
    #[arg(long, default_value_t = 100_000)]
    tickets: usize,
    /// SLA rows the scheduler's lookup runs over (the recomputed tickets plus synthetic ones).
    #[arg(long, default_value_t = 1_000_000)]
    scheduler_rows: i64,
    /// Lookups timed.
    #[arg(long, default_value_t = 2_000)]
    lookups: usize,
    /// Use this PostgreSQL database instead of a fresh SQLite file.
    #[arg(long)]
    postgres: Option<String>,
}

fn err(e: opsdesk_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub async fn run(a: SlaBenchArgs) -> Result<()> {
    let n = a.tickets.max(1);
    println!(
        "opsdesk bench sla: recompute {n} open tickets, scheduler over {} rows, backend {}",
        a.scheduler_rows,
        if a.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    let (store, dir) = fresh_store(&a.postgres, "sla").await?;
    let clock = Arc::new(FixedClock::new(SystemClock.now()));
    let mut app = App::new(store.clone(), clock.clone());
    app.sla_warning_secs = 3600;
    app.prepare().await.map_err(err)?;
    let mut tx = store.write().await?;
    let admin = app
        .create_user_cli(
            &mut tx,
            opsdesk_app::people::UserInput {
                name: Some("Bench Admin".into()),
                email: Some(Some("bench@opsdesk.example".into())),
                role: Some("admin".into()),
                ..Default::default()
            },
        )
        .await
        .map_err(err)?;
    tx.commit().await?;
    let actor = opsdesk_app::Actor {
        user: admin.clone(),
    };
    let now = clock.now();
    let t0 = Instant::now();
    insert_bench_tickets(&store, admin.id, n, now, |i, t| {
        t.subject = Some(format!("SLA bench {i}"));
        t.status = if i % 10 == 0 {
            Status::Pending
        } else {
            Status::Open
        };
        t.priority = Some(
            [
                Priority::Low,
                Priority::Normal,
                Priority::High,
                Priority::Urgent,
            ][i % 4],
        );
    })
    .await?;
    println!(
        "inserted {n} tickets in {:.1} s (setup, not measured)",
        t0.elapsed().as_secs_f64()
    );
    // GitLab's 24x5 Pacific schedule and a policy with four business-hours metrics per
    // priority, as the gitlab-support profile has.
    let iv = crate::demo::gitlab_business_hours();
    app.save_schedule(
        &actor,
        None,
        ScheduleInput {
            name: Some("Business Hours".into()),
            time_zone: Some("Pacific Time (US & Canada)".into()),
            intervals: Some(iv),
        },
    )
    .await
    .map_err(err)?;
    let mut metrics = vec![];
    for (p, target) in [
        ("urgent", 30),
        ("high", 240),
        ("normal", 480),
        ("low", 1440),
    ] {
        for m in [
            "first_reply_time",
            "next_reply_time",
            "requester_wait_time",
            "periodic_update_time",
        ] {
            metrics.push(PolicyMetric {
                priority: p.into(),
                metric: m.into(),
                target: if m == "requester_wait_time" {
                    target * 4
                } else {
                    target
                },
                business_hours: p != "urgent",
            });
        }
    }
    app.save_sla_policy(
        &actor,
        None,
        SlaPolicyInput {
            title: Some("Everything".into()),
            filter: Some(Default::default()),
            policy_metrics: Some(metrics),
            ..Default::default()
        },
    )
    .await
    .map_err(err)?;

    // Recompute every open ticket, 500 per transaction (what `opsdesk sla recompute` does).
    let t0 = Instant::now();
    let mut after = 0;
    let mut done = 0;
    let mut lat = vec![];
    loop {
        let s = Instant::now();
        let (k, last) = app.recompute_slas(after, 500).await.map_err(err)?;
        if k == 0 {
            break;
        }
        lat.push(s.elapsed() / k as u32);
        done += k;
        after = last.unwrap_or(after);
    }
    report("SLA recompute (per ticket)", done, t0.elapsed(), lat);

    // The scheduler's lookup over many rows: synthetic SLA rows spread over 30 days.
    let extra = (a.scheduler_rows - n as i64).max(0);
    if extra > 0 {
        let t0 = Instant::now();
        let mut tx = store.write().await?;
        tx.insert_synthetic_slas(10_000_000, extra, now.as_second(), 30 * 86_400)
            .await?;
        tx.commit().await?;
        println!(
            "added {extra} synthetic SLA rows in {:.1} s (setup)",
            t0.elapsed().as_secs_f64()
        );
    }
    let mut c = store.read().await?;
    let at = now.as_second() + 3600;
    println!("plan: {}", c.explain_due_slas(at).await?);
    let mut lat = vec![];
    let t0 = Instant::now();
    for i in 0..a.lookups {
        // Walk the clock forward: each lookup sees a different due set.
        let at = now.as_second() + (i as i64 % 720) * 3600;
        let s = Instant::now();
        let due = c.due_slas(at, 500).await?;
        lat.push(s.elapsed());
        if due.is_empty() && i == 0 {
            println!("(nothing due at the first lookup)");
        }
    }
    drop(c);
    report(
        "scheduler lookup (500 due)",
        a.lookups,
        t0.elapsed(),
        lat.clone(),
    );
    let total: Duration = lat.iter().sum();
    println!(
        "mean lookup {:.3} ms over {} rows",
        total.as_secs_f64() * 1e3 / a.lookups as f64,
        a.scheduler_rows.max(n as i64)
    );
    store.close().await;
    if let Some(url) = &a.postgres {
        let admin = opsdesk_store::Store::open_postgres(url, None, 2).await?;
        let mut c = admin.write().await?;
        c.exec(
            &format!("DROP SCHEMA bench_sla_{} CASCADE", std::process::id()),
            &[],
        )
        .await?;
        c.commit().await?;
        admin.close().await;
    }
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(())
}
