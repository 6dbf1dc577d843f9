//! API tests: the real server on 127.0.0.1:0, driven over HTTP, on every backend this run can
//! reach (SQLite always; PostgreSQL when OPSDESK_TEST_DATABASE_URL is set).

use std::sync::Arc;

use opsdesk_app::people::UserInput;
use opsdesk_app::App;
use opsdesk_core::{clock, FixedClock};
use opsdesk_store::{testing, Store};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct TestApp {
    name: &'static str,
    base: String,
    http: reqwest::Client,
    app: App,
    clock: Arc<FixedClock>,
    admin: (String, String),
    agent: (String, String),
    customer: (String, String),
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    async fn spawn(name: &'static str, store: Store, configure: fn(&mut App)) -> TestApp {
        let clock = Arc::new(FixedClock::new(
            clock::parse("2026-03-01T09:00:00Z").unwrap(),
        ));
        let mut app = App::new(store, clock.clone());
        configure(&mut app);
        app.prepare().await.unwrap();
        let mut tx = app.store.write().await.unwrap();
        for (email, n, role) in [
            ("admin@example.com", "Ada Admin", "admin"),
            ("agent@example.com", "Alan Agent", "agent"),
            ("cora@example.com", "Cora Customer", "end-user"),
        ] {
            app.create_user_cli(
                &mut tx,
                UserInput {
                    name: Some(n.into()),
                    email: Some(Some(email.into())),
                    role: Some(role.into()),
                    password: Some("password-123".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        let admin = (
            "admin@example.com/token".to_string(),
            app.create_token("admin@example.com", None).await.unwrap(),
        );
        let agent = (
            "agent@example.com/token".to_string(),
            app.create_token("agent@example.com", None).await.unwrap(),
        );
        let customer = ("cora@example.com".to_string(), "password-123".to_string());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let cfg = opsdesk_http::HttpConfig {
            max_body_bytes: 64 * 1024,
            ..Default::default()
        };
        tokio::spawn(opsdesk_http::serve(
            listener,
            app.clone(),
            cfg,
            async move {
                let _ = rx.await;
            },
        ));
        TestApp {
            name,
            base,
            http: reqwest::Client::new(),
            app,
            clock,
            admin,
            agent,
            customer,
            stop: Some(tx),
        }
    }

    async fn call(
        &self,
        who: &(String, String),
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&who.0, Some(&who.1));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        auth: Option<&(String, String)>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(a) = auth {
            r = r.basic_auth(&a.0, Some(&a.1));
        }
        let resp = r.send().await.unwrap();
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn count(&self, path: &str) -> i64 {
        let (_, v) = self.call(&self.admin, Method::GET, path, None).await;
        v["count"].as_i64().unwrap()
    }

    async fn user_id(&self, email: &str) -> i64 {
        let (_, v) = self
            .call(
                &self.admin,
                Method::GET,
                &format!("/api/v2/users/search.json?email={email}"),
                None,
            )
            .await;
        v["users"][0]["id"].as_i64().unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn apps() -> Vec<TestApp> {
    apps_with(|_| {}).await
}

/// Apps whose settings `configure` changes before they serve.
async fn apps_with(configure: fn(&mut App)) -> Vec<TestApp> {
    let mut v = vec![];
    for (name, store) in testing::all().await.unwrap() {
        v.push(TestApp::spawn(name, store, configure).await);
    }
    v
}

#[tokio::test]
async fn bad_input_gets_zendesk_envelopes() {
    for t in apps().await {
        let n = t.name;
        let (s, v) = t
            .raw(
                Method::POST,
                "/api/v2/tickets.json",
                Some(&t.admin),
                "{not json",
            )
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("InvalidParameter")),
            "{n}"
        );
        let (s, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(json!({"ticket": {"subject": "x", "comment": {"body": "y"}, "priority": 5}})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        assert_eq!(v["error"], "RecordInvalid", "{n}");
        assert!(
            v["details"]["priority"][0]["description"]
                .as_str()
                .unwrap()
                .contains("expected a string"),
            "{n}: {v}"
        );
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "x", "comment": {"body": "y"}, "status": "bogus"}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        assert_eq!(v["details"]["status"][0]["error"], "InvalidValue", "{n}");
        let (s, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(json!({"ticket": {"subject": "no description"}})),
            )
            .await;
        assert_eq!(
            (s, v["details"]["description"][0]["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("BlankValue")),
            "{n}"
        );
        let (s, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(json!({"tickets": []})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{n}: {v}");
        let (s, v) = t
            .call(&t.admin, Method::GET, "/api/v2/tickets/424242.json", None)
            .await;
        assert_eq!(
            (s, v.clone()),
            (
                StatusCode::NOT_FOUND,
                json!({"error": "RecordNotFound", "description": "Not found"})
            ),
            "{n}"
        );
        let (s, _) = t
            .call(&t.admin, Method::GET, "/api/v2/tickets/abc", None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{n}");
        let (s, v) = t
            .call(&t.admin, Method::GET, "/api/v2/no_such_thing.json", None)
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("InvalidEndpoint")),
            "{n}"
        );
        let big = format!(
            "{{\"ticket\":{{\"subject\":\"x\",\"comment\":{{\"body\":\"{}\"}}}}}}",
            "a".repeat(100 * 1024)
        );
        let (s, v) = t
            .raw(Method::POST, "/api/v2/tickets.json", Some(&t.admin), &big)
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("RequestTooLarge")),
            "{n}"
        );
        let (s, v) = t.raw(Method::GET, "/api/v2/users/me.json", None, "").await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("Couldn't authenticate you")),
            "{n}"
        );
        let (s, _) = t
            .call(
                &("admin@example.com/token".into(), "wrong".into()),
                Method::GET,
                "/api/v2/users/me.json",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{n}");
        let (s, _) = t
            .call(
                &("agent@example.com/token".into(), t.admin.1.clone()),
                Method::GET,
                "/api/v2/users/me.json",
                None,
            )
            .await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{n}: a token only works with its own user's email"
        );
        let (s, _) = t
            .call(
                &("admin@example.com".into(), "wrong-password".into()),
                Method::GET,
                "/api/v2/users/me.json",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{n}");
        let (s, v) = t
            .call(&t.customer, Method::GET, "/api/v2/tickets.json", None)
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("Forbidden")),
            "{n}"
        );
        let (s, _) = t
            .call(
                &t.agent,
                Method::POST,
                "/api/v2/groups.json",
                Some(json!({"group": {"name": "Nope"}})),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "{n}: only admins change configuration"
        );
        let (s, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/tickets.json?page[size]=1000",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{n}: {v}");
        let (s, _) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/tickets.json?page[after]=garbage",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{n}");
        // Operator endpoints answer on every backend.
        let r = t
            .http
            .get(format!("{}/readyz", t.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{n}");
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "ready", "{n}");
        let r = t
            .http
            .get(format!("{}/metrics", t.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{n}");
        assert!(
            r.text().await.unwrap().contains("http_requests_total"),
            "{n}"
        );
        // Bearer with an API token.
        let r = t
            .http
            .get(format!("{}/api/v2/users/me.json", t.base))
            .bearer_auth(&t.agent.1)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{n}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["user"]["email"],
            "agent@example.com",
            "{n}"
        );
    }
}

#[tokio::test]
async fn failed_writes_leave_nothing_behind() {
    for t in apps().await {
        let n = t.name;
        let users_before = t.count("/api/v2/users.json").await;
        // A new requester plus an invalid assignee: the whole create is refused, the requester
        // is not created either.
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "x", "comment": {"body": "y"}, "requester": {"name": "New Person", "email": "new.person@example.com"}, "assignee_id": 999999}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        assert!(v["details"]["assignee_id"].is_array(), "{n}: {v}");
        assert_eq!(
            t.count("/api/v2/users.json").await,
            users_before,
            "{n}: no user half-created"
        );
        assert_eq!(t.count("/api/v2/tickets.json").await, 0, "{n}: no ticket");

        // create_many: the good ones are created, the bad one reported by index.
        let (s, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets/create_many.json",
                Some(json!({"tickets": [
                    {"subject": "one", "comment": {"body": "a"}},
                    {"subject": "two", "comment": {"body": "b"}, "priority": "extreme"},
                    {"subject": "three", "comment": {"body": "c"}}
                ]})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        let job = &v["job_status"];
        assert_eq!(
            (job["status"].as_str(), job["total"].as_i64()),
            (Some("completed"), Some(3)),
            "{n}"
        );
        let results = job["results"].as_array().unwrap();
        assert_eq!(
            results
                .iter()
                .map(|r| r["success"].as_bool().unwrap())
                .collect::<Vec<_>>(),
            vec![true, false, true],
            "{n}"
        );
        assert_eq!(results[1]["index"], 1, "{n}");
        let (_, polled) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/job_statuses/{}.json", job["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(polled["job_status"]["results"], job["results"], "{n}");
        assert!(
            polled["job_status"]["url"]
                .as_str()
                .unwrap()
                .ends_with(&format!(
                    "/api/v2/job_statuses/{}.json",
                    job["id"].as_str().unwrap()
                )),
            "{n}"
        );
        assert_eq!(t.count("/api/v2/tickets.json").await, 2, "{n}");

        // Too many in one call.
        let many: Vec<Value> = (0..101)
            .map(|i| json!({"subject": format!("t{i}"), "comment": {"body": "x"}}))
            .collect();
        let (s, _) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets/create_many.json",
                Some(json!({"tickets": many})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        assert_eq!(t.count("/api/v2/tickets.json").await, 2, "{n}");
    }
}

#[tokio::test]
async fn ticket_lifecycle_audits_and_projection() {
    for t in apps().await {
        let n = t.name;
        let agent_id = t.user_id("agent@example.com").await;
        let cora = t.user_id("cora@example.com").await;
        let (_, g) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/groups.json",
                Some(json!({"group": {"name": "Tier 1"}})),
            )
            .await;
        let gid = g["group"]["id"].as_i64().unwrap();
        let (s, _) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/group_memberships.json",
                Some(json!({"group_membership": {"user_id": agent_id, "group_id": gid}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{n}");
        let (s, _) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/group_memberships.json",
                Some(json!({"group_membership": {"user_id": cora, "group_id": gid}})),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{n}: end-users cannot join groups"
        );

        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "VPN down", "comment": {"body": "Nothing connects"}, "requester_id": cora, "priority": "urgent", "type": "incident", "tags": ["VPN", "network vpn"]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let tk = &v["ticket"];
        let id = tk["id"].as_i64().unwrap();
        assert_eq!(
            tk["created_at"], "2026-03-01T09:00:00Z",
            "{n}: the injected clock"
        );
        assert_eq!(tk["status"], "new", "{n}");
        assert_eq!(
            tk["tags"],
            json!(["vpn", "network"]),
            "{n}: tags normalised"
        );
        assert_eq!(tk["description"], "Nothing connects", "{n}");
        assert_eq!(
            tk["url"],
            format!("{}/api/v2/tickets/{id}.json", t.base),
            "{n}"
        );
        assert_eq!(
            v["audit"]["events"][0],
            json!({"id": v["audit"]["events"][0]["id"], "type": "Create", "field_name": "subject", "value": "VPN down"}),
            "{n}"
        );

        // Assigning moves a new ticket to open and sets the group from the agent's default.
        t.clock.advance_secs(600);
        let (s, v) = t.call(&t.agent, Method::PUT, &format!("/api/v2/tickets/{id}.json"), Some(json!({"ticket": {"assignee_id": agent_id, "comment": {"body": "Looking", "public": false}}}))).await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        assert_eq!(
            (
                v["ticket"]["status"].as_str(),
                v["ticket"]["group_id"].as_i64()
            ),
            (Some("open"), Some(gid)),
            "{n}"
        );
        assert_eq!(v["ticket"]["updated_at"], "2026-03-01T09:10:00Z", "{n}");
        let changes: Vec<(String, Value)> = v["audit"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "Change")
            .map(|e| {
                (
                    e["field_name"].as_str().unwrap().to_string(),
                    e["previous_value"].clone(),
                )
            })
            .collect();
        assert!(
            changes.contains(&("status".into(), json!("new"))),
            "{n}: {changes:?}"
        );
        assert!(
            changes.contains(&("assignee_id".into(), Value::Null)),
            "{n}"
        );

        // Safe update with a stale stamp is a 409; with the current one it works.
        let (s, v) = t.call(&t.agent, Method::PUT, &format!("/api/v2/tickets/{id}.json"), Some(json!({"ticket": {"priority": "low", "safe_update": true, "updated_stamp": "2026-03-01T09:00:00Z"}}))).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::CONFLICT, Some("UpdateConflict")),
            "{n}"
        );
        let (s, _) = t.call(&t.agent, Method::PUT, &format!("/api/v2/tickets/{id}.json"), Some(json!({"ticket": {"priority": "low", "safe_update": true, "updated_stamp": "2026-03-01T09:10:00Z"}}))).await;
        assert_eq!(s, StatusCode::OK, "{n}");

        // Tags endpoints.
        let (_, v) = t
            .call(
                &t.agent,
                Method::PUT,
                &format!("/api/v2/tickets/{id}/tags.json"),
                Some(json!({"tags": ["escalated"]})),
            )
            .await;
        assert_eq!(v["tags"], json!(["vpn", "network", "escalated"]), "{n}");
        let (_, v) = t
            .call(
                &t.agent,
                Method::DELETE,
                &format!("/api/v2/tickets/{id}/tags.json"),
                Some(json!({"tags": ["network"]})),
            )
            .await;
        assert_eq!(v["tags"], json!(["vpn", "escalated"]), "{n}");

        // Solve, close, and a closed ticket refuses updates.
        let (_, v) = t.call(&t.agent, Method::PUT, &format!("/api/v2/tickets/{id}.json"), Some(json!({"ticket": {"status": "solved", "comment": {"body": "Fixed the tunnel"}}}))).await;
        assert_eq!(v["ticket"]["status"], "solved", "{n}");
        t.call(
            &t.admin,
            Method::PUT,
            &format!("/api/v2/tickets/{id}.json"),
            Some(json!({"ticket": {"status": "closed"}})),
        )
        .await;
        let (s, v) = t
            .call(
                &t.agent,
                Method::PUT,
                &format!("/api/v2/tickets/{id}.json"),
                Some(json!({"ticket": {"comment": {"body": "again"}}})),
            )
            .await;
        assert_eq!(
            (s, v["details"]["status"][0]["error"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("ClosedPreventsUpdate")
            ),
            "{n}"
        );

        // The stored ticket equals the fold of its audits.
        let replayed = t.app.replay_ticket(id).await.unwrap().unwrap();
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}.json?include=users,groups"),
                None,
            )
            .await;
        let stored = &v["ticket"];
        let rj = serde_json::to_value(&replayed).unwrap();
        for f in [
            "status",
            "priority",
            "type",
            "assignee_id",
            "group_id",
            "requester_id",
            "tags",
            "subject",
            "description",
            "updated_at",
            "created_at",
        ] {
            assert_eq!(rj[f], stored[f], "{n}: projection field {f}");
        }
        assert_eq!(v["groups"][0]["id"], gid, "{n}: sideloaded group");
        assert_eq!(
            v["users"].as_array().unwrap().len(),
            3,
            "{n}: requester, submitter, assignee"
        );

        // Comments in order, audits paginated.
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}/comments.json"),
                None,
            )
            .await;
        let bodies: Vec<&str> = v["comments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["body"].as_str().unwrap())
            .collect();
        assert_eq!(
            bodies,
            vec!["Nothing connects", "Looking", "Fixed the tunnel"],
            "{n}"
        );
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}/audits.json?per_page=2"),
                None,
            )
            .await;
        assert_eq!(v["count"], 7, "{n}");
        assert_eq!(
            v["next_page"],
            format!(
                "{}/api/v2/tickets/{id}/audits.json?per_page=2&page=2",
                t.base
            ),
            "{n}"
        );
    }
}

#[tokio::test]
async fn end_users_see_only_what_they_may() {
    for t in apps().await {
        let n = t.name;
        let cora = t.user_id("cora@example.com").await;
        let (_, o) = t.call(&t.admin, Method::POST, "/api/v2/organizations.json", Some(json!({"organization": {"name": "Acme", "shared_tickets": true, "domain_names": ["acme.example"]}}))).await;
        let org = o["organization"]["id"].as_i64().unwrap();
        let (_, u) = t.call(&t.admin, Method::POST, "/api/v2/users.json", Some(json!({"user": {"name": "Otto Colleague", "email": "otto@acme.example", "organization_id": org}}))).await;
        let otto = u["user"]["id"].as_i64().unwrap();
        assert_eq!(u["user"]["organization_id"], org, "{n}");
        t.app
            .set_password(None, otto, "password-456")
            .await
            .unwrap();
        let otto_auth = ("otto@acme.example".to_string(), "password-456".to_string());
        t.call(
            &t.admin,
            Method::POST,
            "/api/v2/organization_memberships.json",
            Some(json!({"organization_membership": {"user_id": cora, "organization_id": org}})),
        )
        .await;

        // Otto's ticket, with an internal note.
        let (_, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Acme issue", "comment": {"body": "help"}, "requester_id": otto}}))).await;
        let id = v["ticket"]["id"].as_i64().unwrap();
        assert_eq!(
            v["ticket"]["organization_id"], org,
            "{n}: organisation from the requester"
        );
        t.call(
            &t.agent,
            Method::PUT,
            &format!("/api/v2/tickets/{id}.json"),
            Some(json!({"ticket": {"comment": {"body": "secret note", "public": false}}})),
        )
        .await;
        t.call(
            &t.agent,
            Method::PUT,
            &format!("/api/v2/tickets/{id}.json"),
            Some(json!({"ticket": {"comment": {"body": "public answer"}}})),
        )
        .await;
        // A ticket of someone outside the organisation.
        let (_, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(json!({"ticket": {"subject": "Admin's own", "comment": {"body": "x"}}})),
            )
            .await;
        let other = v["ticket"]["id"].as_i64().unwrap();

        let (s, v) = t
            .call(
                &otto_auth,
                Method::GET,
                &format!("/api/v2/requests/{id}/comments.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        let bodies: Vec<&str> = v["comments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["body"].as_str().unwrap())
            .collect();
        assert_eq!(
            bodies,
            vec!["help", "public answer"],
            "{n}: no internal note for end-users"
        );
        // Cora shares the organisation, so she sees the request, still without the note.
        let (_, v) = t
            .call(&t.customer, Method::GET, "/api/v2/requests.json", None)
            .await;
        assert_eq!(
            v["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            vec![id],
            "{n}"
        );
        let (s, _) = t
            .call(
                &t.customer,
                Method::GET,
                &format!("/api/v2/requests/{other}.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{n}: not someone else's");
        let (s, _) = t
            .call(
                &t.customer,
                Method::PUT,
                &format!("/api/v2/requests/{id}.json"),
                Some(json!({"request": {"comment": {"body": "me too"}}})),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "{n}: the organisation does not share comments"
        );
        // The requester's reply reopens a pending ticket.
        t.call(
            &t.agent,
            Method::PUT,
            &format!("/api/v2/tickets/{id}.json"),
            Some(json!({"ticket": {"status": "pending"}})),
        )
        .await;
        let (s, v) = t
            .call(
                &otto_auth,
                Method::PUT,
                &format!("/api/v2/requests/{id}.json"),
                Some(json!({"request": {"comment": {"body": "still broken"}}})),
            )
            .await;
        assert_eq!(
            (s, v["request"]["status"].as_str()),
            (StatusCode::OK, Some("open")),
            "{n}: {v}"
        );
        // End-users can open requests; the tickets API stays closed to them.
        let (s, v) = t
            .call(
                &t.customer,
                Method::POST,
                "/api/v2/requests.json",
                Some(json!({"request": {"subject": "Mine", "comment": {"body": "please"}}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        assert_eq!(v["request"]["requester_id"], cora, "{n}");
        let (s, _) = t
            .call(
                &t.customer,
                Method::GET,
                &format!("/api/v2/tickets/{id}.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}");
    }
}

#[tokio::test]
async fn custom_fields_forms_and_pagination() {
    for t in apps().await {
        let n = t.name;
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/ticket_fields.json", Some(json!({"ticket_field": {"type": "tagger", "title": "Plan", "custom_field_options": [{"name": "Gold", "value": "plan_gold"}, {"name": "Free", "value": "plan_free"}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let fid = v["ticket_field"]["id"].as_i64().unwrap();
        assert!(
            v["ticket_field"]["custom_field_options"][0]["id"]
                .as_i64()
                .unwrap()
                > 0,
            "{n}: option ids assigned"
        );
        let (s, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/ticket_fields.json",
                Some(json!({"ticket_field": {"type": "regexp", "title": "Case"}})),
            )
            .await;
        assert_eq!(
            (
                s,
                v["details"]["regexp_for_validation"][0]["error"].as_str()
            ),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("BlankValue")),
            "{n}"
        );
        let (_, v) = t
            .call(&t.admin, Method::GET, "/api/v2/ticket_fields.json", None)
            .await;
        assert_eq!(v["count"], 8, "{n}: 7 system fields and ours");
        let (s, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/ticket_forms.json",
                Some(
                    json!({"ticket_form": {"name": "Support", "ticket_field_ids": [fid, 424242]}}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");

        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Plan", "comment": {"body": "x"}, "custom_fields": [{"id": fid, "value": "plan_gold"}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        assert_eq!(
            v["ticket"]["tags"],
            json!(["plan_gold"]),
            "{n}: dropdown values are tags"
        );
        let id = v["ticket"]["id"].as_i64().unwrap();
        let (_, v) = t
            .call(
                &t.admin,
                Method::PUT,
                &format!("/api/v2/tickets/{id}.json"),
                Some(json!({"ticket": {"custom_fields": [{"id": fid, "value": "plan_free"}]}})),
            )
            .await;
        assert_eq!(
            v["ticket"]["tags"],
            json!(["plan_free"]),
            "{n}: the old option's tag goes"
        );
        let (s, v) = t
            .call(
                &t.admin,
                Method::PUT,
                &format!("/api/v2/tickets/{id}.json"),
                Some(json!({"ticket": {"custom_fields": [{"id": fid, "value": "plan_x"}]}})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        assert!(
            v["details"][format!("custom_fields_{fid}")].is_array(),
            "{n}: {v}"
        );

        // Organisation fields are validated too.
        t.call(&t.admin, Method::POST, "/api/v2/organization_fields.json", Some(json!({"organization_field": {"type": "integer", "key": "seats", "title": "Seats"}}))).await;
        let (s, _) = t.call(&t.admin, Method::POST, "/api/v2/organizations.json", Some(json!({"organization": {"name": "Big", "organization_fields": {"seats": "many"}}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        let (s, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/organizations.json",
                Some(
                    json!({"organization": {"name": "Big", "organization_fields": {"seats": 500}}}),
                ),
            )
            .await;
        assert_eq!(
            (
                s,
                v["organization"]["organization_fields"]["seats"].as_i64()
            ),
            (StatusCode::CREATED, Some(500)),
            "{n}"
        );
        let (s, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/organizations.json",
                Some(json!({"organization": {"name": "big"}})),
            )
            .await;
        assert_eq!(
            (s, v["details"]["name"][0]["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("DuplicateValue")),
            "{n}"
        );

        // Pagination over users: offset with absolute next_page, cursor with links.
        for i in 0..5 {
            t.call(&t.admin, Method::POST, "/api/v2/users.json", Some(json!({"user": {"name": format!("User {i}"), "email": format!("u{i}@example.com")}}))).await;
        }
        let (_, p1) = t
            .call(&t.admin, Method::GET, "/api/v2/users.json?per_page=3", None)
            .await;
        assert_eq!(
            (p1["count"].as_i64(), p1["users"].as_array().unwrap().len()),
            (Some(8), 3),
            "{n}"
        );
        let next = p1["next_page"].as_str().unwrap().to_string();
        let p2: Value = t
            .http
            .get(&next)
            .basic_auth(&t.admin.0, Some(&t.admin.1))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(p2["users"].as_array().unwrap().len(), 3, "{n}");
        assert!(p2["previous_page"].is_string(), "{n}");
        let mut seen = vec![];
        let mut url = format!("{}/api/v2/users.json?page[size]=3", t.base);
        for _ in 0..10 {
            let v: Value = t
                .http
                .get(&url)
                .basic_auth(&t.admin.0, Some(&t.admin.1))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            seen.extend(
                v["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u["id"].as_i64().unwrap()),
            );
            if !v["meta"]["has_more"].as_bool().unwrap() {
                break;
            }
            url = v["links"]["next"].as_str().unwrap().to_string();
        }
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!((seen.len(), sorted.len()), (8, 8), "{n}: every user once");
    }
}

#[tokio::test]
async fn self_service_is_limited_and_unsupported_queries_are_refused() {
    for t in apps().await {
        let n = t.name;
        let cora = t.user_id("cora@example.com").await;
        // End-users may rename themselves but not widen what they see.
        let (s, v) = t
            .call(
                &t.customer,
                Method::PUT,
                &format!("/api/v2/users/{cora}.json"),
                Some(json!({"user": {"name": "Cora C."}})),
            )
            .await;
        assert_eq!(
            (s, v["user"]["name"].as_str()),
            (StatusCode::OK, Some("Cora C.")),
            "{n}"
        );
        for body in [
            json!({"ticket_restriction": "organization"}),
            json!({"role": "admin"}),
            json!({"verified": true}),
            json!({"email": "x@example.com"}),
        ] {
            let (s, _) = t
                .call(
                    &t.customer,
                    Method::PUT,
                    &format!("/api/v2/users/{cora}.json"),
                    Some(json!({"user": body})),
                )
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{n}: {body}");
        }
        // Changing one's own password needs the previous one.
        let (s, v) = t
            .call(
                &t.customer,
                Method::PUT,
                &format!("/api/v2/users/{cora}/password.json"),
                Some(json!({"previous_password": "nope-nope", "password": "new-password-1"})),
            )
            .await;
        assert_eq!(
            (s, v["details"]["previous_password"][0]["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("InvalidValue")),
            "{n}"
        );
        let (s, _) = t
            .call(
                &t.customer,
                Method::PUT,
                &format!("/api/v2/users/{cora}/password.json"),
                Some(json!({"previous_password": "password-123", "password": "new-password-1"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        let (s, _) = t
            .call(&t.customer, Method::GET, "/api/v2/users/me.json", None)
            .await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{n}: the old password no longer works"
        );
        let cora_new = ("cora@example.com".to_string(), "new-password-1".to_string());
        let (s, _) = t
            .call(
                &cora_new,
                Method::POST,
                &format!("/api/v2/users/{cora}/password.json"),
                Some(json!({"password": "another-one-2"})),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "{n}: setting a password without the old one is for admins"
        );

        // The submitter authors the first comment; only the requester solves a request.
        let agent_id = t.user_id("agent@example.com").await;
        let (_, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "On behalf", "comment": {"body": "from the customer"}, "requester_id": cora, "submitter_id": cora, "assignee_id": agent_id}}))).await;
        let id = v["ticket"]["id"].as_i64().unwrap();
        let comment = v["audit"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "Comment")
            .unwrap()
            .clone();
        assert_eq!(comment["author_id"], cora, "{n}");
        let (s, v) = t
            .call(
                &cora_new,
                Method::PUT,
                &format!("/api/v2/requests/{id}.json"),
                Some(json!({"request": {"solved": true, "comment": {"body": "works now"}}})),
            )
            .await;
        assert_eq!(
            (s, v["request"]["status"].as_str()),
            (StatusCode::OK, Some("solved")),
            "{n}: {v}"
        );

        // Unsupported queries are refused with a reason, never answered wrongly.
        for path in [
            "/api/v2/tickets.json?status=bogus",
            "/api/v2/tickets.json?sort_by=updated_at",
            "/api/v2/users/show_many.json?external_ids=a,b",
        ] {
            let (s, v) = t.call(&t.admin, Method::GET, path, None).await;
            assert_eq!(
                (s, v["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("InvalidParameter")),
                "{n}: {path}"
            );
        }
        let (s, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/search.json?query=type:ticket%20assignee:none",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        assert!(
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["assignee_id"].is_null() && r["result_type"] == "ticket"),
            "{n}"
        );
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/users.json?role[]=agent&role[]=admin",
                None,
            )
            .await;
        assert_eq!(v["count"], 2, "{n}: repeated role[] keys all count");
    }
}

#[tokio::test]
async fn triggers_fire_in_order_and_explain_themselves() {
    for t in apps().await {
        let n = t.name;
        let (_, g) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/groups.json",
                Some(json!({"group": {"name": "Escalations"}})),
            )
            .await;
        let gid = g["group"]["id"].as_i64().unwrap();

        // A bad definition is refused, naming the bad condition and action.
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "Bad", "conditions": {"all": [{"field": "priorty", "operator": "is", "value": "high"}]}, "actions": [{"field": "status", "value": "sideways"}]}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        assert!(
            v["details"]["conditions"][0]["description"]
                .as_str()
                .unwrap()
                .starts_with("conditions.all[0] (priorty)"),
            "{n}: {v}"
        );
        assert!(
            v["details"]["actions"][0]["description"]
                .as_str()
                .unwrap()
                .starts_with("actions[0] (status)"),
            "{n}: {v}"
        );
        let (s, _) = t.call(&t.agent, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "x", "conditions": {"all": [{"field": "status", "operator": "is", "value": "new"}]}, "actions": [{"field": "priority", "value": "low"}]}}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}: only admins write triggers");

        // T2 (position 2) reacts to what T1 (position 1)… no: T1 waits for T2's tag, so the
        // cycle must restart after T2 for T1 to fire.
        let (s, t1) = t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "Route escalations", "conditions": {"all": [{"field": "current_tags", "operator": "includes", "value": "escalated"}]}, "actions": [{"field": "group_id", "value": gid.to_string()}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {t1}");
        let t1 = t1["trigger"]["id"].as_i64().unwrap();
        // Older clients post all/any at the top level.
        let (s, t2) = t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "VIP on create", "all": [{"field": "update_type", "operator": "is", "value": "Create"}, {"field": "current_tags", "operator": "includes", "value": "vip"}], "actions": [{"field": "priority", "value": "urgent"}, {"field": "current_tags", "value": "escalated"}, {"field": "comment_mode_is_public", "value": "true"}, {"field": "comment_value", "value": ["channel:all", "We received your request."]}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {t2}");
        assert_eq!(t2["trigger"]["position"], 2, "{n}");
        let t2 = t2["trigger"]["id"].as_i64().unwrap();
        let (_, defs) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/triggers/definitions.json",
                None,
            )
            .await;
        assert!(
            defs["definitions"]["conditions_all"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["subject"] == "current_tags"),
            "{n}"
        );

        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Help", "comment": {"body": "please"}, "tags": ["vip"]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let tk = &v["ticket"];
        let id = tk["id"].as_i64().unwrap();
        assert_eq!(
            (tk["priority"].as_str(), tk["group_id"].as_i64()),
            (Some("urgent"), Some(gid)),
            "{n}: {tk}"
        );
        assert_eq!(tk["tags"], json!(["vip", "escalated"]), "{n}");
        let by_rule: Vec<(i64, String)> = v["audit"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["via"]["channel"] == "rule")
            .map(|e| {
                (
                    e["via"]["source"]["from"]["id"].as_i64().unwrap(),
                    e["field_name"].as_str().unwrap_or("comment").to_string(),
                )
            })
            .collect();
        assert_eq!(
            by_rule,
            vec![
                (t2, "priority".into()),
                (t2, "tags".into()),
                (t2, "comment".into()),
                (t1, "group_id".into())
            ],
            "{n}: every rule change is attributed"
        );
        let trace = &v["audit"]["metadata"]["trigger_trace"];
        assert_eq!(
            trace["fired"],
            json!([{"id": t2, "title": "VIP on create", "pass": 1}, {"id": t1, "title": "Route escalations", "pass": 2}]),
            "{n}"
        );
        let (_, c) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}/comments.json"),
                None,
            )
            .await;
        assert_eq!(c["comments"][1]["body"], "We received your request.", "{n}");

        // On an update, the trace says why each trigger did not fire.
        let (_, v) = t.call(&t.admin, Method::PUT, &format!("/api/v2/tickets/{id}.json"), Some(json!({"ticket": {"comment": {"body": "noted", "public": false}, "remove_tags": ["escalated"]}}))).await;
        assert_eq!(
            v["audit"]["metadata"]["trigger_trace"]["not_fired"],
            format!("{t1}:0 {t2}:0"),
            "{n}: compact in the audit"
        );
        let (_, rt) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}/rule_trace.json"),
                None,
            )
            .await;
        let not_fired = rt["rule_traces"][1]["trigger_trace"]["not_fired"]
            .as_array()
            .unwrap()
            .clone();
        assert!(not_fired.contains(&json!({"id": t1, "title": "Route escalations", "failed": "all[0]: current_tags includes \"escalated\""})), "{n}: {not_fired:?}");
        assert!(not_fired.contains(&json!({"id": t2, "title": "VIP on create", "failed": "all[0]: update_type is \"Create\""})), "{n}: {not_fired:?}");
        let (_, rt) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}/rule_trace.json"),
                None,
            )
            .await;
        assert_eq!(rt["rule_traces"].as_array().unwrap().len(), 2, "{n}");

        // The projection still equals the fold of the audits, rule events included.
        let replayed =
            serde_json::to_value(t.app.replay_ticket(id).await.unwrap().unwrap()).unwrap();
        let (_, cur) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}.json"),
                None,
            )
            .await;
        for f in ["priority", "group_id", "tags", "status"] {
            assert_eq!(replayed[f], cur["ticket"][f], "{n}: {f}");
        }

        // Reorder, deactivate: an inactive trigger is not run.
        let (_, v) = t
            .call(
                &t.admin,
                Method::PUT,
                "/api/v2/triggers/reorder.json",
                Some(json!({"trigger_ids": [t2, t1]})),
            )
            .await;
        assert_eq!(v["triggers"][0]["id"], t2, "{n}");
        t.call(
            &t.admin,
            Method::PUT,
            &format!("/api/v2/triggers/{t2}.json"),
            Some(json!({"trigger": {"active": false}})),
        )
        .await;
        let (_, v) = t
            .call(&t.admin, Method::GET, "/api/v2/triggers/active.json", None)
            .await;
        assert_eq!(v["count"], 1, "{n}");
        let (_, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Again", "comment": {"body": "x"}, "tags": ["vip"]}}))).await;
        assert_eq!(
            v["ticket"]["priority"],
            Value::Null,
            "{n}: the deactivated trigger did not fire"
        );
        let (s, _) = t
            .call(
                &t.admin,
                Method::DELETE,
                &format!("/api/v2/triggers/{t1}.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{n}");
    }
}

#[tokio::test]
async fn macros_preview_without_saving() {
    for t in apps().await {
        let n = t.name;
        let agent_id = t.user_id("agent@example.com").await;
        let cora = t.user_id("cora@example.com").await;
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/macros.json", Some(json!({"macro": {"title": "Ask for logs", "actions": [
            {"field": "status", "value": "pending"},
            {"field": "current_tags", "value": "needs_logs"},
            {"field": "comment_value", "value": "Hi {{ticket.requester.first_name}}, could you send the logs for ticket #{{ticket.id}}? — {{current_user.name}}{{ticket.unknown}}"}
        ]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let mid = v["macro"]["id"].as_i64().unwrap();
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/macros.json", Some(json!({"macro": {"title": "Bad", "actions": [{"field": "priority", "value": "meh"}]}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        // Agents: personal macros only.
        let (s, _) = t.call(&t.agent, Method::POST, "/api/v2/macros.json", Some(json!({"macro": {"title": "Shared", "actions": [{"field": "status", "value": "open"}]}}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}");
        let (s, v) = t.call(&t.agent, Method::POST, "/api/v2/macros.json", Some(json!({"macro": {"title": "Mine", "restriction": {"type": "User", "id": agent_id}, "actions": [{"field": "priority", "value": "low"}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let (_, v) = t
            .call(&t.agent, Method::GET, "/api/v2/macros.json", None)
            .await;
        assert_eq!(v["count"], 2, "{n}: shared + personal");

        let (_, tk) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Crash", "comment": {"body": "It crashed"}, "requester_id": cora}}))).await;
        let id = tk["ticket"]["id"].as_i64().unwrap();
        let (s, v) = t
            .call(
                &t.agent,
                Method::GET,
                &format!("/api/v2/tickets/{id}/macros/{mid}/apply.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        let r = &v["result"];
        assert_eq!(
            (r["ticket"]["status"].as_str(), r["ticket"]["id"].as_i64()),
            (Some("pending"), Some(id)),
            "{n}"
        );
        assert_eq!(r["ticket"]["tags"], json!(["needs_logs"]), "{n}");
        assert_eq!(
            r["comment"]["body"],
            format!("Hi Cora, could you send the logs for ticket #{id}? — Alan Agent"),
            "{n}: placeholders rendered, unknown ones empty"
        );
        assert_eq!(r["comment"]["public"], true, "{n}");
        // Nothing was saved.
        let (_, cur) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}.json"),
                None,
            )
            .await;
        assert_eq!(cur["ticket"]["status"], "new", "{n}");
        let (_, au) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}/audits.json"),
                None,
            )
            .await;
        assert_eq!(au["count"], 1, "{n}");
        // Without a ticket: only what the macro sets.
        let (_, v) = t
            .call(
                &t.agent,
                Method::GET,
                &format!("/api/v2/macros/{mid}/apply.json"),
                None,
            )
            .await;
        assert_eq!(v["result"]["ticket"]["status"], "pending", "{n}");
        assert!(v["result"]["ticket"].get("subject").is_none(), "{n}: {v}");
        let (s, _) = t
            .call(
                &t.agent,
                Method::GET,
                &format!("/api/v2/tickets/424242/macros/{mid}/apply.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{n}");
        // Placeholders also work in trigger comments.
        t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "Ack", "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}]}, "actions": [{"field": "comment_value", "value": "Thanks {{ticket.requester.name}}, we have ticket {{ticket.id}}."}]}}))).await;
        let (_, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Another", "comment": {"body": "x"}, "requester_id": cora}}))).await;
        let id2 = v["ticket"]["id"].as_i64().unwrap();
        let (_, c) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id2}/comments.json"),
                None,
            )
            .await;
        assert_eq!(
            c["comments"][1]["body"],
            format!("Thanks Cora Customer, we have ticket {id2}."),
            "{n}"
        );
    }
}

#[tokio::test]
async fn views_select_exactly_their_conditions() {
    for t in apps().await {
        let n = t.name;
        let agent_id = t.user_id("agent@example.com").await;
        let mut ids = vec![];
        for (i, (prio, tags)) in [
            ("urgent", vec!["vip"]),
            ("low", vec![]),
            ("urgent", vec![]),
            ("high", vec!["vip"]),
        ]
        .into_iter()
        .enumerate()
        {
            let (_, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": format!("T{i}"), "comment": {"body": "x"}, "priority": prio, "tags": tags}}))).await;
            ids.push(v["ticket"]["id"].as_i64().unwrap());
        }
        t.call(
            &t.admin,
            Method::PUT,
            &format!("/api/v2/tickets/{}.json", ids[3]),
            Some(json!({"ticket": {"assignee_id": agent_id}})),
        )
        .await;
        t.call(
            &t.admin,
            Method::PUT,
            &format!("/api/v2/tickets/{}.json", ids[1]),
            Some(json!({"ticket": {"status": "solved"}})),
        )
        .await;

        // Zendesk's write shape: top-level all/any and "output".
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/views.json", Some(json!({"view": {"title": "Unsolved VIP or urgent", "all": [{"field": "status", "operator": "less_than", "value": "solved"}], "any": [{"field": "current_tags", "operator": "includes", "value": "vip"}, {"field": "priority", "operator": "is", "value": "urgent"}], "output": {"columns": ["subject", "requester", "status"], "sort_by": "priority", "sort_order": "desc"}}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let vid = v["view"]["id"].as_i64().unwrap();
        assert_eq!(
            v["view"]["execution"]["columns"][0],
            json!({"id": "subject", "title": "Subject"}),
            "{n}"
        );
        let (_, v) = t
            .call(
                &t.agent,
                Method::GET,
                &format!("/api/v2/views/{vid}/execute.json"),
                None,
            )
            .await;
        let got: Vec<i64> = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["ticket_id"].as_i64().unwrap())
            .collect();
        assert_eq!(
            got,
            vec![ids[0], ids[2], ids[3]],
            "{n}: urgent first (desc), then high; the solved one excluded"
        );
        assert_eq!(v["count"], 3, "{n}");
        let (_, c) = t
            .call(
                &t.agent,
                Method::GET,
                &format!("/api/v2/views/{vid}/count.json"),
                None,
            )
            .await;
        assert_eq!(c["view_count"]["value"], 3, "{n}");

        // A view of my open tickets counts from the index alone.
        let (_, mine) = t.call(&t.agent, Method::POST, "/api/v2/views.json", Some(json!({"view": {"title": "Mine", "restriction": {"type": "User", "id": agent_id}, "conditions": {"all": [{"field": "assignee_id", "operator": "is", "value": "current_user"}, {"field": "status", "operator": "is", "value": "open"}]}}}))).await;
        let mid = mine["view"]["id"].as_i64().unwrap();
        let (_, c) = t
            .call(
                &t.agent,
                Method::GET,
                &format!("/api/v2/views/count_many.json?ids={vid},{mid}"),
                None,
            )
            .await;
        assert_eq!(
            c["view_counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["value"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            vec![3, 1],
            "{n}"
        );
        let (_, tl) = t
            .call(
                &t.agent,
                Method::GET,
                &format!("/api/v2/views/{mid}/tickets.json"),
                None,
            )
            .await;
        assert_eq!(tl["tickets"][0]["id"], ids[3], "{n}");
        // Another agent's personal view is invisible to others; shared views are for admins to write.
        let (s, _) = t.call(&t.agent, Method::POST, "/api/v2/views.json", Some(json!({"view": {"title": "Shared", "all": [{"field": "status", "operator": "is", "value": "new"}]}}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}");
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/views.json", Some(json!({"view": {"title": "Bad", "all": [{"field": "update_type", "operator": "is", "value": "Create"}], "output": {"columns": ["nonsense"]}}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        let (s, _) = t
            .call(
                &t.agent,
                Method::GET,
                "/api/v2/views/count_many.json?ids=",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{n}");
    }
}

/// Defects found by review, each pinned by the request that showed it.
#[tokio::test]
async fn review_findings_stay_fixed() {
    for t in apps().await {
        let n = t.name;
        let cora = t.user_id("cora@example.com").await;
        // A ticket opened with an internal note is invisible to its requester.
        let (_, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"comment": {"body": "INTERNAL: fraud risk", "public": false}, "requester_id": cora}}))).await;
        let private = v["ticket"]["id"].as_i64().unwrap();
        let (s, _) = t
            .call(
                &t.customer,
                Method::GET,
                &format!("/api/v2/requests/{private}.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{n}");
        let (_, v) = t
            .call(&t.customer, Method::GET, "/api/v2/requests.json", None)
            .await;
        assert!(!v.to_string().contains("fraud"), "{n}: {v}");
        // Agent-only fields stay agent-only.
        let (_, f) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/ticket_fields.json",
                Some(json!({"ticket_field": {"type": "text", "title": "Churn risk"}})),
            )
            .await;
        let fid = f["ticket_field"]["id"].as_i64().unwrap();
        let (_, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Q", "comment": {"body": "q"}, "requester_id": cora, "custom_fields": [{"id": fid, "value": "high churn"}]}}))).await;
        let id = v["ticket"]["id"].as_i64().unwrap();
        let (_, v) = t
            .call(
                &t.customer,
                Method::GET,
                &format!("/api/v2/requests/{id}.json"),
                None,
            )
            .await;
        assert_eq!(v["request"]["custom_fields"], json!([]), "{n}");
        let (s, _) = t.call(&t.customer, Method::POST, "/api/v2/requests.json", Some(json!({"request": {"subject": "x", "comment": {"body": "y"}, "custom_fields": [{"id": fid, "value": "mine"}]}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        // End-users do not see staff notes about themselves.
        t.call(
            &t.admin,
            Method::PUT,
            &format!("/api/v2/users/{cora}.json"),
            Some(json!({"user": {"notes": "abusive caller"}})),
        )
        .await;
        let (_, me) = t
            .call(&t.customer, Method::GET, "/api/v2/users/me.json", None)
            .await;
        assert!(
            me["user"].get("notes").is_none() && me["user"]["name"].is_string(),
            "{n}: {me}"
        );
        // Blank comments are not comments.
        let (s, _) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(json!({"ticket": {"subject": "blank", "comment": {"body": "   "}}})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        // Unbounded lists and NUL bytes are refused before any work; huge pages do not overflow.
        let many: Vec<i64> = vec![cora; 5000];
        let (s, v) = t.call(&t.customer, Method::POST, "/api/v2/requests.json", Some(json!({"request": {"subject": "x", "comment": {"body": "y"}, "collaborators": many}}))).await;
        assert_eq!(
            (s, v["details"]["collaborators"][0]["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("TooManyValues")),
            "{n}"
        );
        let (s, _) = t.call(&t.admin, Method::PUT, &format!("/api/v2/tickets/{id}.json"), Some(json!({"ticket": {"tags": (0..1001).map(|i| format!("t{i}")).collect::<Vec<_>>()}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        let (s, _) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/organizations.json",
                Some(json!({"organization": {"name": "nul\u{0}org"}})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{n}");
        let (s, _) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/users/search.json?query=a%00b",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{n}");
        let (s, _) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/users.json",
                Some(json!({"user": {"name": "Long", "external_id": "x".repeat(10_000)}})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        let (s, _) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/deleted_tickets.json?page=9223372036854775807",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        let (s, _) = t.call(&t.admin, Method::POST, "/api/v2/ticket_fields.json", Some(json!({"ticket_field": {"type": "tagger", "title": "T", "custom_field_options": [{"id": i64::MAX, "name": "a", "value": "a"}, {"name": "b", "value": "b"}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}");
        // LIKE wildcards in a user search are literal.
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/users/search.json?query=%25",
                None,
            )
            .await;
        assert_eq!(v["count"], 0, "{n}: '%' matches nobody's name");
        // A trigger cannot solve a ticket that has no assignee, nor add CCs that do not exist.
        t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "Thanks closes", "conditions": {"all": [{"field": "subject_includes_word", "operator": "includes", "value": "thanks"}]}, "actions": [{"field": "status", "value": "solved"}, {"field": "cc", "value": "424242"}]}}))).await;
        let (s, v) = t
            .call(
                &t.customer,
                Method::POST,
                "/api/v2/requests.json",
                Some(
                    json!({"request": {"subject": "thanks all fixed", "comment": {"body": "ok"}}}),
                ),
            )
            .await;
        assert_eq!(
            (
                s,
                v["request"]["status"].as_str(),
                v["request"]["assignee_id"].as_i64()
            ),
            (StatusCode::CREATED, Some("new"), None),
            "{n}: {v}"
        );
        assert_eq!(v["request"]["collaborator_ids"], json!([]), "{n}");
    }
}

#[tokio::test]
async fn concurrent_create_or_update_converges() {
    for t in apps().await {
        let n = t.name;
        let calls = (0..12).map(|i| {
            t.call(
                &t.admin,
                Method::POST,
                "/api/v2/users/create_or_update.json",
                Some(json!({"user": {"name": format!("Racer {i}"), "email": "racer@example.com"}})),
            )
        });
        let results = futures_join(calls).await;
        let statuses: Vec<u16> = results.iter().map(|(s, _)| s.as_u16()).collect();
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 201),
            "{n}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{n}: exactly one create"
        );
        let ids: std::collections::HashSet<i64> = results
            .iter()
            .map(|(_, v)| v["user"]["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids.len(), 1, "{n}: one user");
    }
}

async fn futures_join<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<F> = fs.collect();
    let mut out = vec![];
    // Poll them together: join_all without an extra dependency.
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(done.into_iter().flatten());
    out
}

/// Ids of a ticket's audits' `via.source.rel`, newest last.
async fn audit_rels(t: &TestApp, id: i64) -> Vec<Value> {
    let (_, a) = t
        .call(
            &t.admin,
            Method::GET,
            &format!("/api/v2/tickets/{id}/audits.json"),
            None,
        )
        .await;
    a["audits"].as_array().unwrap().to_vec()
}

#[tokio::test]
async fn automations_run_on_a_fake_clock() {
    for t in apps().await {
        let n = t.name;
        let agent_id = t.user_id("agent@example.com").await;
        // Refused: nothing makes a condition false, so it would act every hour.
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/automations.json", Some(json!({"automation": {"title": "Forever", "conditions": {"all": [{"field": "status", "operator": "is", "value": "solved"}, {"field": "SOLVED", "operator": "greater_than", "value": "96"}]}, "actions": [{"field": "priority", "value": "high"}]}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        assert!(v.to_string().contains("nullify"), "{n}: {v}");
        // Refused: time conditions are not trigger conditions.
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "Time", "conditions": {"all": [{"field": "SOLVED", "operator": "greater_than", "value": "96"}]}, "actions": [{"field": "status", "value": "closed"}]}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");

        let (s, close) = t.call(&t.admin, Method::POST, "/api/v2/automations.json", Some(json!({"automation": {"title": "Close ticket 4 days after status is set to solved", "conditions": {"all": [{"field": "status", "operator": "is", "value": "solved"}, {"field": "SOLVED", "operator": "greater_than", "value": "96"}]}, "actions": [{"field": "status", "value": "closed"}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {close}");
        let close_id = close["automation"]["id"].as_i64().unwrap();
        assert_eq!(close["automation"]["position"], 1, "{n}");
        let (s, nudge) = t.call(&t.admin, Method::POST, "/api/v2/automations.json", Some(json!({"automation": {"title": "Nudge after 48 hours pending", "conditions": {"all": [{"field": "status", "operator": "is", "value": "pending"}, {"field": "PENDING", "operator": "is", "value": "48"}]}, "actions": [{"field": "current_tags", "value": "nudged"}, {"field": "notification_user", "value": ["requester_id", "Still need help with {{ticket.title}}?", "Hello {{ticket.requester.first_name}}, we are waiting for your reply on #{{ticket.id}}."]}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {nudge}");
        let (_, defs) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/automations/definitions.json",
                None,
            )
            .await;
        let all = defs["definitions"]["conditions_all"].as_array().unwrap();
        assert!(all.iter().any(|d| d["subject"] == "SOLVED"), "{n}");
        assert!(
            !all.iter().any(|d| d["subject"] == "update_type"),
            "{n}: trigger-only fields are not offered"
        );

        let mk = |status: &str, subject: &str| json!({"ticket": {"subject": subject, "comment": {"body": "help"}, "requester": {"name": "Cora Customer", "email": "cora@example.com"}, "assignee_id": agent_id, "status": status}});
        let (_, a) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(mk("solved", "Solved one")),
            )
            .await;
        let solved = a["ticket"]["id"].as_i64().unwrap();
        let (_, a) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(mk("pending", "Waiting one")),
            )
            .await;
        let pending = a["ticket"]["id"].as_i64().unwrap();
        let (_, a) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(mk("open", "Open one")),
            )
            .await;
        let open = a["ticket"]["id"].as_i64().unwrap();
        let status = |id: i64| {
            let t = &t;
            async move {
                let (_, v) = t
                    .call(
                        &t.admin,
                        Method::GET,
                        &format!("/api/v2/tickets/{id}.json"),
                        None,
                    )
                    .await;
                v["ticket"].clone()
            }
        };

        // The first run happens at once; nothing is old enough.
        let r = t
            .app
            .run_automations_if_due()
            .await
            .unwrap()
            .expect("a run");
        assert_eq!((r.examined, r.updated), (3, 0), "{n}");
        // Not due again within the hour.
        t.clock.advance_secs(600);
        assert!(
            t.app.run_automations_if_due().await.unwrap().is_none(),
            "{n}"
        );

        // 48 hours pending: the nudge fires once, the solved ticket waits.
        t.clock.advance_secs(48 * 3600 - 600);
        let r = t
            .app
            .run_automations_if_due()
            .await
            .unwrap()
            .expect("a run");
        assert_eq!(r.updated, 1, "{n}: {r:?}");
        let p = status(pending).await;
        assert!(
            p["tags"].as_array().unwrap().contains(&json!("nudged")),
            "{n}: {p}"
        );
        assert_eq!(status(solved).await["status"], "solved", "{n}");
        let audits = audit_rels(&t, pending).await;
        let last = audits.last().unwrap();
        assert_eq!(
            last["author_id"], -1,
            "{n}: automations write as the system"
        );
        assert_eq!(last["via"]["source"]["rel"], "automation", "{n}: {last}");
        assert_eq!(
            last["via"]["source"]["from"]["title"], "Nudge after 48 hours pending",
            "{n}"
        );
        let note = last["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "Notification")
            .expect("a Notification event")
            .clone();
        assert_eq!(
            note["subject"], "Still need help with Waiting one?",
            "{n}: {note}"
        );
        assert_eq!(
            note["body"],
            format!("Hello Cora, we are waiting for your reply on #{pending}."),
            "{n}"
        );
        // The email waits in the outbox (no SMTP configured), visible to admins.
        let (s, o) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/outbox.json?kind=email&state=pending",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {o}");
        assert_eq!(o["count"], 1, "{n}: {o}");
        assert_eq!(o["outbox"][0]["payload"]["to"], "cora@example.com", "{n}");
        assert_eq!(o["outbox"][0]["ticket_id"], pending, "{n}");
        let (s, _) = t
            .call(&t.agent, Method::GET, "/api/v2/outbox.json", None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}: the outbox is for admins");

        // Why would (or would not) each automation act on a ticket at the next run?
        let (_, why) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{solved}/rule_trace.json"),
                None,
            )
            .await;
        let now: Vec<&Value> = why["automations_now"].as_array().unwrap().iter().collect();
        assert_eq!(now.len(), 2, "{n}: {why}");
        assert_eq!(
            now[0]["title"], "Close ticket 4 days after status is set to solved",
            "{n}"
        );
        assert_eq!(now[0]["would_act"], false, "{n}");
        assert_eq!(
            now[0]["failed"], "all[1]: SOLVED greater_than \"96\"",
            "{n}: {why}"
        );
        assert_eq!(now[1]["failed"], "all[0]: status is \"pending\"", "{n}");

        // An hour later "is 48" no longer holds: no second nudge.
        t.clock.advance_secs(3600);
        let r = t
            .app
            .run_automations_if_due()
            .await
            .unwrap()
            .expect("a run");
        assert_eq!(r.updated, 0, "{n}");
        // 97 hours after solving: closed, by the automation, once.
        t.clock.advance_secs(48 * 3600);
        let r = t
            .app
            .run_automations_if_due()
            .await
            .unwrap()
            .expect("a run");
        assert_eq!(r.updated, 1, "{n}: {r:?}");
        assert_eq!(r.fired.get(&close_id), Some(&1), "{n}");
        assert_eq!(status(solved).await["status"], "closed", "{n}");
        assert_eq!(status(open).await["status"], "open", "{n}");
        let (_, st) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/automations/status.json",
                None,
            )
            .await;
        assert_eq!(st["last_run"]["updated"], 1, "{n}: {st}");
        assert_eq!(st["running"], Value::Null, "{n}");

        // The bound: at most N tickets per automation per run.
        for i in 0..3 {
            t.call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(mk("solved", &format!("Batch {i}"))),
            )
            .await;
        }
        t.clock.advance_secs(97 * 3600);
        let mut bounded = t.app.clone();
        bounded.automation.max_per_automation = 2;
        let r = bounded
            .run_automations_if_due()
            .await
            .unwrap()
            .expect("a run");
        assert_eq!(r.fired.get(&close_id), Some(&2), "{n}: {r:?}");
        t.clock.advance_secs(3600);
        let r = bounded
            .run_automations_if_due()
            .await
            .unwrap()
            .expect("a run");
        assert_eq!(
            r.fired.get(&close_id),
            Some(&1),
            "{n}: the rest in the next run"
        );

        // A run a crashed node left half done is resumed after its lease runs out, from its
        // cursor: tickets up to the cursor are not looked at again.
        let mut ids = vec![];
        for i in 0..3 {
            let (_, a) = t
                .call(
                    &t.admin,
                    Method::POST,
                    "/api/v2/tickets.json",
                    Some(mk("solved", &format!("Crash {i}"))),
                )
                .await;
            ids.push(a["ticket"]["id"].as_i64().unwrap());
        }
        t.clock.advance_secs(97 * 3600);
        let now = t.app.now().as_second();
        {
            let mut tx = t.app.store.write().await.unwrap();
            tx.take_lease("automations", "dead-node", now - 1000, 10)
                .await
                .unwrap()
                .expect("the lease is free");
            let state = json!({"run": {"started_at": now - 1000, "cursor": ids[0], "examined": 1, "updated": 1, "fired": {}}, "last_started_at": now - 1000});
            tx.save_lease("automations", "dead-node", &state)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let r = t
            .app
            .run_automations_if_due()
            .await
            .unwrap()
            .expect("resumed");
        assert_eq!(r.resumed, 1, "{n}");
        assert_eq!(r.updated, 3, "{n}: {r:?}");
        assert_eq!(
            status(ids[0]).await["status"],
            "solved",
            "{n}: before the cursor, left alone"
        );
        assert_eq!(status(ids[1]).await["status"], "closed", "{n}");
        assert_eq!(status(ids[2]).await["status"], "closed", "{n}");

        // Two nodes at once: one runs, the other sees the lease and does nothing.
        let (_, a) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(mk("solved", "Two nodes")),
            )
            .await;
        let two = a["ticket"]["id"].as_i64().unwrap();
        t.clock.advance_secs(97 * 3600);
        let mut other = t.app.clone();
        other.node_id = "other-node".into();
        let (a, b) = tokio::join!(
            t.app.run_automations_if_due(),
            other.run_automations_if_due()
        );
        let runs: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
        assert_eq!(runs.len(), 1, "{n}: exactly one node runs");
        assert_eq!(
            runs[0].updated, 2,
            "{n}: this ticket and the one the resumed run skipped"
        );
        let audits = audit_rels(&t, two).await;
        assert_eq!(
            audits
                .iter()
                .filter(|a| a["via"]["source"]["rel"] == "automation")
                .count(),
            1,
            "{n}"
        );
    }
}

/// A local webhook receiver: answers 500 to the first `fail` requests, then 200; records every
/// request's headers and body.
async fn receiver(
    fail: usize,
) -> (
    String,
    Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
) {
    use axum::routing::post;
    let seen: Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>> = Default::default();
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |h: axum::http::HeaderMap, body: String| {
            let seen = s2.clone();
            async move {
                let mut v = seen.lock().unwrap();
                v.push((h, body));
                if v.len() <= fail {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "try later")
                } else {
                    (axum::http::StatusCode::OK, "thanks")
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, seen)
}

fn zendesk_signature(secret: &str, timestamp: &str, body: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(body.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn webhooks_are_signed_retried_and_recorded() {
    for t in apps().await {
        let n = t.name;
        let (url, seen) = receiver(2).await;
        // Bad definitions are refused with the field named.
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/webhooks.json", Some(json!({"webhook": {"name": "x", "endpoint": "ftp://nope", "http_method": "SEND"}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        assert!(
            v["details"]["endpoint"].is_array() && v["details"]["http_method"].is_array(),
            "{n}: {v}"
        );
        let (s, _) = t
            .call(&t.agent, Method::GET, "/api/v2/webhooks.json", None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}");

        let (s, w) = t.call(&t.admin, Method::POST, "/api/v2/webhooks.json", Some(json!({"webhook": {"name": "Ops bridge", "endpoint": url, "http_method": "POST", "request_format": "json", "status": "active", "subscriptions": ["conditional_ticket_events"], "authentication": {"type": "bearer_token", "data": {"token": "s3cret-token"}, "add_position": "header"}}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {w}");
        let wid = w["webhook"]["id"]
            .as_str()
            .expect("webhook ids are strings")
            .to_string();
        assert!(
            w["webhook"].get("signing_secret").is_none(),
            "{n}: the secret is not shown with the webhook"
        );
        assert_eq!(
            w["webhook"]["authentication"],
            json!({"type": "bearer_token", "add_position": "header"}),
            "{n}: credentials are not shown"
        );
        let (s, sec) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/webhooks/{wid}/signing_secret.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        assert_eq!(sec["signing_secret"]["algorithm"], "SHA256", "{n}");
        let secret = sec["signing_secret"]["secret"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, list) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/webhooks.json?filter[name_contains]=bridge",
                None,
            )
            .await;
        assert_eq!(list["webhooks"].as_array().unwrap().len(), 1, "{n}: {list}");
        assert_eq!(list["meta"]["has_more"], false, "{n}: cursor pagination");

        // A trigger that names a webhook that does not exist is refused.
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "Ghost", "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}]}, "actions": [{"field": "notification_webhook", "value": ["999999", "{}"]}]}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        let (s, tr) = t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "Tell the bridge", "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}, {"field": "current_tags", "operator": "includes", "value": "hook"}]}, "actions": [{"field": "notification_webhook", "value": [wid, "{\"id\": \"{{ticket.id}}\", \"title\": \"{{ticket.title}}\"}"]}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {tr}");
        // In use: the webhook cannot be deleted.
        let (s, v) = t
            .call(
                &t.admin,
                Method::DELETE,
                &format!("/api/v2/webhooks/{wid}.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        assert!(v.to_string().contains("Tell the bridge"), "{n}: {v}");

        let (s, a) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Said \"hi\" twice", "comment": {"body": "x"}, "tags": ["hook"]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {a}");
        let tid = a["ticket"]["id"].as_i64().unwrap();
        let ext = a["audit"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "External")
            .expect("an External event")
            .clone();
        assert_eq!(ext["resource"], wid.as_str(), "{n}");
        assert_eq!(
            ext["via"]["source"]["from"]["title"], "Tell the bridge",
            "{n}"
        );

        // Attempt 1 and 2 fail (500), 3 succeeds; retries wait 10 s, then 30 s.
        assert_eq!(t.app.deliver_outbox(10).await.unwrap(), 1, "{n}");
        assert_eq!(
            t.app.deliver_outbox(10).await.unwrap(),
            0,
            "{n}: not due yet"
        );
        t.clock.advance_secs(10);
        assert_eq!(t.app.deliver_outbox(10).await.unwrap(), 1, "{n}");
        t.clock.advance_secs(29);
        assert_eq!(
            t.app.deliver_outbox(10).await.unwrap(),
            0,
            "{n}: the second wait is 30 s"
        );
        t.clock.advance_secs(1);
        assert_eq!(t.app.deliver_outbox(10).await.unwrap(), 1, "{n}");
        t.clock.advance_secs(3600);
        assert_eq!(
            t.app.deliver_outbox(10).await.unwrap(),
            0,
            "{n}: delivered once, never again"
        );

        let got = seen.lock().unwrap().clone();
        assert_eq!(got.len(), 3, "{n}");
        let keys: Vec<&str> = got
            .iter()
            .map(|(h, _)| h["x-opsdesk-idempotency-key"].to_str().unwrap())
            .collect();
        assert!(
            keys.iter().all(|k| *k == keys[0]),
            "{n}: one idempotency key: {keys:?}"
        );
        for (h, body) in &got {
            let stamp = h["x-zendesk-webhook-signature-timestamp"].to_str().unwrap();
            assert_eq!(
                h["x-zendesk-webhook-signature"].to_str().unwrap(),
                zendesk_signature(&secret, stamp, body),
                "{n}"
            );
            assert_eq!(h["authorization"], "Bearer s3cret-token", "{n}");
            assert_eq!(h["x-zendesk-webhook-id"], wid.as_str(), "{n}");
            assert_eq!(h["content-type"], "application/json", "{n}");
            let b: Value =
                serde_json::from_str(body).expect("the body stays JSON with quotes in the title");
            assert_eq!(
                b,
                json!({"id": tid.to_string(), "title": "Said \"hi\" twice"}),
                "{n}"
            );
        }
        let (_, inv) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/webhooks/{wid}/invocations.json"),
                None,
            )
            .await;
        assert_eq!(
            inv["invocations"].as_array().unwrap().len(),
            1,
            "{n}: {inv}"
        );
        assert_eq!(inv["invocations"][0]["status"], "success", "{n}");
        assert_eq!(inv["invocations"][0]["status_code"], 200, "{n}");
        let iid = inv["invocations"][0]["id"].as_str().unwrap().to_string();
        let (_, at) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/webhooks/{wid}/invocations/{iid}/attempts.json"),
                None,
            )
            .await;
        let codes: Vec<Value> = at["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["status_code"].clone())
            .collect();
        assert_eq!(codes, vec![json!(500), json!(500), json!(200)], "{n}: {at}");
        assert_eq!(at["attempts"][0]["response"]["payload"], "try later", "{n}");

        // PATCH changes one attribute (204); an inactive webhook's messages fail without a call.
        let (s, _) = t
            .call(
                &t.admin,
                Method::PATCH,
                &format!("/api/v2/webhooks/{wid}.json"),
                Some(json!({"webhook": {"status": "inactive"}})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{n}");
        let (_, w2) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/webhooks/{wid}.json"),
                None,
            )
            .await;
        assert_eq!(
            (
                w2["webhook"]["status"].as_str(),
                w2["webhook"]["name"].as_str()
            ),
            (Some("inactive"), Some("Ops bridge")),
            "{n}"
        );
        t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Second", "comment": {"body": "x"}, "tags": ["hook"]}}))).await;
        t.app.deliver_outbox(10).await.unwrap();
        assert_eq!(
            seen.lock().unwrap().len(),
            3,
            "{n}: no request to an inactive webhook"
        );
        let (_, failed) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/outbox.json?state=failed",
                None,
            )
            .await;
        assert_eq!(failed["count"], 1, "{n}: {failed}");
        assert_eq!(
            failed["outbox"][0]["last_error"], "the webhook is inactive",
            "{n}"
        );
        // Retried by an admin once the webhook is active again.
        t.call(
            &t.admin,
            Method::PATCH,
            &format!("/api/v2/webhooks/{wid}.json"),
            Some(json!({"webhook": {"status": "active"}})),
        )
        .await;
        let oid = failed["outbox"][0]["id"].as_i64().unwrap();
        let (s, _) = t
            .call(
                &t.admin,
                Method::POST,
                &format!("/api/v2/outbox/{oid}/retry.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        assert_eq!(t.app.deliver_outbox(10).await.unwrap(), 1, "{n}");
        assert_eq!(seen.lock().unwrap().len(), 4, "{n}");
        let (s, _) = t
            .call(
                &t.admin,
                Method::POST,
                &format!("/api/v2/outbox/{oid}/retry.json"),
                None,
            )
            .await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{n}: a delivered message is not sent twice"
        );

        // Resetting the secret makes a new one; the test endpoint calls without queueing.
        let (s, sec2) = t
            .call(
                &t.admin,
                Method::POST,
                &format!("/api/v2/webhooks/{wid}/signing_secret.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{n}");
        assert_ne!(
            sec2["signing_secret"]["secret"].as_str().unwrap(),
            secret,
            "{n}"
        );
        let (s, tr) = t.call(&t.admin, Method::POST, "/api/v2/webhooks/test.json", Some(json!({"webhook": {"endpoint": url, "http_method": "POST", "request_format": "json"}, "request": {"payload": "{\"ping\": 1}"}}))).await;
        assert_eq!(s, StatusCode::OK, "{n}: {tr}");
        assert_eq!(tr["response"]["status"], 200, "{n}: {tr}");
        assert_eq!(
            seen.lock().unwrap().last().unwrap().1,
            "{\"ping\": 1}",
            "{n}"
        );
    }
}

#[tokio::test]
async fn views_group_and_preview() {
    for t in apps().await {
        let n = t.name;
        let agent_id = t.user_id("agent@example.com").await;
        for (subject, status, assignee) in [
            ("a", "open", Some(agent_id)),
            ("b", "pending", Some(agent_id)),
            ("c", "new", None),
            ("d", "open", None),
            ("e", "open", Some(agent_id)),
        ] {
            let mut tk = json!({"ticket": {"subject": subject, "comment": {"body": "x"}, "status": status, "tags": ["grouped"]}});
            if let Some(a) = assignee {
                tk["ticket"]["assignee_id"] = json!(a);
            }
            let (s, v) = t
                .call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(tk))
                .await;
            assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        }
        // Bad group_by is refused like a bad sort.
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/views.json", Some(json!({"view": {"title": "x", "all": [{"field": "current_tags", "operator": "includes", "value": "grouped"}], "output": {"columns": ["subject"], "group_by": "subject"}}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/views.json", Some(json!({"view": {"title": "By assignee", "all": [{"field": "current_tags", "operator": "includes", "value": "grouped"}], "output": {"columns": ["subject", "status"], "group_by": "assignee", "group_order": "desc", "sort_by": "subject", "sort_order": "asc"}}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let vid = v["view"]["id"].as_i64().unwrap();
        let (_, ex) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/views/{vid}/execute.json"),
                None,
            )
            .await;
        let subjects: Vec<&str> = ex["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["subject"].as_str().unwrap())
            .collect();
        // Desc by assignee id: the agent's tickets first (sorted by subject), then unassigned.
        assert_eq!(subjects, vec!["a", "b", "e", "c", "d"], "{n}: {ex}");
        assert_eq!(
            ex["groups"],
            json!([{"id": agent_id, "name": "Alan Agent", "count": 3}, {"id": null, "name": "-", "count": 2}]),
            "{n}"
        );

        // Preview: an unsaved view, checked as a save is, run as execute runs.
        let (s, p) = t.call(&t.agent, Method::POST, "/api/v2/views/preview.json", Some(json!({"view": {"all": [{"field": "current_tags", "operator": "includes", "value": "grouped"}, {"field": "status", "operator": "is", "value": "open"}], "output": {"columns": ["subject"], "group_by": "status", "sort_by": "subject"}}}))).await;
        assert_eq!(s, StatusCode::OK, "{n}: {p}");
        let subjects: Vec<&str> = p["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["subject"].as_str().unwrap())
            .collect();
        assert_eq!(subjects, vec!["a", "d", "e"], "{n}");
        assert_eq!(
            p["groups"],
            json!([{"id": "open", "name": "open", "count": 3}]),
            "{n}"
        );
        let (s, c) = t.call(&t.agent, Method::POST, "/api/v2/views/preview/count.json", Some(json!({"view": {"all": [{"field": "current_tags", "operator": "includes", "value": "grouped"}]}}))).await;
        assert_eq!(s, StatusCode::OK, "{n}: {c}");
        assert_eq!(c["view_count"]["value"], 5, "{n}");
        let (s, e) = t.call(&t.agent, Method::POST, "/api/v2/views/preview.json", Some(json!({"view": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}]}}))).await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{n}: trigger-only conditions are refused in a preview too: {e}"
        );
        let (s, _) = t.call(&t.customer, Method::POST, "/api/v2/views/preview.json", Some(json!({"view": {"all": [{"field": "status", "operator": "is", "value": "open"}]}}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}");

        // Tag conditions count through the tag index, which follows every tag change.
        let (_, open_tagged) = t.call(&t.admin, Method::POST, "/api/v2/views.json", Some(json!({"view": {"title": "Open grouped", "all": [{"field": "status", "operator": "is", "value": "open"}, {"field": "current_tags", "operator": "includes", "value": "grouped other"}]}}))).await;
        let (_, untagged) = t.call(&t.admin, Method::POST, "/api/v2/views.json", Some(json!({"view": {"title": "Not grouped", "all": [{"field": "status", "operator": "less_than", "value": "solved"}, {"field": "current_tags", "operator": "not_includes", "value": "grouped"}]}}))).await;
        let count = |id: &Value| {
            let path = format!("/api/v2/views/{}/count.json", id["view"]["id"]);
            let t = &t;
            async move {
                t.call(&t.admin, Method::GET, &path, None).await.1["view_count"]["value"]
                    .as_i64()
                    .unwrap()
            }
        };
        assert_eq!(count(&open_tagged).await, 3, "{n}");
        let untagged_before = count(&untagged).await;
        let first = ex["rows"][0]["ticket_id"].as_i64().unwrap();
        let (s, _) = t
            .call(
                &t.admin,
                Method::DELETE,
                &format!("/api/v2/tickets/{first}/tags.json"),
                Some(json!({"tags": ["grouped"]})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        assert_eq!(
            count(&open_tagged).await,
            2,
            "{n}: the removed tag left the index"
        );
        assert_eq!(count(&untagged).await, untagged_before + 1, "{n}");
        let (s, _) = t
            .call(
                &t.admin,
                Method::PUT,
                &format!("/api/v2/tickets/{first}.json"),
                Some(json!({"ticket": {"tags": ["other"]}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        assert_eq!(
            count(&open_tagged).await,
            3,
            "{n}: 'other' is one of the view's tags"
        );
    }
}

#[tokio::test]
async fn schedules_and_business_hours_rules() {
    for t in apps().await {
        let n = t.name;
        // The clock starts Sunday 2026-03-01 09:00 UTC (01:00 in Los Angeles).
        let (s, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/business_hours/schedules.json",
                Some(
                    json!({"schedule": {"name": "Nowhere", "time_zone": "Atlantis Standard Time"}}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        assert!(v["details"]["time_zone"].is_array(), "{n}: {v}");
        let (s, _) = t
            .call(
                &t.agent,
                Method::POST,
                "/api/v2/business_hours/schedules.json",
                Some(json!({"schedule": {"name": "x", "time_zone": "UTC"}})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}");
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/business_hours/schedules.json", Some(json!({"schedule": {"name": "North America", "time_zone": "Pacific Time (US & Canada)"}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let sid = v["schedule"]["id"].as_i64().unwrap();
        // A new schedule is Monday to Friday, 09:00–17:00.
        assert_eq!(
            v["schedule"]["intervals"][0],
            json!({"start_time": 1980, "end_time": 2460}),
            "{n}"
        );
        assert_eq!(
            v["schedule"]["intervals"].as_array().unwrap().len(),
            5,
            "{n}"
        );
        let (s, w) = t
            .call(
                &t.admin,
                Method::PUT,
                &format!("/api/v2/business_hours/schedules/{sid}/workweek.json"),
                Some(json!({"workweek": {"intervals": [{"start_time": 10, "end_time": 5}]}})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {w}");
        // Holidays: one day, then stretched, then a bad date, then gone.
        let (s, h) = t
            .call(
                &t.admin,
                Method::POST,
                &format!("/api/v2/business_hours/schedules/{sid}/holidays.json"),
                Some(json!({"holiday": {"name": "Spring break", "start_date": "2026-03-05"}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {h}");
        assert_eq!(h["holiday"]["end_date"], "2026-03-05", "{n}");
        let hid = h["holiday"]["id"].as_i64().unwrap();
        let (s, h) = t
            .call(
                &t.admin,
                Method::PUT,
                &format!("/api/v2/business_hours/schedules/{sid}/holidays/{hid}.json"),
                Some(json!({"holiday": {"end_date": "2026-03-06"}})),
            )
            .await;
        assert_eq!(
            (s, h["holiday"]["end_date"].as_str()),
            (StatusCode::OK, Some("2026-03-06")),
            "{n}: {h}"
        );
        let (s, _) = t
            .call(
                &t.admin,
                Method::PUT,
                &format!("/api/v2/business_hours/schedules/{sid}/holidays/{hid}.json"),
                Some(json!({"holiday": {"end_date": "someday"}})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}");
        let (_, hs) = t
            .call(
                &t.agent,
                Method::GET,
                &format!("/api/v2/business_hours/schedules/{sid}/holidays.json"),
                None,
            )
            .await;
        assert_eq!(hs["holidays"].as_array().unwrap().len(), 1, "{n}: {hs}");

        // A trigger that tags tickets created outside business hours, and an automation that
        // escalates tickets open more than 8 business hours.
        let (s, tr) = t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "After hours", "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}, {"field": "in_business_hours", "operator": "is", "value": "false"}]}, "actions": [{"field": "current_tags", "value": "after_hours"}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {tr}");
        let (s, au) = t.call(&t.admin, Method::POST, "/api/v2/automations.json", Some(json!({"automation": {"title": "Escalate after 8 business hours", "conditions": {"all": [{"field": "status", "operator": "is", "value": "open"}, {"field": "NEW", "operator": "greater_than_business_hours", "value": "8"}, {"field": "current_tags", "operator": "not_includes", "value": "escalated"}]}, "actions": [{"field": "current_tags", "value": "escalated"}, {"field": "priority", "value": "high"}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {au}");
        let agent_id = t.user_id("agent@example.com").await;
        let (_, a) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Sunday night", "comment": {"body": "x"}, "assignee_id": agent_id}}))).await;
        let tid = a["ticket"]["id"].as_i64().unwrap();
        assert!(
            a["ticket"]["tags"]
                .as_array()
                .unwrap()
                .contains(&json!("after_hours")),
            "{n}: {a}"
        );
        let tags = |id: i64| {
            let t = &t;
            async move {
                t.call(
                    &t.admin,
                    Method::GET,
                    &format!("/api/v2/tickets/{id}.json"),
                    None,
                )
                .await
                .1["ticket"]["tags"]
                    .clone()
            }
        };
        // Monday 2026-03-02 10:00 PST (18:00 UTC): one business hour, 33 calendar hours.
        t.clock.set(clock::parse("2026-03-02T18:00:00Z").unwrap());
        let r = t
            .app
            .run_automations_if_due()
            .await
            .unwrap()
            .expect("a run");
        assert_eq!(r.updated, 0, "{n}");
        let (_, why) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{tid}/rule_trace.json"),
                None,
            )
            .await;
        assert_eq!(
            why["automations_now"][0]["failed"], "all[1]: NEW greater_than_business_hours \"8\"",
            "{n}: {why}"
        );
        // A ticket created now, in business hours, is not tagged.
        let (_, b) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(json!({"ticket": {"subject": "Monday morning", "comment": {"body": "x"}}})),
            )
            .await;
        assert!(
            !b["ticket"]["tags"]
                .as_array()
                .unwrap()
                .contains(&json!("after_hours")),
            "{n}: {b}"
        );
        // Tuesday 10:30 PST: Monday's 8 hours + 1.5 = 9 whole business hours.
        t.clock.set(clock::parse("2026-03-03T18:30:00Z").unwrap());
        let r = t
            .app
            .run_automations_if_due()
            .await
            .unwrap()
            .expect("a run");
        assert_eq!(r.updated, 1, "{n}: {r:?}");
        assert!(
            tags(tid)
                .await
                .as_array()
                .unwrap()
                .contains(&json!("escalated")),
            "{n}"
        );
        // Deleting the schedule: business hours count around the clock again.
        let (s, _) = t
            .call(
                &t.admin,
                Method::DELETE,
                &format!("/api/v2/business_hours/schedules/{sid}.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{n}");
        let (_, l) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/business_hours/schedules.json",
                None,
            )
            .await;
        assert_eq!(l["schedules"], json!([]), "{n}");
    }
}

#[tokio::test]
async fn ticket_metrics_follow_a_scripted_history() {
    for t in apps().await {
        let n = t.name;
        let (s, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/business_hours/schedules.json",
                Some(json!({"schedule": {"name": "Office", "time_zone": "UTC"}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let agent_id = t.user_id("agent@example.com").await;
        let at = |s: &str| clock::parse(s).unwrap();
        // Sunday 09:00: the ticket arrives.
        let (_, a) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Metrics", "comment": {"body": "help"}, "requester": {"name": "Cora Customer", "email": "cora@example.com"}}}))).await;
        let id = a["ticket"]["id"].as_i64().unwrap();
        let put = |body: Value| {
            let t = &t;
            async move {
                let (s, v) = t
                    .call(
                        &t.agent,
                        Method::PUT,
                        &format!("/api/v2/tickets/{id}.json"),
                        Some(json!({"ticket": body})),
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{v}");
            }
        };
        // Monday 10:00 the agent replies publicly and waits for the customer.
        t.clock.set(at("2026-03-02T10:00:00Z"));
        put(json!({"status": "pending", "assignee_id": agent_id, "comment": {"body": "Can you send the logs?", "public": true}})).await;
        t.clock.set(at("2026-03-02T12:00:00Z"));
        put(json!({"status": "open", "comment": {"body": "logs received", "public": false}})).await;
        t.clock.set(at("2026-03-02T14:00:00Z"));
        put(json!({"status": "hold"})).await;
        t.clock.set(at("2026-03-03T09:00:00Z"));
        put(json!({"status": "open"})).await;
        t.clock.set(at("2026-03-03T10:00:00Z"));
        put(json!({"status": "solved"})).await;
        t.clock.set(at("2026-03-03T11:00:00Z"));
        put(json!({"status": "open"})).await;
        t.clock.set(at("2026-03-03T12:00:00Z"));
        put(json!({"status": "solved"})).await;
        t.clock.set(at("2026-03-09T12:00:00Z"));

        let (s, m) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}/metrics.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {m}");
        let m = &m["ticket_metric"];
        // Business hours: Monday–Friday 09:00–17:00 UTC.
        let expect = [
            ("reply_time_in_minutes", 25 * 60, 60), // Sun 09:00 → Mon 10:00
            ("first_resolution_time_in_minutes", 49 * 60, 540), // → Tue 10:00
            ("full_resolution_time_in_minutes", 51 * 60, 660), // → Tue 12:00
            ("agent_wait_time_in_minutes", 120, 120), // pending Mon 10–12
            ("requester_wait_time_in_minutes", 48 * 60, 480), // new, open and on hold
            ("on_hold_time_in_minutes", 19 * 60, 180), // Mon 14:00 → Tue 09:00
        ];
        for (k, cal, bus) in expect {
            assert_eq!(
                m[k],
                json!({"calendar": cal, "business": bus}),
                "{n}: {k}: {m}"
            );
        }
        assert_eq!(m["reopens"], 1, "{n}");
        assert_eq!(m["replies"], 1, "{n}");
        assert_eq!(m["assignee_stations"], 1, "{n}");
        assert_eq!(m["solved_at"], "2026-03-03T12:00:00Z", "{n}");
        assert_eq!(m["initially_assigned_at"], "2026-03-02T10:00:00Z", "{n}");
        assert_eq!(m["ticket_id"], id, "{n}");
        let (_, l) = t
            .call(&t.admin, Method::GET, "/api/v2/ticket_metrics.json", None)
            .await;
        assert!(
            l["ticket_metrics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["ticket_id"] == id),
            "{n}: {l}"
        );
        let (s, _) = t
            .call(
                &t.customer,
                Method::GET,
                &format!("/api/v2/tickets/{id}/metrics.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}");
    }
}

#[tokio::test]
async fn sla_policies_apply_first_match_and_show_targets() {
    for t in apps().await {
        let n = t.name;
        t.call(
            &t.admin,
            Method::POST,
            "/api/v2/business_hours/schedules.json",
            Some(json!({"schedule": {"name": "Office", "time_zone": "UTC"}})),
        )
        .await;
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/slas/policies.json", Some(json!({"sla_policy": {"title": "Bad", "filter": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}], "any": []}, "policy_metrics": [{"priority": "urgent", "metric": "reply_time", "target": 60, "business_hours": true}]}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        let text = v.to_string();
        assert!(
            text.contains("only for triggers") && text.contains("'reply_time' is not one of"),
            "{n}: {v}"
        );
        let (s, inc) = t.call(&t.admin, Method::POST, "/api/v2/slas/policies.json", Some(json!({"sla_policy": {"title": "Incidents", "filter": {"all": [{"field": "type", "operator": "is", "value": "incident"}], "any": []}, "policy_metrics": [
            {"priority": "urgent", "metric": "first_reply_time", "target": 60, "business_hours": true},
            {"priority": "urgent", "metric": "requester_wait_time", "target": 120, "business_hours": true},
            {"priority": "urgent", "metric": "total_resolution_time", "target": 1440, "business_hours": false},
            {"priority": "low", "metric": "first_reply_time", "target": 480, "business_hours": true}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {inc}");
        let inc_id = inc["sla_policy"]["id"].as_i64().unwrap();
        let (_, dflt) = t.call(&t.admin, Method::POST, "/api/v2/slas/policies.json", Some(json!({"sla_policy": {"title": "Everything else", "filter": {"all": [], "any": []}, "policy_metrics": [{"priority": "normal", "metric": "first_reply_time", "target": 480, "business_hours": true}]}}))).await;
        let dflt_id = dflt["sla_policy"]["id"].as_i64().unwrap();
        assert_eq!(dflt["sla_policy"]["position"], 2, "{n}");
        let (_, defs) = t
            .call(
                &t.agent,
                Method::GET,
                "/api/v2/slas/policies/definitions.json",
                None,
            )
            .await;
        assert!(
            defs["definitions"]["metrics"]
                .as_array()
                .unwrap()
                .contains(&json!("next_reply_time")),
            "{n}"
        );

        let agent_id = t.user_id("agent@example.com").await;
        // Sunday 09:00 UTC: an urgent incident arrives.
        let (_, a) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Down", "type": "incident", "priority": "urgent", "comment": {"body": "all down"}, "requester": {"name": "Cora Customer", "email": "cora@example.com"}}}))).await;
        let id = a["ticket"]["id"].as_i64().unwrap();
        let slas = |path: String| {
            let t = &t;
            async move { t.call(&t.admin, Method::GET, &path, None).await.1 }
        };
        let v = slas(format!("/api/v2/tickets/{id}.json?include=slas")).await;
        let sl = &v["ticket"]["slas"];
        assert_eq!(sl["policy"]["id"], inc_id, "{n}: {v}");
        let pm = sl["policy_metrics"].as_array().unwrap();
        assert_eq!(pm.len(), 3, "{n}: only the urgent targets: {sl}");
        let by = |m: &str| pm.iter().find(|x| x["metric"] == m).unwrap().clone();
        // One business hour from Sunday is Monday 10:00; two, Monday 11:00; 24 calendar hours, Monday 09:00.
        assert_eq!(
            (
                by("first_reply_time")["stage"].as_str(),
                by("first_reply_time")["breach_at"].as_str()
            ),
            (Some("active"), Some("2026-03-02T10:00:00Z")),
            "{n}"
        );
        assert_eq!(
            by("requester_wait_time")["breach_at"],
            "2026-03-02T11:00:00Z",
            "{n}"
        );
        assert_eq!(
            by("total_resolution_time")["breach_at"],
            "2026-03-02T09:00:00Z",
            "{n}"
        );
        assert_eq!(
            by("first_reply_time")["hours"],
            25,
            "{n}: time left to the breach"
        );

        // Monday 09:30 the agent replies and waits on the customer.
        t.clock.set(clock::parse("2026-03-02T09:30:00Z").unwrap());
        let (s, _) = t.call(&t.agent, Method::PUT, &format!("/api/v2/tickets/{id}.json"), Some(json!({"ticket": {"status": "pending", "assignee_id": agent_id, "comment": {"body": "On it", "public": true}}}))).await;
        assert_eq!(s, StatusCode::OK, "{n}");
        let v = slas(format!("/api/v2/tickets/{id}.json?include=slas")).await;
        let pm = v["ticket"]["slas"]["policy_metrics"]
            .as_array()
            .unwrap()
            .clone();
        let by = |m: &str| pm.iter().find(|x| x["metric"] == m).unwrap().clone();
        assert_eq!(
            (
                by("first_reply_time")["stage"].as_str(),
                by("first_reply_time")["breached"].as_bool()
            ),
            (Some("achieved"), Some(false)),
            "{n}"
        );
        assert_eq!(by("requester_wait_time")["stage"], "paused", "{n}");
        assert_eq!(by("requester_wait_time")["breach_at"], Value::Null, "{n}");
        assert_eq!(
            by("total_resolution_time")["breached"],
            true,
            "{n}: 24 calendar hours have passed"
        );

        // Monday 10:00 it is open again: 30 business minutes were used, 90 remain → 11:30.
        t.clock.set(clock::parse("2026-03-02T10:00:00Z").unwrap());
        t.call(
            &t.agent,
            Method::PUT,
            &format!("/api/v2/tickets/{id}.json"),
            Some(json!({"ticket": {"status": "open"}})),
        )
        .await;
        let v = slas("/api/v2/tickets.json?include=slas".to_string()).await;
        let mine = v["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap()
            .clone();
        let rw = mine["slas"]["policy_metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["metric"] == "requester_wait_time")
            .unwrap()
            .clone();
        assert_eq!(
            (rw["stage"].as_str(), rw["breach_at"].as_str()),
            (Some("active"), Some("2026-03-02T11:30:00Z")),
            "{n}: {rw}"
        );

        // First match by position: move "Everything else" first.
        let (s, _) = t
            .call(
                &t.admin,
                Method::PUT,
                "/api/v2/slas/policies/reorder.json",
                Some(json!({"sla_policy_ids": [dflt_id, inc_id]})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        let v = slas(format!("/api/v2/tickets/{id}.json?include=slas")).await;
        assert_eq!(v["ticket"]["slas"]["policy"]["id"], dflt_id, "{n}");
        assert_eq!(
            v["ticket"]["slas"]["policy_metrics"],
            json!([]),
            "{n}: no target for urgent in that policy"
        );
        let (s, _) = t
            .call(
                &t.admin,
                Method::DELETE,
                &format!("/api/v2/slas/policies/{dflt_id}.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{n}");
        let (_, l) = t
            .call(&t.agent, Method::GET, "/api/v2/slas/policies.json", None)
            .await;
        assert_eq!(l["sla_policies"].as_array().unwrap().len(), 1, "{n}");
    }
}

#[tokio::test]
async fn sla_reply_and_update_targets_follow_the_conversation() {
    for t in apps().await {
        let n = t.name;
        t.call(
            &t.admin,
            Method::POST,
            "/api/v2/business_hours/schedules.json",
            Some(json!({"schedule": {"name": "Office", "time_zone": "UTC"}})),
        )
        .await;
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/slas/policies.json", Some(json!({"sla_policy": {"title": "All", "filter": {"all": [], "any": []}, "policy_metrics": [
            {"priority": "high", "metric": "next_reply_time", "target": 30, "business_hours": true},
            {"priority": "high", "metric": "periodic_update_time", "target": 240, "business_hours": false},
            {"priority": "high", "metric": "pausable_update_time", "target": 120, "business_hours": true}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let agent_id = t.user_id("agent@example.com").await;
        // Sunday 09:00: the customer writes in.
        let (s, r) = t.call(&t.customer, Method::POST, "/api/v2/requests.json", Some(json!({"request": {"subject": "Slow", "comment": {"body": "pipelines are slow"}}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {r}");
        let id = r["request"]["id"].as_i64().unwrap();
        t.call(
            &t.agent,
            Method::PUT,
            &format!("/api/v2/tickets/{id}.json"),
            Some(json!({"ticket": {"priority": "high", "assignee_id": agent_id}})),
        )
        .await;
        let targets = || {
            let t = &t;
            async move {
                let (_, v) = t
                    .call(
                        &t.admin,
                        Method::GET,
                        &format!("/api/v2/tickets/{id}.json?include=slas"),
                        None,
                    )
                    .await;
                v["ticket"]["slas"]["policy_metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        (
                            m["metric"].as_str().unwrap().to_string(),
                            (m["stage"].clone(), m["breach_at"].clone()),
                        )
                    })
                    .collect::<std::collections::BTreeMap<_, _>>()
            }
        };
        let m = targets().await;
        assert!(
            !m.contains_key("next_reply_time"),
            "{n}: nothing awaits a next reply yet: {m:?}"
        );
        assert_eq!(
            m["periodic_update_time"],
            (json!("active"), json!("2026-03-01T13:00:00Z")),
            "{n}"
        );
        assert_eq!(
            m["pausable_update_time"],
            (json!("active"), json!("2026-03-02T11:00:00Z")),
            "{n}: two business hours from Sunday"
        );

        // Monday 10:00 the agent replies; 10:30 the customer answers; a next reply is due 11:00.
        t.clock.set(clock::parse("2026-03-02T10:00:00Z").unwrap());
        t.call(
            &t.agent,
            Method::PUT,
            &format!("/api/v2/tickets/{id}.json"),
            Some(json!({"ticket": {"comment": {"body": "Looking", "public": true}}})),
        )
        .await;
        t.clock.set(clock::parse("2026-03-02T10:30:00Z").unwrap());
        let (s, v) = t
            .call(
                &t.customer,
                Method::PUT,
                &format!("/api/v2/requests/{id}.json"),
                Some(json!({"request": {"comment": {"body": "thanks, any news?"}}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        let m = targets().await;
        assert_eq!(
            m["next_reply_time"],
            (json!("active"), json!("2026-03-02T11:00:00Z")),
            "{n}: {m:?}"
        );
        assert_eq!(
            m["periodic_update_time"].1,
            json!("2026-03-02T14:00:00Z"),
            "{n}"
        );

        // 10:45 the agent answers and waits on the customer: next reply done, pausable paused.
        t.clock.set(clock::parse("2026-03-02T10:45:00Z").unwrap());
        t.call(&t.agent, Method::PUT, &format!("/api/v2/tickets/{id}.json"), Some(json!({"ticket": {"status": "pending", "comment": {"body": "Try this", "public": true}}}))).await;
        let m = targets().await;
        assert!(!m.contains_key("next_reply_time"), "{n}: {m:?}");
        assert_eq!(
            m["pausable_update_time"],
            (json!("paused"), Value::Null),
            "{n}"
        );
        assert_eq!(
            m["periodic_update_time"].1,
            json!("2026-03-02T14:45:00Z"),
            "{n}"
        );
    }
}

#[tokio::test]
async fn sla_breaches_are_recorded_when_they_happen() {
    // Warnings ten minutes ahead of each breach.
    for t in apps_with(|a| a.sla_warning_secs = 600).await {
        let n = t.name;
        // Triggers that react to the scheduler's events (never to ordinary updates).
        for (title, kind) in [("SLA warning", "warning"), ("SLA breached", "breach")] {
            let tag = if kind == "warning" {
                "sla_warning"
            } else {
                "sla_breached"
            };
            let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": title, "conditions": {"all": [{"field": "sla_event", "operator": "is", "value": kind}]}, "actions": [{"field": "current_tags", "value": tag}]}}))).await;
            assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        }
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/automations.json", Some(json!({"automation": {"title": "bad", "conditions": {"all": [{"field": "sla_event", "operator": "is", "value": "breach"}, {"field": "NEW", "operator": "greater_than", "value": "1"}]}, "actions": [{"field": "status", "value": "closed"}]}}))).await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{n}: sla_event is for triggers: {v}"
        );
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "bad", "conditions": {"all": [{"field": "sla_event", "operator": "is", "value": "late"}]}, "actions": [{"field": "priority", "value": "low"}]}}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/slas/policies.json", Some(json!({"sla_policy": {"title": "Urgent", "filter": {"all": [], "any": []}, "policy_metrics": [
            {"priority": "urgent", "metric": "first_reply_time", "target": 30, "business_hours": false},
            {"priority": "urgent", "metric": "total_resolution_time", "target": 120, "business_hours": false}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let pid = v["sla_policy"]["id"].as_i64().unwrap();
        let agent_id = t.user_id("agent@example.com").await;
        // Sunday 09:00: an urgent ticket.
        let (_, a) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Fire", "priority": "urgent", "comment": {"body": "x"}, "requester": {"name": "Cora Customer", "email": "cora@example.com"}}}))).await;
        let id = a["ticket"]["id"].as_i64().unwrap();
        // An automation alerts on tickets less than an hour from a breach (the profile's
        // "under 2 h to a first-reply breach" alert, with a shorter target).
        let (s, au) = t.call(&t.admin, Method::POST, "/api/v2/automations.json", Some(json!({"automation": {"title": "Close to a breach", "conditions": {"all": [{"field": "status", "operator": "less_than", "value": "solved"}, {"field": "until_sla_next_breach_at", "operator": "less_than", "value": "1"}, {"field": "current_tags", "operator": "not_includes", "value": "sla_alert"}]}, "actions": [{"field": "current_tags", "value": "sla_alert"}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {au}");
        let r = t
            .app
            .run_automations_if_due()
            .await
            .unwrap()
            .expect("a run");
        assert_eq!(r.updated, 1, "{n}: {r:?}");
        let (_, tk) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}.json"),
                None,
            )
            .await;
        assert!(
            tk["ticket"]["tags"]
                .as_array()
                .unwrap()
                .contains(&json!("sla_alert")),
            "{n}: {tk}"
        );
        let tags = |tk: &Value| -> Vec<String> {
            tk["ticket"]["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        };
        let ticket_path = format!("/api/v2/tickets/{id}.json");
        t.clock.advance_secs(19 * 60);
        assert_eq!(
            t.app.sla_breach_tick(100).await.unwrap(),
            0,
            "{n}: nothing due at 09:19"
        );
        // 09:20: ten minutes before the first-reply breach, a warning, and its trigger.
        t.clock.advance_secs(60);
        assert_eq!(t.app.sla_breach_tick(100).await.unwrap(), 1, "{n}");
        let (_, tk) = t.call(&t.admin, Method::GET, &ticket_path, None).await;
        assert!(tags(&tk).contains(&"sla_warning".to_string()), "{n}: {tk}");
        assert!(
            !tags(&tk).contains(&"sla_breached".to_string()),
            "{n}: {tk}"
        );
        let (_, au) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/tickets/{id}/audits.json"),
                None,
            )
            .await;
        let last = au["audits"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["author_id"], -1, "{n}: {last}");
        assert_eq!(last["via"]["channel"], "rule", "{n}: {last}");
        assert_eq!(
            last["metadata"]["system"]["sla_event"], "warning",
            "{n}: {last}"
        );
        assert_eq!(
            t.app.sla_breach_tick(100).await.unwrap(),
            0,
            "{n}: warned once"
        );
        // 09:31: the first-reply target was missed at 09:30; the scheduler records it now,
        // without any update to the ticket.
        t.clock.advance_secs(11 * 60);
        assert_eq!(t.app.sla_breach_tick(100).await.unwrap(), 1, "{n}");
        assert_eq!(
            t.app.sla_breach_tick(100).await.unwrap(),
            0,
            "{n}: recorded once"
        );
        let (_, tk) = t.call(&t.admin, Method::GET, &ticket_path, None).await;
        assert!(tags(&tk).contains(&"sla_breached".to_string()), "{n}: {tk}");
        // 09:40 the agent replies: fulfilled (late).
        t.clock.advance_secs(9 * 60);
        let (s, _) = t.call(&t.agent, Method::PUT, &format!("/api/v2/tickets/{id}.json"), Some(json!({"ticket": {"assignee_id": agent_id, "comment": {"body": "on it", "public": true}}}))).await;
        assert_eq!(s, StatusCode::OK, "{n}");
        // 11:05: total resolution missed at 11:00.
        t.clock.set(clock::parse("2026-03-01T11:05:00Z").unwrap());
        assert_eq!(t.app.sla_breach_tick(100).await.unwrap(), 1, "{n}");

        let (s, ev) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/incremental/ticket_metric_events.json?start_time=0",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {ev}");
        let got: Vec<(String, String, String)> = ev["ticket_metric_events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ticket_id"] == id)
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_string(),
                    e["metric"].as_str().unwrap_or("").to_string(),
                    e["time"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String, String)> = [
            ("apply_sla", "", "2026-03-01T09:00:00Z"),
            ("activate", "first_reply_time", "2026-03-01T09:00:00Z"),
            ("activate", "total_resolution_time", "2026-03-01T09:00:00Z"),
            ("warning", "first_reply_time", "2026-03-01T09:20:00Z"),
            ("breach", "first_reply_time", "2026-03-01T09:30:00Z"),
            ("fulfill", "first_reply_time", "2026-03-01T09:40:00Z"),
            ("update_status", "first_reply_time", "2026-03-01T09:40:00Z"),
            // The warning at 10:50 fell due with the breach: only the breach is recorded.
            ("breach", "total_resolution_time", "2026-03-01T11:00:00Z"),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
        assert_eq!(got, want, "{n}: {ev}");
        let apply = ev["ticket_metric_events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "apply_sla")
            .unwrap()
            .clone();
        assert_eq!(apply["sla"]["policy"]["id"], pid, "{n}");
        let status = ev["ticket_metric_events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "update_status")
            .unwrap()
            .clone();
        assert_eq!(
            status["status"],
            json!({"calendar": 40, "business": 40}),
            "{n}: replied 40 minutes after creation"
        );
        assert_eq!(ev["end_of_stream"], true, "{n}");
        // Paging resumes after the last event, never repeating it.
        let next = ev["next_page"].as_str().unwrap().to_string();
        let path = next
            .split_once("/api/v2/")
            .map(|(_, p)| format!("/api/v2/{p}"))
            .unwrap();
        let (_, ev2) = t.call(&t.admin, Method::GET, &path, None).await;
        assert_eq!(ev2["ticket_metric_events"], json!([]), "{n}: {ev2}");
        let (s, _) = t
            .call(
                &t.agent,
                Method::GET,
                "/api/v2/incremental/ticket_metric_events.json?start_time=0",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}: exports are for admins");
    }
}

#[tokio::test]
async fn triggers_set_a_tickets_schedule() {
    for t in apps().await {
        let n = t.name;
        // The default (first) schedule: Monday to Friday 09:00-17:00 UTC. A second: 24x7.
        let (s, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/business_hours/schedules.json",
                Some(json!({"schedule": {"name": "Office", "time_zone": "UTC"}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/business_hours/schedules.json", Some(json!({"schedule": {"name": "Around the clock", "time_zone": "UTC", "intervals": [{"start_time": 0, "end_time": 10080}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let always = v["schedule"]["id"].as_i64().unwrap();
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/slas/policies.json", Some(json!({"sla_policy": {"title": "High", "filter": {"all": [], "any": []}, "policy_metrics": [
            {"priority": "high", "metric": "first_reply_time", "target": 60, "business_hours": true}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        // Refused: a schedule that does not exist, a schedule that is not an id, a macro.
        for (path, body) in [
            (
                "/api/v2/triggers.json",
                json!({"trigger": {"title": "x", "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}]}, "actions": [{"field": "set_schedule", "value": 999_999}]}}),
            ),
            (
                "/api/v2/triggers.json",
                json!({"trigger": {"title": "x", "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}]}, "actions": [{"field": "set_schedule", "value": "soon"}]}}),
            ),
            (
                "/api/v2/macros.json",
                json!({"macro": {"title": "x", "actions": [{"field": "set_schedule", "value": always}]}}),
            ),
        ] {
            let (s, v) = t.call(&t.admin, Method::POST, path, Some(body)).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{n}: {v}");
        }
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/triggers.json", Some(json!({"trigger": {"title": "VIPs around the clock", "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}, {"field": "current_tags", "operator": "includes", "value": "vip"}]}, "actions": [{"field": "set_schedule", "value": always}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        // Sunday 09:00: one business hour is Monday 10:00 in the office schedule, Sunday
        // 10:00 around the clock.
        let mut breach = vec![];
        for tags in [json!([]), json!(["vip"])] {
            let (_, a) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Help", "priority": "high", "tags": tags, "comment": {"body": "x"}}}))).await;
            let id = a["ticket"]["id"].as_i64().unwrap();
            let (_, v) = t
                .call(
                    &t.admin,
                    Method::GET,
                    &format!("/api/v2/tickets/{id}.json?include=slas"),
                    None,
                )
                .await;
            breach.push(v["ticket"]["slas"]["policy_metrics"][0]["breach_at"].clone());
            if tags == json!(["vip"]) {
                assert_eq!(v["ticket"]["schedule_id"], always, "{n}: {v}");
                // The change is audited like any field.
                let (_, au) = t
                    .call(
                        &t.admin,
                        Method::GET,
                        &format!("/api/v2/tickets/{id}/audits.json"),
                        None,
                    )
                    .await;
                let events = au["audits"][0]["events"].as_array().unwrap().clone();
                assert!(
                    events.iter().any(|e| e["field_name"] == "schedule_id"
                        && e["value"] == json!(always.to_string())),
                    "{n}: {events:?}"
                );
            }
        }
        assert_eq!(
            breach,
            vec![json!("2026-03-02T10:00:00Z"), json!("2026-03-01T10:00:00Z")],
            "{n}"
        );
    }
}

#[tokio::test]
async fn views_sort_by_time_to_the_next_breach() {
    for t in apps().await {
        let n = t.name;
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/slas/policies.json", Some(json!({"sla_policy": {"title": "All", "filter": {"all": [], "any": []}, "policy_metrics": [
            {"priority": "urgent", "metric": "first_reply_time", "target": 30, "business_hours": false},
            {"priority": "high", "metric": "first_reply_time", "target": 240, "business_hours": false}]}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let mut ids = vec![];
        for (subject, priority) in [("High", "high"), ("Urgent", "urgent"), ("Normal", "normal")] {
            let (_, a) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": subject, "priority": priority, "comment": {"body": "x"}}}))).await;
            ids.push(a["ticket"]["id"].as_i64().unwrap());
        }
        let (s, v) = t.call(&t.admin, Method::POST, "/api/v2/views.json", Some(json!({"view": {"title": "By breach", "all": [{"field": "status", "operator": "less_than", "value": "solved"}], "output": {"columns": ["subject", "sla_next_breach_at"], "sort_by": "sla_next_breach_at", "sort_order": "asc"}}}))).await;
        assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        let vid = v["view"]["id"].as_i64().unwrap();
        let (s, rows) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/views/{vid}/execute.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {rows}");
        let got: Vec<(i64, Value)> = rows["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["ticket_id"].as_i64().unwrap(),
                    r["sla_next_breach_at"].clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (ids[1], json!("2026-03-01T09:30:00Z")),
                (ids[0], json!("2026-03-01T13:00:00Z")),
                (ids[2], Value::Null),
            ],
            "{n}: soonest breach first, none last"
        );
        // The agent replies on the urgent ticket: its target is met and it moves last.
        let (s, _) = t
            .call(
                &t.agent,
                Method::PUT,
                &format!("/api/v2/tickets/{}.json", ids[1]),
                Some(json!({"ticket": {"comment": {"body": "on it", "public": true}}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}");
        let (_, rows) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/views/{vid}/execute.json?sort_order=desc"),
                None,
            )
            .await;
        let order: Vec<i64> = rows["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["ticket_id"].as_i64().unwrap())
            .collect();
        assert_eq!(
            order,
            vec![ids[0], ids[1], ids[2]],
            "{n}: desc, tickets without a breach ahead still last, ties by id"
        );
        // A policy change reaches a ticket at its next update, or at once for every open
        // ticket with `opsdesk sla recompute` (App::recompute_slas).
        let (_, pol) = t
            .call(&t.admin, Method::GET, "/api/v2/slas/policies.json", None)
            .await;
        let pid = pol["sla_policies"][0]["id"].as_i64().unwrap();
        let (s, v) = t.call(&t.admin, Method::PUT, &format!("/api/v2/slas/policies/{pid}.json"), Some(json!({"sla_policy": {"policy_metrics": [
            {"priority": "high", "metric": "first_reply_time", "target": 60, "business_hours": false}]}}))).await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        let breach_of = |rows: &Value, id: i64| {
            rows["rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["ticket_id"] == id)
                .unwrap()["sla_next_breach_at"]
                .clone()
        };
        let view_rows = format!("/api/v2/views/{vid}/execute.json");
        let (_, rows) = t.call(&t.admin, Method::GET, &view_rows, None).await;
        assert_eq!(
            breach_of(&rows, ids[0]),
            json!("2026-03-01T13:00:00Z"),
            "{n}"
        );
        let (k, _) = t.app.recompute_slas(0, 500).await.unwrap();
        assert_eq!(k, 3, "{n}: three open tickets");
        let (_, rows) = t.call(&t.admin, Method::GET, &view_rows, None).await;
        assert_eq!(
            breach_of(&rows, ids[0]),
            json!("2026-03-01T10:00:00Z"),
            "{n}"
        );
    }
}

// ---- search ---------------------------------------------------------------------------

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect()
}

/// The ids of a search page's results, in order.
fn result_ids(v: &Value) -> Vec<i64> {
    let results = v["results"].as_array();
    assert!(results.is_some(), "no results: {v}");
    results
        .into_iter()
        .flatten()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

/// One ticket as the brute-force filter sees it (read back through the plain API).
#[derive(Debug, Clone)]
struct Seen {
    id: i64,
    subject: Vec<String>,
    /// (words, public)
    comments: Vec<(Vec<String>, bool)>,
    status: String,
    priority: Option<String>,
    tags: Vec<String>,
    assignee: Option<i64>,
    requester: i64,
    organization: Option<i64>,
    group: Option<i64>,
    created: i64,
    updated: i64,
}

impl Seen {
    fn fields(&self) -> impl Iterator<Item = &Vec<String>> {
        std::iter::once(&self.subject).chain(self.comments.iter().map(|c| &c.0))
    }
    /// Free text: every field, each word a prefix of some word.
    fn has_prefix(&self, w: &str) -> bool {
        self.fields().any(|f| f.iter().any(|x| x.starts_with(w)))
            || self
                .tags
                .iter()
                .any(|t| words(t).iter().any(|x| x.starts_with(w)))
    }
    fn has_phrase(&self, p: &[&str]) -> bool {
        self.fields().any(|f| {
            f.windows(p.len())
                .any(|win| win.iter().zip(p).all(|(a, b)| a == b))
        })
    }
}

fn rank(all: &[&str], v: &str) -> usize {
    all.iter().position(|x| *x == v).unwrap_or(0)
}

/// Free text per ticket: a phrase never spans two comments; a comment too long for its
/// ticket's row (PostgreSQL's ticket_words) is still found, by every keyword; a full reindex
/// finds the same.
#[tokio::test]
async fn search_keeps_comments_apart_and_finds_long_ones() {
    for t in apps().await {
        let n = t.name;
        let cora = t.user_id("cora@example.com").await;
        let create = |body: String, requester: i64| {
            let t = &t;
            async move {
                let (s, v) = t
                    .call(
                        &t.admin,
                        Method::POST,
                        "/api/v2/tickets.json",
                        Some(json!({"ticket": {"subject": "Per ticket", "comment": {"body": body}, "requester_id": requester}})),
                    )
                    .await;
                assert_eq!(s, StatusCode::CREATED, "{v}");
                v["ticket"]["id"].as_i64().unwrap()
            }
        };
        let reply = |id: i64, body: String, public: bool| {
            let t = &t;
            async move {
                let (s, v) = t
                    .call(
                        &t.admin,
                        Method::PUT,
                        &format!("/api/v2/tickets/{id}.json"),
                        Some(json!({"ticket": {"comment": {"body": body, "public": public}}})),
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{v}");
            }
        };
        let admin = t.user_id("admin@example.com").await;
        let split = create("opener lastword".into(), admin).await;
        reply(split, "firstword closer".into(), true).await;
        // 16,100 different words: past one ticket row's 16,000 positions on PostgreSQL, and
        // within the 16,383 positions (256 per word) a tsvector keeps, so a phrase in it is
        // still found.
        // Words of one to three letters, so the comment fits the test server's 64 kB body.
        let letters = |mut i: usize| {
            let mut w = String::new();
            loop {
                w.insert(0, (b'a' + (i % 26) as u8) as char);
                if i < 26 {
                    return w;
                }
                i = i / 26 - 1;
            }
        };
        let filler: Vec<String> = (0..16_100).map(letters).collect();
        let phrase = format!("\"{} needleone\"", filler[16_099]);
        let long = |end: &str| format!("{} {end} tail", filler.join(" "));
        let grown = create("short opener".into(), cora).await;
        reply(grown, long("needleone"), true).await;
        reply(grown, "needletwo after".into(), false).await;
        reply(grown, "needlefive again".into(), true).await;
        let big = create(long("needlethree"), admin).await;
        reply(big, "needlefour later".into(), true).await;
        // A word PostgreSQL would stop placing after 256 positions: the note that would take
        // it there stays on its own row, so the later phrase still has its positions.
        let reps = create(format!("{}end", "rep ".repeat(200)), admin).await;
        reply(reps, format!("{}end", "rep ".repeat(100)), false).await;
        reply(reps, "rep needlesix".into(), true).await;
        // An internal description (PostgreSQL weight C).
        let (_, v) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/tickets.json",
                Some(json!({"ticket": {"subject": "Inside", "comment": {"body": "needleseven", "public": false}, "requester_id": cora}})),
            )
            .await;
        let inside = v["ticket"]["id"].as_i64().unwrap();
        // The ticket's own fields change after its comments are indexed (PostgreSQL: its
        // ticket_words head is rewritten, its comments kept).
        let (s, v) = t
            .call(
                &t.admin,
                Method::PUT,
                &format!("/api/v2/tickets/{split}.json"),
                Some(json!({"ticket": {"subject": "Quokka report", "tags": ["wombat"]}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let mut rounds = 0;
        loop {
            for (q, want) in [
                ("\"lastword firstword\"", vec![]),
                ("lastword firstword", vec![split]),
                ("\"opener lastword\"", vec![split]),
                ("needleone", vec![grown]),
                (phrase.as_str(), vec![grown]),
                ("comment:needleone", vec![grown]),
                ("description:needleone", vec![]),
                ("needletwo", vec![grown]),
                ("needleone needletwo", vec![grown]),
                ("\"needleone needletwo\"", vec![]),
                ("description:opener", vec![grown, split]),
                ("needlethree", vec![big]),
                ("description:needlethree", vec![big]),
                ("needlefour", vec![big]),
                ("description:needlefour", vec![]),
                ("needle*", vec![inside, reps, big, grown]),
                ("\"rep needlesix\"", vec![reps]),
                ("\"end rep\"", vec![]),
                ("description:needleseven", vec![inside]),
                ("comment:needleseven", vec![inside]),
                ("needlefive", vec![grown]),
                ("quokka", vec![split]),
                ("subject:quokka", vec![split]),
                ("\"quokka report\"", vec![split]),
                ("wombat lastword", vec![split]),
                ("quokka -wombat", vec![]),
                // A negated word found only in a comment kept on its own row.
                ("opener -needleone", vec![split]),
                ("subject:per subject:quokka", vec![]),
            ] {
                let path = format!(
                    "/api/v2/search.json?query=type:ticket%20{}&order_by=created_at&sort=desc",
                    q.replace(' ', "%20").replace('"', "%22")
                );
                let (s, v) = t.call(&t.admin, Method::GET, &path, None).await;
                assert_eq!(s, StatusCode::OK, "{n} {q}: {v}");
                assert_eq!(result_ids(&v), want, "{n} round {rounds}: {q}");
                assert_eq!(v["count"].as_i64(), Some(want.len() as i64), "{n}: {q}");
            }
            // The end-user who asked finds her ticket by its public comments, long or not,
            // never by the internal note.
            for (q, want) in [
                ("needletwo", 0),
                ("needleone", 1),
                ("opener", 1),
                ("description:opener", 1),
                ("needlefive", 1),
                ("comment:needlef*", 1),
                ("needleseven", 0),
                ("description:needleseven", 0),
                // Several terms at once: a long comment on its own row, a ticket's own
                // fields and its comments together, an internal note never.
                ("needleone opener", 1),
                ("per needlefive", 1),
                ("needletwo opener", 0),
                ("comment:needleone description:opener", 1),
            ] {
                let (_, v) = t
                    .call(
                        &t.customer,
                        Method::GET,
                        &format!("/api/v2/search/count.json?query={q}"),
                        None,
                    )
                    .await;
                assert_eq!(v["count"], want, "{n}: end-user {q}: {v}");
            }
            rounds += 1;
            if rounds == 2 {
                break;
            }
            let mut tx = t.app.store.write().await.unwrap();
            tx.reindex_search().await.unwrap();
            tx.commit().await.unwrap();
        }
    }
}

#[tokio::test]
async fn search_matches_a_brute_force_filter() {
    const VOCAB: [&str; 10] = [
        "alpha", "alphabet", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "alp", "kappa",
    ];
    const STATUSES: [&str; 6] = ["new", "open", "pending", "hold", "solved", "closed"];
    const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
    for t in apps().await {
        let n = t.name;
        let (_, o) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/organizations.json",
                Some(json!({"organization": {"name": "Acme Rockets"}})),
            )
            .await;
        let acme = o["organization"]["id"].as_i64().unwrap();
        let (_, g) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/groups.json",
                Some(json!({"group": {"name": "Tier Two"}})),
            )
            .await;
        let tier2 = g["group"]["id"].as_i64().unwrap();
        let agent = t.user_id("agent@example.com").await;
        let admin = t.user_id("admin@example.com").await;
        for u in [agent, admin] {
            let (s, v) = t
                .call(
                    &t.admin,
                    Method::POST,
                    "/api/v2/group_memberships.json",
                    Some(json!({"group_membership": {"user_id": u, "group_id": tier2}})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
        }
        let mut requesters = vec![];
        for (i, name) in ["Dana Diaz", "Eli Evans", "Fay Fox"].iter().enumerate() {
            let org = if i == 0 { json!(acme) } else { Value::Null };
            let (_, u) = t.call(&t.admin, Method::POST, "/api/v2/users.json", Some(json!({"user": {"name": name, "email": format!("u{i}@example.org"), "organization_id": org}}))).await;
            requesters.push(u["user"]["id"].as_i64().unwrap());
        }
        let cora = t.user_id("cora@example.com").await;
        requesters.push(cora);
        // A small deterministic generator.
        let mut seed: u64 = 0x5eed_1234;
        let mut rnd = |m: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % m
        };
        let mut ids = vec![];
        for i in 0..48 {
            let subject = format!("{} {} {}", VOCAB[rnd(10)], VOCAB[rnd(10)], i);
            let body = format!("{} {}, {}.", VOCAB[rnd(10)], VOCAB[rnd(10)], VOCAB[rnd(10)]);
            let tags: Vec<&str> = ["red", "green", "blue_sky"]
                .into_iter()
                .filter(|_| rnd(3) == 0)
                .collect();
            let priority = match rnd(5) {
                4 => Value::Null,
                p => json!(PRIORITIES[p]),
            };
            let assignee = match rnd(3) {
                0 => Value::Null,
                1 => json!(agent),
                _ => json!(admin),
            };
            let group = if rnd(2) == 0 {
                json!(tier2)
            } else {
                Value::Null
            };
            let requester = requesters[rnd(requesters.len())];
            let (s, v) = t
                .call(
                    &t.admin,
                    Method::POST,
                    "/api/v2/tickets.json",
                    Some(json!({"ticket": {
                "subject": subject, "comment": {"body": body}, "tags": tags, "priority": priority,
                "assignee_id": assignee, "group_id": group, "requester_id": requester}})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{n}: {v}");
            let id = v["ticket"]["id"].as_i64().unwrap();
            ids.push(id);
            t.clock.advance_secs(3_600);
            // Some tickets get a later public reply or an internal note, and a status.
            if rnd(2) == 0 {
                let public = rnd(2) == 0;
                let status = STATUSES[1 + rnd(5)];
                let (s, v) = t.call(&t.admin, Method::PUT, &format!("/api/v2/tickets/{id}.json"), Some(json!({"ticket": {
                    "status": status, "comment": {"body": format!("{} {}", VOCAB[rnd(10)], VOCAB[rnd(10)]), "public": public}}}))).await;
                assert_eq!(s, StatusCode::OK, "{n}: {v}");
                t.clock.advance_secs(600);
            }
        }
        // A deleted ticket is found by nothing.
        let gone = ids[47];
        let (s, v) = t
            .call(
                &t.admin,
                Method::DELETE,
                &format!("/api/v2/tickets/{gone}.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{n}: {v}");
        // Read everything back through the plain API.
        let mut seen = vec![];
        for id in ids.iter().filter(|i| **i != gone) {
            let (_, v) = t
                .call(
                    &t.admin,
                    Method::GET,
                    &format!("/api/v2/tickets/{id}.json"),
                    None,
                )
                .await;
            let tk = &v["ticket"];
            let (_, cs) = t
                .call(
                    &t.admin,
                    Method::GET,
                    &format!("/api/v2/tickets/{id}/comments.json"),
                    None,
                )
                .await;
            seen.push(Seen {
                id: *id,
                subject: words(tk["subject"].as_str().unwrap()),
                comments: cs["comments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        (
                            words(c["body"].as_str().unwrap()),
                            c["public"].as_bool().unwrap(),
                        )
                    })
                    .collect(),
                status: tk["status"].as_str().unwrap().into(),
                priority: tk["priority"].as_str().map(String::from),
                tags: tk["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect(),
                assignee: tk["assignee_id"].as_i64(),
                requester: tk["requester_id"].as_i64().unwrap(),
                organization: tk["organization_id"].as_i64(),
                group: tk["group_id"].as_i64(),
                created: clock::parse(tk["created_at"].as_str().unwrap())
                    .unwrap()
                    .as_second(),
                updated: clock::parse(tk["updated_at"].as_str().unwrap())
                    .unwrap()
                    .as_second(),
            });
        }
        let now = opsdesk_core::Clock::now(&*t.clock).as_second();
        let mid = seen[20].created;
        let mid_day = clock::format(clock::from_unix(mid))[..10].to_string();
        let day_start = clock::parse(&format!("{mid_day}T00:00:00Z"))
            .unwrap()
            .as_second();
        type Pred = Box<dyn Fn(&Seen) -> bool>;
        let cases: Vec<(String, Pred)> = vec![
            ("alpha".into(), Box::new(|s: &Seen| s.has_prefix("alpha"))),
            ("alp".into(), Box::new(|s: &Seen| s.has_prefix("alp"))),
            (
                "alpha beta".into(),
                Box::new(|s: &Seen| s.has_prefix("alpha") && s.has_prefix("beta")),
            ),
            (
                "\"gamma delta\"".into(),
                Box::new(|s: &Seen| s.has_phrase(&["gamma", "delta"])),
            ),
            ("-zeta".into(), Box::new(|s: &Seen| !s.has_prefix("zeta"))),
            (
                "subject:alpha".into(),
                Box::new(|s: &Seen| s.subject.iter().any(|w| w == "alpha")),
            ),
            (
                "subject:alph*".into(),
                Box::new(|s: &Seen| s.subject.iter().any(|w| w.starts_with("alph"))),
            ),
            (
                "comment:kappa".into(),
                Box::new(|s: &Seen| s.comments.iter().any(|c| c.0.iter().any(|w| w == "kappa"))),
            ),
            (
                "description:theta".into(),
                Box::new(|s: &Seen| s.comments[0].0.iter().any(|w| w == "theta")),
            ),
            (
                "status<solved".into(),
                Box::new(|s: &Seen| rank(&STATUSES, &s.status) < 4),
            ),
            (
                "status:open status:pending".into(),
                Box::new(|s: &Seen| s.status == "open" || s.status == "pending"),
            ),
            (
                "status>=solved".into(),
                Box::new(|s: &Seen| rank(&STATUSES, &s.status) >= 4),
            ),
            (
                "priority>normal".into(),
                Box::new(|s: &Seen| {
                    s.priority
                        .as_deref()
                        .is_some_and(|p| rank(&PRIORITIES, p) > 1)
                }),
            ),
            (
                "priority:none".into(),
                Box::new(|s: &Seen| s.priority.is_none()),
            ),
            (
                "tags:red".into(),
                Box::new(|s: &Seen| s.tags.iter().any(|x| x == "red")),
            ),
            (
                "tags:red tags:green".into(),
                Box::new(|s: &Seen| s.tags.iter().any(|x| x == "red" || x == "green")),
            ),
            (
                "tags:\"red green\"".into(),
                Box::new(|s: &Seen| {
                    s.tags.iter().any(|x| x == "red") && s.tags.iter().any(|x| x == "green")
                }),
            ),
            (
                "-tags:red".into(),
                Box::new(|s: &Seen| !s.tags.iter().any(|x| x == "red")),
            ),
            (
                "tags:blue*".into(),
                Box::new(|s: &Seen| s.tags.iter().any(|x| x.starts_with("blue"))),
            ),
            ("tags:none".into(), Box::new(|s: &Seen| s.tags.is_empty())),
            (
                "assignee:none".into(),
                Box::new(|s: &Seen| s.assignee.is_none()),
            ),
            (
                "assignee:me".into(),
                Box::new(move |s: &Seen| s.assignee == Some(admin)),
            ),
            (
                "assignee:agent@example.com".into(),
                Box::new(move |s: &Seen| s.assignee == Some(agent)),
            ),
            (
                "assignee:\"Alan Agent\"".into(),
                Box::new(move |s: &Seen| s.assignee == Some(agent)),
            ),
            (
                format!("requester:{}", requesters[1]),
                Box::new({
                    let r = requesters[1];
                    move |s: &Seen| s.requester == r
                }),
            ),
            (
                "requester:dana".into(),
                Box::new({
                    let r = requesters[0];
                    move |s: &Seen| s.requester == r
                }),
            ),
            (
                "organization:\"Acme Rockets\"".into(),
                Box::new(move |s: &Seen| s.organization == Some(acme)),
            ),
            (
                "organization:none".into(),
                Box::new(|s: &Seen| s.organization.is_none()),
            ),
            (
                "group:\"Tier Two\"".into(),
                Box::new(move |s: &Seen| s.group == Some(tier2)),
            ),
            (
                "group:none status<solved".into(),
                Box::new(|s: &Seen| s.group.is_none() && rank(&STATUSES, &s.status) < 4),
            ),
            (
                format!("created>{mid_day}"),
                Box::new(move |s: &Seen| s.created >= day_start + 86_400),
            ),
            (
                format!("created<={mid_day}"),
                Box::new(move |s: &Seen| s.created < day_start + 86_400),
            ),
            (
                "updated>10hours".into(),
                Box::new(move |s: &Seen| s.updated >= now - 36_000),
            ),
            (
                "created<2days".into(),
                Box::new(move |s: &Seen| s.created < now - 2 * 86_400),
            ),
            (
                "assignee:me tags:red tags:blue*".into(),
                Box::new(move |s: &Seen| {
                    s.assignee == Some(admin)
                        && s.tags.iter().any(|x| x == "red" || x.starts_with("blue"))
                }),
            ),
            (
                "status<solved tags:green assignee:agent@example.com".into(),
                Box::new(move |s: &Seen| {
                    s.assignee == Some(agent)
                        && rank(&STATUSES, &s.status) < 4
                        && s.tags.iter().any(|x| x == "green")
                }),
            ),
            (
                "organization:\"Acme Rockets\" status:open tags:blue*".into(),
                Box::new(move |s: &Seen| {
                    s.organization == Some(acme)
                        && s.status == "open"
                        && s.tags.iter().any(|x| x.starts_with("blue"))
                }),
            ),
            (
                "group:\"Tier Two\" -tags:green".into(),
                Box::new(move |s: &Seen| {
                    s.group == Some(tier2) && !s.tags.iter().any(|x| x == "green")
                }),
            ),
            (
                "alpha status<solved -tags:red assignee:none".into(),
                Box::new(|s: &Seen| {
                    s.has_prefix("alpha")
                        && rank(&STATUSES, &s.status) < 4
                        && !s.tags.iter().any(|x| x == "red")
                        && s.assignee.is_none()
                }),
            ),
            (
                "status<solved tags:red".into(),
                Box::new(|s: &Seen| {
                    rank(&STATUSES, &s.status) < 4 && s.tags.iter().any(|x| x == "red")
                }),
            ),
            (
                "tags:blue* status:pending".into(),
                Box::new(|s: &Seen| {
                    s.status == "pending" && s.tags.iter().any(|x| x.starts_with("blue"))
                }),
            ),
            (
                "alpha status>=solved tags:green -tags:red".into(),
                Box::new(|s: &Seen| {
                    s.has_prefix("alpha")
                        && rank(&STATUSES, &s.status) >= 4
                        && s.tags.iter().any(|x| x == "green")
                        && !s.tags.iter().any(|x| x == "red")
                }),
            ),
            (
                "status:open status:pending tags:red".into(),
                Box::new(|s: &Seen| {
                    (s.status == "open" || s.status == "pending")
                        && s.tags.iter().any(|x| x == "red")
                }),
            ),
            (
                "alpha beta -zeta".into(),
                Box::new(|s: &Seen| {
                    s.has_prefix("alpha") && s.has_prefix("beta") && !s.has_prefix("zeta")
                }),
            ),
            (
                "alpha -beta".into(),
                Box::new(|s: &Seen| s.has_prefix("alpha") && !s.has_prefix("beta")),
            ),
            (
                "gamma tags:red".into(),
                Box::new(|s: &Seen| s.has_prefix("gamma") && s.tags.iter().any(|x| x == "red")),
            ),
            (
                "comment:kappa status<solved".into(),
                Box::new(|s: &Seen| {
                    s.comments.iter().any(|c| c.0.iter().any(|w| w == "kappa"))
                        && rank(&STATUSES, &s.status) < 4
                }),
            ),
            // Several text clauses at once (on PostgreSQL one statement over ticket_words,
            // a ticket's own fields and its comments together).
            (
                "alpha subject:beta".into(),
                Box::new(|s: &Seen| s.has_prefix("alpha") && s.subject.iter().any(|w| w == "beta")),
            ),
            (
                "\"gamma delta\" epsilon".into(),
                Box::new(|s: &Seen| s.has_phrase(&["gamma", "delta"]) && s.has_prefix("epsilon")),
            ),
            (
                "beta comment:kappa description:theta".into(),
                Box::new(|s: &Seen| {
                    s.has_prefix("beta")
                        && s.comments.iter().any(|c| c.0.iter().any(|w| w == "kappa"))
                        && s.comments[0].0.iter().any(|w| w == "theta")
                }),
            ),
            (
                "red gamma".into(),
                Box::new(|s: &Seen| s.has_prefix("red") && s.has_prefix("gamma")),
            ),
            (
                format!("{} alp", ids[5]),
                Box::new({
                    let id5 = ids[5];
                    move |s: &Seen| {
                        (s.id == id5 || s.has_prefix(&id5.to_string())) && s.has_prefix("alp")
                    }
                }),
            ),
            (
                format!("{gone}"),
                Box::new({
                    let g = gone.to_string();
                    move |s: &Seen| s.has_prefix(&g)
                }),
            ),
            (
                format!("{}", ids[5]),
                Box::new({
                    let id5 = ids[5];
                    move |s: &Seen| s.id == id5 || s.has_prefix(&id5.to_string())
                }),
            ),
        ];
        // Free text and tags are answered as id sets (opsdesk-store search/sets.rs):
        // once as sizes choose, once forced through the index walk and the listed
        // intersection that large result sets take.
        for walk in [false, true] {
            testing::force_set_walk(walk);
            for (q, pred) in &cases {
                let mut want: Vec<&Seen> = seen.iter().filter(|s| pred(s)).collect();
                want.sort_by_key(|s| (std::cmp::Reverse(s.updated), std::cmp::Reverse(s.id)));
                let want: Vec<i64> = want.iter().map(|s| s.id).collect();
                let url = format!(
                    "/api/v2/search.json?query={}&per_page=100",
                    urlencode(&format!("type:ticket {q}"))
                );
                let (s, v) = t.call(&t.admin, Method::GET, &url, None).await;
                assert_eq!(s, StatusCode::OK, "{n}: {q}: {v}");
                let got = result_ids(&v);
                assert_eq!(got, want, "{n}: {q}");
                assert_eq!(v["count"].as_i64(), Some(want.len() as i64), "{n}: {q}");
                assert!(
                    v["results"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|r| r["result_type"] == "ticket"),
                    "{n}: {q}"
                );
                let c = t
                    .count(&format!(
                        "/api/v2/search/count.json?query={}",
                        urlencode(&format!("type:ticket {q}"))
                    ))
                    .await;
                assert_eq!(c, want.len() as i64, "{n}: count {q}");
                // A later page, and the opposite order by creation.
                let url = format!(
                    "/api/v2/search.json?query={}&per_page=4&page=2",
                    urlencode(&format!("type:ticket {q}"))
                );
                let (_, v) = t.call(&t.admin, Method::GET, &url, None).await;
                let got = result_ids(&v);
                let page2: Vec<i64> = want.iter().skip(4).take(4).copied().collect();
                assert_eq!(got, page2, "{n}: page 2 of {q}");
                let mut by_created: Vec<&Seen> = seen.iter().filter(|s| pred(s)).collect();
                by_created.sort_by_key(|s| (s.created, s.id));
                let url = format!(
                    "/api/v2/search.json?query={}&per_page=100",
                    urlencode(&format!("type:ticket {q} order_by:created sort:asc"))
                );
                let (_, v) = t.call(&t.admin, Method::GET, &url, None).await;
                let got = result_ids(&v);
                let want: Vec<i64> = by_created.iter().map(|s| s.id).collect();
                assert_eq!(got, want, "{n}: {q} by created, ascending");
            }
        }
        testing::force_set_walk(false);
        assert!(cases.len() >= 30);

        // Sorting by parameter and by keyword; paging with Zendesk's 1,000-result cap.
        let (_, v) = t.call(&t.admin, Method::GET, "/api/v2/search.json?query=type:ticket%20order_by:created%20sort:asc&per_page=5&page=2", None).await;
        let got: Vec<i64> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert_eq!(got, ids[5..10].to_vec(), "{n}");
        assert!(v["next_page"].as_str().unwrap().contains("page=3"), "{n}");
        assert!(
            v["previous_page"].as_str().unwrap().contains("page=1"),
            "{n}"
        );
        let (_, v) = t.call(&t.admin, Method::GET, "/api/v2/search.json?query=type:ticket&sort_by=priority&sort_order=desc&per_page=100", None).await;
        let prios: Vec<usize> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["priority"]
                    .as_str()
                    .map(|p| rank(&PRIORITIES, p) + 1)
                    .unwrap_or(0)
            })
            .collect();
        assert!(prios.windows(2).all(|w| w[0] >= w[1]), "{n}: {prios:?}");
        let (s, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/search.json?query=alpha&page=11&per_page=100",
                None,
            )
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")),
            "{n}: {v}"
        );

        // Users and organisations, and mixed results.
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/search.json?query=acme",
                None,
            )
            .await;
        let types: Vec<&str> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["result_type"].as_str().unwrap())
            .collect();
        assert_eq!(types, vec!["organization"], "{n}: {v}");
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/search.json?query=type:user%20role:agent",
                None,
            )
            .await;
        assert_eq!(v["count"], 1, "{n}: {v}");
        assert_eq!(v["results"][0]["email"], "agent@example.com", "{n}");
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/search.json?query=type:user%20organization:%22Acme%20Rockets%22",
                None,
            )
            .await;
        assert_eq!(v["results"][0]["id"], requesters[0], "{n}: {v}");
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/search.json?query=email:u1@example.org",
                None,
            )
            .await;
        assert_eq!(
            (v["count"].as_i64(), v["results"][0]["id"].as_i64()),
            (Some(1), Some(requesters[1])),
            "{n}: {v}"
        );
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/search.json?query=type:user%20email:*@example.org",
                None,
            )
            .await;
        assert_eq!(v["count"], 3, "{n}: {v}");

        // Sideloads in Zendesk's search form.
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/search.json?query=type:ticket%20assignee:me&include=tickets(users,groups)",
                None,
            )
            .await;
        assert!(
            v["users"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["id"] == admin),
            "{n}: {v}"
        );
        assert!(v["groups"].is_array(), "{n}");

        // An end-user finds only their own tickets, and never by an internal note's words.
        let mine: Vec<&Seen> = seen.iter().filter(|s| s.requester == cora).collect();
        let (s, v) = t
            .call(
                &t.customer,
                Method::GET,
                "/api/v2/search.json?query=type:ticket&per_page=100",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        assert_eq!(v["count"].as_i64(), Some(mine.len() as i64), "{n}: {v}");
        for w in VOCAB {
            let want = mine
                .iter()
                .filter(|s| {
                    s.subject.iter().any(|x| x.starts_with(w))
                        || s.comments
                            .iter()
                            .any(|c| c.1 && c.0.iter().any(|x| x.starts_with(w)))
                })
                .count();
            let c = {
                let (_, v) = t
                    .call(
                        &t.customer,
                        Method::GET,
                        &format!("/api/v2/search/count.json?query=type:ticket%20{w}"),
                        None,
                    )
                    .await;
                v["count"].as_i64().unwrap()
            };
            assert_eq!(c, want as i64, "{n}: end-user {w}");
        }
        let (_, v) = t
            .call(
                &t.customer,
                Method::GET,
                "/api/v2/requests/search.json?query=alpha",
                None,
            )
            .await;
        let want = mine
            .iter()
            .filter(|s| {
                s.subject.iter().any(|x| x.starts_with("alpha"))
                    || s.comments
                        .iter()
                        .any(|c| c.1 && c.0.iter().any(|x| x.starts_with("alpha")))
            })
            .count();
        assert_eq!(v["requests"].as_array().unwrap().len(), want, "{n}: {v}");
        assert!(
            v["requests"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["url"].as_str().unwrap().contains("/requests/")),
            "{n}"
        );
        let (_, v) = t
            .call(
                &t.customer,
                Method::GET,
                "/api/v2/search.json?query=type:user",
                None,
            )
            .await;
        assert_eq!(
            (v["count"].as_i64(), v["results"][0]["id"].as_i64()),
            (Some(1), Some(cora)),
            "{n}: {v}"
        );

        // search/export pages through everything by cursor, newest created first.
        let mut got = vec![];
        let mut url =
            "/api/v2/search/export.json?query=status<closed&filter[type]=ticket&page[size]=7"
                .to_string();
        for _ in 0..20 {
            let (s, v) = t.call(&t.admin, Method::GET, &url, None).await;
            assert_eq!(s, StatusCode::OK, "{n}: {v}");
            got.extend(
                v["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_i64().unwrap()),
            );
            if !v["meta"]["has_more"].as_bool().unwrap() {
                assert!(v["links"]["next"].is_null(), "{n}");
                break;
            }
            url = v["links"]["next"].as_str().unwrap().replace(&t.base, "");
        }
        let mut want: Vec<&Seen> = seen.iter().filter(|s| s.status != "closed").collect();
        want.sort_by_key(|s| (std::cmp::Reverse(s.created), std::cmp::Reverse(s.id)));
        assert_eq!(got, want.iter().map(|s| s.id).collect::<Vec<_>>(), "{n}");

        // Bad queries and parameters: Zendesk's envelopes, saying where.
        for (path, status, error) in [
            (
                "/api/v2/search.json?query=status:opne",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
            ),
            (
                "/api/v2/search.json?query=%22open",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
            ),
            (
                "/api/v2/search.json?query=foo:bar",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
            ),
            (
                "/api/v2/search.json?query=type:user%20status:open",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
            ),
            (
                "/api/v2/search.json",
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
            ),
            (
                "/api/v2/search.json?query=x&sort_by=colour",
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
            ),
            (
                "/api/v2/search/export.json?query=x",
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
            ),
            (
                "/api/v2/search/export.json?query=type:user&filter[type]=ticket",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
            ),
            (
                "/api/v2/search/export.json?query=x&filter[type]=ticket&page[after]=zz",
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
            ),
        ] {
            let (s, v) = t.call(&t.admin, Method::GET, path, None).await;
            assert_eq!(
                (s, v["error"].as_str()),
                (status, Some(error)),
                "{n}: {path}: {v}"
            );
        }
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/search.json?query=alpha%20%22open",
                None,
            )
            .await;
        assert!(
            v["description"]
                .as_str()
                .unwrap()
                .contains("at character 6"),
            "{n}: {v}"
        );
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---- incremental exports ----------------------------------------------------------------

/// Page a time-based export from `start` to its end; returns (id, generated_timestamp) in
/// order and the end_time to poll from.
async fn drain_time(
    t: &TestApp,
    kind: &str,
    start: i64,
    per_page: usize,
) -> (Vec<(i64, i64)>, i64) {
    let n = t.name;
    let mut out = vec![];
    let mut start = start;
    for _ in 0..200 {
        let (s, v) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/incremental/{kind}.json?start_time={start}&per_page={per_page}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        let items = v[kind].as_array().unwrap();
        assert_eq!(v["count"].as_u64(), Some(items.len() as u64), "{n}");
        for it in items {
            let ts = it["generated_timestamp"].as_i64().unwrap_or_else(|| {
                clock::parse(it["updated_at"].as_str().unwrap())
                    .unwrap()
                    .as_second()
            });
            out.push((it["id"].as_i64().unwrap(), ts));
        }
        let end = v["end_time"].as_i64().unwrap();
        assert!(
            v["next_page"]
                .as_str()
                .unwrap()
                .contains(&format!("start_time={end}")),
            "{n}: {v}"
        );
        if v["end_of_stream"].as_bool().unwrap() {
            return (out, end);
        }
        assert!(end > start, "{n}: a page must move forward");
        start = end;
    }
    panic!("{n}: the export never ended");
}

/// GET `path` as the admin until `done` holds for the answer (at most 20 s).
async fn poll_get(t: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, v) = t.call(&t.admin, Method::GET, path, None).await;
        if done(&v) || std::time::Instant::now() >= deadline {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Read the ticket cursor stream from `cursor` until `done` holds for what was read (at most
/// 20 s), as an ETL job polls; appends (id, status) and moves the cursor.
async fn poll_cursor(
    t: &TestApp,
    seen: &mut Vec<(i64, String)>,
    cursor: &mut String,
    done: impl Fn(&[(i64, String)]) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done(seen) && std::time::Instant::now() < deadline {
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/incremental/tickets/cursor.json?cursor={cursor}&per_page=2"),
                None,
            )
            .await;
        for it in v["tickets"].as_array().unwrap() {
            seen.push((
                it["id"].as_i64().unwrap(),
                it["status"].as_str().unwrap().to_string(),
            ));
        }
        *cursor = v["after_cursor"].as_str().unwrap().to_string();
        if v["end_of_stream"].as_bool() == Some(true) && !done(seen) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn incremental_exports_see_every_change_once() {
    for t in apps().await {
        let n = t.name;
        let base = opsdesk_core::Clock::now(&*t.clock).as_second();
        let mut ids = vec![];
        // 13 tickets: several in the same second, so pages must not split a second.
        for i in 0..13 {
            let (_, v) = t.call(&t.admin, Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": format!("export {i}"), "comment": {"body": "b"}}}))).await;
            ids.push(v["ticket"]["id"].as_i64().unwrap());
            if i % 4 == 3 {
                t.clock.advance_secs(10);
            }
        }
        // Changes from the last minute are held back, as Zendesk does.
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/incremental/tickets.json?start_time={base}"),
                None,
            )
            .await;
        assert_eq!(
            (v["count"].as_i64(), v["end_of_stream"].as_bool()),
            (Some(0), Some(true)),
            "{n}: {v}"
        );
        t.clock.advance_secs(120);

        // Time-based, 3 per page: every ticket once, in order, pages ending on whole seconds.
        let (got, end) = drain_time(&t, "tickets", base, 3).await;
        let mut got_ids: Vec<i64> = got.iter().map(|g| g.0).collect();
        assert!(got.windows(2).all(|w| w[0].1 <= w[1].1), "{n}: {got:?}");
        got_ids.sort_unstable();
        assert_eq!(got_ids, ids, "{n}: {got:?}");

        // Changes made after the first pass: a later poll sees exactly those, once.
        t.call(
            &t.admin,
            Method::PUT,
            &format!("/api/v2/tickets/{}.json", ids[2]),
            Some(json!({"ticket": {"status": "open"}})),
        )
        .await;
        t.call(
            &t.admin,
            Method::DELETE,
            &format!("/api/v2/tickets/{}.json", ids[7]),
            None,
        )
        .await;
        t.clock.advance_secs(120);
        let (again, _) = drain_time(&t, "tickets", end, 3).await;
        assert_eq!(
            again.iter().map(|g| g.0).collect::<Vec<_>>(),
            vec![ids[2], ids[7]],
            "{n}: {again:?}"
        );
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/incremental/tickets.json?start_time={end}"),
                None,
            )
            .await;
        assert_eq!(v["tickets"][1]["status"], "deleted", "{n}: {v}");
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/incremental/tickets.json?start_time={end}&exclude_deleted=true"),
                None,
            )
            .await;
        assert_eq!(v["count"], 1, "{n}: {v}");

        // Cursor-based, 2 per page, with changes made while paging: each change is seen once
        // and in commit order, and the last cursor polls for what comes next. (On PostgreSQL a
        // change is delivered once every older write transaction in the cluster has ended, and
        // other tests write at the same time: the reader polls, as an ETL job would.)
        let (s, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/incremental/tickets/cursor.json?start_time=0&per_page=2",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        assert!(
            v["before_cursor"].is_null() && v["after_cursor"].is_string(),
            "{n}: {v}"
        );
        let url = v["after_url"].as_str().unwrap();
        assert!(
            url.contains("cursor=") && !url.contains("start_time"),
            "{n}: {url}"
        );
        let mut seen: Vec<(i64, String)> = v["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|it| {
                (
                    it["id"].as_i64().unwrap(),
                    it["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let mut last_cursor = v["after_cursor"].as_str().unwrap().to_string();
        poll_cursor(&t, &mut seen, &mut last_cursor, |s| {
            s.iter().any(|x| x.0 == ids[0])
        })
        .await;
        assert!(!seen.iter().any(|x| x.0 == ids[12]), "{n}: {seen:?}");
        // Change a ticket already delivered and one not yet delivered.
        t.call(
            &t.admin,
            Method::PUT,
            &format!("/api/v2/tickets/{}.json", ids[0]),
            Some(json!({"ticket": {"status": "pending"}})),
        )
        .await;
        t.call(
            &t.admin,
            Method::PUT,
            &format!("/api/v2/tickets/{}.json", ids[12]),
            Some(json!({"ticket": {"status": "hold"}})),
        )
        .await;
        poll_cursor(&t, &mut seen, &mut last_cursor, |s| {
            let c = |id: i64| s.iter().filter(|x| x.0 == id).count();
            c(ids[0]) == 2 && ids.iter().all(|id| c(*id) >= 1)
        })
        .await;
        let count = |id: i64| seen.iter().filter(|s| s.0 == id).count();
        assert_eq!(count(ids[0]), 2, "{n}: {seen:?}");
        assert_eq!(count(ids[12]), 1, "{n}: {seen:?}");
        assert_eq!(
            seen.iter().rfind(|s| s.0 == ids[0]).unwrap().1,
            "pending",
            "{n}"
        );
        assert_eq!(
            seen.iter().rfind(|s| s.0 == ids[12]).unwrap().1,
            "hold",
            "{n}"
        );
        for id in &ids {
            if *id != ids[0] {
                assert_eq!(count(*id), 1, "{n}: {id} in {seen:?}");
            }
        }
        // Nothing new: an empty page that keeps the cursor; then one change, seen once.
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/incremental/tickets/cursor.json?cursor={last_cursor}"),
                None,
            )
            .await;
        assert_eq!(
            (
                v["tickets"].as_array().unwrap().len(),
                v["end_of_stream"].as_bool(),
                v["after_cursor"].as_str()
            ),
            (0, Some(true), Some(last_cursor.as_str())),
            "{n}: {v}"
        );
        t.call(
            &t.admin,
            Method::PUT,
            &format!("/api/v2/tickets/{}.json", ids[5]),
            Some(json!({"ticket": {"priority": "high"}})),
        )
        .await;
        let mut got = vec![];
        poll_cursor(&t, &mut got, &mut last_cursor, |s| !s.is_empty()).await;
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            vec![ids[5]],
            "{n}: {got:?}"
        );

        // Users and organisations, both forms.
        let (_, o) = t
            .call(
                &t.admin,
                Method::POST,
                "/api/v2/organizations.json",
                Some(json!({"organization": {"name": "Export Org"}})),
            )
            .await;
        let org = o["organization"]["id"].as_i64().unwrap();
        let v = poll_get(
            &t,
            "/api/v2/incremental/organizations/cursor.json?start_time=0",
            |v| v["organizations"].as_array().is_some_and(|a| !a.is_empty()),
        )
        .await;
        assert_eq!(
            v["organizations"].as_array().unwrap().last().unwrap()["id"],
            org,
            "{n}: {v}"
        );
        let v = poll_get(
            &t,
            "/api/v2/incremental/users/cursor.json?start_time=0",
            |v| v["users"].as_array().is_some_and(|a| a.len() >= 3),
        )
        .await;
        assert_eq!(v["users"].as_array().unwrap().len(), 3, "{n}: {v}");
        t.clock.advance_secs(120);
        let (users, _) = drain_time(&t, "users", 0, 2).await;
        assert_eq!(users.len(), 3, "{n}: {users:?}");
        let (orgs, _) = drain_time(&t, "organizations", 0, 1000).await;
        assert_eq!(
            orgs.iter().map(|o| o.0).collect::<Vec<_>>(),
            vec![org],
            "{n}"
        );

        // Ticket events: audits with child events; comment bodies only when asked for.
        let (_, v) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/incremental/ticket_events.json?start_time={base}&per_page=5"),
                None,
            )
            .await;
        let e = &v["ticket_events"][0];
        assert_eq!(
            (
                e["event_type"].as_str(),
                e["ticket_id"].as_i64(),
                e["via"].as_str()
            ),
            (Some("Audit"), Some(ids[0]), Some("API")),
            "{n}: {v}"
        );
        let comment = e["child_events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["event_type"] == "Comment")
            .unwrap();
        assert_eq!(
            (
                comment["comment_present"].as_bool(),
                comment["body"].as_str()
            ),
            (Some(true), None),
            "{n}: {comment}"
        );
        let status = e["child_events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c.get("status").is_some())
            .unwrap();
        assert_eq!(status["event_type"], "Create", "{n}: {status}");
        let (_, v) = t.call(&t.admin, Method::GET, &format!("/api/v2/incremental/ticket_events.json?start_time={base}&per_page=5&include=comment_events"), None).await;
        let comment = v["ticket_events"][0]["child_events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["event_type"] == "Comment")
            .unwrap()
            .clone();
        assert_eq!(comment["body"], "b", "{n}: {comment}");
        let mut total = 0;
        let mut start = base;
        for _ in 0..50 {
            let (_, v) = t
                .call(
                    &t.admin,
                    Method::GET,
                    &format!(
                        "/api/v2/incremental/ticket_events.json?start_time={start}&per_page=5"
                    ),
                    None,
                )
                .await;
            total += v["count"].as_i64().unwrap();
            start = v["end_time"].as_i64().unwrap();
            if v["end_of_stream"].as_bool().unwrap() {
                break;
            }
        }
        // 13 creations and 4 updates (a deletion is not an audit), each exactly once.
        assert_eq!(total, 17, "{n}: ticket events");

        // Errors: missing or bad parameters, and only admins export.
        for (who, path, status) in [
            (
                &t.admin,
                "/api/v2/incremental/tickets.json",
                StatusCode::BAD_REQUEST,
            ),
            (
                &t.admin,
                "/api/v2/incremental/tickets.json?start_time=-5",
                StatusCode::BAD_REQUEST,
            ),
            (
                &t.admin,
                "/api/v2/incremental/tickets.json?start_time=0&per_page=5000",
                StatusCode::BAD_REQUEST,
            ),
            (
                &t.admin,
                "/api/v2/incremental/tickets/cursor.json?cursor=bogus",
                StatusCode::BAD_REQUEST,
            ),
            (
                &t.agent,
                "/api/v2/incremental/tickets.json?start_time=0",
                StatusCode::FORBIDDEN,
            ),
            (
                &t.agent,
                "/api/v2/incremental/users/cursor.json?start_time=0",
                StatusCode::FORBIDDEN,
            ),
        ] {
            let (s, v) = t.call(who, Method::GET, path, None).await;
            assert_eq!(s, status, "{n}: {path}: {v}");
        }
    }
}

/// A small deterministic generator for the KPI history.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The Monday (a date string) of the ISO week an instant falls in, in Los Angeles.
fn la_week(ts: &str) -> String {
    let t: jiff::Timestamp = ts.parse().unwrap();
    let d = t
        .to_zoned(jiff::tz::TimeZone::get("America/Los_Angeles").unwrap())
        .date();
    let back = d.weekday().to_monday_zero_offset();
    d.checked_sub(jiff::Span::new().days(back))
        .unwrap()
        .to_string()
}

fn secs(ts: &str) -> i64 {
    ts.parse::<jiff::Timestamp>().unwrap().as_second()
}

/// Nearest rank, written out again: the ceil(p·n)-th smallest.
fn nearest_rank(v: &mut [i64], p: f64) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort();
    let k = ((p * v.len() as f64).ceil() as usize).max(1);
    json!(v[k - 1])
}

#[tokio::test]
async fn kpis_match_a_brute_force_count_over_the_audits() {
    for t in apps().await {
        let n = t.name;
        // Weeks are counted in Los Angeles.
        t.app
            .rebuild_kpis(Some("America/Los_Angeles"), |_| {})
            .await
            .unwrap();
        let post = |path: &'static str, body: Value| {
            let t = &t;
            async move {
                let (s, v) = t.call(&t.admin, Method::POST, path, Some(body)).await;
                assert!(s.is_success(), "{path}: {s} {v}");
                v
            }
        };
        post("/api/v2/organization_fields.json", json!({"organization_field": {"type": "text", "key": "support_level", "title": "Support level"}})).await;
        let mut plan_of = std::collections::HashMap::new();
        let mut orgs = vec![];
        for (name, plan) in [("Acme", "priority"), ("Beta", "standard")] {
            let v = post("/api/v2/organizations.json", json!({"organization": {"name": name, "organization_fields": {"support_level": plan}}})).await;
            let id = v["organization"]["id"].as_i64().unwrap();
            plan_of.insert(id, plan.to_string());
            orgs.push(id);
        }
        let mut groups = vec![];
        for g in ["Tier 1", "Tier 2"] {
            let v = post("/api/v2/groups.json", json!({"group": {"name": g}})).await;
            groups.push(v["group"]["id"].as_i64().unwrap());
        }
        // Agents (the harness's agent plus two), and three customers with passwords.
        let mut tx = t.app.store.write().await.unwrap();
        let mut people = vec![];
        for (email, role, org) in [
            ("agent2@example.com", "agent", None),
            ("agent3@example.com", "agent", None),
            ("dan@acme.example", "end-user", Some(orgs[0])),
            ("eve@beta.example", "end-user", Some(orgs[1])),
        ] {
            let u = t
                .app
                .create_user_cli(
                    &mut tx,
                    UserInput {
                        name: Some(email.into()),
                        email: Some(Some(email.into())),
                        role: Some(role.into()),
                        organization_id: Some(org),
                        password: Some("password-123".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            people.push(u.id);
        }
        tx.commit().await.unwrap();
        let mut agents = vec![(t.user_id("agent@example.com").await, t.agent.clone())];
        for (i, email) in ["agent2@example.com", "agent3@example.com"]
            .iter()
            .enumerate()
        {
            let tok = t.app.create_token(email, None).await.unwrap();
            agents.push((people[i], (format!("{email}/token"), tok)));
        }
        let customers = [
            (t.user_id("cora@example.com").await, t.customer.clone()),
            (
                people[2],
                ("dan@acme.example".to_string(), "password-123".to_string()),
            ),
            (
                people[3],
                ("eve@beta.example".to_string(), "password-123".to_string()),
            ),
        ];
        for (a, _) in &agents {
            for g in &groups {
                post(
                    "/api/v2/group_memberships.json",
                    json!({"group_membership": {"user_id": a, "group_id": g}}),
                )
                .await;
            }
        }
        let targets: Vec<Value> = ["low", "normal", "high", "urgent"]
            .iter()
            .map(|p| json!({"priority": p, "metric": "first_reply_time", "target": 480, "business_hours": false}))
            .collect();
        post("/api/v2/slas/policies.json", json!({"sla_policy": {"title": "All", "filter": {"all": [], "any": []}, "policy_metrics": targets}})).await;
        // The history starts ten weeks later, so the first agents are past their first two
        // months; a fourth agent joins during it (and is left out of the baselines).
        t.clock.advance_secs(70 * 86400);
        let mut rng = Lcg(7);
        let mut tickets: Vec<(i64, i64)> = vec![]; // (id, requester)
        let mut deleted = std::collections::HashSet::new();
        let mut staff: std::collections::HashSet<i64> = agents.iter().map(|a| a.0).collect();
        for step in 0..420 {
            t.clock.advance_secs(60 + rng.below(4 * 3600) as i64);
            if step == 150 {
                let mut tx = t.app.store.write().await.unwrap();
                let u = t
                    .app
                    .create_user_cli(
                        &mut tx,
                        UserInput {
                            name: Some("Newbie".into()),
                            email: Some(Some("agent4@example.com".into())),
                            role: Some("agent".into()),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                let tok = t
                    .app
                    .create_token("agent4@example.com", None)
                    .await
                    .unwrap();
                for g in &groups {
                    post(
                        "/api/v2/group_memberships.json",
                        json!({"group_membership": {"user_id": u.id, "group_id": g}}),
                    )
                    .await;
                }
                staff.insert(u.id);
                agents.push((u.id, ("agent4@example.com/token".into(), tok)));
            }
            let live: Vec<(i64, i64)> = tickets
                .iter()
                .filter(|x| !deleted.contains(&x.0))
                .copied()
                .collect();
            let roll = rng.below(100);
            if roll < 25 || live.is_empty() {
                let (cid, _) = &customers[rng.below(3) as usize];
                let pri = ["low", "normal", "high", "urgent"][rng.below(4) as usize];
                let mut tk = json!({"subject": format!("Case {step}"), "comment": {"body": "help"}, "requester_id": cid, "priority": pri});
                if rng.below(3) > 0 {
                    tk["group_id"] = json!(groups[rng.below(2) as usize]);
                }
                let v = post("/api/v2/tickets.json", json!({"ticket": tk})).await;
                tickets.push((v["ticket"]["id"].as_i64().unwrap(), *cid));
                continue;
            }
            // Agents often take the newest ticket first.
            let (id, req) = if roll < 40 {
                live[live.len() - 1]
            } else {
                live[rng.below(live.len() as u64) as usize]
            };
            let path = format!("/api/v2/tickets/{id}.json");
            let (_, cur) = t.call(&t.admin, Method::GET, &path, None).await;
            let status = cur["ticket"]["status"].as_str().unwrap_or("").to_string();
            if status == "closed" {
                continue;
            }
            if roll < 60 {
                let (aid, who) = &agents[rng.below(agents.len() as u64) as usize];
                let public = rng.below(10) < 7;
                let mut up = json!({"comment": {"body": "on it", "public": public}});
                if rng.below(2) == 0 {
                    up["assignee_id"] = json!(aid);
                }
                if public {
                    up["status"] = json!(["open", "pending", "solved"][rng.below(3) as usize]);
                }
                let (s, v) = t
                    .call(who, Method::PUT, &path, Some(json!({"ticket": up})))
                    .await;
                assert!(s.is_success(), "{n}: {s} {v}");
            } else if roll < 85 {
                let who = &customers.iter().find(|c| c.0 == req).unwrap().1;
                let (s, v) = t
                    .call(
                        who,
                        Method::PUT,
                        &format!("/api/v2/requests/{id}.json"),
                        Some(json!({"request": {"comment": {"body": "still broken"}}})),
                    )
                    .await;
                assert!(s.is_success(), "{n}: {s} {v}");
            } else if roll < 95 {
                let g = groups[rng.below(2) as usize];
                let (s, v) = t
                    .call(
                        &t.admin,
                        Method::PUT,
                        &path,
                        Some(json!({"ticket": {"group_id": g}})),
                    )
                    .await;
                assert!(s.is_success(), "{n}: {s} {v}");
            } else {
                let (s, _) = t.call(&t.admin, Method::DELETE, &path, None).await;
                assert_eq!(s, StatusCode::NO_CONTENT, "{n}");
                deleted.insert(id);
            }
            t.app.sla_breach_tick(1000).await.unwrap();
        }
        // Let every first reply still awaited be missed, and record it.
        t.clock.advance_secs(9 * 3600);
        t.app.sla_breach_tick(10_000).await.unwrap();

        // ---- brute force over what the API shows -------------------------------------------
        // Per week (Monday, Los Angeles): counts by key.
        type Tally = std::collections::BTreeMap<(String, String), i64>;
        let mut tally: Tally = Default::default();
        let mut add = |metric: &str, week: &str, key: &str, by: i64| {
            *tally
                .entry((format!("{metric}/{key}"), week.to_string()))
                .or_default() += by;
        };
        let mut durations: std::collections::BTreeMap<(String, String), Vec<i64>> =
            Default::default();
        let mut sla: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
        let mut status_changes: Vec<(i64, i64, i64, Option<i64>, i64)> = vec![]; // (time, ticket, +1/-1, group, org)
        for (id, _) in tickets.iter().filter(|x| !deleted.contains(&x.0)) {
            let (_, tk) = t
                .call(
                    &t.admin,
                    Method::GET,
                    &format!("/api/v2/tickets/{id}.json"),
                    None,
                )
                .await;
            let group = tk["ticket"]["group_id"].as_i64();
            let org = tk["ticket"]["organization_id"].as_i64().unwrap_or(0);
            let gkey = group.map_or("none".to_string(), |g| g.to_string());
            let (_, au) = t
                .call(
                    &t.admin,
                    Method::GET,
                    &format!("/api/v2/tickets/{id}/audits.json?per_page=100"),
                    None,
                )
                .await;
            let audits = au["audits"].as_array().unwrap();
            assert!(audits.len() < 100, "{n}: one page holds them");
            let created = audits[0]["created_at"].as_str().unwrap().to_string();
            let c0 = secs(&created);
            add("created", &la_week(&created), "all", 1);
            add("created", &la_week(&created), &gkey, 1);
            status_changes.push((c0, *id, 1, group, org));
            let mut status = "new".to_string();
            let mut assignee: Option<i64> = None;
            let mut first_reply: Option<i64> = None;
            let mut awaiting: Option<i64> = None;
            let mut staff_replies = 0;
            let mut reopened = false;
            let mut waited = 0; // seconds in new/open/hold
            let mut since = c0;
            for (i, a) in audits.iter().enumerate() {
                let at_s = a["created_at"].as_str().unwrap();
                let at = secs(at_s);
                let week = la_week(at_s);
                let author = a["author_id"].as_i64().unwrap();
                let mut new_status = status.clone();
                let mut comment: Option<bool> = None;
                for e in a["events"].as_array().unwrap() {
                    match (e["type"].as_str(), e["field_name"].as_str()) {
                        (Some("Change") | Some("Create"), Some("status")) => {
                            new_status = e["value"].as_str().unwrap().to_string()
                        }
                        (Some("Change") | Some("Create"), Some("assignee_id")) => {
                            assignee = e["value"]
                                .as_str()
                                .and_then(|s| s.parse().ok())
                                .or(e["value"].as_i64())
                        }
                        (Some("Comment"), _) => comment = Some(e["public"].as_bool().unwrap()),
                        _ => {}
                    }
                }
                let is_staff = staff.contains(&author);
                if i > 0 && is_staff {
                    if let Some(public) = comment {
                        let k = if public {
                            "public_replies"
                        } else {
                            "internal_notes"
                        };
                        add(k, &week, &author.to_string(), 1);
                        if public && assignee == Some(author) {
                            add("on_assigned", &week, &author.to_string(), 1);
                        }
                        if public {
                            staff_replies += 1;
                            if first_reply.is_none() {
                                first_reply = Some(at);
                                durations
                                    .entry(("first_reply".into(), week.clone()))
                                    .or_default()
                                    .push((at - c0) / 60);
                                let met = at - c0 < 8 * 3600;
                                let when = if met {
                                    at_s.to_string()
                                } else {
                                    jiff::Timestamp::from_second(c0 + 8 * 3600)
                                        .unwrap()
                                        .to_string()
                                };
                                let e = sla.entry(la_week(&when)).or_default();
                                if met {
                                    e.0 += 1
                                } else {
                                    e.1 += 1
                                }
                            }
                            if let Some(s) = awaiting.take() {
                                durations
                                    .entry(("next_reply".into(), week.clone()))
                                    .or_default()
                                    .push((at - s) / 60);
                            }
                        }
                    }
                }
                if !is_staff && comment == Some(true) && first_reply.is_some() && awaiting.is_none()
                {
                    awaiting = Some(at);
                }
                // Requester wait: time in new, open and on-hold.
                if matches!(status.as_str(), "new" | "open" | "hold") {
                    waited += at - since;
                }
                since = at;
                let was_solved = matches!(status.as_str(), "solved" | "closed");
                let now_solved = matches!(new_status.as_str(), "solved" | "closed");
                if now_solved && !was_solved {
                    add("solved", &week, "all", 1);
                    add("solved", &week, &gkey, 1);
                    if let Some(a) = assignee {
                        add("solved_by", &week, &a.to_string(), 1);
                    }
                    if staff_replies == 1 {
                        add("one_touch", &week, "all", 1);
                    }
                    if reopened {
                        add("was_reopened", &week, "all", 1);
                    }
                    durations
                        .entry(("resolution".into(), week.clone()))
                        .or_default()
                        .push((at - c0) / 60);
                    durations
                        .entry(("requester_wait".into(), week.clone()))
                        .or_default()
                        .push(waited / 60);
                    status_changes.push((at, *id, -1, group, org));
                }
                if status == "solved" && !now_solved {
                    reopened = true;
                    add("reopened", &week, "all", 1);
                    status_changes.push((at, *id, 1, group, org));
                }
                status = new_status;
            }
            if first_reply.is_none() {
                // Never answered: missed eight hours after it was created.
                let when = jiff::Timestamp::from_second(c0 + 8 * 3600)
                    .unwrap()
                    .to_string();
                sla.entry(la_week(&when)).or_default().1 += 1;
            }
        }
        let weeks: Vec<String> = {
            let first = la_week(&opsdesk_core::clock::format(
                opsdesk_core::clock::from_unix(status_changes.iter().map(|s| s.0).min().unwrap()),
            ));
            let mut w = vec![];
            let mut d: jiff::civil::Date = first.parse().unwrap();
            let end = la_week(&opsdesk_core::clock::format(opsdesk_core::Clock::now(
                t.clock.as_ref(),
            )));
            while d.to_string() <= end {
                w.push(d.to_string());
                d = d.checked_add(jiff::Span::new().days(7)).unwrap();
            }
            w
        };
        let (from, to) = (weeks[0].clone(), {
            let last: jiff::civil::Date = weeks.last().unwrap().parse().unwrap();
            last.checked_add(jiff::Span::new().days(6))
                .unwrap()
                .to_string()
        });
        assert!(weeks.len() >= 5, "{n}: {weeks:?}");
        let get = |tally: &Tally, m: &str, w: &str, k: &str| {
            tally
                .get(&(format!("{m}/{k}"), w.to_string()))
                .copied()
                .unwrap_or(0)
        };
        let report = |name: &str, extra: &str| {
            let t = &t;
            let path = format!("/api/v2/kpis/{name}?from={from}&to={to}&period=week{extra}");
            async move {
                let (s, v) = t.call(&t.admin, Method::GET, &path, None).await;
                assert_eq!(s, StatusCode::OK, "{path}: {v}");
                assert_eq!(v["kpi"]["time_zone"], "America/Los_Angeles");
                v["kpi"]["rows"].as_array().unwrap().clone()
            }
        };

        // Tickets: created, solved, reopened, and the backlog at the end of each week.
        let rows = report("tickets", "").await;
        assert_eq!(rows.len(), weeks.len(), "{n}");
        let la = jiff::tz::TimeZone::get("America/Los_Angeles").unwrap();
        for (r, w) in rows.iter().zip(&weeks) {
            assert_eq!(r["start"], json!(w), "{n}");
            assert_eq!(
                r["created"],
                json!(get(&tally, "created", w, "all")),
                "{n} {w}"
            );
            assert_eq!(
                r["solved"],
                json!(get(&tally, "solved", w, "all")),
                "{n} {w}"
            );
            assert_eq!(
                r["reopened"],
                json!(get(&tally, "reopened", w, "all")),
                "{n} {w}"
            );
            let end: jiff::civil::Date = w.parse().unwrap();
            let end = end
                .checked_add(jiff::Span::new().days(7))
                .unwrap()
                .to_zoned(la.clone())
                .unwrap()
                .timestamp()
                .as_second();
            let backlog: i64 = status_changes
                .iter()
                .filter(|s| s.0 < end)
                .map(|s| s.2)
                .sum();
            assert_eq!(r["backlog"], json!(backlog), "{n} {w}");
        }
        // By month and by day, the same tickets.
        let total =
            |rows: &[Value], k: &str| rows.iter().map(|r| r[k].as_i64().unwrap()).sum::<i64>();
        let weekly = report("tickets", "").await;
        for period in ["month", "day", "all"] {
            let rows = report("tickets", &format!("&period={period}")).await;
            for k in ["created", "solved", "reopened"] {
                assert_eq!(total(&rows, k), total(&weekly, k), "{n} {period} {k}");
            }
            assert_eq!(
                rows.last().unwrap()["backlog"],
                weekly.last().unwrap()["backlog"],
                "{n} {period}"
            );
            let frt = report("first_reply_time", &format!("&period={period}")).await;
            assert_eq!(
                total(&frt, "count"),
                total(&report("first_reply_time", "").await, "count"),
                "{n} {period}"
            );
        }
        // By the ticket's (current) group and by plan.
        let rows = report("tickets", "&by=group").await;
        for r in &rows {
            let w = r["start"].as_str().unwrap();
            let key = r["group_id"]
                .as_i64()
                .map_or("none".to_string(), |g| g.to_string());
            assert_eq!(
                r["created"],
                json!(get(&tally, "created", w, &key)),
                "{n} {w} {key}"
            );
            assert_eq!(
                r["solved"],
                json!(get(&tally, "solved", w, &key)),
                "{n} {w} {key}"
            );
        }
        assert!(rows.iter().any(|r| r["group_name"] == "Tier 2"), "{n}");
        // Every ticket came through the API: a filter on the channel reads the facts, not the
        // daily counts, and must agree with them.
        assert_eq!(
            report("tickets", "&by=group&channel=api").await,
            rows,
            "{n}"
        );
        assert_eq!(
            report("first_reply_time", "&by=group&channel=api").await,
            report("first_reply_time", "&by=group").await,
            "{n}"
        );
        let rows = report("tickets", "&by=plan&period=all").await;
        // Dan is in the priority organisation, Eve in the standard one, Cora in none.
        for (plan, customer) in [("priority", 1), ("standard", 2)] {
            let r = rows
                .iter()
                .find(|r| r["plan"] == plan)
                .unwrap_or_else(|| panic!("{n}: {plan} in {rows:?}"));
            let created = tickets
                .iter()
                .filter(|x| !deleted.contains(&x.0) && x.1 == customers[customer].0)
                .count() as i64;
            assert_eq!(r["created"], json!(created), "{n} {plan}");
            assert!(created > 10, "{n}");
        }
        assert_eq!(rows.len(), 3, "{n}: priority, standard and none: {rows:?}");
        // When an organisation's plan changes, its tickets' facts follow.
        let (s, v) = t
            .call(
                &t.admin,
                Method::PUT,
                &format!("/api/v2/organizations/{}.json", orgs[1]),
                Some(
                    json!({"organization": {"organization_fields": {"support_level": "priority"}}}),
                ),
            )
            .await;
        assert!(s.is_success(), "{n}: {s} {v}");
        let moved = report("tickets", "&by=plan&period=all").await;
        let created_by = |rows: &[Value], plan: &str| {
            rows.iter()
                .find(|r| r["plan"] == plan)
                .map_or(0, |r| r["created"].as_i64().unwrap())
        };
        assert_eq!(
            created_by(&moved, "priority"),
            created_by(&rows, "priority") + created_by(&rows, "standard"),
            "{n}: {moved:?}"
        );
        assert_eq!(created_by(&moved, "standard"), 0, "{n}");
        let (s, _) = t
            .call(
                &t.admin,
                Method::PUT,
                &format!("/api/v2/organizations/{}.json", orgs[1]),
                Some(
                    json!({"organization": {"organization_fields": {"support_level": "standard"}}}),
                ),
            )
            .await;
        assert!(s.is_success(), "{n}");

        // Engineers: solved, public replies, internal notes, replies on their own tickets.
        let rows = report("engineer_activity", "").await;
        let mut seen = 0;
        for r in &rows {
            let w = r["start"].as_str().unwrap();
            let a = r["engineer_id"].as_i64().unwrap().to_string();
            assert_eq!(
                r["solved"],
                json!(get(&tally, "solved_by", w, &a)),
                "{n} {w} {a}"
            );
            assert_eq!(
                r["public_replies"],
                json!(get(&tally, "public_replies", w, &a)),
                "{n} {w} {a}"
            );
            assert_eq!(
                r["internal_notes"],
                json!(get(&tally, "internal_notes", w, &a)),
                "{n} {w} {a}"
            );
            assert_eq!(
                r["public_replies_on_assigned"],
                json!(get(&tally, "on_assigned", w, &a)),
                "{n} {w} {a}"
            );
            seen += get(&tally, "public_replies", w, &a) + get(&tally, "internal_notes", w, &a);
        }
        let total: i64 = tally
            .iter()
            .filter(|((k, _), _)| {
                k.starts_with("public_replies/") || k.starts_with("internal_notes/")
            })
            .map(|(_, v)| v)
            .sum();
        assert_eq!(seen, total, "{n}: every reply and note is in some row");
        assert!(total > 50, "{n}: {total}");

        // Durations: count, median and 90th percentile per week.
        for (name, key) in [
            ("first_reply_time", "first_reply"),
            ("next_reply_time", "next_reply"),
            ("full_resolution_time", "resolution"),
            ("requester_wait_time", "requester_wait"),
        ] {
            let rows = report(name, "").await;
            let mut counted = 0;
            for (r, w) in rows.iter().zip(&weeks) {
                let mut v = durations
                    .get(&(key.to_string(), w.clone()))
                    .cloned()
                    .unwrap_or_default();
                counted += v.len();
                assert_eq!(r["count"], json!(v.len()), "{n} {name} {w}");
                assert_eq!(
                    r["median_calendar"],
                    nearest_rank(&mut v, 0.5),
                    "{n} {name} {w}"
                );
                assert_eq!(
                    r["p90_calendar"],
                    nearest_rank(&mut v, 0.9),
                    "{n} {name} {w}"
                );
                // No schedule: business minutes are calendar minutes.
                assert_eq!(r["median_business"], r["median_calendar"], "{n} {name} {w}");
            }
            assert!(counted >= 5, "{n} {name}: {counted}");
        }

        // Shares of the solves.
        let rows = report("one_touch", "").await;
        for (r, w) in rows.iter().zip(&weeks) {
            assert_eq!(
                r["one_touch"],
                json!(get(&tally, "one_touch", w, "all")),
                "{n} {w}"
            );
        }
        let rows = report("reopen_rate", "").await;
        for (r, w) in rows.iter().zip(&weeks) {
            assert_eq!(
                r["reopened"],
                json!(get(&tally, "was_reopened", w, "all")),
                "{n} {w}"
            );
        }
        // SLA: a first reply within eight hours is met (when it came), else missed eight hours
        // in.
        let rows = report("sla_achievement", "&sla_metric=first_reply_time").await;
        let (mut met_all, mut missed_all) = (0, 0);
        for (r, w) in rows.iter().zip(&weeks) {
            let (met, missed) = sla.get(w).copied().unwrap_or((0, 0));
            assert_eq!(
                (r["met"].clone(), r["missed"].clone()),
                (json!(met), json!(missed)),
                "{n} {w}"
            );
            met_all += met;
            missed_all += missed;
        }
        assert!(
            met_all > 5 && missed_all > 5,
            "{n}: {met_all} met, {missed_all} missed"
        );

        // Baselines for the last whole week: 0.85 x the mean of the agents past two months.
        let w = weeks[weeks.len() - 2].clone();
        let iso_week = {
            let d: jiff::civil::Date = w.parse().unwrap();
            let iw = d.iso_week_date();
            format!("{}-W{:02}", iw.year(), iw.week())
        };
        // `week=` wins over from and to.
        let rows = report("baselines", &format!("&week={iso_week}")).await;
        assert!(rows.iter().all(|r| r["start"] == json!(w)), "{n}: {rows:?}");
        let eligible: Vec<i64> = agents.iter().take(3).map(|a| a.0).collect();
        let mean = eligible
            .iter()
            .map(|a| get(&tally, "solved_by", &w, &a.to_string()))
            .sum::<i64>() as f64
            / 3.0;
        for r in &rows {
            let a = r["engineer_id"].as_i64().unwrap();
            assert_eq!(r["counted"], json!(eligible.contains(&a)), "{n}: {r}");
            let base = r["baseline_solved"].as_f64().unwrap();
            assert!(
                (base - 0.85 * mean).abs() < 0.01,
                "{n}: {base} vs {mean}: {rows:?}"
            );
            let solved = get(&tally, "solved_by", &w, &a.to_string());
            assert_eq!(r["solved"], json!(solved), "{n}");
            assert_eq!(
                r["under_solved"],
                json!(eligible.contains(&a) && (solved as f64) < base),
                "{n}"
            );
        }
        assert!(
            rows.iter().any(|r| r["engineer_id"] == json!(agents[3].0)),
            "{n}: the new agent is listed"
        );

        // CSV carries the same rows.
        let resp = t
            .http
            .get(format!(
                "{}/api/v2/kpis/tickets.csv?from={from}&to={to}",
                t.base
            ))
            .basic_auth(&t.admin.0, Some(&t.admin.1))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
        let csv = resp.text().await.unwrap();
        assert!(
            csv.starts_with("period,start,created,solved,reopened,backlog\r\n"),
            "{n}: {csv}"
        );
        assert_eq!(csv.lines().count(), weeks.len() + 1, "{n}");

        // Closed weeks' durations were kept by the reports above. Moving the oldest live
        // tickets to the other group and deleting one touches those weeks; the reports then
        // equal the ones computed afresh after the rebuild below (which forgets what was
        // kept).
        let kept_frt = report("first_reply_time", "&by=group").await;
        // The worker's run keeps the dashboards' durations, by engineer too (no report
        // has asked for next replies by engineer).
        let kept_next_by_engineer = || async {
            let mut c = t.app.store.read().await.unwrap();
            c.int(
                "SELECT COUNT(*) FROM kpi_stat_cache WHERE dim = 'agent_id' AND kinds = 'next_reply'",
                &[],
            )
            .await
            .unwrap()
        };
        assert_eq!(kept_next_by_engineer().await, 0, "{n}");
        assert!(t.app.keep_kpi_durations().await.unwrap(), "{n}");
        assert!(kept_next_by_engineer().await > 0, "{n}");
        assert_eq!(
            report("first_reply_time", "&by=group").await,
            kept_frt,
            "{n}"
        );
        let live: Vec<i64> = tickets
            .iter()
            .map(|x| x.0)
            .filter(|id| !deleted.contains(id))
            .take(4)
            .collect();
        for id in &live[..3] {
            let (_, v) = t
                .call(
                    &t.admin,
                    Method::GET,
                    &format!("/api/v2/tickets/{id}.json"),
                    None,
                )
                .await;
            let other = if v["ticket"]["group_id"] == json!(groups[0]) {
                groups[1]
            } else {
                groups[0]
            };
            let (s, v) = t
                .call(
                    &t.admin,
                    Method::PUT,
                    &format!("/api/v2/tickets/{id}.json"),
                    Some(json!({"ticket": {"group_id": other}})),
                )
                .await;
            assert!(s.is_success(), "{n}: {s} {v}");
        }
        let (s, _) = t
            .call(
                &t.admin,
                Method::DELETE,
                &format!("/api/v2/tickets/{}.json", live[3]),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{n}");
        deleted.insert(live[3]);
        let moved_frt = report("first_reply_time", "&by=group").await;
        assert_ne!(moved_frt, kept_frt, "{n}: the moves change the figures");
        let moved_res = report("full_resolution_time", "").await;

        // Rebuilding from the audits gives the same reports, even after an engineer with
        // replies became an end-user: the audits keep the role each author had.
        let before = report("engineer_activity", "").await;
        let before_frt = report("first_reply_time", "&by=group").await;
        let demoted = agents[1].0;
        assert!(
            before.iter().any(|r| r["engineer_id"] == json!(demoted)
                && r["public_replies"].as_i64().unwrap_or(0) > 0),
            "{n}: {before:?}"
        );
        let set_role = |role: opsdesk_core::model::Role| {
            let app = t.app.clone();
            async move {
                let mut tx = app.store.write().await.unwrap();
                let mut u: opsdesk_core::model::User = tx.get(demoted).await.unwrap().unwrap();
                u.role = role;
                tx.update(&u).await.unwrap();
                tx.commit().await.unwrap();
            }
        };
        set_role(opsdesk_core::model::Role::EndUser).await;
        t.app.rebuild_kpis(None, |_| {}).await.unwrap();
        set_role(opsdesk_core::model::Role::Agent).await;
        assert_eq!(report("engineer_activity", "").await, before, "{n}");
        assert_eq!(
            report("first_reply_time", "&by=group").await,
            before_frt,
            "{n}"
        );
        assert_eq!(report("full_resolution_time", "").await, moved_res, "{n}");

        // A restored ticket counts again (its facts are derived from its audits); deleting it
        // again takes them away.
        let total_created = |rows: &[Value]| {
            rows.iter()
                .map(|r| r["created"].as_i64().unwrap())
                .sum::<i64>()
        };
        let created_before = total_created(&report("tickets", "").await);
        let gone = *deleted
            .iter()
            .next()
            .expect("the history deleted some tickets");
        let (s, v) = t
            .call(
                &t.admin,
                Method::PUT,
                &format!("/api/v2/deleted_tickets/{gone}/restore.json"),
                None,
            )
            .await;
        assert!(s.is_success(), "{n}: {s} {v}");
        assert_eq!(
            total_created(&report("tickets", "").await),
            created_before + 1,
            "{n}"
        );
        let (s, _) = t
            .call(
                &t.admin,
                Method::DELETE,
                &format!("/api/v2/tickets/{gone}.json"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{n}");
        assert_eq!(
            total_created(&report("tickets", "").await),
            created_before,
            "{n}"
        );

        // The week in review, as JSON and Markdown; customers see no KPIs.
        let (s, v) = t
            .call(
                &t.admin,
                Method::GET,
                &format!("/api/v2/kpis/week_in_review?week={iso_week}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{n}: {v}");
        assert_eq!(v["week_in_review"]["from"], json!(w), "{n}");
        assert_eq!(
            v["week_in_review"]["tickets"]["created"],
            json!(get(&tally, "created", &w, "all")),
            "{n}"
        );
        let md = t
            .http
            .get(format!(
                "{}/api/v2/kpis/week_in_review?week={iso_week}&format=markdown",
                t.base
            ))
            .basic_auth(&t.admin.0, Some(&t.admin.1))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            md.starts_with(&format!("# Support week in review: {iso_week} ({w} to ")),
            "{n}: {md}"
        );
        assert!(
            md.contains(&format!(
                "| {} | {} |",
                get(&tally, "created", &w, "all"),
                get(&tally, "solved", &w, "all")
            )),
            "{n}: {md}"
        );
        let (s, _) = t
            .call(&t.customer, Method::GET, "/api/v2/kpis/tickets", None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{n}");
        let (s, v) = t
            .call(
                &t.admin,
                Method::GET,
                "/api/v2/kpis/tickets?by=engineer",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{n}: {v}");
        assert_eq!(v["error"], "InvalidParameter", "{n}");
    }
}
