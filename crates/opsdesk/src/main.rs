//! The opsdesk binary: every role in one executable.

mod bench;
mod bench_kpi;
mod bench_mail;
mod bench_sla;
mod bench_web;
mod demo;
mod mail;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use opsdesk_app::people::UserInput;
use opsdesk_app::App;
use opsdesk_core::SystemClock;
use opsdesk_store::{DbConfig, Store};

/// mimalloc instead of the system allocator: a profile of ticket creates spent about a sixth
/// of its time in glibc's malloc and free (docs/benchmarks.md, "The allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// opsdesk: a self-hosted, Zendesk-compatible support-operations platform.
///
/// Data lives in a SQLite database under --data-dir unless --database-url points at
/// PostgreSQL. Every command takes the same database options.
#[derive(Parser)]
#[command(name = "opsdesk", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    mail: mail::MailArgs,
    /// Log format: text or json.
    #[arg(
        long,
        env = "OPSDESK_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DbArgs {
    /// Directory for the embedded SQLite database (created if missing).
    #[arg(
        long,
        env = "OPSDESK_DATA_DIR",
        default_value = "./opsdesk-data",
        global = true
    )]
    data_dir: PathBuf,
    /// PostgreSQL URL (postgres://user@host/db); when set, --data-dir is not used for data.
    #[arg(long, env = "OPSDESK_DATABASE_URL", global = true)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP API); migrates the database first.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "OPSDESK_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Largest accepted request body in bytes.
        #[arg(long, env = "OPSDESK_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
        max_body_bytes: usize,
        /// The URL people reach this instance at (used in `{{ticket.url}}` and links).
        #[arg(long, env = "OPSDESK_PUBLIC_URL")]
        public_url: Option<String>,
        /// API requests per user per minute before 429 (0: unlimited).
        #[arg(long, env = "OPSDESK_RATE_LIMIT_PER_MINUTE", default_value_t = 6000)]
        rate_limit_per_minute: u32,
        /// Seconds between automation runs (Zendesk runs them hourly).
        #[arg(long, env = "OPSDESK_AUTOMATION_INTERVAL", default_value_t = 3600, value_parser = clap::value_parser!(i64).range(10..=86_400))]
        automation_interval: i64,
        /// The most tickets one automation acts on per run.
        #[arg(long, env = "OPSDESK_AUTOMATION_MAX_TICKETS", default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
        automation_max_tickets: i64,
        /// Seconds of most recent changes the time-based incremental exports hold back (Zendesk:
        /// one minute), so a change committing a moment late is never skipped.
        #[arg(long, env = "OPSDESK_EXPORT_HOLD_BACK", default_value_t = 60, value_parser = clap::value_parser!(i64).range(0..=3_600))]
        export_hold_back: i64,
        /// Minutes before an SLA breach at which the scheduler records a `warning` metric
        /// event and runs the triggers with `sla_event is warning` (0: no warnings).
        #[arg(long, env = "OPSDESK_SLA_WARNING_MINUTES", default_value_t = 60, value_parser = clap::value_parser!(i64).range(0..=10_080))]
        sla_warning_minutes: i64,
        /// Accept inbound mail by SMTP on this address (for example 127.0.0.1:2525 behind
        /// the MX, or 0.0.0.0:25).
        #[arg(long, env = "OPSDESK_SMTP_LISTEN")]
        smtp_listen: Option<String>,
        /// The host name the SMTP listener greets with.
        #[arg(long, env = "OPSDESK_SMTP_HOSTNAME", default_value = "opsdesk")]
        smtp_hostname: String,
        /// PEM certificate chain for STARTTLS on the SMTP listener (with --smtp-tls-key).
        #[arg(long, env = "OPSDESK_SMTP_TLS_CERT", requires = "smtp_tls_key")]
        smtp_tls_cert: Option<PathBuf>,
        /// PEM private key for STARTTLS.
        #[arg(long, env = "OPSDESK_SMTP_TLS_KEY", requires = "smtp_tls_cert")]
        smtp_tls_key: Option<PathBuf>,
        /// Largest inbound message (bytes), by SMTP or the relay endpoint.
        #[arg(long, env = "OPSDESK_SMTP_MAX_MESSAGE_BYTES", default_value_t = 35 * 1024 * 1024)]
        smtp_max_message_bytes: usize,
        /// Send outgoing mail through this relay: smtps://user:pass@host:465,
        /// smtp://host:587?tls=required, or smtp://127.0.0.1:25. Without it, email waits in
        /// the outbox.
        #[arg(long, env = "OPSDESK_SMTP_RELAY")]
        smtp_relay: Option<String>,
    },
    /// SLAs: recompute every open ticket's SLA now (after changing policies or schedules;
    /// otherwise a ticket follows them from its next update, as in Zendesk).
    Sla {
        #[command(subcommand)]
        command: SlaCommand,
    },
    /// KPIs: derive every ticket's KPI facts again from its audits and metric events
    /// (docs/kpi.md), optionally counting days and weeks in another time zone.
    Kpi {
        #[command(subcommand)]
        command: KpiCommand,
    },
    /// The email channel: the pipe command for an existing MTA.
    Mail {
        #[command(subcommand)]
        command: mail::MailCommand,
    },
    /// Write a consistent copy of the database while the server runs (SQLite; for PostgreSQL
    /// use pg_dump, see docs/operations.md).
    Backup {
        /// The backup file to create (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
    /// Replace the database with a backup (the server must be stopped; the current database is
    /// kept beside it as opsdesk.db.before-restore-TIMESTAMP).
    Restore {
        /// A file written by `opsdesk backup`.
        #[arg(long)]
        from: PathBuf,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Fill the database with a realistic demo helpdesk (organisations, people, months of tickets).
    Demo(demo::DemoArgs),
    /// Benchmarks (print figures; never fail on a number).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

#[derive(Subcommand)]
enum SlaCommand {
    /// Recompute the SLA of every ticket that is not closed (500 per transaction); prints how
    /// many. Safe beside a running server: each ticket is locked while it is recomputed.
    Recompute {
        /// As the server's (`serve --sla-warning-minutes`), so warnings stay in step.
        #[arg(long, env = "OPSDESK_SLA_WARNING_MINUTES", default_value_t = 60, value_parser = clap::value_parser!(i64).range(0..=10_080))]
        sla_warning_minutes: i64,
    },
}

#[derive(Subcommand)]
enum KpiCommand {
    /// Rebuild the KPI facts of every ticket (500 per transaction) and print how many
    /// tickets. Safe beside a running server: each batch is one transaction.
    Rebuild {
        /// Count days and ISO weeks in this IANA zone from now on (for example
        /// America/Los_Angeles); kept in the database for every node.
        #[arg(long)]
        time_zone: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (prints its id).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// admin, agent or end-user
        #[arg(long, default_value = "end-user")]
        role: String,
        /// Password for signing in (at least 8 characters).
        #[arg(long, env = "OPSDESK_USER_PASSWORD")]
        password: Option<String>,
    },
    /// Set a user's password.
    Password {
        #[arg(long)]
        email: String,
        #[arg(long, env = "OPSDESK_USER_PASSWORD")]
        password: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user and print it (only its hash is stored).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        description: Option<String>,
    },
}

fn db_config(db: &DbArgs) -> Result<DbConfig> {
    Ok(match &db.database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            DbConfig::Postgres {
                url: url.clone(),
                schema: None,
                max_connections: 16,
            }
        }
        Some(url) if url.starts_with("sqlite:") => DbConfig::Sqlite {
            path: PathBuf::from(
                url.trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:"),
            ),
        },
        Some(url) => bail!("--database-url must start with postgres:// (or sqlite:), got {url:?}"),
        None => {
            std::fs::create_dir_all(&db.data_dir)
                .with_context(|| format!("creating data directory {}", db.data_dir.display()))?;
            DbConfig::Sqlite {
                path: db.data_dir.join("opsdesk.db"),
            }
        }
    })
}

async fn open_app(db: &DbArgs) -> Result<App> {
    let cfg = db_config(db)?;
    let store = Store::open(&cfg)
        .await
        .with_context(|| format!("opening the database ({})", describe(&cfg)))?;
    let app = App::new(store, Arc::new(SystemClock));
    app.prepare()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("migrating the database")?;
    Ok(app)
}

fn describe(cfg: &DbConfig) -> String {
    match cfg {
        DbConfig::Sqlite { path } => format!("SQLite at {}", path.display()),
        DbConfig::Postgres { url, .. } => {
            // Never print a password.
            match url::Url::parse(url) {
                Ok(mut u) => {
                    let _ = u.set_password(None);
                    format!("PostgreSQL at {u}")
                }
                Err(_) => "PostgreSQL".into(),
            }
        }
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPSDESK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

/// One server per SQLite file: hold an exclusive lock on the data directory while serving.
fn lock_data_dir(db: &DbArgs) -> Result<Option<std::fs::File>> {
    if db.database_url.is_some() {
        return Ok(None);
    }
    std::fs::create_dir_all(&db.data_dir)?;
    let path = db.data_dir.join("opsdesk.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(_) => bail!(
            "another opsdesk server is already serving {} — SQLite supports one server per database; use PostgreSQL (--database-url) for several nodes",
            db.data_dir.display()
        ),
    }
}

async fn futures_join_all(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            max_body_bytes,
            rate_limit_per_minute,
            public_url,
            automation_interval,
            automation_max_tickets,
            export_hold_back,
            sla_warning_minutes,
            smtp_listen,
            smtp_hostname,
            smtp_tls_cert,
            smtp_tls_key,
            smtp_max_message_bytes,
            smtp_relay,
        } => {
            let _lock = lock_data_dir(&cli.db)?;
            let app = open_app(&cli.db).await?;
            let mut app =
                app.with_public_url(&public_url.unwrap_or_else(|| format!("http://{listen}")));
            cli.mail.apply(&mut app, &cli.db.data_dir)?;
            if let Some(relay) = &smtp_relay {
                let m = opsdesk_mail::transport::SmtpMailer::from_url(relay)
                    .map_err(|e| anyhow::anyhow!(e))?;
                app.mailer = Some(Arc::new(m));
            }
            let smtp = match &smtp_listen {
                None => None,
                Some(a) => {
                    let addr: SocketAddr = a.parse().with_context(|| {
                        format!("--smtp-listen {a:?} is not an address like 127.0.0.1:2525")
                    })?;
                    let l = tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("binding SMTP {addr}"))?;
                    eprintln!("opsdesk accepting mail on smtp://{}", l.local_addr()?);
                    let tls = match (&smtp_tls_cert, &smtp_tls_key) {
                        (Some(c), Some(k)) => Some(
                            opsdesk_mail::smtp::tls_acceptor(c, k)
                                .map_err(|e| anyhow::anyhow!(e))?,
                        ),
                        _ => None,
                    };
                    Some((
                        l,
                        opsdesk_mail::smtp::SmtpConfig {
                            hostname: smtp_hostname.clone(),
                            max_message_bytes: smtp_max_message_bytes,
                            tls,
                            ..Default::default()
                        },
                    ))
                }
            };
            app.automation = opsdesk_app::automations::AutomationConfig {
                interval_secs: automation_interval,
                max_per_automation: automation_max_tickets,
            };
            app.export_hold_back_secs = export_hold_back;
            app.sla_warning_secs = sla_warning_minutes * 60;
            let addr: SocketAddr = listen.parse().with_context(|| {
                format!("--listen {listen:?} is not an address like 127.0.0.1:8080")
            })?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let local = listener.local_addr()?;
            tracing::info!(listen = %local, backend = app.store.backend(), "opsdesk serving");
            eprintln!("opsdesk listening on http://{local}");
            let store = app.store.clone();
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let shutdown = async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            };
            // The recorder first: the workers count from their first run.
            opsdesk_http::install_metrics();
            let mut workers = opsdesk_app::workers::spawn(app.clone(), stop_rx.clone());
            workers.push(opsdesk_mail::ingest::spawn(app.clone(), stop_rx.clone()));
            if let Some((l, cfg)) = smtp {
                workers.push(tokio::spawn(opsdesk_mail::smtp::serve(
                    l,
                    cfg,
                    app.clone(),
                    stop_rx.clone(),
                )));
            }
            let http_cfg = opsdesk_http::HttpConfig {
                max_body_bytes,
                rate_limit_per_minute,
                max_upload_bytes: smtp_max_message_bytes.max(cli.mail.max_attachment_bytes),
            };
            // The API and the web interface on one listener.
            let router =
                opsdesk_http::router(app.clone(), &http_cfg).merge(opsdesk_web::router(app));
            let server = opsdesk_http::serve_router(listener, router, shutdown);
            let mut stop_rx = stop_rx;
            let grace = async move {
                let _ = stop_rx.wait_for(|stopping| *stopping).await;
                tokio::time::sleep(opsdesk_http::SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                r = server => r?,
                _ = grace => tracing::warn!(grace_secs = opsdesk_http::SHUTDOWN_GRACE.as_secs(), "in-flight requests did not finish in time; stopping anyway"),
            }
            // Workers finish the delivery or automation chunk they are in (each commits
            // on its own), bounded by the grace period.
            let _ =
                tokio::time::timeout(opsdesk_http::SHUTDOWN_GRACE, futures_join_all(workers)).await;
            store.close().await;
            tracing::info!("stopped");
        }
        Command::Backup { to } => backup(&cli.db, &to).await?,
        Command::Restore { from } => restore(&cli.db, &from).await?,
        Command::Migrate => {
            let cfg = db_config(&cli.db)?;
            let store = Store::open(&cfg)
                .await
                .with_context(|| format!("opening the database ({})", describe(&cfg)))?;
            let app = App::new(store, Arc::new(SystemClock));
            let done = app.prepare().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if done.is_empty() {
                println!("database is up to date");
            } else {
                for d in done {
                    println!("applied {d}");
                }
            }
        }
        Command::User { command } => {
            let app = open_app(&cli.db).await?;
            match command {
                UserCommand::Create {
                    email,
                    name,
                    role,
                    password,
                } => {
                    let input = UserInput {
                        name: Some(name),
                        email: Some(Some(email)),
                        role: Some(role),
                        password,
                        verified: Some(true),
                        ..Default::default()
                    };
                    let mut tx = app.store.write().await?;
                    let u = app
                        .create_user_cli(&mut tx, input)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    tx.commit().await?;
                    println!("{}", u.id);
                }
                UserCommand::Password { email, password } => {
                    let mut c = app.store.read().await?;
                    let u = c
                        .user_by_email(&email)
                        .await?
                        .with_context(|| format!("no user with email {email}"))?;
                    drop(c);
                    app.set_password(None, u.id, &password)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    println!("password set for {email}");
                }
            }
        }
        Command::Token { command } => {
            let app = open_app(&cli.db).await?;
            match command {
                TokenCommand::Create { email, description } => {
                    let t = app
                        .create_token(&email, description.as_deref())
                        .await
                        .map_err(|e| match e {
                            opsdesk_app::AppError::NotFound => {
                                anyhow::anyhow!("no user with email {email}")
                            }
                            e => anyhow::anyhow!("{e}"),
                        })?;
                    println!("{t}");
                }
            }
        }
        Command::Demo(args) => {
            let app = open_app(&cli.db).await?;
            demo::run(app, args).await?;
        }
        Command::Bench { command } => bench::run(command).await?,
        Command::Sla {
            command: SlaCommand::Recompute {
                sla_warning_minutes,
            },
        } => {
            let mut app = open_app(&cli.db).await?;
            app.sla_warning_secs = sla_warning_minutes * 60;
            let (mut after, mut total) = (0, 0);
            loop {
                let (n, last) = app
                    .recompute_slas(after, 500)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if n == 0 {
                    break;
                }
                total += n;
                after = last.unwrap_or(after);
            }
            println!("{total}");
        }
        Command::Kpi {
            command: KpiCommand::Rebuild { time_zone },
        } => {
            let app = open_app(&cli.db).await?;
            let n = app
                .rebuild_kpis(time_zone.as_deref(), |n| {
                    tracing::info!(tickets = n, "KPI facts rebuilt")
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{n}");
        }
        Command::Mail {
            command:
                mail::MailCommand::Ingest {
                    recipient,
                    max_message_bytes,
                    spool_only,
                },
        } => {
            let code = mail::pipe(
                &cli.db.data_dir,
                &cli.mail,
                &recipient,
                max_message_bytes,
                spool_only,
                open_app(&cli.db),
            )
            .await;
            std::process::exit(code);
        }
    }
    Ok(())
}

async fn backup(db: &DbArgs, to: &std::path::Path) -> Result<()> {
    if db.database_url.is_some() {
        bail!("backup copies the embedded SQLite database; for PostgreSQL use pg_dump --format=custom (docs/operations.md)");
    }
    if to.exists() {
        bail!("{} already exists; choose a new file", to.display());
    }
    let path = db.data_dir.join("opsdesk.db");
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    let store = Store::open_sqlite(&path).await?;
    let started = std::time::Instant::now();
    // VACUUM INTO reads one consistent snapshot while writers carry on (WAL).
    let target = to.to_str().context("the backup path must be valid UTF-8")?;
    let mut c = store.read().await?;
    c.exec("VACUUM INTO $1", &[opsdesk_store::Val::from(target)])
        .await
        .context("writing the backup")?;
    let tickets = c.int("SELECT COUNT(*) FROM tickets", &[]).await?;
    drop(c);
    store.close().await;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    println!(
        "backup written to {} ({} tickets, {} bytes, {:.2} s)",
        to.display(),
        tickets,
        bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn restore(db: &DbArgs, from: &std::path::Path) -> Result<()> {
    if db.database_url.is_some() {
        bail!("restore replaces the embedded SQLite database; for PostgreSQL use pg_restore (docs/operations.md)");
    }
    if !from.is_file() {
        bail!("{} is not a file", from.display());
    }
    let _lock = lock_data_dir(db).context("the server must be stopped before a restore")?;
    // Check the backup before touching anything.
    let check = Store::open_sqlite(from)
        .await
        .with_context(|| format!("opening {}", from.display()))?;
    let mut c = check.read().await?;
    let ok = c.one("PRAGMA integrity_check", &[]).await?.str(0)?;
    if ok != "ok" {
        bail!("{} fails SQLite's integrity check: {ok}", from.display());
    }
    let tickets = c
        .int("SELECT COUNT(*) FROM tickets", &[])
        .await
        .context("this file is not an opsdesk backup")?;
    drop(c);
    check.close().await;
    let path = db.data_dir.join("opsdesk.db");
    if path.exists() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = db
            .data_dir
            .join(format!("opsdesk.db.before-restore-{stamp}"));
        // Fold the WAL into the old file so the copy kept aside is complete.
        // (closing the last connection checkpoints the WAL into the file)
        let old = Store::open_sqlite(&path).await?;
        old.close().await;
        std::fs::rename(&path, &aside)?;
        for ext in ["-wal", "-shm"] {
            let p = db.data_dir.join(format!("opsdesk.db{ext}"));
            if p.exists() {
                std::fs::rename(
                    &p,
                    db.data_dir
                        .join(format!("opsdesk.db.before-restore-{stamp}{ext}")),
                )?;
            }
        }
        println!("the previous database is kept as {}", aside.display());
    }
    std::fs::copy(from, &path)
        .with_context(|| format!("copying {} into {}", from.display(), path.display()))?;
    let app = open_app(db).await?;
    app.store.close().await;
    println!(
        "restored {} ({} tickets) into {}",
        from.display(),
        tickets,
        path.display()
    );
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    init_logs(&cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
