//! `[security]` and `[audit]` in `trestle.toml`, validated into the
//! server's [`SecurityConfig`].

use anyhow::{Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use trestle_core::audit::{Cidr, FILTER_KEYS, NamedQuery};
use trestle_core::parse::parse_duration;
use trestle_service::security::SecurityConfig;

/// `[security]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityFile {
    /// Proxies (addresses or networks) whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Browser session lifetime (default `12h`).
    pub session_ttl: Option<String>,
    /// Failed logins per user and source before throttling (default 5).
    pub login_max_failures: Option<u64>,
    /// Window of the throttle (default `15m`).
    pub login_window: Option<String>,
    /// An admin's reset of someone else's password also revokes their
    /// tokens (default true).
    pub revoke_tokens_on_password_reset: Option<bool>,
    /// The address browsers use (`https://host[:port]`), when the
    /// requests' `Host` header is not it (a proxy rewrites it); `https://`
    /// also makes session cookies `Secure` whatever the proxy says.
    pub public_url: Option<String>,
}

/// A saved query in `[[audit.queries]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryFile {
    /// Name.
    pub name: String,
    /// What it answers.
    #[serde(default)]
    pub description: String,
    /// Parameters with default values.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Parameters without a default.
    #[serde(default)]
    pub required: Vec<String>,
    /// Filter keys and value templates (`{param}` is replaced).
    pub filter: BTreeMap<String, String>,
}

/// `[audit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// How long audit records are kept (default `90d`).
    pub retention: Option<String>,
    /// Revoke tokens and disable users unused this long (default: never).
    pub disable_unused_after: Option<String>,
    /// Saved, parameterised queries.
    #[serde(default)]
    pub queries: Vec<QueryFile>,
}

fn duration(field: &str, text: &str) -> Result<Duration> {
    let secs = parse_duration(field, text, false)
        .map_err(|e| anyhow::anyhow!("{field}: {}", e.message))?;
    if secs == 0 {
        bail!("{field}: must be more than zero");
    }
    Ok(Duration::from_secs(secs))
}

/// Validates the two sections.
pub fn security_config(s: SecurityFile, a: AuditFile) -> Result<SecurityConfig> {
    let mut cfg = SecurityConfig::default();
    for p in &s.trusted_proxies {
        cfg.trusted_proxies.push(
            Cidr::parse("security.trusted_proxies", p)
                .map_err(|e| anyhow::anyhow!("security.trusted_proxies: {}", e.message))?,
        );
    }
    if let Some(t) = &s.session_ttl {
        cfg.session_ttl = duration("security.session_ttl", t)?;
    }
    if let Some(n) = s.login_max_failures {
        if n == 0 {
            bail!("security.login_max_failures: must be at least 1");
        }
        cfg.login_max_failures = n;
    }
    if let Some(t) = &s.login_window {
        cfg.login_window = duration("security.login_window", t)?;
    }
    if let Some(r) = s.revoke_tokens_on_password_reset {
        cfg.revoke_tokens_on_password_reset = r;
    }
    if let Some(u) = &s.public_url {
        let u = u.trim().trim_end_matches('/');
        let rest = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', '@']) => {}
            _ => bail!(
                "security.public_url: `{u}` is not an origin such as `https://trestle.example.org` (no path)"
            ),
        }
        cfg.public_url = Some(u.to_string());
    }
    if let Some(t) = &a.retention {
        cfg.audit_retention = duration("audit.retention", t)?;
    }
    if let Some(t) = &a.disable_unused_after {
        cfg.disable_unused_after = Some(duration("audit.disable_unused_after", t)?);
    }
    for q in a.queries {
        if q.name.trim().is_empty() {
            bail!("audit.queries: every query needs a name");
        }
        for k in q.filter.keys() {
            if !FILTER_KEYS.contains(&k.as_str()) {
                bail!(
                    "audit.queries `{}`: unknown filter `{k}` (use {})",
                    q.name,
                    FILTER_KEYS.join(", ")
                );
            }
        }
        let mut params: BTreeMap<String, Option<String>> =
            q.params.into_iter().map(|(k, v)| (k, Some(v))).collect();
        for r in q.required {
            params.insert(r, None);
        }
        cfg.queries.push(NamedQuery {
            name: q.name,
            description: q.description,
            params,
            filter: q.filter,
        });
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let s: SecurityFile = toml::from_str(
            "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\nsession_ttl = \"1h\"\nlogin_max_failures = 3",
        )
        .unwrap();
        let a: AuditFile = toml::from_str(
            "retention = \"30d\"\ndisable_unused_after = \"120d\"\n[[queries]]\nname = \"by-user\"\nrequired = [\"who\"]\nfilter = { principal = \"{who}\" }",
        )
        .unwrap();
        let c = security_config(s, a).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.session_ttl, Duration::from_secs(3600));
        assert_eq!(c.login_max_failures, 3);
        assert_eq!(c.audit_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(
            c.disable_unused_after,
            Some(Duration::from_secs(120 * 86_400))
        );
        assert_eq!(c.queries[0].params.get("who"), Some(&None));
        let bad = |s: &str, a: &str| {
            security_config(toml::from_str(s).unwrap(), toml::from_str(a).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(bad("trusted_proxies = [\"nope\"]", "").contains("trusted_proxies"));
        assert!(c.revoke_tokens_on_password_reset, "on by default");
        assert_eq!(c.public_url, None);
        let c = security_config(
            toml::from_str(
                "revoke_tokens_on_password_reset = false\npublic_url = \"https://t.example:8443/\"",
            )
            .unwrap(),
            AuditFile::default(),
        )
        .unwrap();
        assert!(!c.revoke_tokens_on_password_reset);
        assert_eq!(c.public_url.as_deref(), Some("https://t.example:8443"));
        for u in [
            "t.example",
            "https://",
            "https://t.example/ui",
            "ftp://t.example",
        ] {
            assert!(
                bad(&format!("public_url = \"{u}\""), "").contains("security.public_url"),
                "{u}"
            );
        }
        assert!(bad("", "retention = \"soon\"").contains("audit.retention"));
        assert!(
            bad(
                "",
                "[[queries]]\nname = \"q\"\nfilter = { colour = \"red\" }"
            )
            .contains("colour")
        );
    }
}
