//! Audit queries (ad-hoc and named) and the unused-credential check and
//! policy (admins only).

use crate::access::check;
use crate::audit::internal_record;
use crate::error::{ServiceError, ServiceResult};
use crate::loops::BackgroundLoop;
use crate::principal::Principal;
use crate::state::Service;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::time::Duration;
use trestle_core::api::identity::TokenView;
use trestle_core::audit::{
    AuditAnswer, AuditFilter, NamedQuery, UNUSED_TOKENS_QUERY, UnusedReport, builtin_queries,
    parse_period, resolve,
};
use trestle_core::identity::authz::{Action, Resource, Role};
use trestle_store::{UserChanges, UserRecord};

/// An ad-hoc query (`principal`, `action`, `resource`, `ip`, `method`,
/// `since`, `until`, `status`, `changes`, `group-by`, `limit`).
pub async fn query(
    app: &Service,
    p: &Principal,
    q: &BTreeMap<String, String>,
) -> ServiceResult<AuditAnswer> {
    check(p, Action::AuditRead, Resource::None, "")?;
    let f = AuditFilter::from_params(q, crate::now_ms())?;
    Ok(app.store.query_audit(&f).await?)
}

/// The built-in queries and the configured ones (a configured query with a
/// built-in's name replaces it).
pub fn named_queries(app: &Service) -> Vec<NamedQuery> {
    let mut all = builtin_queries();
    for q in &app.security.queries {
        all.retain(|b| b.name != q.name);
        all.push(q.clone());
    }
    all
}

/// The named queries, for those who may run them.
pub fn list_queries(app: &Service, p: &Principal) -> ServiceResult<Vec<NamedQuery>> {
    check(p, Action::AuditRead, Resource::None, "")?;
    Ok(named_queries(app))
}

/// The period of an unused-credential check: `period` (`60d`, `12h`) or
/// `days`; default 60 days.
fn period(q: &BTreeMap<String, String>) -> ServiceResult<Duration> {
    let secs = match (q.get("period"), q.get("days")) {
        (Some(p), _) => parse_period("period", p)?,
        (None, Some(d)) => parse_period("days", d)?,
        (None, None) => 60 * 86_400,
    };
    Ok(Duration::from_secs(secs))
}

/// Runs a named query with its parameters.
pub async fn run_query(
    app: &Service,
    p: &Principal,
    name: &str,
    params: &BTreeMap<String, String>,
) -> ServiceResult<AuditAnswer> {
    check(p, Action::AuditRead, Resource::None, "")?;
    let all = named_queries(app);
    let q = all.iter().find(|q| q.name == name).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|q| q.name.as_str()).collect();
        ServiceError::not_found(format!(
            "audit query `{name}` (known: {})",
            names.join(", ")
        ))
    })?;
    let values = resolve(q, params)?;
    let now = crate::now_ms();
    if q.name == UNUSED_TOKENS_QUERY {
        let secs = parse_period("days", values.get("days").map_or("60", String::as_str))?;
        let tokens = app
            .store
            .unused_tokens(now - secs as i64 * 1000, now)
            .await?;
        return Ok(AuditAnswer {
            tokens,
            ..AuditAnswer::default()
        });
    }
    let f = AuditFilter::from_params(&values, now)?;
    Ok(app.store.query_audit(&f).await?)
}

/// Tokens and users unused for `period`. The asking credential is in use
/// right now, whatever its last recorded use says (uses are recorded at
/// most once a minute), so it is never part of the answer.
async fn unused(
    app: &Service,
    period: Duration,
    caller_token: Option<&str>,
) -> ServiceResult<(Vec<TokenView>, Vec<UserRecord>)> {
    let now = crate::now_ms();
    let before = now - period.as_millis() as i64;
    let mut tokens = app.store.unused_tokens(before, now).await?;
    tokens.retain(|t| Some(t.id.as_str()) != caller_token);
    let users = app.store.unused_users(before, false).await?;
    Ok((tokens, users))
}

/// Tokens and users unused for `period` (`period` or `days` in `q`),
/// without disabling anything.
pub async fn list_unused(
    app: &Service,
    p: &Principal,
    q: &BTreeMap<String, String>,
) -> ServiceResult<UnusedReport> {
    check(p, Action::AuditRead, Resource::None, "")?;
    for k in q.keys() {
        if k != "period" && k != "days" {
            return Err(ServiceError::bad(
                "unknown-parameter",
                k,
                format!("unknown query parameter `{k}` (period, days)"),
            ));
        }
    }
    let period = period(q)?;
    let (tokens, users) = unused(app, period, Some(&p.token_id)).await?;
    Ok(UnusedReport {
        period_secs: period.as_secs(),
        tokens,
        users: users.iter().map(UserRecord::view).collect(),
        disabled: false,
    })
}

/// Revokes unused tokens and disables unused users (never admins), and
/// audits each action; `by` is the principal who asked (`None`: the policy,
/// which also leaves admins' tokens alone).
pub async fn disable_unused(
    app: &Service,
    after: Duration,
    by: Option<&Principal>,
) -> ServiceResult<UnusedReport> {
    let (mut tokens, users) = unused(app, after, by.map(|p| p.token_id.as_str())).await?;
    if by.is_none() {
        // The policy never locks admins out: their unused tokens are listed
        // by `trestle audit unused` for an admin to revoke by hand.
        let admins: Vec<String> = app
            .store
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.role == Role::Admin)
            .map(|u| u.name)
            .collect();
        tokens.retain(|t| t.user.as_ref().is_none_or(|u| !admins.contains(u)));
    }
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
    for u in users.into_iter().filter(|u| u.role != Role::Admin) {
        let off = UserChanges {
            disabled: Some(true),
            ..UserChanges::default()
        };
        if app.store.update_user(&u.name, &off, now).await? {
            crate::users::revoke_tokens_of(app, &u.name, now).await?;
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
        period_secs: after.as_secs(),
        tokens: revoked,
        users: disabled,
        disabled: true,
    })
}

/// `period` (default 60 days) of an explicit request to disable unused
/// credentials, checked for the asking admin.
pub async fn disable_unused_now(
    app: &Service,
    p: &Principal,
    period: Option<&str>,
) -> ServiceResult<UnusedReport> {
    check(p, Action::AuditManage, Resource::None, "")?;
    let secs = parse_period("period", period.unwrap_or("60d"))?;
    disable_unused(app, Duration::from_secs(secs), Some(p)).await
}

/// Deletes audit records older than the retention period, hourly.
pub struct Retention {
    /// Shared state.
    pub app: Service,
}

#[async_trait]
impl BackgroundLoop for Retention {
    fn name(&self) -> &'static str {
        "audit-retention"
    }
    fn interval(&self) -> Duration {
        Duration::from_secs(3600)
    }
    async fn tick(&self) -> crate::ServiceResult<()> {
        let keep = self.app.security.audit_retention.as_millis() as i64;
        let n = self.app.store.purge_audit(crate::now_ms() - keep).await?;
        if n > 0 {
            tracing::info!(deleted = n, "audit records past retention deleted");
        }
        Ok(())
    }
}

/// The unused-credential policy: revokes tokens and disables users not
/// used for the configured period (checked every quarter of the period, at
/// most hourly); each action is audited.
pub struct UnusedPolicy {
    /// Shared state.
    pub app: Service,
    /// The period.
    pub after: Duration,
}

#[async_trait]
impl BackgroundLoop for UnusedPolicy {
    fn name(&self) -> &'static str {
        "unused-credentials"
    }
    /// A quarter of the period (so nothing outlives it by much), at least a
    /// second and at most an hour.
    fn interval(&self) -> Duration {
        (self.after / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }
    async fn tick(&self) -> crate::ServiceResult<()> {
        let report = disable_unused(&self.app, self.after, None).await?;
        if !report.tokens.is_empty() || !report.users.is_empty() {
            tracing::info!(
                tokens = report.tokens.len(),
                users = report.users.len(),
                "unused credentials disabled by policy"
            );
        }
        Ok(())
    }
}
