//! Background work every node runs: delivering the outbox, the SLA breach scheduler (with
//! the outbox loop, every few seconds) and the automation scheduler.
//! Coordination is through the database (claims and leases), so any number of nodes can run
//! these side by side.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::App;

/// How often the SLA breach scheduler looks for breaches that are due.
pub const SLA_TICK: Duration = Duration::from_secs(5);

/// How often the automation scheduler checks whether a run is due.
pub const AUTOMATION_TICK: Duration = Duration::from_secs(10);

/// How often a node offers to keep the dashboards' KPI durations ready
/// ([`App::keep_kpi_durations`]).
pub const KPI_TICK: Duration = Duration::from_secs(60);

/// When each worker last went round its loop (UTC seconds; 0: not started), for `/readyz`.
#[derive(Debug, Default)]
pub struct Heartbeats {
    pub outbox: AtomicI64,
    pub automations: AtomicI64,
    /// The mail ingest worker (0 where it does not run).
    pub mail: AtomicI64,
}

impl Heartbeats {
    /// Workers run here and went round their loops recently.
    pub fn healthy(&self, now: i64) -> Option<bool> {
        let o = self.outbox.load(Ordering::Relaxed);
        let a = self.automations.load(Ordering::Relaxed);
        if o == 0 && a == 0 {
            return None;
        }
        let m = self.mail.load(Ordering::Relaxed);
        // A long automation run holds its loop; its lease renewals keep it honest.
        Some(now - o < 60 && (m == 0 || now - m < 60))
    }
}

/// Start the workers; they stop when `stop` turns true. Returns their handles.
pub fn spawn(app: App, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    let beats: Arc<Heartbeats> = app.heartbeats.clone();
    let now = app.now().as_second();
    beats.outbox.store(now, Ordering::Relaxed);
    beats.automations.store(now, Ordering::Relaxed);
    let outbox = {
        let app = app.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut last_sla = std::time::Instant::now() - SLA_TICK;
            loop {
                if *stop.borrow() {
                    break;
                }
                if last_sla.elapsed() >= SLA_TICK {
                    last_sla = std::time::Instant::now();
                    if let Err(e) = app.sla_breach_tick(500).await {
                        tracing::warn!(error = %e, "SLA breach scheduler");
                    }
                }
                let busy = match app.deliver_outbox(32).await {
                    Ok(n) => n > 0,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox delivery");
                        false
                    }
                };
                app.heartbeats
                    .outbox
                    .store(app.now().as_second(), Ordering::Relaxed);
                if !busy {
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        })
    };
    let kpis = every(app.clone(), stop.clone(), KPI_TICK, |app| async move {
        if let Err(e) = app.keep_kpi_durations().await {
            tracing::warn!(error = %e, "keeping KPI durations");
        }
    });
    let automations = every(app, stop, AUTOMATION_TICK, |app| async move {
        if let Err(e) = app.run_automations_if_due().await {
            tracing::warn!(error = %e, "automation run");
        }
        app.heartbeats
            .automations
            .store(app.now().as_second(), Ordering::Relaxed);
    });
    vec![outbox, automations, kpis]
}

/// A worker that runs `round` every `tick` until `stop` turns true.
fn every<F, Fut>(
    app: App,
    mut stop: watch::Receiver<bool>,
    tick: Duration,
    round: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(App) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                break;
            }
            round(app.clone()).await;
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
    })
}
