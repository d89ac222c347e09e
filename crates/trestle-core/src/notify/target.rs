//! Notification targets: where messages go (Slack, Microsoft Teams, a
//! signed webhook, email over SMTP), validated into what is stored in the
//! clear ([`TargetConfig`]) and what is encrypted at rest
//! ([`TargetSecrets`]).

use super::address::{AddressPolicy, check_url};
use super::render::check_template;
use crate::error::ValidationError;
use serde::{Deserialize, Serialize};

/// The kind of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A Slack incoming webhook (Block Kit).
    Slack,
    /// A Microsoft Teams Workflows webhook (Adaptive Card).
    Teams,
    /// A generic HTTPS webhook signed per Standard Webhooks.
    Webhook,
    /// Email over SMTP.
    Email,
}

impl TargetKind {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Slack => "slack",
            TargetKind::Teams => "teams",
            TargetKind::Webhook => "webhook",
            TargetKind::Email => "email",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<TargetKind> {
        match s {
            "slack" => Some(TargetKind::Slack),
            "teams" => Some(TargetKind::Teams),
            "webhook" => Some(TargetKind::Webhook),
            "email" => Some(TargetKind::Email),
            _ => None,
        }
    }

    /// The default least time between two messages (ms): Slack allows
    /// about one message per second per webhook.
    pub fn default_interval_ms(self) -> i64 {
        match self {
            TargetKind::Slack => 1000,
            TargetKind::Teams => 1000,
            TargetKind::Webhook | TargetKind::Email => 0,
        }
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// STARTTLS after connecting (port 587), required.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS: only to loopback, when the target allows loopback.
    None,
}

/// A target as an admin or user sends it (`POST /api/v1/notify/targets`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Unique name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// `slack`, `teams`, `webhook` or `email`.
    pub kind: String,
    /// The webhook URL (Slack, Teams, webhook): a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The webhook signing secret (`whsec_...`); made up when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// SMTP host (email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    /// SMTP port (email; default by `smtp_tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    /// `starttls` (default), `implicit` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_tls: Option<SmtpTls>,
    /// SMTP user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<String>,
    /// SMTP password: a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<String>,
    /// The sender address (email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A CA certificate (PEM) the SMTP server's certificate may chain to,
    /// besides the system's (a campus relay with a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_ca: Option<String>,
    /// Fixed recipients (email); empty: the address of the user each
    /// message is for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Least time between two messages (ms); default by kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval_ms: Option<i64>,
    /// A template for the message's text line (see
    /// [`super::render::check_template`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Allow loopback addresses (and plain HTTP to them): admins only.
    #[serde(default)]
    pub allow_loopback: bool,
    /// Allow private addresses: admins only.
    #[serde(default)]
    pub allow_private: bool,
    /// Allow link-local and metadata addresses: admins only.
    #[serde(default)]
    pub allow_link_local: bool,
}

/// SMTP settings kept in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpConfig {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// User name (the password is a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Sender address.
    pub from: String,
    /// An extra CA certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
}

/// Largest `smtp_ca` (bytes).
pub const MAX_CA: usize = 16 * 1024;

/// What is stored of a target in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetConfig {
    /// Its kind.
    pub kind: TargetKind,
    /// SMTP settings (email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpConfig>,
    /// Fixed recipients (email).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Least time between two messages (ms).
    pub min_interval_ms: i64,
    /// Text template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The addresses allowed beyond public ones.
    #[serde(default)]
    pub policy: AddressPolicy,
    /// The URL masked, for showing (`https://hooks.slack.com/ser…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_masked: Option<String>,
}

/// What is stored of a target encrypted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSecrets {
    /// The webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The webhook signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// The SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<String>,
}

/// Longest target name.
pub const MAX_NAME: usize = 64;
/// Most fixed email recipients.
pub const MAX_RECIPIENTS: usize = 50;

/// Checks a name (targets, rules): 1 to 64 of letters, digits, `-`, `_`, `.`.
pub fn check_name(name: &str, field: &str) -> Result<(), ValidationError> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ValidationError::new(
            "invalid-name",
            field,
            format!("a name is 1 to {MAX_NAME} letters, digits, `-`, `_` or `.`"),
        ));
    }
    Ok(())
}

/// Checks an email address (the form only: one `@`, a dot in the
/// domain, no spaces or angle brackets, at most 254 characters).
pub fn check_email(addr: &str, field: &str) -> Result<(), ValidationError> {
    let ok = addr.len() <= 254
        && !addr
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
        && match addr.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "invalid-email",
            field,
            format!(
                "`{}` is not an email address",
                addr.chars().take(80).collect::<String>()
            ),
        ))
    }
}

/// A signing secret: `whsec_` and base64 of 24 to 64 bytes.
pub fn check_signing_secret(s: &str, field: &str) -> Result<(), ValidationError> {
    match super::sign::secret_bytes(s) {
        Some(b) if (24..=64).contains(&b.len()) => Ok(()),
        _ => Err(ValidationError::new(
            "invalid-signing-secret",
            field,
            "a signing secret is `whsec_` followed by base64 of 24 to 64 bytes",
        )),
    }
}

impl TargetSpec {
    /// Validates the spec into its clear and secret parts; every error
    /// names its field. A missing signing secret is left empty (the
    /// service makes one up).
    pub fn validate(&self) -> Result<(TargetConfig, TargetSecrets), ValidationError> {
        check_name(&self.name, "name")?;
        let kind = TargetKind::parse(&self.kind).ok_or_else(|| {
            ValidationError::new(
                "invalid-kind",
                "kind",
                format!(
                    "`{}` is not a target kind: slack, teams, webhook or email",
                    self.kind
                ),
            )
        })?;
        let policy = AddressPolicy {
            allow_loopback: self.allow_loopback,
            allow_private: self.allow_private,
            allow_link_local: self.allow_link_local,
        };
        if let Some(t) = &self.template {
            check_template(t, "template")?;
        }
        let min_interval_ms = match self.min_interval_ms {
            Some(v) if !(0..=3_600_000).contains(&v) => {
                return Err(ValidationError::new(
                    "invalid-interval",
                    "min_interval_ms",
                    "min_interval_ms is between 0 and 3600000",
                ));
            }
            Some(v) => v,
            None => kind.default_interval_ms(),
        };
        let mut secrets = TargetSecrets::default();
        let mut config = TargetConfig {
            kind,
            smtp: None,
            to: Vec::new(),
            min_interval_ms,
            template: self.template.clone(),
            policy,
            url_masked: None,
        };
        let not_for = |field: &str| {
            Err(ValidationError::new(
                "not-allowed",
                field,
                format!("`{field}` does not apply to {} targets", kind.as_str()),
            ))
        };
        match kind {
            TargetKind::Slack | TargetKind::Teams | TargetKind::Webhook => {
                let url = self.url.as_deref().ok_or_else(|| {
                    ValidationError::new("missing-url", "url", "a webhook URL is required")
                })?;
                check_url(url, &policy, "url")?;
                if kind == TargetKind::Webhook {
                    if let Some(s) = &self.signing_secret {
                        check_signing_secret(s, "signing_secret")?;
                    }
                    secrets.signing_secret = self.signing_secret.clone();
                } else if self.signing_secret.is_some() {
                    return not_for("signing_secret");
                }
                if self.smtp_host.is_some() {
                    return not_for("smtp_host");
                }
                if !self.to.is_empty() {
                    return not_for("to");
                }
                config.url_masked = Some(super::address::mask_url(url));
                secrets.url = Some(url.to_string());
            }
            TargetKind::Email => {
                if self.url.is_some() {
                    return not_for("url");
                }
                if self.signing_secret.is_some() {
                    return not_for("signing_secret");
                }
                let host = self.smtp_host.clone().ok_or_else(|| {
                    ValidationError::new(
                        "missing-smtp-host",
                        "smtp_host",
                        "an SMTP host is required",
                    )
                })?;
                if host.is_empty()
                    || host.len() > 253
                    || !host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'))
                {
                    return Err(ValidationError::new(
                        "invalid-smtp-host",
                        "smtp_host",
                        "the SMTP host is a host name or address",
                    ));
                }
                let tls = self.smtp_tls.unwrap_or_default();
                let port = self.smtp_port.unwrap_or(match tls {
                    SmtpTls::Starttls => 587,
                    SmtpTls::Implicit => 465,
                    SmtpTls::None => 25,
                });
                let from = self.from.clone().ok_or_else(|| {
                    ValidationError::new("missing-from", "from", "a sender address is required")
                })?;
                check_email(&from, "from")?;
                if self.to.len() > MAX_RECIPIENTS {
                    return Err(ValidationError::new(
                        "too-many-recipients",
                        "to",
                        format!("at most {MAX_RECIPIENTS} recipients"),
                    ));
                }
                for a in &self.to {
                    check_email(a, "to")?;
                }
                if self.smtp_password.is_some() && self.smtp_username.is_none() {
                    return Err(ValidationError::new(
                        "missing-smtp-username",
                        "smtp_username",
                        "a password needs a user name",
                    ));
                }
                if let Some(ca) = &self.smtp_ca
                    && (ca.len() > MAX_CA || !ca.contains("-----BEGIN CERTIFICATE-----"))
                {
                    return Err(ValidationError::new(
                        "invalid-smtp-ca",
                        "smtp_ca",
                        format!("smtp_ca is a PEM certificate of at most {MAX_CA} bytes"),
                    ));
                }
                if tls == SmtpTls::None && !policy.allow_loopback {
                    return Err(ValidationError::new(
                        "plain-smtp",
                        "smtp_tls",
                        "SMTP without TLS is allowed only to loopback, when an admin allows it",
                    ));
                }
                config.smtp = Some(SmtpConfig {
                    host,
                    port,
                    tls,
                    username: self.smtp_username.clone(),
                    from,
                    ca: self.smtp_ca.clone(),
                });
                config.to = self.to.clone();
                secrets.smtp_password = self.smtp_password.clone();
            }
        }
        Ok((config, secrets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slack(url: &str) -> TargetSpec {
        TargetSpec {
            name: "ops".into(),
            kind: "slack".into(),
            url: Some(url.into()),
            ..Default::default()
        }
    }

    #[test]
    fn targets_split_into_clear_and_secret_parts() {
        let (c, s) = slack("https://hooks.slack.com/services/T/B/XYZ")
            .validate()
            .unwrap();
        assert_eq!(c.kind, TargetKind::Slack);
        assert_eq!(c.min_interval_ms, 1000);
        assert_eq!(
            s.url.as_deref(),
            Some("https://hooks.slack.com/services/T/B/XYZ")
        );
        assert!(!serde_json::to_string(&c).unwrap().contains("XYZ"));
        let mail = TargetSpec {
            name: "mail".into(),
            kind: "email".into(),
            smtp_host: Some("smtp.example.org".into()),
            smtp_username: Some("trestle".into()),
            smtp_password: Some("hunter2".into()),
            from: Some("trestle@example.org".into()),
            ..Default::default()
        };
        let (c, s) = mail.validate().unwrap();
        assert_eq!(c.smtp.unwrap().port, 587);
        assert_eq!(s.smtp_password.as_deref(), Some("hunter2"));
    }

    #[test]
    fn bad_targets_name_their_field() {
        let field = |t: TargetSpec| t.validate().unwrap_err().field.unwrap();
        assert_eq!(field(slack("nope")), "url");
        assert_eq!(field(slack("http://hooks.example.org/")), "url");
        assert_eq!(field(slack("https://169.254.169.254/")), "url");
        let mut t = slack("https://hooks.slack.com/x");
        t.name = "a b".into();
        assert_eq!(field(t), "name");
        let mut t = slack("https://hooks.slack.com/x");
        t.kind = "pager".into();
        assert_eq!(field(t), "kind");
        let mut t = slack("https://hooks.slack.com/x");
        t.template = Some("x".repeat(10_000));
        assert_eq!(field(t), "template");
        let mut t = slack("https://hooks.slack.com/x");
        t.signing_secret = Some("whsec_abc".into());
        assert_eq!(field(t), "signing_secret");
        let mut w = slack("https://example.org/hook");
        w.kind = "webhook".into();
        w.signing_secret = Some("short".into());
        assert_eq!(field(w), "signing_secret");
        let mail = TargetSpec {
            name: "mail".into(),
            kind: "email".into(),
            smtp_host: Some("127.0.0.1".into()),
            smtp_tls: Some(SmtpTls::None),
            from: Some("not-an-address".into()),
            ..Default::default()
        };
        assert_eq!(field(mail.clone()), "from");
        let mail = TargetSpec {
            from: Some("t@example.org".into()),
            ..mail
        };
        assert_eq!(field(mail), "smtp_tls");
    }

    #[test]
    fn email_addresses_are_checked() {
        assert!(check_email("ada@uni.example", "to").is_ok());
        for bad in [
            "ada",
            "@uni.example",
            "ada@uni",
            "a da@uni.example",
            "a@b@c.d",
            "<a@b.c>",
        ] {
            assert!(check_email(bad, "to").is_err(), "{bad}");
        }
    }
}
