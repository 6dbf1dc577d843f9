//! Append-only migrations, one list per backend with the same names (a test checks).

use crate::{Result, Store, Val};

pub const MIGRATIONS_SQLITE: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        "0002_triggers",
        include_str!("../migrations/sqlite/0002_triggers.sql"),
    ),
    (
        "0003_macros",
        include_str!("../migrations/sqlite/0003_macros.sql"),
    ),
    (
        "0004_views",
        include_str!("../migrations/sqlite/0004_views.sql"),
    ),
    (
        "0005_automations_outbox",
        include_str!("../migrations/sqlite/0005_automations_outbox.sql"),
    ),
    (
        "0006_ticket_tags",
        include_str!("../migrations/sqlite/0006_ticket_tags.sql"),
    ),
    (
        "0007_schedules",
        include_str!("../migrations/sqlite/0007_schedules.sql"),
    ),
    (
        "0008_sla_policies",
        include_str!("../migrations/sqlite/0008_sla_policies.sql"),
    ),
    (
        "0009_sla_state",
        include_str!("../migrations/sqlite/0009_sla_state.sql"),
    ),
    (
        "0010_search",
        include_str!("../migrations/sqlite/0010_search.sql"),
    ),
    (
        "0011_mail",
        include_str!("../migrations/sqlite/0011_mail.sql"),
    ),
    (
        "0012_sla_due",
        include_str!("../migrations/sqlite/0012_sla_due.sql"),
    ),
    (
        "0013_kpi",
        include_str!("../migrations/sqlite/0013_kpi.sql"),
    ),
    (
        "0014_web",
        include_str!("../migrations/sqlite/0014_web.sql"),
    ),
    (
        "0015_kpi_cache",
        include_str!("../migrations/sqlite/0015_kpi_cache.sql"),
    ),
    (
        "0016_search_cover",
        include_str!("../migrations/sqlite/0016_search_cover.sql"),
    ),
    (
        "0017_search_deleted",
        include_str!("../migrations/sqlite/0017_search_deleted.sql"),
    ),
    (
        "0018_tag_status",
        include_str!("../migrations/sqlite/0018_tag_status.sql"),
    ),
    (
        "0019_search_sort",
        include_str!("../migrations/sqlite/0019_search_sort.sql"),
    ),
    (
        "0020_ticket_words",
        include_str!("../migrations/sqlite/0020_ticket_words.sql"),
    ),
    (
        "0021_tag_status_lookup",
        include_str!("../migrations/sqlite/0021_tag_status_lookup.sql"),
    ),
    (
        "0022_ticket_words_out_of_line",
        include_str!("../migrations/sqlite/0022_ticket_words_out_of_line.sql"),
    ),
];
pub const MIGRATIONS_POSTGRES: &[(&str, &str)] = &[
    (
        "0001_init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        "0002_triggers",
        include_str!("../migrations/postgres/0002_triggers.sql"),
    ),
    (
        "0003_macros",
        include_str!("../migrations/postgres/0003_macros.sql"),
    ),
    (
        "0004_views",
        include_str!("../migrations/postgres/0004_views.sql"),
    ),
    (
        "0005_automations_outbox",
        include_str!("../migrations/postgres/0005_automations_outbox.sql"),
    ),
    (
        "0006_ticket_tags",
        include_str!("../migrations/postgres/0006_ticket_tags.sql"),
    ),
    (
        "0007_schedules",
        include_str!("../migrations/postgres/0007_schedules.sql"),
    ),
    (
        "0008_sla_policies",
        include_str!("../migrations/postgres/0008_sla_policies.sql"),
    ),
    (
        "0009_sla_state",
        include_str!("../migrations/postgres/0009_sla_state.sql"),
    ),
    (
        "0010_search",
        include_str!("../migrations/postgres/0010_search.sql"),
    ),
    (
        "0011_mail",
        include_str!("../migrations/postgres/0011_mail.sql"),
    ),
    (
        "0012_sla_due",
        include_str!("../migrations/postgres/0012_sla_due.sql"),
    ),
    (
        "0013_kpi",
        include_str!("../migrations/postgres/0013_kpi.sql"),
    ),
    (
        "0014_web",
        include_str!("../migrations/postgres/0014_web.sql"),
    ),
    (
        "0015_kpi_cache",
        include_str!("../migrations/postgres/0015_kpi_cache.sql"),
    ),
    (
        "0016_search_cover",
        include_str!("../migrations/postgres/0016_search_cover.sql"),
    ),
    (
        "0017_search_deleted",
        include_str!("../migrations/postgres/0017_search_deleted.sql"),
    ),
    (
        "0018_tag_status",
        include_str!("../migrations/postgres/0018_tag_status.sql"),
    ),
    (
        "0019_search_sort",
        include_str!("../migrations/postgres/0019_search_sort.sql"),
    ),
    (
        "0020_ticket_words",
        include_str!("../migrations/postgres/0020_ticket_words.sql"),
    ),
    (
        "0021_tag_status_lookup",
        include_str!("../migrations/postgres/0021_tag_status_lookup.sql"),
    ),
    (
        "0022_ticket_words_out_of_line",
        include_str!("../migrations/postgres/0022_ticket_words_out_of_line.sql"),
    ),
];

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)";

fn list(store: &Store) -> &'static [(&'static str, &'static str)] {
    if store.backend() == "postgres" {
        MIGRATIONS_POSTGRES
    } else {
        MIGRATIONS_SQLITE
    }
}

pub async fn pending(store: &Store) -> Result<Vec<String>> {
    let mut c = store.read().await?;
    let applied: Vec<String> = match c.all("SELECT version FROM schema_migrations", &[]).await {
        Ok(rows) => rows.iter().map(|r| r.str(0)).collect::<Result<_>>()?,
        Err(_) => vec![],
    };
    Ok(list(store)
        .iter()
        .filter(|(n, _)| !applied.iter().any(|a| a == n))
        .map(|(n, _)| n.to_string())
        .collect())
}

pub async fn run(store: &Store) -> Result<Vec<String>> {
    let mut tx = store.write().await?;
    if tx.is_postgres() {
        tx.exec("SELECT pg_advisory_xact_lock(7301)", &[]).await?;
    }
    tx.script(LEDGER).await?;
    let mut done = vec![];
    for (name, sql) in list(store) {
        let n = tx
            .int(
                "SELECT COUNT(*) FROM schema_migrations WHERE version = $1",
                &[Val::from(*name)],
            )
            .await?;
        if n > 0 {
            continue;
        }
        tx.script(sql).await?;
        tx.exec(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[Val::from(*name), Val::Int(now_secs())],
        )
        .await?;
        done.push(name.to_string());
    }
    // The index holds opsdesk's own tokens, which only Rust computes. This binary's code writes
    // the schema as the last migration leaves it, so the fills run once every migration has.
    for name in &done {
        match name.as_str() {
            "0010_search" => tx.reindex_search_at_0010().await?,
            "0020_ticket_words" if tx.is_postgres() => {
                tx.reindex_comments().await?;
                tx.exec(
                    "CREATE INDEX ticket_comments_search ON ticket_comments USING GIN (search_vec) \
                     WHERE search_vec IS NOT NULL",
                    &[],
                )
                .await?;
            }
            _ => {}
        }
    }
    tx.commit().await?;
    Ok(done)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
