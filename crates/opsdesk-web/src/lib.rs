//! opsdesk web interface: server-rendered pages for agents (`/agent`), admins (`/admin`) and
//! customers (`/portal`), with sign-in (`/login`). Handlers read the session, call the same
//! use cases as the API on [`opsdesk_app::App`], and render askama templates; assets (htmx,
//! the stylesheet, a little script) are embedded in the binary. See docs/web.md.

mod admin;
mod agent;
mod assets;
mod chart;
mod manager;
mod portal;
mod records;
mod session;
mod view;

use std::net::IpAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use opsdesk_app::limits::RateLimiter;
use opsdesk_app::{App, AppError};

pub use session::{Session, SESSION_COOKIE};

/// Sign-in attempts (right or wrong) allowed per account and address per minute; then 429
/// with Retry-After until the minute is over.
pub const SIGN_IN_ATTEMPTS_PER_MINUTE: u32 = 10;
/// Sign-in attempts per account per minute from all addresses together: slows guessing
/// spread over many addresses without letting one address lock an account out.
pub const SIGN_IN_ATTEMPTS_PER_ACCOUNT: u32 = 50;
/// Sign-in attempts per connecting address per minute, whatever the accounts.
pub const SIGN_IN_ATTEMPTS_PER_ADDRESS: u32 = 100;
/// Sign-in links a client address may ask for per minute.
pub const LOGIN_LINKS_PER_MINUTE: u32 = 5;
/// Sign-in links sent to one address per minute.
pub const LOGIN_LINKS_PER_EMAIL: u32 = 2;

/// Shared state of every page handler.
#[derive(Clone)]
pub struct WebState {
    pub app: App,
    /// Sign-in attempts per (account, address), per account, per address.
    attempts: Arc<RateLimiter<(String, IpAddr)>>,
    account_attempts: Arc<RateLimiter<String>>,
    address_attempts: Arc<RateLimiter<IpAddr>>,
    /// Sign-in link requests per client address and per email.
    login_links: Arc<RateLimiter<IpAddr>>,
    links_per_email: Arc<RateLimiter<String>>,
    /// Cookies get `Secure` when the public URL is https.
    secure_cookies: bool,
}

/// The web interface's routes (merged beside `/api/v2` by the binary).
pub fn router(app: App) -> Router {
    let secure_cookies = app.public_url.starts_with("https://");
    let state = WebState {
        app,
        attempts: Arc::new(RateLimiter::new(SIGN_IN_ATTEMPTS_PER_MINUTE)),
        account_attempts: Arc::new(RateLimiter::new(SIGN_IN_ATTEMPTS_PER_ACCOUNT)),
        address_attempts: Arc::new(RateLimiter::new(SIGN_IN_ATTEMPTS_PER_ADDRESS)),
        login_links: Arc::new(RateLimiter::new(LOGIN_LINKS_PER_MINUTE)),
        links_per_email: Arc::new(RateLimiter::new(LOGIN_LINKS_PER_EMAIL)),
        secure_cookies,
    };
    Router::new()
        .route("/", get(session::home))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/assets/{name}", get(assets::serve))
        .route("/agent", get(agent::home))
        .route("/agent/view_counts", get(agent::view_counts))
        .route("/agent/views/{id}", get(agent::view))
        .route("/agent/bulk", post(agent::bulk))
        .route("/agent/search", get(agent::search))
        .route(
            "/agent/tickets/new",
            get(agent::new_ticket).post(agent::create_ticket),
        )
        .route(
            "/agent/tickets/{id}",
            get(agent::ticket).post(agent::update_ticket),
        )
        .route(
            "/agent/tickets/{id}/macro_preview",
            get(agent::macro_preview),
        )
        .route("/agent/tickets/{id}/macro", post(agent::apply_macro))
        .route("/admin", get(admin::home))
        .route("/admin/{kind}", get(admin::list))
        .route("/admin/{kind}/{id}/active", post(admin::set_active))
        .route("/admin/{kind}/{id}/move", post(admin::move_item))
        .route("/admin/schedules/{id}/holidays", post(records::holiday))
        .route("/admin/{kind}/new", get(admin::new_rule))
        .route("/admin/{kind}/save", post(admin::save_rule))
        .route("/admin/{kind}/{id}/edit", get(admin::edit_rule))
        .route("/manager", get(manager::overview))
        .route("/manager/team", get(manager::team))
        .route("/manager/engineers/{id}", get(manager::engineer))
        .route("/manager/week", get(manager::week))
        .route("/manager/kpis/{name}", get(manager::csv))
        .route("/portal", get(portal::home))
        .route(
            "/portal/new",
            get(portal::new_request).post(portal::create_request),
        )
        .route(
            "/portal/tickets/{id}",
            get(portal::request).post(portal::reply),
        )
        .route("/portal/link", post(session::send_link))
        .route(
            "/portal/link/{token}",
            get(session::link_page).post(session::redeem_link),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            WebError::Internal.into_response()
        }))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Every page: no framing, no sniffing, no referrer leaks, scripts only from ourselves.
async fn security_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// A failed page request, rendered as an HTML page (or a redirect to sign in).
#[derive(Debug)]
pub enum WebError {
    /// Not signed in (or the session ended): to the sign-in page, then back.
    SignIn(String),
    /// The same for an htmx request: 401 with `HX-Redirect`, so the whole page goes.
    SignInHtmx(String),
    /// A body over the limit.
    TooLarge,
    NotFound,
    Forbidden(String),
    /// A form that does not carry the session's CSRF token.
    Csrf,
    BadRequest(String),
    /// A request that cannot be read at all (400).
    Malformed(String),
    TooMany(u64),
    Internal,
}

impl WebError {
    pub fn from_app(e: AppError) -> WebError {
        match e {
            AppError::NotFound => WebError::NotFound,
            AppError::Unauthorized => WebError::SignIn("/".into()),
            AppError::Forbidden(m) => WebError::Forbidden(m),
            AppError::Invalid(i) => WebError::BadRequest(view::invalid_messages(&i).join(" ")),
            AppError::BadRequest(m) | AppError::InvalidQuery(m) | AppError::Conflict(m) => {
                WebError::BadRequest(m)
            }
            AppError::Unavailable(m) | AppError::Internal(m) => {
                tracing::error!(error = %m, "web request failed");
                WebError::Internal
            }
        }
    }
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        WebError::from_app(e)
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "template failed");
        WebError::Internal
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            WebError::SignIn(next) => {
                let to = format!("/login?next={}", view::url_encode(next));
                return Redirect::to(&to).into_response();
            }
            WebError::SignInHtmx(next) => {
                let to = format!("/login?next={}", view::url_encode(next));
                let mut r = StatusCode::UNAUTHORIZED.into_response();
                if let Ok(v) = HeaderValue::from_str(&to) {
                    r.headers_mut().insert("hx-redirect", v);
                }
                return r;
            }
            WebError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The form is larger than this server accepts.".to_string(),
            ),
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or it is not yours to see.".to_string(),
            ),
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m.clone()),
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not sent from your current session. Go back, reload the page and try again.".into(),
            ),
            WebError::BadRequest(m) => (StatusCode::UNPROCESSABLE_ENTITY, "Not saved", m.clone()),
            WebError::Malformed(m) => (StatusCode::BAD_REQUEST, "Bad request", m.clone()),
            WebError::TooMany(s) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                format!("Too many attempts from your address. Try again in {s} seconds."),
            ),
            WebError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Something went wrong on our side; it has been logged.".into(),
            ),
        };
        let page = ErrorPage {
            status: status.as_u16(),
            title,
            message: &message,
        };
        let mut resp = match page.render() {
            Ok(body) => (status, html_headers(), body).into_response(),
            Err(_) => (status, message).into_response(),
        };
        if let WebError::TooMany(s) = self {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

pub type WebResult<T> = Result<T, WebError>;

fn html_headers() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

/// Render a template as a 200 page.
pub fn page<T: Template>(t: &T) -> WebResult<Response> {
    Ok((StatusCode::OK, html_headers(), t.render()?).into_response())
}

/// After a successful form: see the result (303, so a reload does not post again).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn origin(headers: &HeaderMap) -> opsdesk_app::Origin {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    opsdesk_app::Origin::of_client(h("user-agent"), h("x-forwarded-for"))
}
