//! `/api/v1/login/oidc...`: OpenID Connect sign-in for the CLI (the
//! loopback round trip; the portal's browser flow is in the portal), over
//! [`trestle_service::oidc_login`].

use super::parse_body;
use crate::audit::{AuditSlot, ClientIp};
use crate::error::ApiResult;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use trestle_core::api::identity::LoginResponse;
use trestle_core::api::oidc::{OidcBegin, OidcFinish, OidcProviderView, OidcStarted};
use trestle_service::Service;
use trestle_service::ServiceError;
use trestle_service::oidc_login::{self, Callback};
use trestle_service::sessions::LoginOutcome;
use trestle_store::oidc::LoginFlow;

/// `GET /api/v1/login/oidc`: the configured providers.
pub async fn providers(State(app): State<Service>) -> Json<Vec<OidcProviderView>> {
    Json(
        app.oidc
            .all()
            .iter()
            .map(|p| OidcProviderView {
                name: p.settings.name.clone(),
                display: p.settings.display.clone(),
            })
            .collect(),
    )
}

/// `POST /api/v1/login/oidc/{name}/begin`: the provider URL for a CLI
/// listening on a loopback port.
pub async fn begin(
    State(app): State<Service>,
    Extension(ip): Extension<ClientIp>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<OidcStarted>> {
    let req: OidcBegin = parse_body(&body)?;
    let s =
        oidc_login::begin_cli(&app, &name, &req.redirect_uri, &req.code_challenge, ip.0).await?;
    Ok(Json(OidcStarted {
        authorization_url: s.authorization_url,
        state: s.state,
    }))
}

/// `POST /api/v1/login/oidc/{name}`: exchanges the code (with the CLI's
/// verifier), verifies the ID token and issues a Trestle token.
pub async fn finish(
    State(app): State<Service>,
    Extension(ip): Extension<ClientIp>,
    Extension(slot): Extension<AuditSlot>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<LoginResponse>> {
    let req: OidcFinish = parse_body(&body)?;
    let token = req.token.unwrap_or_default();
    let cb = Callback {
        state: req.state,
        code: req.code,
        code_verifier: Some(req.code_verifier),
        iss: req.iss,
    };
    let (outcome, _) =
        oidc_login::finish(&app, &name, LoginFlow::Cli, cb, Some(token), ip.0, &slot).await?;
    match outcome {
        LoginOutcome::Token { user, created } => Ok(Json(LoginResponse {
            user,
            csrf_token: None,
            token: Some(created),
        })),
        LoginOutcome::Session { .. } => {
            Err(ServiceError::internal("a CLI sign-in opened a browser session").into())
        }
    }
}
