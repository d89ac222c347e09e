//! `/api/v1/audit`: ad-hoc and named queries over the audit trail, and the
//! unused-credential check (admins only).

use super::parse_body;
use crate::access::check;
use crate::audit::internal_record;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use std::collections::BTreeMap;
use std::time::Duration;
use trestle_core::audit::{
    AuditAnswer, AuditFilter, DisableUnused, NamedQuery, UNUSED_TOKENS_QUERY, UnusedReport,
    builtin_queries, resolve,
};
use trestle_core::authz::{Action, Resource};
use trestle_store::{UserChanges, UserRecord};

const DAY_MS: i64 = 86_400_000;

/// `GET /api/v1/audit?principal=&action=&resource=&ip=&method=&since=&until=&status=&changes=&group-by=&limit=`.
pub async fn query(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<AuditAnswer>> {
    check(&p, Action::AuditRead, Resource::None, "")?;
    let f = AuditFilter::from_params(&q, crate::now_ms())?;
    Ok(Json(app.store.query_audit(&f).await?))
}

/// The built-in queries and the configured ones (a configured query with a
/// built-in's name replaces it).
pub fn named_queries(app: &AppState) -> Vec<NamedQuery> {
    let mut all = builtin_queries();
    for q in &app.security.queries {
        all.retain(|b| b.name != q.name);
        all.push(q.clone());
    }
    all
}

/// `GET /api/v1/audit/queries`.
pub async fn list_queries(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<NamedQuery>>> {
    check(&p, Action::AuditRead, Resource::None, "")?;
    Ok(Json(named_queries(&app)))
}

fn days_param(field: &str, v: Option<&String>, default: u32) -> ApiResult<u32> {
    match v {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=36_500).contains(d))
            .ok_or_else(|| {
                ApiError::bad(
                    "invalid-days",
                    field,
                    format!("`{v}` is not a number of days (1-36500)"),
                )
            }),
    }
}

/// `GET /api/v1/audit/queries/{name}?param=value...`: runs a named query.
pub async fn run_query(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<AuditAnswer>> {
    check(&p, Action::AuditRead, Resource::None, "")?;
    let all = named_queries(&app);
    let q = all.iter().find(|q| q.name == name).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|q| q.name.as_str()).collect();
        ApiError::not_found(format!(
            "audit query `{name}` (known: {})",
            names.join(", ")
        ))
    })?;
    let values = resolve(q, &params)?;
    let now = crate::now_ms();
    if q.name == UNUSED_TOKENS_QUERY {
        let days = days_param("days", params.get("days"), 60)?;
        let tokens = app
            .store
            .unused_tokens(now - i64::from(days) * DAY_MS, now)
            .await?;
        return Ok(Json(AuditAnswer {
            tokens,
            ..AuditAnswer::default()
        }));
    }
    let f = AuditFilter::from_params(&values, now)?;
    Ok(Json(app.store.query_audit(&f).await?))
}

async fn unused(
    app: &AppState,
    days: u32,
) -> ApiResult<(Vec<trestle_core::identity::TokenView>, Vec<UserRecord>)> {
    let now = crate::now_ms();
    let before = now - i64::from(days) * DAY_MS;
    let tokens = app.store.unused_tokens(before, now).await?;
    let users = app.store.unused_users(before, false).await?;
    Ok((tokens, users))
}

/// `GET /api/v1/audit/unused?days=N` (default 60).
pub async fn list_unused(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<UnusedReport>> {
    check(&p, Action::AuditRead, Resource::None, "")?;
    let days = days_param("days", q.get("days"), 60)?;
    let (tokens, users) = unused(&app, days).await?;
    Ok(Json(UnusedReport {
        days,
        tokens,
        users: users.iter().map(UserRecord::view).collect(),
        disabled: false,
    }))
}

/// Revokes unused tokens and disables unused users (never admins), and
/// audits each action; `by` is the admin who asked (`None`: the policy).
pub async fn disable_unused(
    app: &AppState,
    after: Duration,
    by: Option<&str>,
) -> ApiResult<UnusedReport> {
    let days = (after.as_secs() / 86_400).max(1) as u32;
    let (tokens, users) = unused(app, days).await?;
    let now = crate::now_ms();
    let mut revoked = Vec::new();
    for t in tokens {
        if app.store.revoke_token(&t.id, now).await? {
            app.audit.record(internal_record(
                by,
                "token.auto-revoke",
                &format!("token:{}", t.id),
            ));
            revoked.push(t);
        }
    }
    let mut disabled = Vec::new();
    for u in users
        .into_iter()
        .filter(|u| u.role != trestle_core::authz::Role::Admin)
    {
        let off = UserChanges {
            disabled: Some(true),
            ..UserChanges::default()
        };
        if app.store.update_user(&u.name, &off, now).await? {
            app.audit.record(internal_record(
                by,
                "user.auto-disable",
                &format!("user:{}", u.name),
            ));
            disabled.push(u.view());
        }
    }
    app.tokens.clear();
    Ok(UnusedReport {
        days,
        tokens: revoked,
        users: disabled,
        disabled: true,
    })
}

/// `POST /api/v1/audit/unused {"days": N}`: revoke and disable now.
pub async fn post_unused(
    State(app): State<AppState>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<UnusedReport>> {
    check(&p, Action::AuditManage, Resource::None, "")?;
    let req: DisableUnused = parse_body(&body)?;
    if req.days == 0 || req.days > 36_500 {
        return Err(ApiError::bad(
            "invalid-days",
            "days",
            "days must be between 1 and 36500",
        ));
    }
    let report = disable_unused(
        &app,
        Duration::from_secs(u64::from(req.days) * 86_400),
        p.user_name(),
    )
    .await?;
    Ok(Json(report))
}
