//! Web interface tests: the real server (API and pages on one listener) on 127.0.0.1:0,
//! driven over HTTP with cookies and forms, on every backend this run can reach. The browser
//! tests (tests/browser, Playwright in Chromium) drive the same pages through a real browser.

use std::sync::Arc;

use opsdesk_app::people::UserInput;
use opsdesk_app::App;
use opsdesk_core::{clock, FixedClock};
use opsdesk_store::testing;
use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};

struct Web {
    base: String,
    http: reqwest::Client,
    app: App,
    admin_token: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A browser: its cookies, kept by hand (the client follows no redirects).
#[derive(Default, Clone)]
struct Browser {
    cookies: Vec<(String, String)>,
}

struct Page {
    status: StatusCode,
    location: String,
    body: String,
}

impl Browser {
    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
    fn keep(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let s = v.to_str().unwrap();
            let kv = s.split(';').next().unwrap();
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() && !s.contains("Max-Age=0") {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
    }
    async fn get(&mut self, w: &Web, path: &str) -> Page {
        let resp = w
            .http
            .get(format!("{}{path}", w.base))
            .header("cookie", self.header())
            .send()
            .await
            .unwrap();
        self.page(resp).await
    }
    async fn post(&mut self, w: &Web, path: &str, form: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = w
            .http
            .post(format!("{}{path}", w.base))
            .header("cookie", self.header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.page(resp).await
    }
    async fn page(&mut self, resp: reqwest::Response) -> Page {
        self.keep(&resp);
        Page {
            status: resp.status(),
            location: resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
            body: resp.text().await.unwrap(),
        }
    }
    async fn sign_in(w: &Web, email: &str, password: &str) -> (Browser, Page) {
        let mut b = Browser::default();
        let p = b.get(w, "/login").await;
        let csrf = csrf_of(&p.body);
        let p = b
            .post(
                w,
                "/login",
                &[("csrf", &csrf), ("email", email), ("password", password)],
            )
            .await;
        (b, p)
    }
}

/// The text of a page's error block (`class="error"`), empty when there is none.
fn error_of(html: &str) -> String {
    match html.find("class=\"error\"") {
        Some(i) => {
            let rest = &html[i..];
            let end = rest
                .find("</div>")
                .or_else(|| rest.find("</p>"))
                .unwrap_or(rest.len());
            rest[..end].to_string()
        }
        None => String::new(),
    }
}

/// The first form's CSRF token on a page.
fn csrf_of(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[i..i + html[i..].find('"').unwrap()].to_string()
}

async fn spawn(store: opsdesk_store::Store) -> Web {
    let clock = Arc::new(FixedClock::new(
        clock::parse("2026-03-02T09:00:00Z").unwrap(),
    ));
    let app = App::new(store, clock);
    app.prepare().await.unwrap();
    let mut tx = app.store.write().await.unwrap();
    for (email, n, role) in [
        ("admin@example.com", "Ada Admin", "admin"),
        ("agent@example.com", "Alan Agent", "agent"),
        ("cora@example.com", "Cora Customer", "end-user"),
        ("dave@example.com", "Dave Outsider", "end-user"),
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
    let admin_token = app.create_token("admin@example.com", None).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let router = opsdesk_http::router(app.clone(), &Default::default())
        .merge(opsdesk_web::router(app.clone()));
    tokio::spawn(opsdesk_http::serve_router(listener, router, async move {
        let _ = rx.await;
    }));
    Web {
        base,
        http: reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap(),
        app,
        admin_token,
        _stop: stop,
    }
}

impl Web {
    async fn api(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}/api/v2{path}", self.base))
            .basic_auth("admin@example.com/token", Some(&self.admin_token))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_and_customers_work_through_the_pages() {
    for (name, store) in testing::all().await.unwrap() {
        eprintln!("backend: {name}");
        let w = spawn(store).await;

        // Signed out: every page sends you to sign in, and back afterwards.
        let mut anon = Browser::default();
        let p = anon.get(&w, "/agent/tickets/1").await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        assert_eq!(p.location, "/login?next=%2Fagent%2Ftickets%2F1");

        // `next` is a path on this site, never one a browser would read as another host.
        for bad in [
            "//evil.example",
            "/%09/evil.example",
            "/%5Cevil.example",
            "https://evil.example",
        ] {
            let mut b = Browser::default();
            let p = b.get(&w, &format!("/login?next={bad}")).await;
            let csrf = csrf_of(&p.body);
            let raw = url::form_urlencoded::parse(format!("next={bad}").as_bytes())
                .next()
                .unwrap()
                .1
                .to_string();
            let p = b
                .post(
                    &w,
                    "/login",
                    &[
                        ("csrf", &csrf),
                        ("email", "admin@example.com"),
                        ("password", "password-123"),
                        ("next", &raw),
                    ],
                )
                .await;
            assert_eq!(
                (p.status, p.location.as_str()),
                (StatusCode::SEE_OTHER, "/agent"),
                "next={bad}"
            );
        }

        // A sign-in without the login form's token is refused (login CSRF).
        let p = anon
            .post(
                &w,
                "/login",
                &[("email", "agent@example.com"), ("password", "password-123")],
            )
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);

        // A wrong password: 401 with the form again, no session.
        let (_, p) = Browser::sign_in(&w, "agent@example.com", "wrong-password").await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        assert!(p.body.contains("do not match an active account"));

        // The customer opens a request in the portal, with an XSS payload in it.
        let (mut cora, p) = Browser::sign_in(&w, "cora@example.com", "password-123").await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (StatusCode::SEE_OTHER, "/portal")
        );
        let p = cora.get(&w, "/portal/new").await;
        assert_eq!(p.status, StatusCode::OK);
        let csrf = csrf_of(&p.body);
        let xss = "Runner offline <script>alert('x')</script><img src=x onerror=alert(1)>";
        let p = cora
            .post(
                &w,
                "/portal/new",
                &[
                    ("csrf", &csrf),
                    ("subject", "Runner offline"),
                    ("body", xss),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let tid: i64 = p
            .location
            .strip_prefix("/portal/tickets/")
            .unwrap()
            .parse()
            .unwrap();
        // A form from another session (or none) is refused.
        let p = cora
            .post(
                &w,
                "/portal/new",
                &[("csrf", "forged"), ("subject", "x"), ("body", "y")],
            )
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);

        // The agent signs in, finds it, replies publicly and adds an internal note.
        let (mut agent, p) = Browser::sign_in(&w, "agent@example.com", "password-123").await;
        assert_eq!(p.location, "/agent");
        let p = agent.get(&w, &format!("/agent/tickets/{tid}")).await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(p.body.contains("Runner offline"));
        // Customer-written markup is shown inert.
        assert!(!p.body.contains("<script>alert"), "script tag rendered");
        assert!(!p.body.contains("<img src=x"), "image tag rendered");
        assert!(p.body.contains("&lt;script&gt;alert"), "shown as text");
        let csrf = csrf_of(&p.body);
        let form = |body: &'static str, public: &'static str, status: &'static str| {
            vec![
                ("csrf", csrf.clone()),
                ("body", body.to_string()),
                ("public", public.to_string()),
                ("status", status.to_string()),
                ("priority", "high".to_string()),
                ("tags", "runner ci".to_string()),
            ]
        };
        for (body, public, status) in [
            ("Please restart the runner service.", "true", "pending"),
            (
                "Internal: customer is on the old runner version.",
                "false",
                "pending",
            ),
        ] {
            let f = form(body, public, status);
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let p = agent.post(&w, &format!("/agent/tickets/{tid}"), &f).await;
            assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        }
        let t = w
            .api(reqwest::Method::GET, &format!("/tickets/{tid}"), json!({}))
            .await;
        assert_eq!(t["ticket"]["status"], "pending");
        assert_eq!(t["ticket"]["priority"], "high");
        assert_eq!(t["ticket"]["tags"], json!(["runner", "ci"]));
        let audits = w
            .api(
                reqwest::Method::GET,
                &format!("/tickets/{tid}/audits"),
                json!({}),
            )
            .await;
        assert_eq!(audits["audits"][1]["via"]["channel"], "web");
        let p = agent.get(&w, &format!("/agent/tickets/{tid}")).await;
        assert!(p.body.contains("comment internal"));
        assert!(p
            .body
            .contains("Internal: customer is on the old runner version."));
        // An invalid update keeps the draft and says why.
        let p = agent
            .post(
                &w,
                &format!("/agent/tickets/{tid}"),
                &[("csrf", &csrf), ("body", "draft kept"), ("status", "bogus")],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(p.body.contains("draft kept"));
        assert!(
            error_of(&p.body).contains("Status: &#39;bogus&#39; is not one of"),
            "{}",
            p.body
        );

        // A reply sends only what the agent changed: a priority someone else set meanwhile
        // stays (the page was rendered with "high"; the API made it "low").
        w.api(
            reqwest::Method::PUT,
            &format!("/tickets/{tid}"),
            json!({"ticket": {"priority": "low"}}),
        )
        .await;
        let p = agent
            .post(
                &w,
                &format!("/agent/tickets/{tid}"),
                &[
                    ("csrf", &csrf),
                    ("body", "Any news?"),
                    ("public", "false"),
                    ("status", "pending"),
                    ("orig_status", "pending"),
                    ("priority", "high"),
                    ("orig_priority", "high"),
                    ("tags", "runner ci"),
                    ("orig_tags", "runner ci"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let t = w
            .api(reqwest::Method::GET, &format!("/tickets/{tid}"), json!({}))
            .await;
        assert_eq!(t["ticket"]["priority"], "low");

        // Custom fields: a multiselect and a number go back as the API stores them, and a
        // reply that changes neither records no change to them.
        let ms = w
            .api(
                reqwest::Method::POST,
                "/ticket_fields",
                json!({"ticket_field": {"type": "multiselect", "title": "Components", "custom_field_options": [
                    {"name": "Runner", "value": "comp_runner"}, {"name": "Registry", "value": "comp_registry"}, {"name": "Pages", "value": "comp_pages"}]}}),
            )
            .await["ticket_field"]["id"]
            .as_i64()
            .unwrap();
        let seats = w
            .api(
                reqwest::Method::POST,
                "/ticket_fields",
                json!({"ticket_field": {"type": "integer", "title": "Seats"}}),
            )
            .await["ticket_field"]["id"]
            .as_i64()
            .unwrap();
        w.api(
            reqwest::Method::PUT,
            &format!("/tickets/{tid}"),
            json!({"ticket": {"custom_fields": [{"id": ms, "value": ["comp_runner", "comp_registry"]}, {"id": seats, "value": 5}]}}),
        )
        .await;
        let p = agent.get(&w, &format!("/agent/tickets/{tid}")).await;
        assert!(
            p.body.contains(&format!("name=\"field_{ms}\" multiple")),
            "multiselect drawn as one"
        );
        assert!(p.body.contains(&format!(
            "name=\"orig_field_{ms}\" value=\"comp_registry comp_runner\""
        )));
        assert!(p
            .body
            .contains("<option value=\"comp_runner\" selected>Runner</option>"));
        let (mss, sts) = (format!("field_{ms}"), format!("field_{seats}"));
        let (mst, stt) = (format!("fieldtype_{ms}"), format!("fieldtype_{seats}"));
        let (mso, sto) = (format!("orig_field_{ms}"), format!("orig_field_{seats}"));
        let audits_before = w
            .api(
                reqwest::Method::GET,
                &format!("/tickets/{tid}/audits"),
                json!({}),
            )
            .await["count"]
            .as_i64()
            .unwrap();
        let p = agent
            .post(
                &w,
                &format!("/agent/tickets/{tid}"),
                &[
                    ("csrf", &csrf),
                    ("body", "Checking the runner."),
                    ("public", "false"),
                    (&mss, "comp_runner"),
                    (&mss, "comp_registry"),
                    (&mst, "multiselect"),
                    (&mso, "comp_registry comp_runner"),
                    (&sts, "5"),
                    (&stt, "number"),
                    (&sto, "5"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let audits = w
            .api(
                reqwest::Method::GET,
                &format!("/tickets/{tid}/audits"),
                json!({}),
            )
            .await;
        assert_eq!(audits["count"].as_i64().unwrap(), audits_before + 1);
        let last = audits["audits"].as_array().unwrap().last().unwrap().clone();
        let kinds: Vec<&str> = last["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["type"].as_str())
            .collect();
        assert!(
            !kinds.contains(&"Change"),
            "an unchanged field was re-sent: {last}"
        );
        let p = agent
            .post(
                &w,
                &format!("/agent/tickets/{tid}"),
                &[
                    ("csrf", &csrf),
                    (&mss, "comp_pages"),
                    (&mst, "multiselect"),
                    (&mso, "comp_registry comp_runner"),
                    (&sts, "7"),
                    (&stt, "number"),
                    (&sto, "5"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let t = w
            .api(reqwest::Method::GET, &format!("/tickets/{tid}"), json!({}))
            .await;
        let cf = |id: i64| {
            t["ticket"]["custom_fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["id"] == id)
                .unwrap()["value"]
                .clone()
        };
        assert_eq!(cf(ms), json!(["comp_pages"]));
        assert_eq!(cf(seats), json!(7));

        // The customer sees the public reply, never the internal note.
        let p = cora.get(&w, &format!("/portal/tickets/{tid}")).await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(p.body.contains("Please restart the runner service."));
        assert!(!p.body.contains("old runner version"));
        assert!(p.body.contains("awaiting your reply"));
        // ... and can reply, which reopens it.
        let csrf_c = csrf_of(&p.body);
        let p = cora
            .post(
                &w,
                &format!("/portal/tickets/{tid}"),
                &[("csrf", &csrf_c), ("body", "Restarted, still offline.")],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let t = w
            .api(reqwest::Method::GET, &format!("/tickets/{tid}"), json!({}))
            .await;
        assert_eq!(t["ticket"]["status"], "open");

        // Another customer cannot see it; a customer cannot open the agent workspace.
        let (mut dave, _) = Browser::sign_in(&w, "dave@example.com", "password-123").await;
        assert_eq!(
            dave.get(&w, &format!("/portal/tickets/{tid}")).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(dave.get(&w, "/agent").await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            cora.get(&w, "/admin/triggers").await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            agent.get(&w, "/admin/triggers").await.status,
            StatusCode::FORBIDDEN
        );

        // Views: an admin makes one; the agent sees it with its count and bulk-updates.
        w.api(
            reqwest::Method::POST,
            "/views",
            json!({"view": {"title": "Open tickets", "all": [{"field": "status", "operator": "is", "value": "open"}],
                   "output": {"columns": ["subject", "requester", "status", "priority"]}}}),
        )
        .await;
        let p = agent.get(&w, "/agent").await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let view_path = p.location.clone();
        assert!(view_path.starts_with("/agent/views/"));
        let p = agent.get(&w, &view_path).await;
        assert!(p.body.contains(&format!("value=\"{tid}\"")));
        assert!(p
            .body
            .contains("Open tickets <span class=\"muted\">(1)</span>"));
        let p = agent.get(&w, "/agent/view_counts").await;
        assert!(p.body.contains(">1</span>"), "{}", p.body);
        let csrf = csrf_of(&agent.get(&w, &view_path).await.body);
        let tid_s = tid.to_string();
        let p = agent
            .post(
                &w,
                "/agent/bulk",
                &[
                    ("csrf", &csrf),
                    ("ticket_ids", &tid_s),
                    ("status", "hold"),
                    ("return_to", &view_path),
                ],
            )
            .await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (StatusCode::SEE_OTHER, view_path.as_str())
        );
        let t = w
            .api(reqwest::Method::GET, &format!("/tickets/{tid}"), json!({}))
            .await;
        assert_eq!(t["ticket"]["status"], "hold");

        // Macros: preview, then apply.
        let m = w
            .api(
                reqwest::Method::POST,
                "/macros",
                json!({"macro": {"title": "Ask for logs", "actions": [{"field": "status", "value": "pending"},
                       {"field": "comment_value", "value": "Could you send the runner logs, {{ticket.requester.first_name}}?"}]}}),
            )
            .await;
        let mid = m["macro"]["id"].as_i64().unwrap();
        let p = agent
            .get(
                &w,
                &format!("/agent/tickets/{tid}/macro_preview?macro_id={mid}"),
            )
            .await;
        assert!(
            p.body.contains("Could you send the runner logs, Cora?"),
            "{}",
            p.body
        );
        assert!(p.body.contains("Status: pending"));
        let p = agent
            .post(
                &w,
                &format!("/agent/tickets/{tid}/macro"),
                &[("csrf", &csrf), ("macro_id", &mid.to_string())],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let t = w
            .api(reqwest::Method::GET, &format!("/tickets/{tid}"), json!({}))
            .await;
        assert_eq!(t["ticket"]["status"], "pending");

        // Search through the query language; a bad query says why.
        let p = agent
            .get(&w, "/agent/search?q=status%3Apending%20runner")
            .await;
        assert!(p.body.contains("1 result(s)"), "{}", p.body);
        let p = agent.get(&w, "/agent/search?q=created%3E%3Cnope").await;
        assert!(p.body.contains("class=\"error\""));

        // The admin builds a trigger in the editor; it fires on the next new request.
        let (mut admin, _) = Browser::sign_in(&w, "admin@example.com", "password-123").await;
        let p = admin.get(&w, "/admin/triggers/new").await;
        assert!(p.body.contains("rule-definitions"));
        let csrf_a = csrf_of(&p.body);
        // Invalid first: the API's message, the rows kept.
        let p = admin
            .post(
                &w,
                "/admin/triggers/save",
                &[
                    ("csrf", &csrf_a),
                    ("title", ""),
                    ("active", "true"),
                    ("all_field", "status"),
                    ("all_operator", "is"),
                    ("all_value", "new"),
                    ("action_field", "priority"),
                    ("action_value", "urgent"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            error_of(&p.body).contains("Title: cannot be blank"),
            "{}",
            p.body
        );
        let p = admin
            .post(
                &w,
                "/admin/triggers/save",
                &[
                    ("csrf", &csrf_a),
                    ("title", "Outage requests are urgent"),
                    ("active", "true"),
                    ("all_field", "update_type"),
                    ("all_operator", "is"),
                    ("all_value", "Create"),
                    ("all_field", "comment_includes_word"),
                    ("all_operator", "is"),
                    ("all_value", "outage"),
                    ("all_field", ""),
                    ("all_operator", ""),
                    ("all_value", ""),
                    ("action_field", "priority"),
                    ("action_value", "urgent"),
                    ("action_field", "set_tags"),
                    ("action_value", "outage web"),
                ],
            )
            .await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (StatusCode::SEE_OTHER, "/admin/triggers"),
            "{}",
            p.body
        );
        let p = admin.get(&w, "/admin/triggers").await;
        assert!(p.body.contains("Outage requests are urgent"));
        let csrf_c = csrf_of(&cora.get(&w, "/portal/new").await.body);
        let p = cora
            .post(
                &w,
                "/portal/new",
                &[
                    ("csrf", &csrf_c),
                    ("subject", "Down"),
                    ("body", "We have an outage on all runners"),
                ],
            )
            .await;
        let tid2 = p
            .location
            .strip_prefix("/portal/tickets/")
            .unwrap()
            .to_string();
        let t = w
            .api(reqwest::Method::GET, &format!("/tickets/{tid2}"), json!({}))
            .await;
        assert_eq!(t["ticket"]["priority"], "urgent");
        assert_eq!(t["ticket"]["tags"], json!(["outage", "web"]));
        let p = admin.get(&w, &format!("/agent/tickets/{tid2}")).await;
        assert!(
            p.body.contains("Outage requests are urgent (pass 1)"),
            "rule trace shown"
        );

        // Deactivate it from the list.
        let id = w.api(reqwest::Method::GET, "/triggers", json!({})).await["triggers"][0]["id"]
            .as_i64()
            .unwrap();
        let p = admin
            .post(
                &w,
                &format!("/admin/triggers/{id}/active"),
                &[("csrf", &csrf_a), ("active", "false")],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let t = w
            .api(reqwest::Method::GET, &format!("/triggers/{id}"), json!({}))
            .await;
        assert_eq!(t["trigger"]["active"], false);

        // The same editor makes macros, views and automations.
        let p = admin
            .post(
                &w,
                "/admin/macros/save",
                &[
                    ("csrf", &csrf_a),
                    ("title", "Close politely"),
                    ("active", "true"),
                    ("action_field", "status"),
                    ("action_value", "solved"),
                    ("action_field", "comment_value"),
                    (
                        "action_value",
                        "Closing this, {{ticket.requester.first_name}}.",
                    ),
                ],
            )
            .await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (StatusCode::SEE_OTHER, "/admin/macros"),
            "{}",
            p.body
        );
        let ms = w.api(reqwest::Method::GET, "/macros", json!({})).await;
        let made = ms["macros"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["title"] == "Close politely")
            .unwrap()
            .clone();
        assert_eq!(
            made["actions"][0],
            json!({"field": "status", "value": "solved"})
        );
        let p = admin
            .get(&w, &format!("/admin/macros/{}/edit", made["id"]))
            .await;
        assert!(p
            .body
            .contains("Closing this, {{ticket.requester.first_name}}."));
        let p = admin
            .post(
                &w,
                "/admin/views/save",
                &[
                    ("csrf", &csrf_a),
                    ("title", "Urgent unsolved"),
                    ("active", "true"),
                    ("all_field", "status"),
                    ("all_operator", "less_than"),
                    ("all_value", "solved"),
                    ("all_field", "priority"),
                    ("all_operator", "is"),
                    ("all_value", "urgent"),
                    ("columns", "subject requester priority"),
                    ("sort_by", "created_at"),
                    ("sort_order", "desc"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let vs = w.api(reqwest::Method::GET, "/views", json!({})).await;
        let v = vs["views"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["title"] == "Urgent unsolved")
            .unwrap()
            .clone();
        assert_eq!(v["execution"]["columns"].as_array().unwrap().len(), 3);
        assert_eq!(v["execution"]["sort_order"], "desc");
        // A view with a condition the API refuses: its message, the form kept.
        let p = admin
            .post(
                &w,
                "/admin/views/save",
                &[
                    ("csrf", &csrf_a),
                    ("title", "Broken"),
                    ("all_field", "status"),
                    ("all_operator", "sideways"),
                    ("all_value", "open"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            error_of(&p.body).contains("operator &#39;sideways&#39; is not one of"),
            "{}",
            p.body
        );
        let p = admin
            .post(
                &w,
                "/admin/automations/save",
                &[
                    ("csrf", &csrf_a),
                    ("title", "Close 4 days after solved"),
                    ("active", "true"),
                    ("all_field", "status"),
                    ("all_operator", "is"),
                    ("all_value", "solved"),
                    ("all_field", "SOLVED"),
                    ("all_operator", "greater_than"),
                    ("all_value", "96"),
                    ("action_field", "status"),
                    ("action_value", "closed"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        // Opening and saving a rule keeps what the builder has no row kind for: an
        // organisation-field condition and a notification's [recipient, subject, body].
        let t = w
            .api(
                reqwest::Method::POST,
                "/triggers",
                json!({"trigger": {"title": "Notify priority orgs", "conditions": {"all": [
                    {"field": "update_type", "operator": "is", "value": "Create"},
                    {"field": "organization.custom_fields_support_level", "operator": "is", "value": "priority"}]},
                    "actions": [{"field": "notification_user", "value": ["requester_id", "We got it", "Hello {{ticket.requester.first_name}}"]}]}}),
            )
            .await;
        let nid = t["trigger"]["id"].as_i64().unwrap();
        let p = admin.get(&w, &format!("/admin/triggers/{nid}/edit")).await;
        assert!(
            p.body
                .contains("<option value=\"organization.custom_fields_support_level\" selected>"),
            "{}",
            p.body
        );
        assert!(
            p.body
                .contains("[&#34;requester_id&#34;,&#34;We got it&#34;"),
            "{}",
            p.body
        );
        let p = admin
            .post(
                &w,
                "/admin/triggers/save",
                &[
                    ("csrf", &csrf_a),
                    ("id", &nid.to_string()),
                    ("title", "Notify priority orgs"),
                    ("active", "true"),
                    ("all_field", "update_type"),
                    ("all_operator", "is"),
                    ("all_value", "Create"),
                    ("all_field", "organization.custom_fields_support_level"),
                    ("all_operator", "is"),
                    ("all_value", "priority"),
                    ("action_field", "notification_user"),
                    (
                        "action_value",
                        r#"["requester_id","We got it","Hello {{ticket.requester.first_name}}"]"#,
                    ),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let again = w
            .api(reqwest::Method::GET, &format!("/triggers/{nid}"), json!({}))
            .await;
        assert_eq!(again["trigger"]["conditions"], t["trigger"]["conditions"]);
        assert_eq!(again["trigger"]["actions"], t["trigger"]["actions"]);

        // Reorder: the last trigger moves up one place.
        w.api(
            reqwest::Method::POST,
            "/triggers",
            json!({"trigger": {"title": "Second", "conditions": {"all": [{"field": "update_type", "operator": "is", "value": "Create"}]}, "actions": [{"field": "set_tags", "value": ["second"]}]}}),
        )
        .await;
        let ts = w.api(reqwest::Method::GET, "/triggers", json!({})).await;
        let second = ts["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["title"] == "Second")
            .unwrap()["id"]
            .clone();
        let p = admin
            .post(
                &w,
                &format!("/admin/triggers/{second}/move"),
                &[("csrf", &csrf_a), ("direction", "up")],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let ts = w.api(reqwest::Method::GET, "/triggers", json!({})).await;
        let titles: Vec<&str> = ts["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["title"].as_str())
            .collect();
        assert_eq!(
            titles,
            [
                "Outage requests are urgent",
                "Second",
                "Notify priority orgs"
            ]
        );
        assert_eq!(ts["triggers"][1]["position"], 2);

        // Groups, organisations and users through their forms.
        let p = admin
            .post(
                &w,
                "/admin/groups/save",
                &[
                    ("csrf", &csrf_a),
                    ("name", "Support EMEA"),
                    ("description", "Europe"),
                ],
            )
            .await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (StatusCode::SEE_OTHER, "/admin/groups"),
            "{}",
            p.body
        );
        let p = admin
            .post(
                &w,
                "/admin/organizations/save",
                &[
                    ("csrf", &csrf_a),
                    ("name", "Initech"),
                    ("domain_names", "initech.example, initech.test"),
                    ("shared_tickets", "true"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let orgs = w
            .api(reqwest::Method::GET, "/organizations", json!({}))
            .await;
        let org = orgs["organizations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "Initech")
            .unwrap()
            .clone();
        assert_eq!(
            org["domain_names"],
            json!(["initech.example", "initech.test"])
        );
        assert_eq!(org["shared_tickets"], true);
        let org_id = org["id"].to_string();
        let p = admin
            .post(
                &w,
                "/admin/users/save",
                &[
                    ("csrf", &csrf_a),
                    ("name", "Peter Gibbons"),
                    ("email", "peter@initech.example"),
                    ("role", "agent"),
                    ("organization_id", &org_id),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let found = w
            .api(
                reqwest::Method::GET,
                "/users/search?query=peter%40initech.example",
                json!({}),
            )
            .await;
        let peter = found["users"][0].clone();
        assert_eq!(
            (peter["role"].as_str(), peter["organization_id"].to_string()),
            (Some("agent"), org_id.clone())
        );
        let p = admin
            .get(&w, &format!("/admin/users/{}/edit", peter["id"]))
            .await;
        assert!(p.body.contains("value=\"peter@initech.example\""));
        // The same address twice: the API's message, and nothing saved.
        let p = admin
            .post(
                &w,
                "/admin/users/save",
                &[
                    ("csrf", &csrf_a),
                    ("name", "Other Peter"),
                    ("email", "peter@initech.example"),
                    ("role", "end-user"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error_of(&p.body).contains("Email"), "{}", p.body);

        // Ticket fields with their options, and a form that shows one.
        let p = admin
            .post(
                &w,
                "/admin/ticket_fields/save",
                &[
                    ("csrf", &csrf_a),
                    ("title", "Deployment"),
                    ("type", "tagger"),
                    ("active", "true"),
                    ("visible_in_portal", "true"),
                    ("editable_in_portal", "true"),
                    (
                        "custom_field_options",
                        "Self-managed = deploy_self\r\nGitLab.com\r\n",
                    ),
                ],
            )
            .await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (StatusCode::SEE_OTHER, "/admin/ticket_fields"),
            "{}",
            p.body
        );
        let fields = w
            .api(reqwest::Method::GET, "/ticket_fields", json!({}))
            .await;
        let dep = fields["ticket_fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["title"] == "Deployment")
            .unwrap()
            .clone();
        let opts: Vec<(&str, &str)> = dep["custom_field_options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["name"].as_str().unwrap(), o["value"].as_str().unwrap()))
            .collect();
        assert_eq!(
            opts,
            [
                ("Self-managed", "deploy_self"),
                ("GitLab.com", "gitlab.com")
            ]
        );
        let dep_id = dep["id"].to_string();
        let p = admin
            .post(
                &w,
                "/admin/ticket_forms/save",
                &[
                    ("csrf", &csrf_a),
                    ("name", "Support request"),
                    ("display_name", "Get help"),
                    ("active", "true"),
                    ("end_user_visible", "true"),
                    ("ticket_field_ids", &dep_id),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let forms = w
            .api(reqwest::Method::GET, "/ticket_forms", json!({}))
            .await;
        let f = forms["ticket_forms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "Support request")
            .unwrap()
            .clone();
        assert!(f["ticket_field_ids"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| *i == dep["id"]));
        // A form keeps its fields' order, and a field deactivated meanwhile, when saved.
        let region = w
            .api(
                reqwest::Method::POST,
                "/ticket_fields",
                json!({"ticket_field": {"type": "text", "title": "Region"}}),
            )
            .await["ticket_field"]["id"]
            .clone();
        let form2 = w
            .api(reqwest::Method::POST, "/ticket_forms", json!({"ticket_form": {"name": "Ordered", "ticket_field_ids": [region, dep["id"]]}}))
            .await["ticket_form"]["id"]
            .clone();
        w.api(
            reqwest::Method::PUT,
            &format!("/ticket_fields/{region}"),
            json!({"ticket_field": {"active": false}}),
        )
        .await;
        let p = admin
            .get(&w, &format!("/admin/ticket_forms/{form2}/edit"))
            .await;
        let (ri, di) = (
            p.body
                .find(&format!(
                    "<option value=\"{region}\" selected>Region (inactive)</option>"
                ))
                .expect("the inactive field stays chosen"),
            p.body
                .find(&format!("<option value=\"{}\" selected>", dep["id"]))
                .unwrap(),
        );
        assert!(ri < di, "in the form's order");
        let (rs, ds) = (region.to_string(), dep["id"].to_string());
        let p = admin
            .post(
                &w,
                "/admin/ticket_forms/save",
                &[
                    ("csrf", &csrf_a),
                    ("id", &form2.to_string()),
                    ("name", "Ordered (renamed)"),
                    ("active", "true"),
                    ("end_user_visible", "true"),
                    ("ticket_field_ids", &rs),
                    ("ticket_field_ids", &ds),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let f2 = w
            .api(
                reqwest::Method::GET,
                &format!("/ticket_forms/{form2}"),
                json!({}),
            )
            .await;
        assert_eq!(
            f2["ticket_form"]["ticket_field_ids"],
            json!([region, dep["id"]])
        );
        // The ticket page offers the forms, and a reply can move the ticket to another.
        let p = agent.get(&w, &format!("/agent/tickets/{tid}")).await;
        assert!(
            p.body.contains(&format!(
                "<option value=\"{form2}\" >Ordered (renamed)</option>"
            )),
            "{}",
            p.body
        );
        let p = agent
            .post(
                &w,
                &format!("/agent/tickets/{tid}"),
                &[
                    ("csrf", &csrf),
                    ("ticket_form_id", &form2.to_string()),
                    ("orig_ticket_form_id", ""),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let t = w
            .api(reqwest::Method::GET, &format!("/tickets/{tid}"), json!({}))
            .await;
        assert_eq!(t["ticket"]["ticket_form_id"], form2);
        // Ticket fields move up and down like rules.
        let order = |v: &Value| -> Vec<Value> {
            v["ticket_fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].clone())
                .collect()
        };
        let before = order(
            &w.api(reqwest::Method::GET, "/ticket_fields", json!({}))
                .await,
        );
        let last = before.last().unwrap().clone();
        let p = admin
            .post(
                &w,
                &format!("/admin/ticket_fields/{last}/move"),
                &[("csrf", &csrf_a), ("direction", "up")],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let after = order(
            &w.api(reqwest::Method::GET, "/ticket_fields", json!({}))
                .await,
        );
        let mut expected = before.clone();
        let n = expected.len();
        expected.swap(n - 1, n - 2);
        assert_eq!(after, expected);
        let p = admin
            .get(&w, &format!("/admin/ticket_fields/{}/edit", dep["id"]))
            .await;
        assert!(p.body.contains("Self-managed = deploy_self"));

        // SLA policies: the filter in the builder, the targets in a grid.
        let p = admin
            .post(
                &w,
                "/admin/sla_policies/save",
                &[
                    ("csrf", &csrf_a),
                    ("title", "Priority support"),
                    ("all_field", "priority"),
                    ("all_operator", "greater_than"),
                    ("all_value", "normal"),
                    ("target_first_reply_time_urgent", "60"),
                    ("target_first_reply_time_high", "240"),
                    ("bh_first_reply_time_urgent", "true"),
                    ("bh_first_reply_time_high", "true"),
                    ("target_next_reply_time_urgent", "120"),
                ],
            )
            .await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (StatusCode::SEE_OTHER, "/admin/sla_policies"),
            "{}",
            p.body
        );
        let pol = w
            .api(reqwest::Method::GET, "/slas/policies", json!({}))
            .await["sla_policies"][0]
            .clone();
        assert_eq!(
            pol["filter"]["all"][0],
            json!({"field": "priority", "operator": "greater_than", "value": "normal"})
        );
        let mut got: Vec<(String, String, i64, bool)> = pol["policy_metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["metric"].as_str().unwrap().to_string(),
                    m["priority"].as_str().unwrap().to_string(),
                    m["target"].as_i64().unwrap(),
                    m["business_hours"].as_bool().unwrap(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (
                    "first_reply_time".to_string(),
                    "high".to_string(),
                    240,
                    true
                ),
                (
                    "first_reply_time".to_string(),
                    "urgent".to_string(),
                    60,
                    true
                ),
                (
                    "next_reply_time".to_string(),
                    "urgent".to_string(),
                    120,
                    false
                ),
            ]
        );
        let p = admin
            .get(&w, &format!("/admin/sla_policies/{}/edit", pol["id"]))
            .await;
        assert!(p
            .body
            .contains("name=\"target_first_reply_time_high\" value=\"240\""));
        let p = admin
            .post(
                &w,
                "/admin/sla_policies/save",
                &[
                    ("csrf", &csrf_a),
                    ("title", "Bad"),
                    ("target_first_reply_time_low", "soon"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error_of(&p.body).contains("First reply time for low priority: &#34;soon&#34; is not a whole number of minutes"), "{}", p.body);
        assert!(
            p.body.contains("value=\"Bad\""),
            "the editor comes back with what was typed"
        );

        // Schedules: a week of hours per day, and holidays.
        let p = admin
            .post(
                &w,
                "/admin/schedules/save",
                &[
                    ("csrf", &csrf_a),
                    ("name", "Office"),
                    ("time_zone", "Pacific Time (US & Canada)"),
                    ("day_0", ""),
                    ("day_1", "09:00-12:00, 13:00-17:00"),
                    ("day_2", "09:00-17:00"),
                    ("day_3", "09:00-17:00"),
                    ("day_4", "09:00-17:00"),
                    ("day_5", "09:00-24:00"),
                    ("day_6", "00:00-02:00"),
                ],
            )
            .await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (StatusCode::SEE_OTHER, "/admin/schedules"),
            "{}",
            p.body
        );
        let sch = w
            .api(reqwest::Method::GET, "/business_hours/schedules", json!({}))
            .await["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "Office")
            .unwrap()
            .clone();
        let day = 1440;
        let iv: Vec<(i64, i64)> = sch["intervals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["start_time"].as_i64().unwrap(),
                    i["end_time"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            iv,
            [
                (day + 540, day + 720),
                (day + 780, day + 1020),
                (2 * day + 540, 2 * day + 1020),
                (3 * day + 540, 3 * day + 1020),
                (4 * day + 540, 4 * day + 1020),
                (5 * day + 540, 6 * day + 120), // Friday to Saturday 02:00, joined at midnight
            ]
        );
        let sid = sch["id"].to_string();
        let p = admin.get(&w, &format!("/admin/schedules/{sid}/edit")).await;
        assert!(p.body.contains("value=\"09:00-24:00\""), "{}", p.body);
        assert!(p.body.contains("value=\"00:00-02:00\""));
        let p = admin
            .post(
                &w,
                "/admin/schedules/save",
                &[
                    ("csrf", &csrf_a),
                    ("id", &sid),
                    ("name", "Office"),
                    ("time_zone", "Pacific Time (US & Canada)"),
                    ("day_1", "9-5"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            error_of(&p.body).contains("Monday: &#34;9-5&#34; is not a time range"),
            "{}",
            p.body
        );
        let p = admin
            .post(
                &w,
                &format!("/admin/schedules/{sid}/holidays"),
                &[
                    ("csrf", &csrf_a),
                    ("name", "Christmas"),
                    ("start_date", "2026-12-25"),
                    ("end_date", "2026-12-26"),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let hs = w
            .api(
                reqwest::Method::GET,
                &format!("/business_hours/schedules/{sid}/holidays"),
                json!({}),
            )
            .await;
        assert_eq!(hs["holidays"][0]["name"], "Christmas");
        assert_eq!(hs["holidays"][0]["end_date"], "2026-12-26");
        let hid = hs["holidays"][0]["id"].to_string();
        let p = admin
            .post(
                &w,
                &format!("/admin/schedules/{sid}/holidays"),
                &[("csrf", &csrf_a), ("delete", &hid)],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        let hs = w
            .api(
                reqwest::Method::GET,
                &format!("/business_hours/schedules/{sid}/holidays"),
                json!({}),
            )
            .await;
        assert_eq!(hs["holidays"].as_array().unwrap().len(), 0);

        // Webhooks: a secret is write-only; leaving it empty keeps it.
        let p = admin
            .post(
                &w,
                "/admin/webhooks/save",
                &[
                    ("csrf", &csrf_a),
                    ("name", "Chat bridge"),
                    ("endpoint", "https://example.com/hook"),
                    ("http_method", "POST"),
                    ("request_format", "json"),
                    ("status", "active"),
                    ("subscriptions", "conditional_ticket_events"),
                    ("auth_type", "bearer_token"),
                    ("auth_secret", "s3cret-token"),
                ],
            )
            .await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (StatusCode::SEE_OTHER, "/admin/webhooks"),
            "{}",
            p.body
        );
        let hook = w.api(reqwest::Method::GET, "/webhooks", json!({})).await["webhooks"][0].clone();
        assert_eq!(hook["authentication"]["type"], "bearer_token");
        let hook_id = hook["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| hook["id"].to_string());
        let p = admin
            .get(&w, &format!("/admin/webhooks/{hook_id}/edit"))
            .await;
        assert!(
            !p.body.contains("s3cret-token"),
            "a stored secret is never shown"
        );
        let p = admin
            .post(
                &w,
                "/admin/webhooks/save",
                &[
                    ("csrf", &csrf_a),
                    ("id", &hook_id),
                    ("name", "Chat bridge"),
                    ("endpoint", "https://example.com/hook2"),
                    ("http_method", "POST"),
                    ("request_format", "json"),
                    ("status", "inactive"),
                    ("subscriptions", "conditional_ticket_events"),
                    ("auth_type", "bearer_token"),
                    ("auth_secret", ""),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let hook = w
            .api(
                reqwest::Method::GET,
                &format!("/webhooks/{hook_id}"),
                json!({}),
            )
            .await["webhook"]
            .clone();
        assert_eq!(
            (hook["endpoint"].as_str(), hook["status"].as_str()),
            (Some("https://example.com/hook2"), Some("inactive"))
        );
        assert_eq!(hook["authentication"]["type"], "bearer_token");
        let me = w.app.authenticate_bearer(&w.admin_token).await.unwrap();
        let stored = w
            .app
            .get_webhook(&me, hook_id.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(
            stored.authentication.unwrap()["data"]["token"],
            "s3cret-token",
            "the empty secret kept the stored one"
        );
        let p = admin
            .post(
                &w,
                "/admin/webhooks/save",
                &[
                    ("csrf", &csrf_a),
                    ("id", &hook_id),
                    ("name", "Chat bridge"),
                    ("endpoint", "https://example.com/hook2"),
                    ("http_method", "POST"),
                    ("request_format", "json"),
                    ("status", "inactive"),
                    ("subscriptions", "conditional_ticket_events"),
                    ("auth_type", "basic_auth"),
                    ("auth_username", "bot"),
                    ("auth_secret", ""),
                ],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            error_of(&p.body).contains("basic_auth needs its password"),
            "{}",
            p.body
        );

        // A suspended user's session ends at their next request.
        let (mut dave2, _) = Browser::sign_in(&w, "dave@example.com", "password-123").await;
        assert_eq!(dave2.get(&w, "/portal").await.status, StatusCode::OK);
        let dave_id = w
            .api(
                reqwest::Method::GET,
                "/users/search?query=dave%40example.com",
                json!({}),
            )
            .await["users"][0]["id"]
            .clone();
        w.api(
            reqwest::Method::PUT,
            &format!("/users/{dave_id}"),
            json!({"user": {"suspended": true}}),
        )
        .await;
        assert_eq!(dave2.get(&w, "/portal").await.status, StatusCode::SEE_OTHER);
        // htmx polls get 401 with HX-Redirect rather than a redirect they would swap in.
        let r = w
            .http
            .get(format!("{}/agent/view_counts", w.base))
            .header("cookie", dave2.header())
            .header("hx-request", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()["hx-redirect"],
            "/login?next=%2Fagent%2Fview_counts"
        );

        // Signing out ends the session on the server, not only in the browser.
        let old = agent.clone();
        let p = agent.post(&w, "/logout", &[("csrf", &csrf)]).await;
        assert_eq!(p.location, "/login");
        let mut replay = old;
        let p = replay.get(&w, "/agent/search").await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (StatusCode::SEE_OTHER, "/login?next=%2Fagent%2Fsearch")
        );

        // Sign-in links: mailed through the outbox, usable once.
        let mut b = Browser::default();
        let p = b.get(&w, "/login").await;
        let csrf_l = csrf_of(&p.body);
        let p = b
            .post(
                &w,
                "/portal/link",
                &[("csrf", &csrf_l), ("email", "cora@example.com")],
            )
            .await;
        assert_eq!(p.location, "/login?link_sent=1");
        let p = b
            .post(
                &w,
                "/portal/link",
                &[("csrf", &csrf_l), ("email", "nobody@example.com")],
            )
            .await;
        assert_eq!(
            p.location, "/login?link_sent=1",
            "same answer for unknown addresses"
        );
        let admin_actor = w.app.authenticate_bearer(&w.admin_token).await.unwrap();
        let items = w
            .app
            .list_outbox(
                &admin_actor,
                None,
                Some("email"),
                None,
                &opsdesk_app::Page::All { limit: 100 },
            )
            .await
            .unwrap()
            .items;
        let mail = items
            .iter()
            .find(|i| i.payload["subject"] == "Your sign-in link")
            .expect("a sign-in mail");
        assert_eq!(mail.payload["to"], "cora@example.com");
        let text = mail.payload["text"].as_str().unwrap();
        let link = text[text.find("/portal/link/").unwrap()..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        // Opening it (as a mail scanner would) uses nothing up; the button on it signs in.
        let mut c2 = Browser::default();
        let p = c2.get(&w, &link).await;
        assert_eq!(p.status, StatusCode::OK);
        let p = c2.get(&w, &link).await;
        let csrf_link = csrf_of(&p.body);
        let p = c2.post(&w, &link, &[("csrf", "forged")]).await;
        assert_eq!(
            p.status,
            StatusCode::FORBIDDEN,
            "the confirmation needs this site's form"
        );
        let p = c2.post(&w, &link, &[("csrf", &csrf_link)]).await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (StatusCode::SEE_OTHER, "/portal")
        );
        assert_eq!(c2.get(&w, "/portal").await.status, StatusCode::OK);
        let mut c3 = Browser::default();
        let csrf3 = csrf_of(&c3.get(&w, &link).await.body);
        let p = c3.post(&w, &link, &[("csrf", &csrf3)]).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "a link works once");
        // Staff sign in with their password: asking for a link for an agent sends nothing.
        let p = b
            .post(
                &w,
                "/portal/link",
                &[("csrf", &csrf_l), ("email", "agent@example.com")],
            )
            .await;
        assert_eq!(p.location, "/login?link_sent=1");
        let items = w
            .app
            .list_outbox(
                &admin_actor,
                None,
                Some("email"),
                None,
                &opsdesk_app::Page::All { limit: 100 },
            )
            .await
            .unwrap()
            .items;
        assert!(!items.iter().any(|i| i.payload["to"] == "agent@example.com"));

        // Security headers on every page.
        let r = w
            .http
            .get(format!("{}/login", w.base))
            .send()
            .await
            .unwrap();
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let set = r.headers()["set-cookie"].to_str().unwrap();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"));
        // Assets are embedded.
        let r = w
            .http
            .get(format!("{}/assets/htmx.min.js", w.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().len() > 40_000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_limited_per_account_and_address() {
    let store = testing::sqlite().await.unwrap();
    let w = spawn(store).await;
    let mut last = StatusCode::OK;
    for i in 0..opsdesk_web::SIGN_IN_ATTEMPTS_PER_MINUTE + 1 {
        // A forged X-Forwarded-For changes nothing: the limit keys on the account.
        let mut b = Browser::default();
        let p = b.get(&w, "/login").await;
        let csrf = csrf_of(&p.body);
        let r = w
            .http
            .post(format!("{}/login", w.base))
            .header("cookie", b.header())
            .header("x-forwarded-for", format!("10.0.0.{i}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "csrf={csrf}&email=Agent%40example.com&password=nope-nope"
            ))
            .send()
            .await
            .unwrap();
        last = r.status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // Even the right password waits now, for that account.
    let (_, p) = Browser::sign_in(&w, "agent@example.com", "password-123").await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(p.body.contains("Try again in"));
    // The account still signs in from another address: one address cannot lock it out.
    let other = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let r = other.get(format!("{}/login", w.base)).send().await.unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = csrf_of(&r.text().await.unwrap());
    let r = other
        .post(format!("{}/login", w.base))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={csrf}&email=agent%40example.com&password=password-123"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "locked out from 127.0.0.2"
    );
    // Another account from the same address is not locked out by it.
    let (_, p) = Browser::sign_in(&w, "admin@example.com", "password-123").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    // Spraying many accounts from one address hits the address limit.
    let mut last = StatusCode::OK;
    for i in 0..opsdesk_web::SIGN_IN_ATTEMPTS_PER_ADDRESS {
        // (An empty password is refused before any hashing: the test stays fast.)
        let (_, p) = Browser::sign_in(&w, &format!("nobody{i}@example.com"), "").await;
        last = p.status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_draw_the_kpi_reports() {
    for (name, store) in testing::all().await.unwrap() {
        eprintln!("backend: {name}");
        let w = spawn(store).await;
        for i in 0..3 {
            w.api(
                reqwest::Method::POST,
                "/tickets",
                json!({"ticket": {"subject": format!("Dashboard {i}"), "comment": {"body": "x"},
                       "requester": {"email": "cora@example.com"}}}),
            )
            .await;
        }
        let (mut agent, _) = Browser::sign_in(&w, "agent@example.com", "password-123").await;
        let p = agent.get(&w, "/manager").await;
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(p.body.matches("<svg class=\"chart\"").count(), 4);
        // The chart's numbers are the API's report: this week (2026-W10) created 3.
        let api = w
            .api(
                reqwest::Method::GET,
                "/kpis/tickets?period=week&from=2026-03-02&to=2026-03-02",
                json!({}),
            )
            .await;
        assert_eq!(api["kpi"]["rows"][0]["created"], 3);
        assert!(
            p.body
                .contains("<tr><td>2026-W10</td><td>2026-03-02</td><td>3</td><td>0</td><td>0</td><td>3</td></tr>"),
            "{}",
            p.body
        );
        // ... and its CSV, through the session.
        let i = p.body.find("/manager/kpis/tickets.csv?").unwrap();
        let link = p.body[i..i + p.body[i..].find('"').unwrap()].replace("&amp;", "&");
        let r = w
            .http
            .get(format!("{}{link}", w.base))
            .header("cookie", agent.header())
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
        let csv = r.text().await.unwrap();
        assert!(
            csv.starts_with("period,start,created,solved,reopened,backlog"),
            "{csv}"
        );
        assert!(csv.contains("2026-W10,2026-03-02,3,0,0,3"), "{csv}");
        // The team week, an engineer's page, the week in review and its exports.
        let p = agent.get(&w, "/manager/team?week=2026-W10").await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(p.body.contains("Team week 2026-W10"));
        let admin_id = w.api(reqwest::Method::GET, "/users/me", json!({})).await["user"]["id"]
            .as_i64()
            .unwrap();
        let p = agent
            .get(&w, &format!("/manager/engineers/{admin_id}"))
            .await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(p.body.contains("Ada Admin"));
        assert_eq!(p.body.matches("<svg class=\"chart\"").count(), 3);
        let p = agent.get(&w, "/manager/week?week=2026-W10").await;
        assert!(p.body.contains("<td>3</td>"), "{}", p.body);
        let p = agent
            .get(&w, "/manager/week?week=2026-W10&format=markdown")
            .await;
        assert!(p.body.starts_with("# Support week in review: 2026-W10"));
        // Bad input is a page saying why; customers cannot see any of it.
        let p = agent.get(&w, "/manager/team?week=2026-W99").await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);
        let (mut cora, _) = Browser::sign_in(&w, "cora@example.com", "password-123").await;
        assert_eq!(cora.get(&w, "/manager").await.status, StatusCode::FORBIDDEN);
    }
}
