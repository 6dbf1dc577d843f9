//! `/api/v2/users…`, `/organizations…`, memberships, `/groups…`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_app::people::{GroupInput, MembershipInput, OrganizationInput, UserFilter, UserInput};
use opsdesk_core::model::Role;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{id, Auth, JsonBody, Query};
use crate::render::Ctx;
use crate::AppState;

/// What an end-user may see of a user or organisation record: not the staff's notes, details,
/// tags or custom fields.
fn for_viewer(mut v: Value, viewer: &opsdesk_app::Actor) -> Value {
    if !viewer.is_staff() {
        if let Value::Object(m) = &mut v {
            for k in [
                "notes",
                "details",
                "tags",
                "user_fields",
                "organization_fields",
                "external_id",
                "suspended",
                "moderator",
                "restricted_agent",
                "only_private_comments",
                "ticket_restriction",
                "shared",
                "signature",
            ] {
                m.remove(k);
            }
        }
    }
    v
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

// ---- users -----------------------------------------------------------------------------

pub async fn users(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
    p: Option<Path<String>>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let mut f = UserFilter {
        external_id: q.get("external_id").map(str::to_string),
        ..Default::default()
    };
    for key in ["role", "role[]"] {
        for r in q.all(key) {
            for r in r.split(',') {
                f.roles.push(Role::parse(r).ok_or_else(|| {
                    ApiError::BadRequest(format!("role '{r}' is not one of end-user, agent, admin"))
                })?);
            }
        }
    }
    if let Some(Path(pid)) = p {
        let pid = id(&pid)?;
        if uri.path().contains("/groups/") {
            f.group_id = Some(pid);
        } else {
            f.organization_id = Some(pid);
        }
    }
    let p = st.app.list_users(&a, &f, &page).await?;
    let items = p.items.iter().map(|u| ctx.rec(u, "users")).collect();
    Ok(Json(ctx.page("users", &page, &p, items, |u| u.id)))
}

pub async fn user(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(uid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let u = st.app.get_user(&a, id(&uid)?).await?;
    Ok(Json(json!({"user": for_viewer(ctx.rec(&u, "users"), &a)})))
}

pub async fn me(
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    Ok(Json(
        json!({"user": for_viewer(ctx.rec(&a.user, "users"), &a)}),
    ))
}

pub async fn show_many_users(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    a.require_staff().map_err(ApiError::from)?;
    let ctx = Ctx::new(&h, &uri);
    if q.get("external_ids").is_some() {
        return Err(ApiError::BadRequest(
            "show_many by external_ids is not supported yet; use ids".into(),
        ));
    }
    let ids = q.ids("ids")?;
    if ids.len() > 100 {
        return Err(ApiError::BadRequest("at most 100 ids".into()));
    }
    let us = st.app.users_by_ids(&ids).await?;
    Ok(Json(ctx.all(
        "users",
        us.iter().map(|u| ctx.rec(u, "users")).collect(),
    )))
}

pub async fn search_users(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let us = st
        .app
        .search_users(&a, q.get("query"), q.get("email"), q.get("external_id"))
        .await?;
    Ok(Json(ctx.all(
        "users",
        us.iter().map(|u| ctx.rec(u, "users")).collect(),
    )))
}

pub async fn create_user(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: UserInput = body.take("user")?;
    let u = st.app.create_user(&a, input).await?;
    Ok(created(json!({"user": ctx.rec(&u, "users")})))
}

pub async fn update_user(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(uid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let input: UserInput = body.take("user")?;
    let u = st.app.update_user(&a, id(&uid)?, input).await?;
    Ok(Json(json!({"user": for_viewer(ctx.rec(&u, "users"), &a)})))
}

pub async fn create_or_update_user(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: UserInput = body.take("user")?;
    let (u, new) = st.app.create_or_update_user(&a, input).await?;
    let v = json!({"user": ctx.rec(&u, "users")});
    Ok(if new {
        created(v)
    } else {
        Json(v).into_response()
    })
}

pub async fn delete_user(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(uid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let u = st.app.delete_user(&a, id(&uid)?).await?;
    Ok(Json(json!({"user": for_viewer(ctx.rec(&u, "users"), &a)})))
}

pub async fn identities(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(uid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let uid = id(&uid)?;
    let is = st.app.user_identities(&a, uid).await?;
    let items = is.iter().map(|i| {
        let mut v = serde_json::to_value(i).unwrap_or(Value::Null);
        v["url"] = json!(ctx.url(&format!("users/{uid}/identities/{}", i.id)));
        v
    });
    Ok(Json(ctx.all("identities", items.collect())))
}

pub async fn set_password(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(uid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let pw: String = body
        .opt("password")?
        .ok_or_else(|| ApiError::BadRequest("The request body needs \"password\"".into()))?;
    st.app.set_password(Some(&a), id(&uid)?, &pw).await?;
    Ok(Json(json!({})))
}

/// `PUT /users/{id}/password`: a user changes their own password with the previous one.
pub async fn change_password(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(uid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    if id(&uid)? != a.id() {
        return Err(opsdesk_app::AppError::Forbidden(
            "You can only change your own password".into(),
        )
        .into());
    }
    let pw: String = body
        .opt("password")?
        .ok_or_else(|| ApiError::BadRequest("The request body needs \"password\"".into()))?;
    let prev: String = body.opt("previous_password")?.ok_or_else(|| {
        ApiError::BadRequest("The request body needs \"previous_password\"".into())
    })?;
    st.app.change_own_password(&a, &prev, &pw).await?;
    Ok(Json(json!({})))
}

// ---- organisations ---------------------------------------------------------------------

pub async fn organizations(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let p = st.app.list_organizations(&a, &page).await?;
    let items = p
        .items
        .iter()
        .map(|o| ctx.rec(o, "organizations"))
        .collect();
    Ok(Json(ctx.page("organizations", &page, &p, items, |o| o.id)))
}

pub async fn user_organizations(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(uid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let uid = id(&uid)?;
    let ms = st
        .app
        .list_org_memberships(&a, Some(uid), None, &opsdesk_app::Page::All { limit: 1000 })
        .await?;
    let ids: Vec<i64> = ms.items.iter().map(|m| m.organization_id).collect();
    let os = st.app.organizations_by_ids(&ids).await?;
    Ok(Json(ctx.all(
        "organizations",
        os.iter().map(|o| ctx.rec(o, "organizations")).collect(),
    )))
}

pub async fn organization(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(oid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let o = st.app.get_organization(&a, id(&oid)?).await?;
    Ok(Json(
        json!({"organization": for_viewer(ctx.rec(&o, "organizations"), &a)}),
    ))
}

pub async fn show_many_organizations(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    a.require_staff().map_err(ApiError::from)?;
    let ctx = Ctx::new(&h, &uri);
    if q.get("external_ids").is_some() {
        return Err(ApiError::BadRequest(
            "show_many by external_ids is not supported yet; use ids".into(),
        ));
    }
    let ids = q.ids("ids")?;
    if ids.len() > 100 {
        return Err(ApiError::BadRequest("at most 100 ids".into()));
    }
    let os = st.app.organizations_by_ids(&ids).await?;
    Ok(Json(ctx.all(
        "organizations",
        os.iter().map(|o| ctx.rec(o, "organizations")).collect(),
    )))
}

pub async fn search_organizations(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let os = st
        .app
        .search_organizations(&a, q.get("name"), q.get("external_id"))
        .await?;
    Ok(Json(ctx.all(
        "organizations",
        os.iter().map(|o| ctx.rec(o, "organizations")).collect(),
    )))
}

pub async fn create_organization(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: OrganizationInput = body.take("organization")?;
    let o = st.app.create_organization(&a, input).await?;
    Ok(created(
        json!({"organization": ctx.rec(&o, "organizations")}),
    ))
}

pub async fn update_organization(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(oid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let input: OrganizationInput = body.take("organization")?;
    let o = st.app.update_organization(&a, id(&oid)?, input).await?;
    Ok(Json(
        json!({"organization": for_viewer(ctx.rec(&o, "organizations"), &a)}),
    ))
}

pub async fn create_or_update_organization(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: OrganizationInput = body.take("organization")?;
    let (o, new) = st.app.create_or_update_organization(&a, input).await?;
    let v = json!({"organization": ctx.rec(&o, "organizations")});
    Ok(if new {
        created(v)
    } else {
        Json(v).into_response()
    })
}

pub async fn delete_organization(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(oid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_organization(&a, id(&oid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- organisation memberships ----------------------------------------------------------

pub async fn org_memberships(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
    p: Option<Path<String>>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let (mut user, mut org) = (None, None);
    if let Some(Path(pid)) = p {
        if uri.path().contains("/users/") {
            user = Some(id(&pid)?);
        } else {
            org = Some(id(&pid)?);
        }
    }
    let p = st.app.list_org_memberships(&a, user, org, &page).await?;
    let items = p
        .items
        .iter()
        .map(|m| ctx.rec(m, "organization_memberships"))
        .collect();
    Ok(Json(ctx.page(
        "organization_memberships",
        &page,
        &p,
        items,
        |m| m.id,
    )))
}

pub async fn org_membership(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(mid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let m = st.app.get_org_membership(&a, id(&mid)?).await?;
    Ok(Json(
        json!({"organization_membership": ctx.rec(&m, "organization_memberships")}),
    ))
}

pub async fn create_org_membership(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: MembershipInput = body.take("organization_membership")?;
    let m = st.app.create_org_membership(&a, input).await?;
    Ok(created(
        json!({"organization_membership": ctx.rec(&m, "organization_memberships")}),
    ))
}

pub async fn delete_org_membership(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(mid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_org_membership(&a, id(&mid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- groups ----------------------------------------------------------------------------

pub async fn groups(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
    p: Option<Path<String>>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    if let Some(Path(uid)) = p {
        // /users/{id}/groups
        let ms = st
            .app
            .list_group_memberships(
                &a,
                Some(id(&uid)?),
                None,
                &opsdesk_app::Page::All { limit: 1000 },
            )
            .await?;
        let ids: Vec<i64> = ms.items.iter().map(|m| m.group_id).collect();
        let gs = st.app.groups_by_ids(&ids).await?;
        return Ok(Json(
            ctx.all("groups", gs.iter().map(|g| ctx.rec(g, "groups")).collect()),
        ));
    }
    let page = q.page()?;
    let p = st.app.list_groups(&a, &page).await?;
    let items = p.items.iter().map(|g| ctx.rec(g, "groups")).collect();
    Ok(Json(ctx.page("groups", &page, &p, items, |g| g.id)))
}

pub async fn group(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(gid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let g = st.app.get_group(&a, id(&gid)?).await?;
    Ok(Json(json!({"group": ctx.rec(&g, "groups")})))
}

pub async fn create_group(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: GroupInput = body.take("group")?;
    let g = st.app.save_group(&a, None, input).await?;
    Ok(created(json!({"group": ctx.rec(&g, "groups")})))
}

pub async fn update_group(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(gid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let input: GroupInput = body.take("group")?;
    let g = st.app.save_group(&a, Some(id(&gid)?), input).await?;
    Ok(Json(json!({"group": ctx.rec(&g, "groups")})))
}

pub async fn delete_group(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(gid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_group(&a, id(&gid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn group_memberships(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
    p: Option<Path<String>>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let (mut user, mut group) = (None, None);
    if let Some(Path(pid)) = p {
        if uri.path().contains("/users/") {
            user = Some(id(&pid)?);
        } else {
            group = Some(id(&pid)?);
        }
    }
    let p = st
        .app
        .list_group_memberships(&a, user, group, &page)
        .await?;
    let items = p
        .items
        .iter()
        .map(|m| ctx.rec(m, "group_memberships"))
        .collect();
    Ok(Json(
        ctx.page("group_memberships", &page, &p, items, |m| m.id),
    ))
}

pub async fn group_membership(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(mid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let m = st.app.get_group_membership(&a, id(&mid)?).await?;
    Ok(Json(
        json!({"group_membership": ctx.rec(&m, "group_memberships")}),
    ))
}

pub async fn create_group_membership(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: MembershipInput = body.take("group_membership")?;
    let m = st.app.create_group_membership(&a, input).await?;
    Ok(created(
        json!({"group_membership": ctx.rec(&m, "group_memberships")}),
    ))
}

pub async fn delete_group_membership(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(mid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_group_membership(&a, id(&mid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
