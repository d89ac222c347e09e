//! The settings of one directory, checked before any connection is made,
//! and the pure pieces of the protocol: filters with escaped values, group
//! names from DNs, identities from entries.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use trestle_core::identity::external::ExternalIdentity;

/// A setting that is wrong, named as in `trestle.toml` (`ldap.user_filter`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The setting (`ldap.url`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// An error of `field` (the name without `ldap.`).
    pub fn new(field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            field: format!("ldap.{field}"),
            message: message.into(),
        }
    }
}

/// A password held in memory: never printed, not even in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The password, for the bind.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Names of the attributes read from a user's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeNames {
    /// The Trestle user name (default `uid`).
    pub username: String,
    /// The name to show (default `cn`).
    pub display_name: String,
    /// The email address (default `mail`).
    pub email: String,
    /// The Unix uid (default `uidNumber`).
    pub uid_number: String,
    /// The Unix account name (default `uid`).
    pub unix_name: String,
}

impl Default for AttributeNames {
    fn default() -> Self {
        AttributeNames {
            username: "uid".into(),
            display_name: "cn".into(),
            email: "mail".into(),
            uid_number: "uidNumber".into(),
            unix_name: "uid".into(),
        }
    }
}

/// Where a user's groups come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    /// No groups are read (every user gets the `*` rules and the default role).
    None,
    /// An attribute of the user's entry listing the DNs of their groups
    /// (`memberOf`); a group's name is the value of its DN's first RDN
    /// (`cn=hpc-users,ou=groups,...` is `hpc-users`).
    MemberOf {
        /// The attribute.
        attr: String,
    },
    /// A search under `base` with `filter` (`{dn}` and `{username}` are
    /// replaced by the user's DN and name, escaped); a group's name is its
    /// `name_attr`.
    Search {
        /// Where groups live.
        base: String,
        /// The filter, e.g. `(member={dn})` or `(memberUid={username})`.
        filter: String,
        /// The attribute holding a group's name (default `cn`).
        name_attr: String,
    },
}

/// The settings of one directory (`[ldap]`), validated by
/// [`LdapConfig::validate`].
#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// The directory's name; users come from source `ldap:NAME`.
    pub name: String,
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// The DN of the service account that searches.
    pub bind_dn: String,
    /// Its password (read from a file or the environment, never from
    /// `trestle.toml`).
    pub bind_password: Secret,
    /// Where users live.
    pub user_base: String,
    /// The filter that finds a user, with `{username}`, e.g. `(uid={username})`.
    pub user_filter: String,
    /// The attributes read.
    pub attributes: AttributeNames,
    /// Where groups come from.
    pub groups: Groups,
    /// Time between directory syncs.
    pub sync_interval: Duration,
    /// CA certificates (PEM) trusted for TLS instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Longest wait for a connection or one operation.
    pub timeout: Duration,
}

/// Whether an `ldap://` URL names this machine (plain LDAP is allowed only
/// there: passwords would cross the network in clear).
fn loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host of an `ldap://` or `ldaps://` URL.
fn host_of(rest: &str) -> &str {
    let hostport = rest.split('/').next().unwrap_or("");
    if let Some(end) = hostport.find(']') {
        &hostport[..=end]
    } else {
        hostport.rsplit_once(':').map_or(hostport, |(h, _)| h)
    }
}

fn check_filter(field: &str, filter: &str, placeholders: &[&str]) -> Result<(), ConfigError> {
    if !placeholders.iter().any(|p| filter.contains(p)) {
        return Err(ConfigError::new(
            field,
            format!("`{filter}` must contain {}", placeholders.join(" or ")),
        ));
    }
    let mut probe = filter.to_string();
    for p in placeholders {
        probe = probe.replace(p, "probe");
    }
    if ldap3::parse_filter(&probe).is_err() {
        return Err(ConfigError::new(
            field,
            format!("`{filter}` is not an LDAP filter (RFC 4515), e.g. `(uid={{username}})`"),
        ));
    }
    Ok(())
}

fn check_attr(field: &str, a: &str) -> Result<(), ConfigError> {
    let ok = !a.is_empty()
        && a.len() <= 128
        && a.as_bytes()[0].is_ascii_alphabetic()
        && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("`{a}` is not an attribute name"),
        ))
    }
}

impl LdapConfig {
    /// Checks the settings; an error names the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        trestle_core::identity::validate_name("name", &self.name)
            .map_err(|e| ConfigError::new("name", e.message))?;
        if let Some(rest) = self.url.strip_prefix("ldaps://") {
            if self.starttls {
                return Err(ConfigError::new(
                    "starttls",
                    "an ldaps:// connection is TLS already; StartTLS is for ldap:// URLs",
                ));
            }
            if host_of(rest).is_empty() {
                return Err(ConfigError::new("url", "the URL names no host"));
            }
        } else if let Some(rest) = self.url.strip_prefix("ldap://") {
            let host = host_of(rest);
            if host.is_empty() {
                return Err(ConfigError::new("url", "the URL names no host"));
            }
            if !self.starttls && !loopback(host) {
                return Err(ConfigError::new(
                    "starttls",
                    format!(
                        "passwords would cross the network in clear to {host}: set starttls = true or use an ldaps:// URL"
                    ),
                ));
            }
        } else {
            return Err(ConfigError::new(
                "url",
                format!(
                    "`{}` must start with ldap:// (with starttls = true) or ldaps://",
                    self.url
                ),
            ));
        }
        for (field, dn) in [("bind_dn", &self.bind_dn), ("user_base", &self.user_base)] {
            if dn.trim().is_empty() || !dn.contains('=') {
                return Err(ConfigError::new(
                    field,
                    "a DN such as `ou=people,dc=uni,dc=example` is required",
                ));
            }
        }
        if self.bind_password.expose().is_empty() {
            return Err(ConfigError::new(
                "bind_password_file",
                "the service account's password is empty",
            ));
        }
        check_filter("user_filter", &self.user_filter, &["{username}"])?;
        let a = &self.attributes;
        for (field, v) in [
            ("username_attr", &a.username),
            ("display_name_attr", &a.display_name),
            ("email_attr", &a.email),
            ("uid_number_attr", &a.uid_number),
            ("unix_name_attr", &a.unix_name),
        ] {
            check_attr(field, v)?;
        }
        match &self.groups {
            Groups::None => {}
            Groups::MemberOf { attr } => check_attr("member_of_attr", attr)?,
            Groups::Search {
                base,
                filter,
                name_attr,
            } => {
                if base.trim().is_empty() || !base.contains('=') {
                    return Err(ConfigError::new(
                        "group_base",
                        "a DN such as `ou=groups,dc=uni,dc=example` is required",
                    ));
                }
                check_filter("group_filter", filter, &["{dn}", "{username}"])?;
                check_attr("group_name_attr", name_attr)?;
            }
        }
        if self.sync_interval < Duration::from_secs(10) {
            return Err(ConfigError::new(
                "sync_interval",
                "a sync runs at most every 10 seconds",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be at least 1s"));
        }
        Ok(())
    }

    /// The source of this directory's users: `ldap:NAME`.
    pub fn source(&self) -> String {
        format!("ldap:{}", self.name)
    }
}

/// `filter` with each `(placeholder, value)` replaced by the value escaped
/// for a filter (RFC 4515: `*`, `(`, `)`, `\` and NUL), so a user name
/// cannot change what is searched.
pub fn fill_filter(filter: &str, values: &[(&str, &str)]) -> String {
    let mut out = filter.to_string();
    for (p, v) in values {
        out = out.replace(p, &ldap3::ldap_escape(*v));
    }
    out
}

/// The value of a DN's first RDN: `cn=hpc-users,ou=groups,dc=x` is
/// `hpc-users` (RFC 4514 escapes undone: `\,` and `\2C` are a comma).
pub fn first_rdn_value(dn: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let b = dn.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\'
                if i + 2 < b.len()
                    && b[i + 1].is_ascii_hexdigit()
                    && b[i + 2].is_ascii_hexdigit() =>
            {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'\\' if i + 1 < b.len() => {
                bytes.push(b[i + 1]);
                i += 2;
            }
            b',' | b'+' => break,
            c => {
                bytes.push(c);
                i += 1;
            }
        }
    }
    let rdn = String::from_utf8(bytes).ok()?;
    let (_, value) = rdn.split_once('=')?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// The values of attribute `name` (compared without case, as LDAP does).
pub fn values<'a>(attrs: &'a HashMap<String, Vec<String>>, name: &str) -> &'a [String] {
    attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .unwrap_or(&[])
}

/// What a user's entry says, without groups; `None` when it has no user
/// name.
pub fn identity_of(
    cfg: &LdapConfig,
    dn: &str,
    attrs: &HashMap<String, Vec<String>>,
) -> Option<ExternalIdentity> {
    let a = &cfg.attributes;
    let first = |name: &str| {
        values(attrs, name)
            .first()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let username = first(&a.username)?;
    let uid = first(&a.uid_number).and_then(|u| match u.parse::<u32>() {
        Ok(n) => Some(n),
        Err(_) => {
            tracing::warn!(dn, value = %u, attr = %a.uid_number, "not a uid number; ignored");
            None
        }
    });
    Some(ExternalIdentity {
        source: cfg.source(),
        subject: dn.to_string(),
        username,
        display_name: first(&a.display_name),
        email: first(&a.email),
        unix_name: first(&a.unix_name),
        uid,
        groups: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn config() -> LdapConfig {
        LdapConfig {
            name: "campus".into(),
            url: "ldap://127.0.0.1:389".into(),
            starttls: false,
            bind_dn: "cn=trestle,dc=uni,dc=example".into(),
            bind_password: Secret::new("s3cret"),
            user_base: "ou=people,dc=uni,dc=example".into(),
            user_filter: "(&(objectClass=posixAccount)(uid={username}))".into(),
            attributes: AttributeNames::default(),
            groups: Groups::Search {
                base: "ou=groups,dc=uni,dc=example".into(),
                filter: "(member={dn})".into(),
                name_attr: "cn".into(),
            },
            sync_interval: Duration::from_secs(900),
            ca_file: None,
            timeout: Duration::from_secs(10),
        }
    }

    fn field(c: &LdapConfig) -> String {
        c.validate().unwrap_err().field
    }

    #[test]
    fn good_settings_pass_and_bad_ones_are_named() {
        config().validate().unwrap();
        let mut c = config();
        c.url = "http://dir".into();
        assert_eq!(field(&c), "ldap.url");
        let mut c = config();
        c.url = "ldap://dir.uni.example".into();
        assert_eq!(field(&c), "ldap.starttls", "clear text beyond loopback");
        c.starttls = true;
        c.validate().unwrap();
        let mut c = config();
        c.url = "ldaps://dir.uni.example:636".into();
        c.validate().unwrap();
        c.starttls = true;
        assert_eq!(field(&c), "ldap.starttls");
        let mut c = config();
        c.user_filter = "(uid={username}".into();
        assert_eq!(field(&c), "ldap.user_filter");
        c.user_filter = "(uid=ada)".into();
        assert_eq!(field(&c), "ldap.user_filter", "no placeholder");
        let mut c = config();
        c.groups = Groups::Search {
            base: "ou=groups,dc=x".into(),
            filter: "member={dn})(".into(),
            name_attr: "cn".into(),
        };
        assert_eq!(field(&c), "ldap.group_filter");
        let mut c = config();
        c.bind_password = Secret::default();
        assert_eq!(field(&c), "ldap.bind_password_file");
        let mut c = config();
        c.attributes.email = "ma il".into();
        assert_eq!(field(&c), "ldap.email_attr");
        let mut c = config();
        c.user_base = "people".into();
        assert_eq!(field(&c), "ldap.user_base");
    }

    #[test]
    fn values_are_escaped_into_filters() {
        assert_eq!(
            fill_filter("(uid={username})", &[("{username}", "*)(uid=admin")]),
            "(uid=\\2a\\29\\28uid=admin)"
        );
        assert_eq!(
            fill_filter(
                "(|(member={dn})(memberUid={username}))",
                &[("{dn}", "uid=ada,ou=p"), ("{username}", "ada")]
            ),
            "(|(member=uid=ada,ou=p)(memberUid=ada))"
        );
    }

    #[test]
    fn group_names_are_first_rdn_values() {
        assert_eq!(
            first_rdn_value("cn=hpc-users,ou=groups,dc=x").as_deref(),
            Some("hpc-users")
        );
        assert_eq!(first_rdn_value("cn=a\\,b,ou=g").as_deref(), Some("a,b"));
        assert_eq!(
            first_rdn_value("cn=a\\2Cb\\c3\\a9,ou=g").as_deref(),
            Some("a,bé")
        );
        assert_eq!(first_rdn_value("garbage"), None);
    }

    #[test]
    fn secrets_are_not_printed() {
        let c = config();
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn identities_read_attributes_without_case() {
        let attrs: HashMap<String, Vec<String>> = [
            ("UID".to_string(), vec!["ada".to_string()]),
            ("mail".to_string(), vec!["ada@uni.example".to_string()]),
            ("uidNumber".to_string(), vec!["12001".to_string()]),
            ("cn".to_string(), vec!["Ada Lovelace".to_string()]),
        ]
        .into();
        let who = identity_of(&config(), "uid=ada,ou=people", &attrs).unwrap();
        assert_eq!(who.source, "ldap:campus");
        assert_eq!(who.username, "ada");
        assert_eq!(who.uid, Some(12001));
        assert_eq!(who.unix_name.as_deref(), Some("ada"));
        assert_eq!(who.display_name.as_deref(), Some("Ada Lovelace"));
        let mut bad = attrs.clone();
        bad.insert("uidNumber".into(), vec!["-1".into()]);
        assert_eq!(identity_of(&config(), "x=y", &bad).unwrap().uid, None);
        assert!(identity_of(&config(), "x=y", &HashMap::new()).is_none());
    }
}
