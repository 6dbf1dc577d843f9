//! The store conformance suite: every backend must behave the same. Runs on SQLite always and
//! on PostgreSQL when OPSDESK_TEST_DATABASE_URL is set.

use opsdesk_core::clock::from_unix;
use opsdesk_core::model::{Group, Identity, JobStatus, Organization, Role, User};
use opsdesk_core::ticket::{creation_events, event_id, Audit, Comment, Priority, Ticket, Via};
use opsdesk_store::{
    testing, Cond, Order, Page, Store, StoreError, Val, MIGRATIONS_POSTGRES, MIGRATIONS_SQLITE,
};
use serde_json::json;

fn org(name: &str) -> Organization {
    let t = from_unix(1_700_000_000);
    Organization {
        id: 0,
        name: name.into(),
        external_id: None,
        domain_names: vec![],
        details: None,
        notes: None,
        group_id: None,
        shared_tickets: false,
        shared_comments: false,
        tags: vec![],
        organization_fields: Default::default(),
        created_at: t,
        updated_at: t,
    }
}

fn comment(author: i64, body: &str, public: bool) -> Comment {
    Comment {
        id: 0,
        kind: "Comment".into(),
        ticket_id: 0,
        audit_id: 0,
        author_id: author,
        body: body.into(),
        html_body: format!("<p>{body}</p>"),
        plain_body: body.into(),
        public,
        attachments: vec![],
        via: Via::api(),
        metadata: json!({}),
        created_at: from_unix(1_700_000_000),
    }
}

fn comment_event(c: &Comment) -> serde_json::Value {
    json!({"type": "Comment", "body": c.body, "public": c.public, "author_id": c.author_id})
}

async fn new_ticket(
    s: &Store,
    requester: i64,
    priority: Option<Priority>,
) -> (Ticket, Audit, Comment) {
    new_ticket_saying(s, requester, priority, "It is on fire").await
}

async fn new_ticket_saying(
    s: &Store,
    requester: i64,
    priority: Option<Priority>,
    body: &str,
) -> (Ticket, Audit, Comment) {
    let mut t = Ticket::blank(0, Via::api(), from_unix(1_700_000_000));
    t.subject = Some("Printer on fire".into());
    t.requester_id = requester;
    t.submitter_id = requester;
    t.priority = priority;
    t.description = body.into();
    let c = comment(requester, body, true);
    let mut events = creation_events(&t);
    events.push(comment_event(&c));
    let mut a = Audit {
        id: 0,
        ticket_id: 0,
        author_id: requester,
        via: Via::api(),
        metadata: json!({}),
        events,
        created_at: t.created_at,
    };
    let mut cs = vec![c];
    let mut tx = s.write().await.unwrap();
    tx.create_ticket(&mut t, &mut a, &mut cs).await.unwrap();
    tx.commit().await.unwrap();
    (t, a, cs.remove(0))
}

async fn docs_crud_and_pagination(name: &str, s: &Store) {
    let mut tx = s.write().await.unwrap();
    let mut ids = vec![];
    for i in 0..7 {
        let mut o = org(&format!("Org {i}"));
        tx.insert(&mut o).await.unwrap();
        assert!(o.id > 0, "{name}: id assigned");
        ids.push(o.id);
    }
    tx.commit().await.unwrap();
    let mut c = s.read().await.unwrap();
    let o: Organization = c.get(ids[2]).await.unwrap().unwrap();
    assert_eq!(o.name, "Org 2", "{name}");
    assert_eq!(o.id, ids[2], "{name}: id comes from the row");
    assert!(
        c.get::<Organization>(999_999).await.unwrap().is_none(),
        "{name}"
    );

    // Offset pages: 3 + 3 + 1, with the total count.
    let p1 = c
        .list::<Organization>(
            &[],
            &Page::Offset {
                page: 1,
                per_page: 3,
                order: Order::Asc,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        p1.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        ids[0..3].to_vec(),
        "{name}"
    );
    assert_eq!(p1.count, Some(7), "{name}");
    assert!(p1.has_more, "{name}");
    let p3 = c
        .list::<Organization>(
            &[],
            &Page::Offset {
                page: 3,
                per_page: 3,
                order: Order::Asc,
            },
        )
        .await
        .unwrap();
    assert_eq!(p3.items.len(), 1, "{name}");
    assert!(!p3.has_more, "{name}");

    // Cursor pages forwards and back.
    let c1 = c
        .list::<Organization>(
            &[],
            &Page::Cursor {
                size: 3,
                after: None,
                before: None,
                order: Order::Asc,
            },
        )
        .await
        .unwrap();
    assert!(c1.has_more && !c1.has_prev, "{name}");
    let last = c1.items.last().unwrap().id;
    let c2 = c
        .list::<Organization>(
            &[],
            &Page::Cursor {
                size: 3,
                after: Some(last),
                before: None,
                order: Order::Asc,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        c2.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        ids[3..6].to_vec(),
        "{name}"
    );
    assert!(c2.has_prev, "{name}");
    let back = c
        .list::<Organization>(
            &[],
            &Page::Cursor {
                size: 3,
                after: None,
                before: Some(c2.items[0].id),
                order: Order::Asc,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        back.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        ids[0..3].to_vec(),
        "{name}: before goes back in order"
    );
    let desc = c
        .list::<Organization>(
            &[],
            &Page::Cursor {
                size: 2,
                after: None,
                before: None,
                order: Order::Desc,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        desc.items.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![ids[6], ids[5]],
        "{name}: descending"
    );

    // Filters.
    let f = c
        .list::<Organization>(
            &[Cond::In("id", vec![Val::Int(ids[1]), Val::Int(ids[4])])],
            &Page::All { limit: 10 },
        )
        .await
        .unwrap();
    assert_eq!(f.items.len(), 2, "{name}");
    assert_eq!(
        c.count::<Organization>(&[Cond::Gt("id", Val::Int(ids[4]))])
            .await
            .unwrap(),
        2,
        "{name}"
    );
    drop(c);

    // Update and delete.
    let mut tx = s.write().await.unwrap();
    let mut o: Organization = tx.get(ids[0]).await.unwrap().unwrap();
    o.notes = Some("VIP".into());
    tx.update(&o).await.unwrap();
    assert!(tx.delete::<Organization>(ids[1]).await.unwrap(), "{name}");
    assert!(
        !tx.delete::<Organization>(ids[1]).await.unwrap(),
        "{name}: second delete finds nothing"
    );
    tx.commit().await.unwrap();
    let mut c = s.read().await.unwrap();
    assert_eq!(
        c.get::<Organization>(ids[0])
            .await
            .unwrap()
            .unwrap()
            .notes
            .as_deref(),
        Some("VIP"),
        "{name}"
    );
    assert!(
        c.get::<Organization>(ids[1]).await.unwrap().is_none(),
        "{name}"
    );
}

async fn uniqueness_is_a_conflict(name: &str, s: &Store) {
    let mut tx = s.write().await.unwrap();
    tx.insert(&mut org("Same Name")).await.unwrap();
    let e = tx.insert(&mut org("same name")).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{name}: {e:?}");
}

async fn rollback_leaves_nothing(name: &str, s: &Store) {
    {
        let mut tx = s.write().await.unwrap();
        tx.insert(&mut org("Never committed")).await.unwrap();
        // dropped without commit
    }
    let mut c = s.read().await.unwrap();
    assert_eq!(
        c.count::<Organization>(&[Cond::Eq("name_key", Val::from("never committed"))])
            .await
            .unwrap(),
        0,
        "{name}"
    );
}

async fn users_identities_tokens(name: &str, s: &Store) {
    let now = from_unix(1_700_000_000);
    let mut tx = s.write().await.unwrap();
    let mut u = User::new(
        "Cora".into(),
        Some("cora@example.com".into()),
        Role::EndUser,
        now,
    );
    tx.insert(&mut u).await.unwrap();
    let mut i = Identity::email(u.id, "Cora@Example.com".into(), true, now);
    tx.insert(&mut i).await.unwrap();
    tx.set_password_hash(u.id, Some("hash")).await.unwrap();
    tx.insert_token(u.id, "abc123", Some("ci"), 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut c = s.read().await.unwrap();
    assert_eq!(
        c.user_by_email("CORA@example.COM")
            .await
            .unwrap()
            .map(|u| u.name),
        Some("Cora".into()),
        "{name}: email lookup is case-insensitive"
    );
    assert_eq!(
        c.user_auth_by_email("cora@example.com")
            .await
            .unwrap()
            .and_then(|a| a.password_hash),
        Some("hash".into()),
        "{name}"
    );
    assert_eq!(
        c.user_by_token_hash("abc123").await.unwrap().map(|u| u.id),
        Some(u.id),
        "{name}"
    );
    assert!(
        c.user_by_token_hash("nope").await.unwrap().is_none(),
        "{name}"
    );
    assert_eq!(
        c.search_users("%cor%", 10).await.unwrap().len(),
        1,
        "{name}"
    );
    assert_eq!(
        c.tokens_of(u.id).await.unwrap()[0].description.as_deref(),
        Some("ci"),
        "{name}"
    );
}

async fn tickets_audits_comments(name: &str, s: &Store) {
    // Typed NULLs: a NULL then a value in the same column must both work (PostgreSQL caches
    // prepared statements with their parameter types).
    let (t1, a1, c1) = new_ticket(s, 5, None).await;
    let (t2, _, _) = new_ticket(s, 5, Some(Priority::High)).await;
    assert!(t2.id > t1.id, "{name}");
    assert_eq!(a1.ticket_id, t1.id, "{name}");
    let comment_index = a1
        .events
        .iter()
        .position(|e| e["type"] == "Comment")
        .unwrap();
    assert_eq!(
        c1.id,
        event_id(a1.id, comment_index),
        "{name}: comment id is its event id"
    );

    // An update: projection + second audit with an internal note.
    let mut tx = s.write().await.unwrap();
    let mut t = tx.ticket_for_update(t1.id).await.unwrap().unwrap();
    let old = t.clone();
    t.assignee_id = Some(9);
    t.status = opsdesk_core::ticket::Status::Open;
    let note = comment(9, "internal", false);
    let mut events = opsdesk_core::ticket::change_events(&old, &t);
    events.push(comment_event(&note));
    let mut a2 = Audit {
        id: 0,
        ticket_id: t.id,
        author_id: 9,
        via: Via::api(),
        metadata: json!({}),
        events,
        created_at: from_unix(1_700_000_100),
    };
    tx.save_ticket(&t, &mut a2, &mut [note]).await.unwrap();
    tx.commit().await.unwrap();

    let mut c = s.read().await.unwrap();
    let all = c
        .comments(t1.id, false, &Page::All { limit: 100 })
        .await
        .unwrap();
    assert_eq!(
        all.items
            .iter()
            .map(|c| c.body.as_str())
            .collect::<Vec<_>>(),
        vec!["It is on fire", "internal"],
        "{name}"
    );
    let public = c
        .comments(t1.id, true, &Page::All { limit: 100 })
        .await
        .unwrap();
    assert_eq!(public.items.len(), 1, "{name}: internal notes filtered");
    let audits = c.all_audits(t1.id).await.unwrap();
    assert_eq!(audits.len(), 2, "{name}");
    assert!(
        audits[1].events.iter().all(|e| e["id"].as_i64().is_some()),
        "{name}: events carry ids"
    );
    let replayed = opsdesk_core::ticket::replay(t1.id, &audits).unwrap();
    let stored = c.ticket(t1.id).await.unwrap().unwrap();
    assert_eq!(replayed.status, stored.status, "{name}");
    assert_eq!(replayed.assignee_id, Some(9), "{name}");
    assert_eq!(replayed.description, stored.description, "{name}");
    let paged = c
        .audits(
            t1.id,
            &Page::Cursor {
                size: 1,
                after: None,
                before: None,
                order: Order::Asc,
            },
        )
        .await
        .unwrap();
    assert!(paged.has_more && paged.items.len() == 1, "{name}");
    let by_status = c
        .tickets(
            &[Cond::Eq("status", Val::from("open"))],
            &Page::All { limit: 10 },
        )
        .await
        .unwrap();
    assert_eq!(
        by_status.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![t1.id],
        "{name}"
    );
    drop(c);

    // Soft delete, restore, purge.
    let mut tx = s.write().await.unwrap();
    assert!(tx.soft_delete_ticket(t2.id, 1, 1).await.unwrap(), "{name}");
    assert!(
        tx.ticket(t2.id).await.unwrap().is_none(),
        "{name}: deleted tickets are hidden"
    );
    assert_eq!(tx.deleted_tickets(10, 0).await.unwrap().len(), 1, "{name}");
    assert!(tx.restore_ticket(t2.id).await.unwrap(), "{name}");
    assert!(tx.ticket(t2.id).await.unwrap().is_some(), "{name}");
    assert!(
        !tx.purge_ticket(t2.id).await.unwrap(),
        "{name}: only deleted tickets can be purged"
    );
    tx.soft_delete_ticket(t2.id, 1, 1).await.unwrap();
    assert!(tx.purge_ticket(t2.id).await.unwrap(), "{name}");
    assert!(tx.all_audits(t2.id).await.unwrap().is_empty(), "{name}");
    tx.commit().await.unwrap();
}

async fn job_statuses(name: &str, s: &Store) {
    let t = from_unix(1_700_000_000);
    let mut j = JobStatus {
        id: "abc".into(),
        job_type: "bulk_create".into(),
        total: 2,
        progress: 0,
        status: "queued".into(),
        message: None,
        results: vec![],
        created_at: t,
        updated_at: t,
    };
    let mut tx = s.write().await.unwrap();
    tx.put_job_status(&j).await.unwrap();
    j.status = "completed".into();
    j.progress = 2;
    tx.put_job_status(&j).await.unwrap();
    tx.commit().await.unwrap();
    let mut c = s.read().await.unwrap();
    assert_eq!(
        c.job_status("abc").await.unwrap().unwrap().status,
        "completed",
        "{name}"
    );
    assert!(c.job_status("nope").await.unwrap().is_none(), "{name}");
}

async fn migrations_are_idempotent(name: &str, s: &Store) {
    assert!(
        s.migrate().await.unwrap().is_empty(),
        "{name}: nothing left to apply"
    );
    assert!(s.pending_migrations().await.unwrap().is_empty(), "{name}");
    let _: Option<Group> = s.read().await.unwrap().get(1).await.unwrap();
}

#[tokio::test]
async fn conformance() {
    for (name, s) in testing::all().await.unwrap() {
        docs_crud_and_pagination(name, &s).await;
        uniqueness_is_a_conflict(name, &s).await;
        rollback_leaves_nothing(name, &s).await;
        users_identities_tokens(name, &s).await;
        tickets_audits_comments(name, &s).await;
        job_statuses(name, &s).await;
        migrations_are_idempotent(name, &s).await;
        s.close().await;
    }
}

#[test]
fn migration_lists_match() {
    let a: Vec<&str> = MIGRATIONS_SQLITE.iter().map(|m| m.0).collect();
    let b: Vec<&str> = MIGRATIONS_POSTGRES.iter().map(|m| m.0).collect();
    assert_eq!(
        a, b,
        "every migration exists for both backends, in the same order"
    );
}

/// Many concurrent write transactions, some abandoned midway: exactly the committed ones stay
/// (on SQLite they share physical transactions through group commit).
#[tokio::test]
async fn concurrent_commits_and_rollbacks() {
    for (name, s) in testing::all().await.unwrap() {
        let mut tasks = vec![];
        for i in 0..60 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = s.write().await.unwrap();
                tx.insert(&mut org(&format!("Concurrent {i}")))
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
                if i % 3 == 0 {
                    drop(tx); // abandoned: must leave nothing
                    false
                } else {
                    tx.commit().await.unwrap();
                    true
                }
            }));
        }
        let mut committed = 0;
        for t in tasks {
            if tokio::time::timeout(std::time::Duration::from_secs(30), t)
                .await
                .expect("no writer may hang")
                .unwrap()
            {
                committed += 1;
            }
        }
        // Acknowledged commits are visible to a fresh reader at once.
        let mut c = s.read().await.unwrap();
        let n = c
            .count::<Organization>(&[Cond::Like("name_key", Val::from("concurrent %"))])
            .await
            .unwrap();
        assert_eq!((n, committed), (40, 40), "{name}");
        // The full-text entries follow the rows: on SQLite they are written at the end of the
        // group (deferred past the savepoints), and an abandoned use case takes its own along.
        let indexed = if c.is_postgres() {
            "SELECT COUNT(*) FROM organizations WHERE search_vec @@ '''concurrent'''::tsquery"
        } else {
            "SELECT COUNT(*) FROM organizations_fts WHERE organizations_fts MATCH '\"concurrent\"'"
        };
        assert_eq!(c.int(indexed, &[]).await.unwrap(), 40, "{name}");
        drop(c);
        // The writer is still usable after abandoned transactions.
        let mut tx = s.write().await.unwrap();
        tx.insert(&mut org("After")).await.unwrap();
        tx.commit().await.unwrap();
        assert!(
            s.read()
                .await
                .unwrap()
                .find::<Organization>(&[Cond::Eq("name_key", Val::from("after"))])
                .await
                .unwrap()
                .is_some(),
            "{name}"
        );
        s.close().await;
    }
}

/// `get_shared` reads a record a write refers to under `FOR KEY SHARE`: writes that share the
/// row do not wait for each other, but a `get` (`FOR UPDATE`, a use case changing or deleting
/// it) waits for them, and they for it (PostgreSQL; SQLite has one writer).
#[tokio::test]
async fn get_shared_lets_writes_share_a_row() {
    let Some(s) = testing::postgres().await.unwrap() else {
        return;
    };
    let mut tx = s.write().await.unwrap();
    let mut o = org("Shared by many tickets");
    tx.insert(&mut o).await.unwrap();
    tx.commit().await.unwrap();
    let locked_out = |e: StoreError| e.to_string().contains("lock timeout");
    let impatient = || async {
        let mut t = s.write().await.unwrap();
        t.exec("SET LOCAL lock_timeout = '300ms'", &[])
            .await
            .unwrap();
        t
    };

    let mut a = s.write().await.unwrap();
    let seen: Option<Organization> = a.get_shared(o.id).await.unwrap();
    assert_eq!(seen.map(|x| x.name), Some("Shared by many tickets".into()));
    let mut b = impatient().await;
    let also: Option<Organization> = b.get_shared(o.id).await.unwrap();
    assert!(also.is_some(), "two writes share the row");
    let mut c = impatient().await;
    let err = c.get::<Organization>(o.id).await.unwrap_err();
    assert!(
        locked_out(err),
        "a change waits for the writes that share the row"
    );
    drop((a, b, c));

    let mut a = s.write().await.unwrap();
    let _: Option<Organization> = a.get(o.id).await.unwrap();
    let mut b = impatient().await;
    let err = b.get_shared::<Organization>(o.id).await.unwrap_err();
    assert!(locked_out(err), "a write waits for a change in progress");
}

/// Full-text entries end in the order their writes committed, even when one record is
/// renamed by many use cases that share physical transactions (SQLite defers them to the end
/// of each group).
#[tokio::test]
async fn the_index_keeps_the_last_of_many_renames() {
    for (name, s) in testing::all().await.unwrap() {
        let mut tx = s.write().await.unwrap();
        let mut o = org("Renamed zero");
        tx.insert(&mut o).await.unwrap();
        tx.commit().await.unwrap();
        let words = [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
            "juliett", "kilo", "lima", "mike", "november", "oscar", "papa",
        ];
        let mut tasks = vec![];
        for w in words {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = s.write().await.unwrap();
                let mut x: Organization = tx.get(o.id).await.unwrap().unwrap();
                x.name = format!("Renamed {w}");
                tx.update(&x).await.unwrap();
                tx.commit().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut c = s.read().await.unwrap();
        let last: Organization = c.get(o.id).await.unwrap().unwrap();
        let mut matched = vec![];
        for w in std::iter::once("zero").chain(words) {
            let sql = if c.is_postgres() {
                format!("SELECT COUNT(*) FROM organizations WHERE search_vec @@ '''{w}'''::tsquery")
            } else {
                format!("SELECT COUNT(*) FROM organizations_fts WHERE organizations_fts MATCH '\"{w}\"'")
            };
            if c.int(&sql, &[]).await.unwrap() > 0 {
                matched.push(format!("Renamed {w}"));
            }
        }
        assert_eq!(matched, vec![last.name.clone()], "{name}");
        drop(c);
        s.close().await;
    }
}

/// PostgreSQL keeps each ticket's word vector out of its `ticket_words` row (migration 0022),
/// whether this binary wrote it (a new ticket, a reply) or the migration rewrote a row an
/// older layout held in line; every word is still found.
#[tokio::test]
async fn ticket_words_keep_their_vectors_out_of_line() {
    let Some(s) = testing::postgres().await.unwrap() else {
        return;
    };
    let words: Vec<String> = (0..100).map(|i| format!("word{i}")).collect();
    let body = format!("{} needle", words.join(" "));
    let mut first = None;
    for _ in 0..40 {
        let (t, _, _) = new_ticket_saying(&s, 5, None, &body).await;
        first.get_or_insert(t);
    }
    let first = first.unwrap();
    // A reply: the row is updated, its vector grown.
    let mut tx = s.write().await.unwrap();
    let t = tx.ticket_for_update(first.id).await.unwrap().unwrap();
    let reply = comment(9, &format!("{} haystack", words.join(" ")), true);
    let mut a = Audit {
        id: 0,
        ticket_id: t.id,
        author_id: 9,
        via: Via::api(),
        metadata: json!({}),
        events: vec![comment_event(&reply)],
        created_at: from_unix(1_700_000_100),
    };
    tx.save_ticket(&t, &mut a, &mut [reply]).await.unwrap();
    tx.commit().await.unwrap();
    let check = |layout: &'static str, head: bool| {
        let s = s.clone();
        async move {
            let mut c = s.read().await.unwrap();
            // Every live vector is in the TOAST table (which stays empty when they are in
            // their rows: PostgreSQL moves nothing out of a tuple under 2 kB).
            let out_of_line = c
                .int(
                    "SELECT CASE WHEN pg_relation_size(reltoastrelid) >= \
                     (SELECT SUM(pg_column_size(vec)) FROM ticket_words) THEN 1 ELSE 0 END::bigint \
                     FROM pg_class WHERE oid = 'ticket_words'::regclass",
                    &[],
                )
                .await
                .unwrap()
                == 1;
            let count = |q: &'static str| {
                format!("SELECT COUNT(*) FROM ticket_words WHERE vec @@ '{q}'::tsquery")
            };
            let needle = c.int(&count("needle"), &[]).await.unwrap();
            let both = c.int(&count("needle & haystack"), &[]).await.unwrap();
            let phrase = c.int(&count("word98 <-> word99"), &[]).await.unwrap();
            // The ticket's own fields (every subject is "Printer on fire").
            let own = if !head {
                -1
            } else {
                c.int(
                    "SELECT COUNT(*) FROM ticket_words WHERE head @@ '''printer'':A'::tsquery",
                    &[],
                )
                .await
                .unwrap()
            };
            (layout, out_of_line, needle, both, phrase, own)
        }
    };
    assert_eq!(
        check("written", true).await,
        ("written", true, 40, 1, 40, 40)
    );
    // The layout 0020 made, vectors in the rows: 0022 moves them out again.
    let mut tx = s.write().await.unwrap();
    tx.script(
        "CREATE TABLE ticket_words_0020 AS SELECT ticket_id, words, bytes, vec FROM ticket_words;
         DROP TABLE ticket_words;
         ALTER TABLE ticket_words_0020 RENAME TO ticket_words;
         ALTER TABLE ticket_words ADD PRIMARY KEY (ticket_id);
         CREATE INDEX ticket_words_search ON ticket_words USING GIN (vec);
         DELETE FROM schema_migrations WHERE version = '0022_ticket_words_out_of_line';",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // (0022 takes the ticket's own fields from tickets.search_vec.)
    assert_eq!(
        check("in line", false).await,
        ("in line", false, 40, 1, 40, -1)
    );
    assert_eq!(
        s.migrate().await.unwrap(),
        vec!["0022_ticket_words_out_of_line".to_string()]
    );
    // No statistics for the vectors, so the planner takes every word's GIN bitmap rather
    // than a scan that reads each vector (migration 0022).
    let mut c = s.read().await.unwrap();
    let unmeasured = c
        .int(
            "SELECT COUNT(*) FROM pg_attribute WHERE attrelid = 'ticket_words'::regclass \
             AND attname IN ('vec', 'head') AND attstattarget = 0",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(unmeasured, 2);
    drop(c);
    assert_eq!(
        check("migrated", true).await,
        ("migrated", true, 40, 1, 40, 40)
    );
    s.close().await;
}

/// The cursor export never lets a slow writer commit behind a reader: on PostgreSQL a change
/// from a transaction that began earlier but commits later is held back until it commits, then
/// delivered after the cursor (SQLite has one writer, so commit order is change order).
#[tokio::test]
async fn cursor_exports_wait_for_slow_writers() {
    let Some(s) = testing::postgres().await.unwrap() else {
        return;
    };
    let mut slow = s.write().await.unwrap();
    let mut a = org("Slow writer");
    slow.insert(&mut a).await.unwrap();
    let mut fast = s.write().await.unwrap();
    let mut b = org("Fast writer");
    fast.insert(&mut b).await.unwrap();
    fast.commit().await.unwrap();
    let mut r = s.read().await.unwrap();
    let (seen, done) = r
        .changes_after::<Organization>(0, (-1, 0), 100, true)
        .await
        .unwrap();
    // The fast writer's change waits behind the still-open slow transaction.
    assert!(seen.is_empty() && done, "{seen:?}");
    slow.commit().await.unwrap();
    // Other tests may be writing in the same cluster: wait (bounded) for them to end too.
    let mut names: Vec<String> = vec![];
    for _ in 0..200 {
        let (seen, _) = r
            .changes_after::<Organization>(0, (-1, 0), 100, true)
            .await
            .unwrap();
        names = seen.iter().map(|c| c.doc.name.clone()).collect();
        if names.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(names, vec!["Slow writer", "Fast writer"]);
    // Full text is written in the same transaction as the row.
    let n = r
        .int(
            "SELECT COUNT(*) FROM organizations WHERE search_vec @@ '''slow'''::tsquery",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// Closed buckets' duration figures are kept and read again while they are valid. Every
/// change to the facts behind them (a new fact, a move to another group, a deletion) makes
/// the next report compute exactly the touched buckets again, and the figures always equal
/// the ones computed from the facts.
#[tokio::test]
async fn kept_duration_figures_follow_every_change() {
    use opsdesk_core::kpi::{Dims, Fact};
    use opsdesk_store::{KpiQuery, KpiStat, StatBucket};
    use std::collections::BTreeSet;

    fn dims(group: i64) -> Dims {
        Dims {
            assignee_id: Some(7),
            group_id: Some(group),
            organization_id: None,
            form_id: None,
            priority: Some("normal".into()),
            channel: "email".into(),
            plan: None,
            region: None,
        }
    }
    fn reply(ticket: i64, day: i64, minutes: i64) -> (Fact, i64) {
        let f = Fact {
            ticket_id: ticket,
            time: day * 86_400 + 3600,
            kind: "first_reply",
            agent_id: Some(7),
            metric: None,
            calendar: Some(minutes),
            business: Some(minutes / 2),
            flags: 0,
        };
        (f, day)
    }
    fn sorted(mut v: Vec<(KpiStat, KpiStat)>) -> Vec<(KpiStat, KpiStat)> {
        v.sort_by_key(|(c, _)| (c.bucket, c.dim.clone()));
        v
    }
    // Days 100 to 103, one bucket each; 103 is today (open).
    let buckets: Vec<StatBucket> = (100..104)
        .map(|d| StatBucket {
            first: d,
            end: d + 1,
            cache: d < 103,
        })
        .collect();
    let query = |by: Option<&'static str>, conds: Vec<Cond>| KpiQuery {
        kinds: vec!["first_reply"],
        from_day: Some(100),
        to_day: Some(104),
        conds,
        by,
        bucket: Some("day".into()),
    };
    let total = query(None, vec![]);
    let by_group = query(Some("group_id"), vec![]);
    let group_one = query(None, vec![Cond::Eq("group_id", Val::Int(1))]);
    for (name, s) in testing::all().await.unwrap() {
        // Compares the kept path with the facts, keeps what it computed, and returns the
        // buckets (first days) it computed.
        let run = |q: &KpiQuery| {
            let (s, q, buckets) = (s.clone(), q.clone(), buckets.clone());
            async move {
                let mut c = s.read().await.unwrap();
                let live = sorted(c.kpi_stats(&q).await.unwrap());
                let (got, fills) = c.kpi_stats_cached(&q, &buckets).await.unwrap();
                assert_eq!(sorted(got), live, "{name}: {q:?}");
                drop(c);
                let mut tx = s.write().await.unwrap();
                tx.save_kpi_stats(&fills).await.unwrap();
                tx.commit().await.unwrap();
                fills.iter().map(|f| f.first).collect::<BTreeSet<i64>>()
            }
        };
        let days = |d: &[i64]| d.iter().copied().collect::<BTreeSet<i64>>();
        let mut tx = s.write().await.unwrap();
        for t in 1..=6 {
            let day = 100 + t % 4;
            tx.insert_kpi_facts(&[reply(t, day, 10 * t)], &dims(1 + t % 2))
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();

        assert_eq!(run(&total).await, days(&[100, 101, 102]), "{name}");
        assert_eq!(run(&total).await, days(&[]), "{name}: all kept");
        assert_eq!(run(&by_group).await, days(&[100, 101, 102]), "{name}");
        assert_eq!(run(&by_group).await, days(&[]), "{name}");
        // Group 1 (even tickets: days 100 and 102) was kept by the report by group.
        assert_eq!(run(&group_one).await, days(&[]), "{name}");

        // A late fact on day 101 (group 2): only that day is computed again, and not at
        // all for group 1.
        let mut tx = s.write().await.unwrap();
        tx.insert_kpi_facts(&[reply(9, 101, 95)], &dims(2))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(run(&total).await, days(&[101]), "{name}");
        assert_eq!(run(&by_group).await, days(&[101]), "{name}");
        assert_eq!(run(&group_one).await, days(&[]), "{name}");

        // Ticket 2 (day 102) moves from group 1 to group 2: the total is untouched.
        let mut tx = s.write().await.unwrap();
        tx.set_kpi_dims(2, &dims(2), &["group_id"]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(run(&total).await, days(&[]), "{name}");
        assert_eq!(run(&group_one).await, days(&[102]), "{name}");
        assert_eq!(run(&by_group).await, days(&[102]), "{name}");
        assert_eq!(run(&group_one).await, days(&[]), "{name}");

        // Ticket 4 (day 100) is deleted.
        let mut tx = s.write().await.unwrap();
        tx.delete_kpi_facts(4).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(run(&total).await, days(&[100]), "{name}");
        assert_eq!(run(&by_group).await, days(&[100]), "{name}");
        assert_eq!(run(&total).await, days(&[]), "{name}");

        // A rebuild starts from nothing: nothing kept survives it, and figures computed
        // before it but saved after it are not kept (the daily versions start again, so
        // their sums could match).
        let mut tx = s.write().await.unwrap();
        tx.insert_kpi_facts(&[reply(11, 101, 7)], &dims(1))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut c = s.read().await.unwrap();
        let (_, before_rebuild) = c.kpi_stats_cached(&total, &buckets).await.unwrap();
        drop(c);
        assert_eq!(before_rebuild.len(), 1, "{name}: day 101 computed");
        let mut tx = s.write().await.unwrap();
        tx.clear_kpi().await.unwrap();
        tx.insert_kpi_facts(&[reply(1, 101, 5)], &dims(1))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = s.write().await.unwrap();
        tx.save_kpi_stats(&before_rebuild).await.unwrap();
        let kept = tx
            .int("SELECT COUNT(*) FROM kpi_stat_cache", &[])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            kept, 0,
            "{name}: figures from before the rebuild are dropped"
        );
        assert_eq!(run(&total).await, days(&[101]), "{name}");
        s.close().await;
    }
}
