//! Wire types of OpenID Connect sign-in under `/api/v1/login/oidc`.

use crate::api::identity::NewToken;
use serde::{Deserialize, Serialize};

/// A configured provider, as the login page and the CLI list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcProviderView {
    /// Its name (`trestle login --sso --provider NAME`).
    pub name: String,
    /// The button's text.
    pub display: String,
}

/// `POST /api/v1/login/oidc/{name}/begin`: a CLI begins a sign-in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcBegin {
    /// Where the provider redirects the browser: the CLI's loopback
    /// listener (`http://127.0.0.1:PORT/...`).
    pub redirect_uri: String,
    /// The PKCE S256 challenge of the verifier the CLI keeps.
    pub code_challenge: String,
}

/// The answer to [`OidcBegin`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OidcStarted {
    /// Open this in a browser.
    pub authorization_url: String,
    /// The state the provider's redirect will carry back.
    pub state: String,
}

/// `POST /api/v1/login/oidc/{name}`: the CLI hands in what the provider's
/// redirect brought, with its PKCE verifier, for a Trestle token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFinish {
    /// The redirect's `state`.
    pub state: String,
    /// The redirect's `code`.
    pub code: String,
    /// The PKCE verifier.
    pub code_verifier: String,
    /// The redirect's `iss`, when the provider sent one (RFC 9207).
    #[serde(default)]
    pub iss: Option<String>,
    /// The token to issue (name, lifetime, scope).
    #[serde(default)]
    pub token: Option<NewToken>,
}
