//! `/api/v1/notify/...`: targets (secrets masked, never returned),
//! rules, subscriptions, addresses, deliveries and key rotation, over
//! [`trestle_service::notify`], [`trestle_service::notify_subs`] and
//! [`trestle_service::notify_outbox`].

use super::parse_body_for;
use crate::error::ApiResult;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use std::collections::HashMap;
use trestle_core::api::notify::{
    DeliveryView, RotateResult, RuleView, SubscriptionView, SubscriptionsView, TargetCreated,
    TargetView, TestResult, Unsubscribed,
};
use trestle_service::{Principal, Service, ServiceError, notify, notify_outbox, notify_subs};

/// `?user=` of the subscription routes (admins name another user).
fn user_param(q: &HashMap<String, String>) -> ApiResult<Option<&str>> {
    for k in q.keys() {
        if k != "user" {
            return Err(ServiceError::bad(
                "unknown-parameter",
                k,
                format!("unknown query parameter `{k}`"),
            )
            .into());
        }
    }
    Ok(q.get("user").map(String::as_str))
}

/// `GET /api/v1/notify/targets`.
pub async fn list_targets(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<TargetView>>> {
    Ok(Json(notify::list_targets(&app, &p).await?))
}

/// `POST /api/v1/notify/targets`.
pub async fn create_target(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<TargetCreated>)> {
    let t = notify::create_target(&app, &p, parse_body_for(&body)).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

/// `GET /api/v1/notify/targets/{name}`.
pub async fn show_target(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<TargetView>> {
    Ok(Json(notify::show_target(&app, &p, &name).await?))
}

/// `PUT /api/v1/notify/targets/{name}`.
pub async fn update_target(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<TargetView>> {
    Ok(Json(
        notify::update_target(&app, &p, &name, parse_body_for(&body)).await?,
    ))
}

/// `DELETE /api/v1/notify/targets/{name}`.
pub async fn delete_target(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    notify::delete_target(&app, &p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/notify/targets/{name}/test`.
pub async fn test_target(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<TestResult>> {
    Ok(Json(notify::test_target(&app, &p, &name).await?))
}

/// `GET /api/v1/notify/rules`.
pub async fn list_rules(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<RuleView>>> {
    Ok(Json(notify_subs::list_rules(&app, &p).await?))
}

/// `POST /api/v1/notify/rules`.
pub async fn create_rule(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<RuleView>)> {
    let r = notify_subs::create_rule(&app, &p, parse_body_for(&body)).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// `DELETE /api/v1/notify/rules/{name}`.
pub async fn delete_rule(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    notify_subs::delete_rule(&app, &p, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/notify/subscriptions?user=`.
pub async fn subscriptions(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<SubscriptionsView>> {
    Ok(Json(
        notify_subs::subscriptions(&app, &p, user_param(&q)?).await?,
    ))
}

/// `POST /api/v1/notify/subscriptions?user=`.
pub async fn subscribe(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<SubscriptionView>)> {
    let s = notify_subs::subscribe(&app, &p, user_param(&q)?, parse_body_for(&body)).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// `POST /api/v1/notify/unsubscribe`: the mute made, or the id of the
/// subscription deleted.
pub async fn unsubscribe(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<Unsubscribed>> {
    let req: trestle_service::Parsed<trestle_core::api::notify::UnsubscribeRequest> =
        parse_body_for(&body);
    let id = req.as_ref().ok().and_then(|r| r.id);
    let muted = notify_subs::unsubscribe(&app, &p, req).await?;
    Ok(Json(Unsubscribed {
        deleted: if muted.is_none() { id } else { None },
        muted,
    }))
}

/// `PUT /api/v1/notify/addresses/{name}`.
pub async fn set_address(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<SubscriptionsView>> {
    Ok(Json(
        notify_subs::set_address(&app, &p, &name, parse_body_for(&body)).await?,
    ))
}

/// `GET /api/v1/notify/deliveries?state=&target=&before=&limit=`.
pub async fn deliveries(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    Ok(Json(notify_outbox::deliveries(&app, &p, &q).await?))
}

/// `GET /api/v1/notify/deliveries/{id}`.
pub async fn delivery(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryView>> {
    Ok(Json(notify_outbox::delivery(&app, &p, &id).await?))
}

/// `POST /api/v1/notify/deliveries/{id}/retry`.
pub async fn retry_delivery(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryView>> {
    Ok(Json(notify_outbox::retry(&app, &p, &id).await?))
}

/// `POST /api/v1/notify/secrets/rotate`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Add a new key to the keyring file first (default true).
    #[serde(default)]
    pub add_key: Option<bool>,
}

/// `POST /api/v1/notify/secrets/rotate`.
pub async fn rotate(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<Json<RotateResult>> {
    trestle_service::access::check(
        &p,
        trestle_core::identity::authz::Action::NotifyAdmin,
        trestle_core::identity::authz::Resource::None,
        "",
    )?;
    let req: RotateRequest = if body.is_empty() {
        RotateRequest::default()
    } else {
        parse_body_for(&body)?
    };
    Ok(Json(
        notify::rotate(&app, &p, req.add_key.unwrap_or(true)).await?,
    ))
}
