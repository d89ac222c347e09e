//! Pending OpenID Connect sign-ins, kept in the database so that a
//! provider's callback may reach any server (see migration 10).

/// How a pending login will be finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFlow {
    /// The portal's callback: the server holds the PKCE verifier.
    Portal,
    /// The CLI's loopback round trip: the server holds the S256 challenge
    /// the CLI sent, and the CLI hands in the verifier with the code.
    Cli,
}

impl LoginFlow {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFlow::Portal => "portal",
            LoginFlow::Cli => "cli",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<LoginFlow> {
        match s {
            "portal" => Some(LoginFlow::Portal),
            "cli" => Some(LoginFlow::Cli),
            _ => None,
        }
    }
}

/// A login begun at a provider and not yet finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The provider's name (`[[oidc]] name`).
    pub provider: String,
    /// Portal or CLI.
    pub flow: LoginFlow,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// Portal: the PKCE verifier; CLI: the S256 challenge.
    pub pkce: String,
    /// The redirect URI sent to the provider (sent again with the code).
    pub redirect_uri: String,
    /// Where the portal goes after the sign-in.
    pub next: Option<String>,
    /// When it was begun (ms).
    pub created_at: i64,
    /// When it stops being accepted (ms).
    pub expires_at: i64,
}
