//! `opsdesk demo`: a living helpdesk to look at and to benchmark against — organisations with
//! the gitlab-support profile's organisation fields, end-users, agents in regional groups, and
//! thousands of tickets with conversations spread over months, every change an audit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use opsdesk_app::fields::{FieldInput, FieldKind};
use opsdesk_app::people::{GroupInput, MembershipInput, OrganizationInput, UserInput};
use opsdesk_app::{Actor, App, Origin};
use opsdesk_core::fields::FieldOption;
use opsdesk_core::model::{Id, User};
use opsdesk_core::ticket::{CommentInput, TicketInput, Via};
use opsdesk_core::{clock, FixedClock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Organisations to create.
    #[arg(long, default_value_t = 300)]
    pub organizations: usize,
    /// End-users (customers) to create.
    #[arg(long, default_value_t = 1500)]
    pub end_users: usize,
    /// Agents to create (spread over the regional groups).
    #[arg(long, default_value_t = 40)]
    pub agents: usize,
    /// Tickets to create.
    #[arg(long, default_value_t = 5000)]
    pub tickets: usize,
    /// How many days of history.
    #[arg(long, default_value_t = 180)]
    pub days: i64,
    /// Random seed (the same seed gives the same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Password given to the demo admin and agents.
    #[arg(long, default_value = "opsdesk-demo")]
    pub password: String,
}

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "John",
    "Katherine",
    "Niklaus",
    "Sophie",
    "Yukihiro",
    "Anita",
    "Guido",
    "Mary",
    "Bjarne",
    "Joan",
    "Donald",
    "Lynn",
    "Rob",
    "Shafi",
    "Leslie",
    "Fran",
    "Vint",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Backus",
    "Johnson",
    "Wirth",
    "Wilson",
    "Matsumoto",
    "Borg",
    "van Rossum",
    "Keller",
    "Stroustrup",
    "Clarke",
    "Knuth",
    "Conway",
    "Pike",
    "Goldwasser",
    "Lamport",
    "Bilas",
    "Cerf",
];
const SYL: &[&str] = &[
    "ac", "me", "glo", "bex", "tri", "nova", "cor", "lum", "vant", "zen", "quar", "tel", "pix",
    "ori", "sol", "kin", "dra", "vex", "mar", "tec",
];
const SUFFIX: &[&str] = &[
    "Systems",
    "Labs",
    "Corp",
    "Industries",
    "Networks",
    "Health",
    "Bank",
    "Logistics",
    "Software",
    "Energy",
];
const SUBJECTS: &[&str] = &[
    "CI pipeline stuck in pending state",
    "Cannot push to protected branch",
    "SAML SSO login fails after certificate rotation",
    "Runner registration token rejected",
    "License seat count is wrong after renewal",
    "Merge request diff does not load",
    "Upgrade from 16.x to 17.x fails on migration",
    "Container registry cleanup policy not running",
    "Geo secondary out of sync",
    "Invoice shows duplicate charge",
    "API rate limit hit from our integration",
    "Backup restore takes more than 12 hours",
    "Webhooks not delivered to our endpoint",
    "Users cannot reset their password",
    "Performance degradation on large repositories",
    "Emergency: production instance down",
];
const BODIES: &[&str] = &[
    "Hello,\n\nsince this morning we see the problem described in the subject. We have not changed anything on our side. Logs attached below.\n\nThanks",
    "Hi team,\n\nthis is blocking our release. Could you take a look as soon as possible?\n\nBest regards",
    "Good afternoon,\n\nwe followed the documentation step by step but the result is not what it describes. What are we missing?",
    "Hi,\n\nquick question about the behaviour described in the subject: is this expected, and is there a workaround?",
];
const REPLIES: &[&str] = &[
    "Thanks for reaching out. Could you send us the output of the diagnostics command and the exact version you run?",
    "I have reproduced this on a test instance. It matches a known issue; the workaround is described in the linked documentation.",
    "The fix is included in the next patch release. In the meantime, restarting the affected service clears the state.",
    "We looked at the logs you sent: the error comes from the proxy in front of the instance, not from the application.",
];
const CUSTOMER_REPLIES: &[&str] = &[
    "Here is the output you asked for.",
    "That worked, thank you!",
    "We tried that but the problem is still there.",
    "Any update on this?",
];
const NOTES: &[&str] = &[
    "Checked the logs: same stack trace as the known issue.",
    "Escalating to the engineering team for a second opinion.",
    "Customer is on the priority plan; keep an eye on the SLA.",
    "Pairing on this with a colleague tomorrow.",
];

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.gen_range(0..xs.len())]
}

fn err(e: opsdesk_app::AppError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn dropdown(key: &str, title: &str, options: &[&str]) -> FieldInput {
    FieldInput {
        field_type: Some("dropdown".into()),
        key: Some(key.into()),
        title: Some(title.into()),
        custom_field_options: Some(
            options
                .iter()
                .map(|o| FieldOption {
                    id: 0,
                    name: o.to_string(),
                    raw_name: o.to_string(),
                    value: o.to_lowercase().replace(' ', "_"),
                    default: false,
                })
                .collect(),
        ),
        ..Default::default()
    }
}

pub(crate) fn simple(key: &str, title: &str, ty: &str) -> FieldInput {
    FieldInput {
        field_type: Some(ty.into()),
        key: Some(key.into()),
        title: Some(title.into()),
        ..Default::default()
    }
}

pub async fn run(real: App, args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let now = real.now();
    let start = clock::from_unix(now.as_second() - args.days * 86_400);
    let fake = Arc::new(FixedClock::new(start));
    let app = App::new(real.store.clone(), fake.clone());
    let mut rng = StdRng::seed_from_u64(args.seed);
    let origin = Origin {
        client: Some("opsdesk demo".into()),
        ip_address: None,
        system: None,
    };

    {
        let mut c = app.store.read().await?;
        if c.user_by_email("admin@opsdesk.example").await?.is_some() {
            bail!("this database already has the demo data (admin@opsdesk.example exists); use a fresh --data-dir");
        }
    }
    let mut tx = app.store.write().await?;
    let admin = app
        .create_user_cli(
            &mut tx,
            UserInput {
                name: Some("Demo Admin".into()),
                email: Some(Some("admin@opsdesk.example".into())),
                role: Some("admin".into()),
                password: Some(args.password.clone()),
                verified: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(err)?;
    tx.commit().await?;
    let admin = Actor { user: admin };

    // Organisation fields from the gitlab-support profile.
    for f in [
        simple("salesforce_id", "Salesforce ID", "text"),
        dropdown(
            "support_level",
            "Support level",
            &["Priority", "Standard", "Expired", "Community", "Hold"],
        ),
        simple("arr", "ARR", "decimal"),
        dropdown(
            "sales_segmentation",
            "Sales segmentation",
            &["Enterprise", "Mid-Market", "SMB", "PubSec"],
        ),
        simple("account_owner", "Account owner", "text"),
        dropdown(
            "account_type",
            "Account type",
            &["Customer", "Partner", "Prospect", "Internal"],
        ),
        simple(
            "technical_account_manager",
            "Technical account manager",
            "text",
        ),
        simple("seats", "Seats", "integer"),
        dropdown("org_region", "Region", &["AMER", "EMEA", "APAC"]),
    ] {
        app.save_custom_field(&admin, FieldKind::Organization, None, f)
            .await
            .map_err(err)?;
    }
    let problem_type = app
        .save_ticket_field(
            &admin,
            None,
            FieldInput {
                field_type: Some("tagger".into()),
                title: Some("Problem type".into()),
                visible_in_portal: Some(true),
                editable_in_portal: Some(true),
                custom_field_options: Some(
                    [
                        "Installation",
                        "Upgrade",
                        "CI/CD",
                        "Authentication",
                        "Billing",
                        "Performance",
                    ]
                    .iter()
                    .map(|o| FieldOption {
                        id: 0,
                        name: o.to_string(),
                        raw_name: o.to_string(),
                        value: format!("problem_{}", o.to_lowercase().replace('/', "")),
                        default: false,
                    })
                    .collect(),
                ),
                ..Default::default()
            },
        )
        .await
        .map_err(err)?;
    let version = app
        .save_ticket_field(
            &admin,
            None,
            FieldInput {
                field_type: Some("text".into()),
                title: Some("Product version".into()),
                visible_in_portal: Some(true),
                editable_in_portal: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(err)?;
    app.save_ticket_form(
        &admin,
        None,
        opsdesk_app::fields::FormInput {
            name: Some("Support request".into()),
            ticket_field_ids: Some(vec![problem_type.id, version.id]),
            ..Default::default()
        },
    )
    .await
    .map_err(err)?;

    // Schedules, SLA policies and automations from the gitlab-support profile.
    gitlab_rules(&app, &admin).await?;

    // Groups and agents.
    let group_names = [
        "Support AMER",
        "Support EMEA",
        "Support APAC",
        "Support Operations",
        "Billing",
        "Security",
    ];
    let mut groups = vec![];
    for g in group_names {
        groups.push(
            app.save_group(
                &admin,
                None,
                GroupInput {
                    name: Some(g.into()),
                    description: Some(format!("{g} team")),
                    ..Default::default()
                },
            )
            .await
            .map_err(err)?,
        );
    }
    let mut agents: Vec<(User, Id)> = vec![];
    for i in 0..args.agents {
        let name = format!(
            "{} {}",
            FIRST[i % FIRST.len()],
            LAST[(i * 7 + 3) % LAST.len()]
        );
        let u = app
            .create_user(
                &admin,
                UserInput {
                    name: Some(name),
                    email: Some(Some(format!("agent{}@opsdesk.example", i + 1))),
                    role: Some("agent".into()),
                    password: Some(args.password.clone()),
                    verified: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(err)?;
        let g = &groups[i % 3];
        app.create_group_membership(
            &admin,
            MembershipInput {
                user_id: Some(u.id),
                group_id: Some(g.id),
                ..Default::default()
            },
        )
        .await
        .map_err(err)?;
        if i % 5 == 0 {
            let extra = &groups[3 + (i / 5) % 3];
            app.create_group_membership(
                &admin,
                MembershipInput {
                    user_id: Some(u.id),
                    group_id: Some(extra.id),
                    ..Default::default()
                },
            )
            .await
            .map_err(err)?;
        }
        agents.push((u, g.id));
    }

    // Organisations and their people.
    let mut orgs = vec![];
    for i in 0..args.organizations {
        let stem: String = (0..2).map(|_| *pick(&mut rng, SYL)).collect();
        let mut stem = stem;
        if let Some(f) = stem.get_mut(0..1) {
            f.make_ascii_uppercase();
        }
        let name = format!("{stem} {} {}", pick(&mut rng, SUFFIX), i + 1);
        let domain = format!("{}{}.example", stem.to_lowercase(), i + 1);
        let level = *pick(
            &mut rng,
            &[
                "priority",
                "priority",
                "standard",
                "standard",
                "standard",
                "expired",
                "community",
            ],
        );
        let region = *pick(&mut rng, &["amer", "emea", "apac"]);
        let mut fields = BTreeMap::new();
        fields.insert(
            "salesforce_id".to_string(),
            json!(format!("0016{:011}", rng.gen_range(0..99_999_999_999u64))),
        );
        fields.insert("support_level".to_string(), json!(level));
        fields.insert(
            "arr".to_string(),
            json!(format!("{}.00", rng.gen_range(5_000..2_000_000))),
        );
        fields.insert(
            "sales_segmentation".to_string(),
            json!(*pick(
                &mut rng,
                &["enterprise", "mid-market", "smb", "pubsec"]
            )),
        );
        fields.insert(
            "account_owner".to_string(),
            json!(format!(
                "{} {}",
                pick(&mut rng, FIRST),
                pick(&mut rng, LAST)
            )),
        );
        fields.insert("account_type".to_string(), json!("customer"));
        fields.insert("seats".to_string(), json!(rng.gen_range(10..5000)));
        fields.insert("org_region".to_string(), json!(region));
        let o = app
            .create_organization(
                &admin,
                OrganizationInput {
                    name: Some(name),
                    domain_names: Some(vec![domain.clone()]),
                    shared_tickets: Some(rng.gen_bool(0.3)),
                    shared_comments: Some(rng.gen_bool(0.2)),
                    tags: Some(vec![level.to_string(), region.to_string()]),
                    organization_fields: Some(fields),
                    ..Default::default()
                },
            )
            .await
            .map_err(err)?;
        orgs.push((o, domain));
    }
    let mut customers: Vec<User> = vec![];
    for i in 0..args.end_users {
        let first = *pick(&mut rng, FIRST);
        let last = *pick(&mut rng, LAST);
        let (org, email) = if !orgs.is_empty() && rng.gen_bool(0.85) {
            let (o, d) = &orgs[rng.gen_range(0..orgs.len())];
            (
                Some(o.id),
                format!(
                    "{}.{}{}@{d}",
                    first.to_lowercase(),
                    last.to_lowercase().replace(' ', ""),
                    i
                ),
            )
        } else {
            (None, format!("{}{}@mail.example", first.to_lowercase(), i))
        };
        let u = app
            .create_user(
                &admin,
                UserInput {
                    name: Some(format!("{first} {last}")),
                    email: Some(Some(email)),
                    organization_id: org.map(Some),
                    verified: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(err)?;
        customers.push(u);
    }
    if customers.is_empty() || agents.is_empty() {
        bail!("the demo needs at least one end-user and one agent");
    }

    // Tickets, oldest first, each with its conversation.
    let span = (now.as_second() - start.as_second()).max(1);
    let mut times: Vec<i64> = (0..args.tickets)
        .map(|_| start.as_second() + rng.gen_range(0..span))
        .collect();
    times.sort_unstable();
    let options = [
        "problem_installation",
        "problem_upgrade",
        "problem_cicd",
        "problem_authentication",
        "problem_billing",
        "problem_performance",
    ];
    let mut updates = 0usize;
    for (n, created) in times.into_iter().enumerate() {
        let requester = &customers[rng.gen_range(0..customers.len())];
        let (agent, agent_group) = agents[rng.gen_range(0..agents.len())].clone();
        let age_days = (now.as_second() - created) / 86_400;
        fake.set(clock::from_unix(created));
        let subject = *pick(&mut rng, SUBJECTS);
        let priority = if subject.starts_with("Emergency") {
            "urgent"
        } else {
            *pick(&mut rng, &["low", "normal", "normal", "normal", "high"])
        };
        let input = TicketInput {
            subject: Some(subject.into()),
            comment: Some(CommentInput {
                body: Some(pick(&mut rng, BODIES).to_string()),
                author_id: Some(requester.id),
                public: Some(true),
                ..Default::default()
            }),
            requester_id: Some(requester.id),
            priority: Some(Some(priority.into())),
            ticket_type: Some(Some(
                (*pick(
                    &mut rng,
                    &["question", "question", "incident", "problem", "task"],
                ))
                .into(),
            )),
            tags: Some(vec![pick(
                &mut rng,
                &["gitlab_com", "self_managed", "dedicated"],
            )
            .to_string()]),
            custom_fields: Some(vec![
                opsdesk_core::ticket::CustomFieldInput {
                    id: problem_type.id,
                    value: json!(*pick(&mut rng, &options)),
                },
                opsdesk_core::ticket::CustomFieldInput {
                    id: version.id,
                    value: json!(format!(
                        "17.{}.{}",
                        rng.gen_range(0..11),
                        rng.gen_range(0..6)
                    )),
                },
            ]),
            ..Default::default()
        };
        let via = Via::channel(if rng.gen_bool(0.7) { "email" } else { "web" });
        let (t, _) = app
            .create_ticket(&admin, input, via, &origin)
            .await
            .map_err(err)?;
        // Where the ticket ends up depends on its age.
        let final_status = match age_days {
            0..=1 => *pick(&mut rng, &["new", "open", "open"]),
            2..=7 => *pick(&mut rng, &["open", "pending", "hold", "solved"]),
            8..=14 => *pick(&mut rng, &["pending", "solved", "solved", "open"]),
            _ => *pick(&mut rng, &["closed", "closed", "closed", "solved"]),
        };
        if final_status == "new" {
            continue;
        }
        let agent_actor = Actor {
            user: agent.clone(),
        };
        let mut at = created;
        let mut step = |rng: &mut StdRng, hours: f64| {
            at = (at + (rng.gen_range(0.1..hours) * 3600.0) as i64).min(now.as_second() - 60);
            at
        };
        fake.set(clock::from_unix(step(&mut rng, 20.0)));
        let first_reply = TicketInput {
            assignee_id: Some(Some(agent.id)),
            group_id: Some(Some(agent_group)),
            status: Some(if final_status == "open" {
                "open".into()
            } else {
                "pending".into()
            }),
            comment: Some(CommentInput {
                body: Some(pick(&mut rng, REPLIES).to_string()),
                public: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        app.update_ticket(&agent_actor, t.id, first_reply, &origin)
            .await
            .map_err(err)?;
        updates += 1;
        if rng.gen_bool(0.4) {
            fake.set(clock::from_unix(step(&mut rng, 6.0)));
            let note = TicketInput {
                comment: Some(CommentInput {
                    body: Some(pick(&mut rng, NOTES).to_string()),
                    public: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            };
            app.update_ticket(&agent_actor, t.id, note, &origin)
                .await
                .map_err(err)?;
            updates += 1;
        }
        if final_status == "open" || final_status == "pending" && rng.gen_bool(0.5) {
            continue;
        }
        fake.set(clock::from_unix(step(&mut rng, 48.0)));
        let reply = TicketInput {
            status: Some("open".into()),
            comment: Some(CommentInput {
                body: Some(pick(&mut rng, CUSTOMER_REPLIES).to_string()),
                author_id: Some(requester.id),
                public: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        app.update_ticket(&agent_actor, t.id, reply, &origin)
            .await
            .map_err(err)?;
        updates += 1;
        let status = match final_status {
            "closed" | "solved" => "solved",
            s => s,
        };
        fake.set(clock::from_unix(step(&mut rng, 24.0)));
        let answer = TicketInput {
            status: Some(status.into()),
            comment: Some(CommentInput {
                body: Some(pick(&mut rng, REPLIES).to_string()),
                public: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        app.update_ticket(&agent_actor, t.id, answer, &origin)
            .await
            .map_err(err)?;
        updates += 1;
        if final_status == "closed" {
            at += 4 * 86_400;
            fake.set(clock::from_unix(at.min(now.as_second() - 60)));
            app.update_ticket(
                &admin,
                t.id,
                TicketInput {
                    status: Some("closed".into()),
                    ..Default::default()
                },
                &origin,
            )
            .await
            .map_err(err)?;
            updates += 1;
        }
        if (n + 1) % 1000 == 0 {
            eprintln!("demo: {} tickets…", n + 1);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "demo data: {} organisations, {} end-users, {} agents in {} groups, {} tickets with {} updates, in {:.1} s",
        orgs.len(),
        customers.len(),
        agents.len(),
        groups.len(),
        args.tickets,
        updates,
        secs
    );
    println!(
        "sign in as admin@opsdesk.example or agent1@opsdesk.example with password {:?}",
        args.password
    );
    Ok(())
}

/// The gitlab-support profile's schedules (24x5 "Business Hours" first, so it is the default;
/// 24x7), its priority × plan SLA policies, and its pending/solved/on-hold automations.
/// GitLab's "Business Hours": Sunday 15:00 to Friday 17:00 Pacific, one interval per calendar
/// day as Zendesk writes it.
pub fn gitlab_business_hours() -> Vec<opsdesk_core::business_hours::Interval> {
    use opsdesk_core::business_hours::Interval;
    let day = 1440;
    let mut iv = vec![Interval {
        start_time: 15 * 60,
        end_time: day,
    }];
    for d in 1..=4 {
        iv.push(Interval {
            start_time: d * day,
            end_time: (d + 1) * day,
        });
    }
    iv.push(Interval {
        start_time: 5 * day,
        end_time: 5 * day + 17 * 60,
    });
    iv
}

async fn gitlab_rules(app: &App, admin: &Actor) -> Result<()> {
    use opsdesk_app::business_hours::ScheduleInput;
    use opsdesk_app::sla::SlaPolicyInput;
    use opsdesk_core::business_hours::Interval;
    use opsdesk_core::rules::{Action, Automation, Condition, Conditions};
    use opsdesk_core::sla::PolicyMetric;
    let day = 1440;
    let iv = gitlab_business_hours();
    for (name, intervals) in [
        ("Business Hours", iv),
        (
            "24x7",
            vec![Interval {
                start_time: 0,
                end_time: 7 * day,
            }],
        ),
    ] {
        app.save_schedule(
            admin,
            None,
            ScheduleInput {
                name: Some(name.into()),
                time_zone: Some("Pacific Time (US & Canada)".into()),
                intervals: Some(intervals),
            },
        )
        .await
        .map_err(err)?;
    }
    let c = |f: &str, o: &str, v: serde_json::Value| Condition {
        field: f.into(),
        operator: o.into(),
        value: v,
    };
    let a = |f: &str, v: serde_json::Value| Action {
        field: f.into(),
        value: v,
    };
    let level = |l: &str| Conditions {
        all: vec![c(
            "organization.custom_fields_support_level",
            "is",
            json!(l),
        )],
        any: vec![],
    };
    let pm = |p: &str, m: &str, target: i64, bh: bool| PolicyMetric {
        priority: p.into(),
        metric: m.into(),
        target,
        business_hours: bh,
    };
    let mut priority = vec![];
    for m in ["first_reply_time", "next_reply_time"] {
        priority.push(pm("urgent", m, 30, false));
        priority.push(pm("high", m, 240, true));
        priority.push(pm("normal", m, 480, true));
        priority.push(pm("low", m, 1440, true));
    }
    let standard: Vec<PolicyMetric> = ["urgent", "high", "normal", "low"]
        .iter()
        .map(|p| pm(p, "first_reply_time", 1440, true))
        .collect();
    for (title, filter, metrics) in [
        ("Priority support", level("priority"), priority),
        ("Standard support", level("standard"), standard),
    ] {
        app.save_sla_policy(
            admin,
            None,
            SlaPolicyInput {
                title: Some(title.into()),
                filter: Some(filter),
                policy_metrics: Some(metrics),
                ..Default::default()
            },
        )
        .await
        .map_err(err)?;
    }
    let autos = vec![
        ("Pending reminder after 7 days", vec![c("status", "is", json!("pending")), c("PENDING", "is", json!("168"))],
         vec![a("notification_user", json!(["requester_id", "Do you still need help with {{ticket.title}}?", "Hello {{ticket.requester.first_name}}, we are waiting for your reply on ticket #{{ticket.id}}."]))]),
        ("Solve pending after 14 days", vec![c("status", "is", json!("pending")), c("PENDING", "greater_than", json!("336")), c("current_tags", "not_includes", json!("skip_autosolve"))],
         vec![a("status", json!("solved"))]),
        ("Close solved after 7 days", vec![c("status", "is", json!("solved")), c("SOLVED", "greater_than", json!("168")), c("current_tags", "not_includes", json!("skip_autoclose"))],
         vec![a("status", json!("closed"))]),
        ("Reopen on-hold after 4 days", vec![c("status", "is", json!("hold")), c("HOLD", "greater_than", json!("96"))],
         vec![a("status", json!("open"))]),
    ];
    for (title, all, actions) in autos {
        app.save_rule::<Automation>(
            admin,
            None,
            opsdesk_app::rules::TriggerInput {
                title: Some(title.into()),
                conditions: Some(Conditions { all, any: vec![] }),
                actions: Some(actions),
                ..Default::default()
            },
        )
        .await
        .map_err(err)?;
    }
    // The agent workspace's views and the macros agents reach for first.
    let views = [
        json!({"title": "Your unsolved tickets", "all": [{"field": "status", "operator": "less_than", "value": "solved"}, {"field": "assignee_id", "operator": "is", "value": "current_user"}],
               "output": {"columns": ["subject", "requester", "status", "priority", "updated", "sla_next_breach_at"], "sort_by": "updated_at", "sort_order": "desc"}}),
        json!({"title": "Unassigned tickets", "all": [{"field": "status", "operator": "less_than", "value": "solved"}, {"field": "assignee_id", "operator": "is", "value": ""}],
               "output": {"columns": ["subject", "requester", "organization", "priority", "created", "sla_next_breach_at"], "sort_by": "created_at", "sort_order": "asc"}}),
        json!({"title": "All unsolved tickets", "all": [{"field": "status", "operator": "less_than", "value": "solved"}],
               "output": {"columns": ["subject", "requester", "assignee", "group", "status", "updated"], "sort_by": "updated_at", "sort_order": "desc"}}),
        json!({"title": "Pending tickets", "all": [{"field": "status", "operator": "is", "value": "pending"}],
               "output": {"columns": ["subject", "requester", "assignee", "updated"], "sort_by": "updated_at", "sort_order": "asc"}}),
        json!({"title": "Recently solved tickets", "all": [{"field": "status", "operator": "is", "value": "solved"}],
               "output": {"columns": ["subject", "requester", "assignee", "updated"], "sort_by": "updated_at", "sort_order": "desc"}}),
    ];
    for v in views {
        let input = serde_json::from_value(v)?;
        app.save_view(admin, None, input).await.map_err(err)?;
    }
    let macros = [
        json!({"title": "Ask for logs", "actions": [{"field": "comment_value", "value": "Hi {{ticket.requester.first_name}},\n\nCould you send us the output of `gitlab-rake gitlab:env:info` and the relevant log files? That will let us narrow this down.\n\nThanks!"}, {"field": "status", "value": "pending"}]}),
        json!({"title": "Escalate to Support Ops", "actions": [{"field": "comment_value", "value": "Escalating: needs a second pair of eyes."}, {"field": "comment_mode_is_public", "value": "false"}, {"field": "priority", "value": "high"}, {"field": "current_tags", "value": "escalated"}]}),
        json!({"title": "Solved: answered", "actions": [{"field": "comment_value", "value": "Glad that worked. I'll mark this solved; reply any time if it comes back."}, {"field": "status", "value": "solved"}]}),
    ];
    for m in macros {
        let input = serde_json::from_value(m)?;
        app.save_macro(admin, None, input).await.map_err(err)?;
    }
    Ok(())
}
