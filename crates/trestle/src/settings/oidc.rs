//! `[[oidc]]` in `trestle.toml`: OpenID Connect providers users sign in
//! with (the portal's "Sign in with ..." buttons, `trestle login --sso`).
//! The client secret is given by reference only, and never printed.
//!
//! ```toml
//! [[oidc]]
//! name = "campus"                     # users come from `oidc:campus`
//! display = "Sign in with Campus"
//! issuer = "https://login.uni.example/realms/research"
//! client_id = "trestle"
//! client_secret_file = "/etc/trestle/oidc-campus.secret"   # or client_secret_env = "VAR"
//! scopes = ["openid", "profile", "email", "groups"]        # default: openid profile email
//! username_claim = "preferred_username"                    # defaults shown
//! email_claim = "email"
//! name_claim = "name"
//! groups_claim = "groups"
//! uid_claim = "uidNumber"                                   # none by default
//! unix_name_claim = "uid"                                   # none by default
//! redirect_url = "https://trestle.uni.example"              # default: security.public_url, else the request's origin
//! ```

use anyhow::{Result, bail};
use serde::Deserialize;
use trestle_core::identity::oidc::ClaimNames;
use trestle_service::oidc::{ClientSecret, ProviderSettings};

/// One `[[oidc]]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFile {
    /// The provider's name (a Trestle name: lower case, digits, `-_.`).
    pub name: String,
    /// The button's text (default `Sign in with NAME`).
    pub display: Option<String>,
    /// The issuer URL.
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// A file holding the client secret.
    pub client_secret_file: Option<std::path::PathBuf>,
    /// An environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// Never allowed: read only to refuse it with a clear message.
    pub client_secret: Option<toml::Value>,
    /// The scopes (default `openid profile email`).
    pub scopes: Option<Vec<String>>,
    /// Claim holding the user name (default `preferred_username`).
    pub username_claim: Option<String>,
    /// Claim holding the email (default `email`).
    pub email_claim: Option<String>,
    /// Claim holding the display name (default `name`).
    pub name_claim: Option<String>,
    /// Claim holding the groups (default `groups`).
    pub groups_claim: Option<String>,
    /// Claim holding the Unix uid.
    pub uid_claim: Option<String>,
    /// Claim holding the Unix account name.
    pub unix_name_claim: Option<String>,
    /// Base URL of the portal's callback.
    pub redirect_url: Option<String>,
}

fn http_url(field: &str, u: &str) -> Result<()> {
    match url::Url::parse(u) {
        Ok(p) if (p.scheme() == "https" || p.scheme() == "http") && p.host().is_some() => Ok(()),
        _ => bail!("{field}: `{u}` is not an http(s) URL"),
    }
}

/// Validates `[[oidc]]` and reads the secrets; errors name the setting
/// (`oidc[0].client_secret_file`) and never show a secret.
pub fn build(files: Vec<OidcFile>) -> Result<Vec<ProviderSettings>> {
    let mut out: Vec<ProviderSettings> = Vec::new();
    for (i, f) in files.into_iter().enumerate() {
        let at = |k: &str| format!("oidc[{i}].{k}");
        if trestle_core::identity::validate_name("name", &f.name).is_err() {
            bail!(
                "{}: `{}` is not a name (lower case letters, digits, `-`, `_`, `.`)",
                at("name"),
                f.name
            );
        }
        if out.iter().any(|p| p.name == f.name) {
            bail!("{}: `{}` is configured twice", at("name"), f.name);
        }
        if f.client_secret.is_some() {
            bail!(
                "{}: the client secret is never written in the config file; use client_secret_file or client_secret_env",
                at("client_secret")
            );
        }
        http_url(&at("issuer"), &f.issuer)?;
        if let Some(r) = &f.redirect_url {
            http_url(&at("redirect_url"), r)?;
        }
        if f.client_id.trim().is_empty() {
            bail!("{}: empty", at("client_id"));
        }
        let secret = match (&f.client_secret_file, &f.client_secret_env) {
            (Some(p), None) => match std::fs::read_to_string(p) {
                Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
                Ok(_) => bail!("{}: {} is empty", at("client_secret_file"), p.display()),
                Err(e) => bail!(
                    "{}: cannot read {}: {e}",
                    at("client_secret_file"),
                    p.display()
                ),
            },
            (None, Some(v)) => match std::env::var(v) {
                Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
                _ => bail!(
                    "{}: the environment variable `{v}` is not set",
                    at("client_secret_env")
                ),
            },
            (None, None) => bail!(
                "{}: the client secret is missing (set client_secret_file or client_secret_env)",
                at("client_secret_file")
            ),
            (Some(_), Some(_)) => bail!(
                "{}: set client_secret_file or client_secret_env, not both",
                at("client_secret_env")
            ),
        };
        let scopes = f
            .scopes
            .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
        if !scopes.iter().any(|s| s == "openid") {
            bail!("{}: `openid` must be among the scopes", at("scopes"));
        }
        if scopes
            .iter()
            .any(|s| s.is_empty() || s.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\\'))
        {
            bail!("{}: a scope is one word", at("scopes"));
        }
        let d = ClaimNames::default();
        let claims = ClaimNames {
            username: f.username_claim.unwrap_or(d.username),
            email: f.email_claim.unwrap_or(d.email),
            name: f.name_claim.unwrap_or(d.name),
            groups: f.groups_claim.unwrap_or(d.groups),
            uid: f.uid_claim,
            unix_name: f.unix_name_claim,
        };
        out.push(ProviderSettings {
            display: f
                .display
                .unwrap_or_else(|| format!("Sign in with {}", f.name)),
            name: f.name,
            issuer: f.issuer,
            client_id: f.client_id,
            client_secret: ClientSecret::new(secret),
            scopes,
            claims,
            redirect_url: f.redirect_url,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ProviderSettings>> {
        #[derive(Deserialize)]
        struct F {
            oidc: Vec<OidcFile>,
        }
        let f: F = toml::from_str(text)?;
        build(f.oidc)
    }

    const BASE: &str =
        "[[oidc]]\nname = \"campus\"\nissuer = \"https://idp.example\"\nclient_id = \"trestle\"\n";

    #[test]
    fn secrets_by_reference_only_and_named_errors() {
        let e = parse(BASE).unwrap_err().to_string();
        assert!(e.starts_with("oidc[0].client_secret_file:"), "{e}");
        let e = parse(&format!("{BASE}client_secret = \"hunter2-secret\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("oidc[0].client_secret:"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse(&format!(
            "{BASE}client_secret_env = \"TRESTLE_TEST_SURELY_UNSET_VAR\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("oidc[0].client_secret_env:"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "hunter2-secret\n").unwrap();
        let ok = parse(&format!("{BASE}client_secret_file = \"{}\"\n", p.display())).unwrap();
        assert_eq!(ok[0].display, "Sign in with campus");
        assert_eq!(ok[0].scopes, vec!["openid", "profile", "email"]);
        assert_eq!(ok[0].claims.username, "preferred_username");
        assert!(!format!("{ok:?}").contains("hunter2"));
        let e = parse(&format!(
            "{}client_secret_file = \"{}\"\n",
            BASE.replace("https://idp.example", "idp"),
            p.display()
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("oidc[0].issuer:"), "{e}");
    }
}
