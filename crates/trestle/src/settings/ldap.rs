//! `[ldap]` in `trestle.toml`: one LDAP directory users sign in against
//! with their password, and that a periodic sync follows (issue 11). The
//! service account's password is given by reference only.
//!
//! ```toml
//! [ldap]
//! name = "campus"                          # users come from source ldap:campus
//! url = "ldaps://ldap.uni.example"         # or ldap://... with starttls = true
//! bind_dn = "cn=trestle,ou=services,dc=uni,dc=example"
//! bind_password_file = "/etc/trestle/ldap-password"   # or bind_password_env = "VAR"
//! user_base = "ou=people,dc=uni,dc=example"
//! user_filter = "(uid={username})"
//! group_base = "ou=groups,dc=uni,dc=example"   # or member_of_attr = "memberOf"
//! group_filter = "(member={dn})"
//! sync_interval = "15m"
//! ```

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use trestle_ldap::{AttributeNames, Directory, Groups, LdapConfig, Secret};

/// `[ldap]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapFile {
    /// The directory's name (source `ldap:NAME`).
    pub name: Option<String>,
    /// `ldap://` or `ldaps://` URL.
    pub url: Option<String>,
    /// StartTLS on an `ldap://` URL (default false).
    #[serde(default)]
    pub starttls: bool,
    /// The service account.
    pub bind_dn: Option<String>,
    /// Refused: passwords are given by reference.
    pub bind_password: Option<toml::Value>,
    /// A file holding the service account's password.
    pub bind_password_file: Option<PathBuf>,
    /// An environment variable holding it.
    pub bind_password_env: Option<String>,
    /// Where users live.
    pub user_base: Option<String>,
    /// Default `(uid={username})`.
    pub user_filter: Option<String>,
    /// Default `uid`.
    pub username_attr: Option<String>,
    /// Default `cn`.
    pub display_name_attr: Option<String>,
    /// Default `mail`.
    pub email_attr: Option<String>,
    /// Default `uidNumber`.
    pub uid_number_attr: Option<String>,
    /// Default `uid`.
    pub unix_name_attr: Option<String>,
    /// Groups from this attribute of the user (`memberOf`).
    pub member_of_attr: Option<String>,
    /// Groups from a search under this base.
    pub group_base: Option<String>,
    /// Default `(member={dn})`.
    pub group_filter: Option<String>,
    /// Default `cn`.
    pub group_name_attr: Option<String>,
    /// Default `15m`.
    pub sync_interval: Option<String>,
    /// PEM CA certificates for TLS (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// Connection and operation timeout (default `10s`).
    pub timeout: Option<String>,
}

fn required(v: Option<String>, field: &str) -> Result<String> {
    match v {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => bail!("ldap.{field}: required"),
    }
}

fn password(f: &LdapFile, base: &Path) -> Result<Secret> {
    if f.bind_password.is_some() {
        bail!(
            "ldap.bind_password: the password is never written in trestle.toml; name a file with bind_password_file or a variable with bind_password_env"
        );
    }
    match (&f.bind_password_file, &f.bind_password_env) {
        (Some(_), Some(_)) => {
            bail!("ldap.bind_password_file: set bind_password_file or bind_password_env, not both")
        }
        (Some(p), None) => {
            let path = base.join(p);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("ldap.bind_password_file: cannot read {}", path.display())
            })?;
            let pw = text.trim_end_matches(['\n', '\r']);
            if pw.is_empty() {
                bail!("ldap.bind_password_file: {} is empty", path.display());
            }
            Ok(Secret::new(pw))
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            _ => bail!("ldap.bind_password_env: the variable `{var}` is not set"),
        },
        (None, None) => bail!(
            "ldap.bind_password_file: the service account's password is required, by reference (bind_password_file or bind_password_env)"
        ),
    }
}

/// Validates `[ldap]` into a directory (connecting to nothing; the server
/// checks the service bind at start). Relative paths are taken from
/// `base`, the config file's directory. Errors name the setting.
pub fn build(f: Option<LdapFile>, base: &Path) -> Result<Option<Arc<Directory>>> {
    let Some(f) = f else { return Ok(None) };
    let bind_password = password(&f, base)?;
    let attr = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
    let groups = match (&f.member_of_attr, &f.group_base) {
        (Some(_), Some(_)) => {
            bail!("ldap.group_base: groups come from member_of_attr or a group search, not both")
        }
        (Some(a), None) => Groups::MemberOf { attr: a.clone() },
        (None, Some(b)) => Groups::Search {
            base: b.clone(),
            filter: attr(&f.group_filter, "(member={dn})"),
            name_attr: attr(&f.group_name_attr, "cn"),
        },
        (None, None) => {
            if f.group_filter.is_some() {
                bail!("ldap.group_filter: a group search needs group_base");
            }
            Groups::None
        }
    };
    let cfg = LdapConfig {
        name: required(f.name.clone(), "name")?,
        url: required(f.url.clone(), "url")?,
        starttls: f.starttls,
        bind_dn: required(f.bind_dn.clone(), "bind_dn")?,
        bind_password,
        user_base: required(f.user_base.clone(), "user_base")?,
        user_filter: attr(&f.user_filter, "(uid={username})"),
        attributes: AttributeNames {
            username: attr(&f.username_attr, "uid"),
            display_name: attr(&f.display_name_attr, "cn"),
            email: attr(&f.email_attr, "mail"),
            uid_number: attr(&f.uid_number_attr, "uidNumber"),
            unix_name: attr(&f.unix_name_attr, "uid"),
        },
        groups,
        sync_interval: super::secs(
            "ldap.sync_interval",
            f.sync_interval.as_deref().unwrap_or("15m"),
        )?,
        ca_file: f.ca_file.as_ref().map(|p| base.join(p)),
        timeout: match &f.timeout {
            Some(t) => super::secs("ldap.timeout", t)?,
            None => Duration::from_secs(10),
        },
    };
    Ok(Some(Arc::new(Directory::new(cfg)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<Arc<Directory>>> {
        #[derive(Deserialize)]
        struct F {
            ldap: LdapFile,
        }
        let f: F = toml::from_str(text)?;
        build(Some(f.ldap), Path::new("/"))
    }

    const BASE: &str = "[ldap]\nname = \"campus\"\nurl = \"ldap://127.0.0.1:3890\"\nbind_dn = \"cn=t,dc=x\"\nuser_base = \"ou=p,dc=x\"\n";

    fn err(extra: &str) -> String {
        parse(&format!("{BASE}{extra}")).unwrap_err().to_string()
    }

    #[test]
    fn passwords_are_by_reference_and_errors_name_the_setting() {
        // SAFETY: only this test reads or writes this variable.
        unsafe { std::env::set_var("TRESTLE_TEST_LDAP_PW_SETTINGS", "pw") };
        let d = parse(&format!(
            "{BASE}bind_password_env = \"TRESTLE_TEST_LDAP_PW_SETTINGS\"\nmember_of_attr = \"memberOf\"\n"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(d.source(), "ldap:campus");
        assert_eq!(d.config().bind_password.expose(), "pw");
        assert_eq!(d.config().sync_interval, Duration::from_secs(900));
        let e = err("bind_password = \"hunter2\"\n");
        assert!(
            e.starts_with("ldap.bind_password:") && !e.contains("hunter2"),
            "{e}"
        );
        assert!(err("").starts_with("ldap.bind_password_file:"));
        assert!(
            err("bind_password_env = \"TRESTLE_TEST_LDAP_UNSET\"\n")
                .starts_with("ldap.bind_password_env:")
        );
        assert!(
            err("bind_password_file = \"/nonexistent/pw\"\n")
                .starts_with("ldap.bind_password_file:")
        );
        let pw = "bind_password_env = \"TRESTLE_TEST_LDAP_PW_SETTINGS\"\n";
        assert!(
            err(&format!("{pw}user_filter = \"(uid={{username}}\"\n"))
                .starts_with("ldap.user_filter:")
        );
        assert!(
            err(&format!(
                "{pw}group_base = \"ou=g,dc=x\"\ngroup_filter = \"member=(\"\n"
            ))
            .starts_with("ldap.group_filter:")
        );
        assert!(
            err(&format!(
                "{pw}group_base = \"ou=g,dc=x\"\nmember_of_attr = \"memberOf\"\n"
            ))
            .starts_with("ldap.group_base:")
        );
        assert!(err(&format!("{pw}sync_interval = \"soon\"\n")).starts_with("ldap.sync_interval"));
    }
}
