//! `/api/v1/workers`: registration, leasing (long-poll) and updates, over
//! [`trestle_service::workers`].

use super::parse_body_for;
use crate::error::{ApiError, ApiResult};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::{Extension, Json};
use trestle_core::api::tunnel::TUNNEL_PROTOCOL;
use trestle_core::api::{LeaseResponse, UpdatesResponse, WorkerView};
use trestle_proxy::Tunnels;
use trestle_service::workers as svc;
use trestle_service::{Principal, Service};

/// `GET /api/v1/workers`.
/// Non-admins see every worker, but only the running jobs they may see.
/// `tunnel` says whether the worker has a workspace tunnel to this server.
pub async fn list(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    tunnels: Option<Extension<Tunnels>>,
) -> ApiResult<Json<Vec<WorkerView>>> {
    let mut workers = trestle_service::jobs::workers(&app, &p).await?;
    if let Some(Extension(t)) = tunnels {
        for w in &mut workers {
            w.tunnel = t.connected(&w.id);
        }
    }
    Ok(Json(workers))
}

/// `GET /api/v1/workers/{id}/tunnel` with `Upgrade: trestle-tunnel`: the
/// worker's workspace tunnel, which only its own credential may open.
/// Answers 101; the connection then carries yamux, and this server opens
/// a stream over it for every proxied connection ([`Tunnels::accept`]).
pub async fn tunnel(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    svc::open_tunnel(&app, &p, &id).await?;
    let asked = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(TUNNEL_PROTOCOL));
    if !asked {
        return Err(ApiError::bad(
            "upgrade-required",
            "upgrade",
            format!("a tunnel needs `Connection: upgrade` and `Upgrade: {TUNNEL_PROTOCOL}`"),
        ));
    }
    let Some(tunnels) = req.extensions().get::<Tunnels>().cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "this server does not accept workspace tunnels",
        ));
    };
    let on = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on.await {
            Ok(io) => tunnels.accept(&id, hyper_util::rt::TokioIo::new(io)).await,
            Err(e) => {
                tracing::debug!(worker = %id, error = %e, "a tunnel upgrade did not complete")
            }
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    resp.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static(TUNNEL_PROTOCOL));
    Ok(resp)
}

/// `POST /api/v1/workers`.
pub async fn register(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<WorkerView>)> {
    let view = svc::register(&app, &p, parse_body_for(&body)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /api/v1/workers/{id}`: hands back whatever it still holds.
pub async fn deregister(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    svc::deregister(&app, &p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/workers/{id}/lease`: long-polls up to `wait_ms`.
pub async fn lease(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<LeaseResponse>> {
    Ok(Json(
        svc::lease(&app, &p, &id, parse_body_for(&body)).await?,
    ))
}

/// `POST /api/v1/workers/{id}/updates`: heartbeats and attempt reports.
pub async fn updates(
    State(app): State<Service>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<UpdatesResponse>> {
    Ok(Json(
        svc::updates(&app, &p, &id, parse_body_for(&body)).await?,
    ))
}
