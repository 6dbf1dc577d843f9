//! Sign-in, sessions and forms. The session cookie (`opsdesk_session`, HttpOnly, SameSite=Lax,
//! Secure over https) holds a random token whose hash the database keeps with the session's
//! CSRF token; every form and every htmx request carries that CSRF token. The sign-in form
//! itself is protected by a double-submit cookie (`opsdesk_login`), and failed sign-ins are
//! limited per client address.

use std::net::SocketAddr;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use opsdesk_app::Actor;

use crate::{see_other, WebError, WebResult, WebState};

pub const SESSION_COOKIE: &str = "opsdesk_session";
const LOGIN_COOKIE: &str = "opsdesk_login";

/// A signed-in user on a page request.
pub struct Session {
    pub actor: Actor,
    pub csrf: String,
    token: String,
}

impl Session {
    /// Staff only (agent workspace).
    pub fn staff(self) -> WebResult<Session> {
        if self.actor.is_staff() {
            Ok(self)
        } else {
            Err(WebError::Forbidden(
                "This page is for agents. Your requests are in the portal.".into(),
            ))
        }
    }

    /// Admins only.
    pub fn admin(self) -> WebResult<Session> {
        if self.actor.is_admin() {
            Ok(self)
        } else {
            Err(WebError::Forbidden(
                "Only administrators may change the configuration.".into(),
            ))
        }
    }

    /// A form's CSRF token must be this session's.
    pub fn check(&self, form: &Form) -> WebResult<()> {
        if constant_time_eq(
            form.get("csrf").unwrap_or("").as_bytes(),
            self.csrf.as_bytes(),
        ) {
            Ok(())
        } else {
            Err(WebError::Csrf)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<WebState> for Session {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, st: &WebState) -> Result<Self, WebError> {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let htmx = parts.headers.contains_key("hx-request");
        let signin = |next: String| {
            if htmx {
                WebError::SignInHtmx(next)
            } else {
                WebError::SignIn(next)
            }
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(signin(next));
        };
        match st.app.web_session(token).await {
            Ok((actor, csrf)) => Ok(Session {
                actor,
                csrf,
                token: token.to_string(),
            }),
            Err(opsdesk_app::AppError::Unauthorized) => Err(signin(next)),
            Err(e) => Err(WebError::from_app(e)),
        }
    }
}

/// An `application/x-www-form-urlencoded` body, in order (repeated keys kept).
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    /// A non-empty, trimmed value.
    pub fn text(&self, k: &str) -> Option<&str> {
        self.get(k).map(str::trim).filter(|s| !s.is_empty())
    }
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                WebError::TooLarge
            } else {
                WebError::Malformed("The form could not be read.".into())
            }
        })?;
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(&bytes).into_owned().collect();
        if pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(WebError::Malformed(
                "The form contains a NUL character.".into(),
            ));
        }
        Ok(Form(pairs))
    }
}

fn set_cookie(st: &WebState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if st.secure_cookies { "; Secure" } else { "" };
    let s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("x=; Max-Age=0"))
}

/// A new session: its cookie set, the sign-in form's cookie cleared, on to `to`.
fn signed_in(st: &WebState, to: &str, token: &str) -> Response {
    let mut resp = see_other(to);
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            st,
            SESSION_COOKIE,
            token,
            opsdesk_app::sessions::SESSION_SECONDS,
        ),
    );
    h.append(header::SET_COOKIE, set_cookie(st, LOGIN_COOKIE, "", 0));
    resp
}

/// Where a signed-in user lands: agents in their views, customers in the portal.
fn landing(actor: &Actor) -> &'static str {
    if actor.is_staff() {
        "/agent"
    } else {
        "/portal"
    }
}

/// Only same-site paths (never `//host` or a scheme) may follow a sign-in.
/// Browsers drop tabs and newlines from URLs (`/\t/evil` becomes `//evil`), so any control
/// character, a backslash or a leading `//` is refused.
pub(crate) fn safe_path(next: Option<&str>) -> Option<String> {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && n.len() <= 2000
            && !n.chars().any(|c| c.is_control() || c == '\\')
    })
    .map(str::to_string)
}

pub async fn home(st: State<WebState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Ok((actor, _)) = st.app.web_session(token).await {
            return see_other(landing(&actor));
        }
    }
    see_other("/login")
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    error: Option<String>,
    notice: Option<String>,
    email: String,
}

fn login_form(
    st: &WebState,
    headers: &HeaderMap,
    next: &str,
    error: Option<String>,
    notice: Option<String>,
    email: &str,
    status: axum::http::StatusCode,
) -> WebResult<Response> {
    // Another tab's sign-in form keeps working: an existing token is reused.
    let csrf = cookie(headers, LOGIN_COOKIE)
        .filter(|c| c.len() == 40 && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
        .map(str::to_string)
        .unwrap_or_else(opsdesk_app::auth::new_token);
    let page = LoginPage {
        csrf: csrf.clone(),
        next: next.to_string(),
        error,
        notice,
        email: email.to_string(),
    };
    let mut resp = crate::page(&page)?;
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(st, LOGIN_COOKIE, &csrf, 3600),
    );
    Ok(resp)
}

pub async fn login_page(
    st: State<WebState>,
    headers: HeaderMap,
    q: axum::extract::Query<Vec<(String, String)>>,
) -> WebResult<Response> {
    let next =
        q.0.iter()
            .find(|(k, _)| k == "next")
            .and_then(|(_, v)| safe_path(Some(v)))
            .unwrap_or_default();
    let notice = q
        .0
        .iter()
        .any(|(k, _)| k == "link_sent")
        .then(|| "If that address has an account, a sign-in link is on its way. It works once, for 15 minutes.".to_string());
    login_form(
        &st,
        &headers,
        &next,
        None,
        notice,
        "",
        axum::http::StatusCode::OK,
    )
}

pub async fn login(
    st: State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Form,
) -> WebResult<Response> {
    check_login_cookie(&headers, &form)?;
    // Attempts are counted before the password is checked (so parallel requests cannot
    // outrun the count) and keyed on the connecting address, never on X-Forwarded-For,
    // which a client writes itself.
    let ip = peer.ip();
    let account = email_key(&form);
    // The address's limits first; the account's only counts attempts the address was allowed
    // to make, so one address cannot use up an account's allowance and lock it out.
    if let Err(l) = st
        .address_attempts
        .check(ip)
        .and_then(|_| st.attempts.check((account.clone(), ip)))
        .and_then(|_| st.account_attempts.check(account))
    {
        return Err(WebError::TooMany(l.retry_after));
    }
    let email = form.get("email").unwrap_or("").trim().to_string();
    let next = safe_path(form.get("next")).unwrap_or_default();
    match st
        .app
        .sign_in(&email, form.get("password").unwrap_or(""))
        .await
    {
        Ok((actor, s)) => {
            let to = if next.is_empty() {
                landing(&actor).to_string()
            } else {
                next
            };
            tracing::info!(user.id = actor.id(), "signed in");
            Ok(signed_in(&st, &to, &s.token))
        }
        Err(opsdesk_app::AppError::Unauthorized) => login_form(
            &st,
            &headers,
            &next,
            Some("That email and password do not match an active account.".into()),
            None,
            &email,
            axum::http::StatusCode::UNAUTHORIZED,
        ),
        Err(e) => Err(WebError::from_app(e)),
    }
}

/// The form's email as the sign-in limits count it: trimmed, lower-case, at most 320
/// characters (the longest address there is).
fn email_key(form: &Form) -> String {
    form.get("email")
        .unwrap_or("")
        .trim()
        .to_lowercase()
        .chars()
        .take(320)
        .collect()
}

/// The sign-in forms (password, link request, link confirmation) carry the `opsdesk_login`
/// cookie's token: a cross-site page cannot sign a browser in as someone else.
fn check_login_cookie(headers: &HeaderMap, form: &Form) -> WebResult<()> {
    let expected = cookie(headers, LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty()
        || !constant_time_eq(
            form.get("csrf").unwrap_or("").as_bytes(),
            expected.as_bytes(),
        )
    {
        return Err(WebError::Csrf);
    }
    Ok(())
}

pub async fn logout(st: State<WebState>, s: Session, form: Form) -> WebResult<Response> {
    s.check(&form)?;
    st.app.sign_out(&s.token).await?;
    let mut resp = see_other("/login");
    resp.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&st, SESSION_COOKIE, "", 0));
    Ok(resp)
}

/// Ask for a one-time sign-in link by email (the portal's password-less sign-in).
pub async fn send_link(
    st: State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Form,
) -> WebResult<Response> {
    check_login_cookie(&headers, &form)?;
    let email = email_key(&form);
    if let Err(l) = st
        .login_links
        .check(peer.ip())
        .and_then(|_| st.links_per_email.check(email.clone()))
    {
        return Err(WebError::TooMany(l.retry_after));
    }
    st.app.send_login_link(&email).await?;
    Ok(see_other("/login?link_sent=1"))
}

#[derive(Template)]
#[template(path = "login_link.html")]
struct LinkPage {
    csrf: String,
    token: String,
}

/// A mailed link opens a page with one button: mail scanners that fetch links do not use
/// the link up, and a link sent by someone else cannot sign you in without your click on
/// this site's own form.
pub async fn link_page(
    st: State<WebState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> WebResult<Response> {
    let csrf = cookie(&headers, LOGIN_COOKIE)
        .filter(|c| c.len() == 40 && c.chars().all(|ch| ch.is_ascii_alphanumeric()))
        .map(str::to_string)
        .unwrap_or_else(opsdesk_app::auth::new_token);
    let mut resp = crate::page(&LinkPage {
        csrf: csrf.clone(),
        token: token
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(200)
            .collect(),
    })?;
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&st, LOGIN_COOKIE, &csrf, 3600),
    );
    Ok(resp)
}

pub async fn redeem_link(
    st: State<WebState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: Form,
) -> WebResult<Response> {
    check_login_cookie(&headers, &form)?;
    match st.app.redeem_login_link(&token).await {
        Ok((actor, s)) => {
            tracing::info!(user.id = actor.id(), "signed in with a link");
            Ok(signed_in(&st, landing(&actor), &s.token))
        }
        Err(opsdesk_app::AppError::Unauthorized) => login_form(
            &st,
            &headers,
            "",
            Some("That sign-in link has been used or has expired. Ask for a new one below.".into()),
            None,
            "",
            axum::http::StatusCode::UNAUTHORIZED,
        ),
        Err(e) => Err(WebError::from_app(e)),
    }
}
