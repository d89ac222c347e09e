//! Trestle's LDAP client (issue 11): password sign-in against a directory
//! and the lookups of a directory sync, over StartTLS or LDAPS (rustls
//! with aws-lc-rs), with the `ldap3` crate. It only talks to the
//! directory and turns entries into [`ExternalIdentity`]s; what a sign-in
//! or a sync then does to Trestle's users is `trestle-service`'s
//! (`external::sign_in`, `external::sync`).
//!
//! A sign-in binds as the service account, searches the user under
//! `user_base` with `user_filter` (the name escaped), reads their
//! attributes and groups, and last binds as the user's DN with their
//! password. An empty password is refused before the directory is asked:
//! a simple bind with a DN and no password is an "unauthenticated bind"
//! that many servers answer with success.

mod config;

pub use config::{
    AttributeNames, ConfigError, Groups, LdapConfig, Secret, fill_filter, first_rdn_value,
    identity_of,
};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::sync::Arc;
use trestle_core::identity::external::ExternalIdentity;

/// LDAP result code: no such object.
const NO_SUCH_OBJECT: u32 = 32;
/// LDAP result code: invalid credentials.
const INVALID_CREDENTIALS: u32 = 49;

/// A failure talking to the directory (never a wrong password: that is
/// `Ok(None)` from [`Directory::authenticate`]). Messages never hold a
/// password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The directory cannot be reached (or TLS failed).
    #[error("cannot reach the directory at {url}: {message}")]
    Unreachable {
        /// `ldap.url`.
        url: String,
        /// Why.
        message: String,
    },
    /// The service account's bind was refused.
    #[error("the directory refused the bind of ldap.bind_dn `{dn}`: {message}")]
    ServiceBind {
        /// `ldap.bind_dn`.
        dn: String,
        /// Why.
        message: String,
    },
    /// An operation failed.
    #[error("the directory answered {what} with an error: {message}")]
    Operation {
        /// Which operation.
        what: String,
        /// Why.
        message: String,
    },
}

impl DirectoryError {
    /// The setting to look at first (`ldap.url`, `ldap.bind_dn`).
    pub fn field(&self) -> &'static str {
        match self {
            DirectoryError::Unreachable { .. } => "ldap.url",
            DirectoryError::ServiceBind { .. } => "ldap.bind_dn",
            DirectoryError::Operation { .. } => "ldap",
        }
    }
}

/// One configured directory, ready to connect.
pub struct Directory {
    cfg: LdapConfig,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("name", &self.cfg.name)
            .field("url", &self.cfg.url)
            .finish_non_exhaustive()
    }
}

/// What a sync lookup found of one user Trestle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Still in the directory, matching the user filter.
    Present(ExternalIdentity),
    /// Gone, or no longer matching the filter.
    Gone,
}

fn tls_config(cfg: &LdapConfig) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    ConfigError::new(
                        "ca_file",
                        format!("cannot read PEM certificates from {}: {e}", path.display()),
                    )
                })?;
            if certs.is_empty() {
                return Err(ConfigError::new(
                    "ca_file",
                    format!("{} holds no PEM certificate", path.display()),
                ));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    ConfigError::new(
                        "ca_file",
                        format!("a certificate of {} is not usable: {e}", path.display()),
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("url", format!("no TLS protocol version: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Directory {
    /// Checks the settings and loads the TLS trust (`ca_file`); connects
    /// to nothing.
    pub fn new(cfg: LdapConfig) -> Result<Directory, ConfigError> {
        cfg.validate()?;
        let tls = tls_config(&cfg)?;
        Ok(Directory { cfg, tls })
    }

    /// The settings.
    pub fn config(&self) -> &LdapConfig {
        &self.cfg
    }

    /// The source of this directory's users: `ldap:NAME`.
    pub fn source(&self) -> String {
        self.cfg.source()
    }

    /// Opens a connection (TLS as configured) and binds as the service
    /// account.
    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.cfg.timeout)
            .set_starttls(self.cfg.starttls)
            .set_config(self.tls.clone());
        let unreachable = |e: ldap3::LdapError| DirectoryError::Unreachable {
            url: self.cfg.url.clone(),
            message: e.to_string(),
        };
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.cfg.url)
            .await
            .map_err(unreachable)?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        });
        let res = ldap
            .with_timeout(self.cfg.timeout)
            .simple_bind(&self.cfg.bind_dn, self.cfg.bind_password.expose())
            .await
            .map_err(unreachable)?;
        if res.rc != 0 {
            return Err(DirectoryError::ServiceBind {
                dn: self.cfg.bind_dn.clone(),
                message: describe(res.rc, &res.text),
            });
        }
        Ok(ldap)
    }

    /// Connects and binds as the service account once: the start-up check.
    pub async fn check(&self) -> Result<(), DirectoryError> {
        let mut ldap = self.connect().await?;
        let _ = ldap.unbind().await;
        Ok(())
    }

    fn user_attrs(&self) -> Vec<String> {
        let a = &self.cfg.attributes;
        let mut attrs = vec![
            a.username.clone(),
            a.display_name.clone(),
            a.email.clone(),
            a.uid_number.clone(),
            a.unix_name.clone(),
        ];
        if let Groups::MemberOf { attr } = &self.cfg.groups {
            attrs.push(attr.clone());
        }
        attrs.sort();
        attrs.dedup();
        attrs
    }

    async fn search(
        &self,
        ldap: &mut Ldap,
        what: &str,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<String>,
    ) -> Result<Option<Vec<SearchEntry>>, DirectoryError> {
        let failed = |message: String| DirectoryError::Operation {
            what: what.to_string(),
            message,
        };
        let ldap3::SearchResult(entries, res) = ldap
            .with_timeout(self.cfg.timeout)
            .search(base, scope, filter, attrs)
            .await
            .map_err(|e| failed(e.to_string()))?;
        match res.rc {
            // Referrals (Active Directory sends them from subtree searches)
            // and intermediate messages are not entries.
            0 => Ok(Some(
                entries
                    .into_iter()
                    .filter(|e| !e.is_ref() && !e.is_intermediate())
                    .map(SearchEntry::construct)
                    .collect(),
            )),
            NO_SUCH_OBJECT => Ok(None),
            rc => Err(failed(describe(rc, &res.text))),
        }
    }

    /// The identity of the user with `entry`, with their groups.
    async fn with_groups(
        &self,
        ldap: &mut Ldap,
        entry: &SearchEntry,
    ) -> Result<Option<ExternalIdentity>, DirectoryError> {
        let Some(mut who) = identity_of(&self.cfg, &entry.dn, &entry.attrs) else {
            tracing::warn!(dn = %entry.dn, attr = %self.cfg.attributes.username, "a directory entry has no user name; ignored");
            return Ok(None);
        };
        who.groups = match &self.cfg.groups {
            Groups::None => Vec::new(),
            Groups::MemberOf { attr } => config::values(&entry.attrs, attr)
                .iter()
                .filter_map(|dn| first_rdn_value(dn))
                .collect(),
            Groups::Search {
                base,
                filter,
                name_attr,
            } => {
                let filter = fill_filter(
                    filter,
                    &[("{dn}", &entry.dn), ("{username}", &who.username)],
                );
                let found = self
                    .search(
                        ldap,
                        "the group search",
                        base,
                        Scope::Subtree,
                        &filter,
                        vec![name_attr.clone()],
                    )
                    .await?
                    .unwrap_or_default();
                found
                    .iter()
                    .filter_map(|g| config::values(&g.attrs, name_attr).first().cloned())
                    .collect()
            }
        };
        who.groups.sort();
        who.groups.dedup();
        Ok(Some(who))
    }

    /// Checks `password` of the user the directory knows as `username`:
    /// `Ok(Some(who))` when it is right, `Ok(None)` for an unknown user, an
    /// ambiguous one, an empty password or a wrong one (alike), and an
    /// error when the directory cannot answer.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<ExternalIdentity>, DirectoryError> {
        if password.is_empty() {
            return Ok(None);
        }
        let mut ldap = self.connect().await?;
        let result = self.authenticate_on(&mut ldap, username, password).await;
        let _ = ldap.unbind().await;
        result
    }

    async fn authenticate_on(
        &self,
        ldap: &mut Ldap,
        username: &str,
        password: &str,
    ) -> Result<Option<ExternalIdentity>, DirectoryError> {
        let filter = fill_filter(&self.cfg.user_filter, &[("{username}", username)]);
        let entries = self
            .search(
                ldap,
                "the user search",
                &self.cfg.user_base,
                Scope::Subtree,
                &filter,
                self.user_attrs(),
            )
            .await?
            .unwrap_or_default();
        let entry = match entries.as_slice() {
            [one] => one,
            [] => return Ok(None),
            many => {
                tracing::warn!(
                    user = username,
                    entries = many.len(),
                    "ldap.user_filter matches several entries; sign-in refused"
                );
                return Ok(None);
            }
        };
        let Some(who) = self.with_groups(ldap, entry).await? else {
            return Ok(None);
        };
        let res = ldap
            .with_timeout(self.cfg.timeout)
            .simple_bind(&entry.dn, password)
            .await
            .map_err(|e| DirectoryError::Operation {
                what: "the user's bind".into(),
                message: e.to_string(),
            })?;
        match res.rc {
            0 => Ok(Some(who)),
            INVALID_CREDENTIALS => Ok(None),
            rc => {
                // Locked accounts, expired passwords (unwillingToPerform,
                // inappropriateAuthentication, ...): refused alike.
                tracing::info!(dn = %entry.dn, result = %describe(rc, &res.text), "the directory refused a user's bind");
                Ok(None)
            }
        }
    }

    /// Looks up, for a sync, each user Trestle holds from this directory
    /// (`(name, DN)`): their entry is read at its DN with the user filter
    /// (`{username}` being the name Trestle holds), so a user whose entry
    /// was deleted, moved or no longer matches the filter is
    /// [`Lookup::Gone`]. Any other failure fails the whole lookup (nobody
    /// is deprovisioned because the directory did not answer).
    pub async fn lookup(
        &self,
        known: &[(String, String)],
    ) -> Result<Vec<(String, Lookup)>, DirectoryError> {
        let mut ldap = self.connect().await?;
        let mut out = Vec::with_capacity(known.len());
        let mut result = Ok(());
        for (name, dn) in known {
            let filter = fill_filter(&self.cfg.user_filter, &[("{username}", name)]);
            let found = match self
                .search(
                    &mut ldap,
                    "a sync lookup",
                    dn,
                    Scope::Base,
                    &filter,
                    self.user_attrs(),
                )
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let entry = found.and_then(|mut v| (v.len() == 1).then(|| v.remove(0)));
            let state = match entry {
                None => Lookup::Gone,
                Some(e) => match self.with_groups(&mut ldap, &e).await {
                    Ok(Some(who)) => Lookup::Present(who),
                    Ok(None) => Lookup::Gone,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
            };
            out.push((name.clone(), state));
        }
        let _ = ldap.unbind().await;
        result.map(|()| out)
    }
}

/// An LDAP result code in words.
fn describe(rc: u32, text: &str) -> String {
    let name = match rc {
        NO_SUCH_OBJECT => "noSuchObject",
        INVALID_CREDENTIALS => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        _ => "error",
    };
    if text.is_empty() {
        format!("{name} ({rc})")
    } else {
        format!("{name} ({rc}): {text}")
    }
}
