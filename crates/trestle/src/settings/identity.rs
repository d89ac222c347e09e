//! `[identity]` in `trestle.toml`: how users from identity providers get
//! their role and projects. The providers themselves (`[[oidc]]`,
//! `[ldap]`) have their own tables.
//!
//! ```toml
//! [identity]
//! default_role = "guest"          # users no rule gives a role (default)
//! on_deprovision = "finish"       # or "cancel": running work of users gone from the directory
//! unix_accounts = { bob = "bsmith" }   # for users the provider gives no Unix account
//!
//! [[identity.rules]]
//! group = "hpc-users"
//! role = "researcher"
//! projects = { genomics = "member" }
//! ```

use anyhow::{Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use trestle_core::identity::authz::Role;
use trestle_core::identity::external::{MappingRule, MappingRules};
use trestle_service::external::{IdentitySettings, RunningWork};

/// `[identity]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    /// Role of users no rule gives one (default `guest`).
    pub default_role: Option<String>,
    /// `finish` (default) or `cancel`.
    pub on_deprovision: Option<String>,
    /// User name -> Unix account.
    #[serde(default)]
    pub unix_accounts: BTreeMap<String, String>,
    /// Group rules.
    #[serde(default)]
    pub rules: Vec<MappingRule>,
}

/// Validates `[identity]`; errors name the setting.
pub fn build(f: IdentityFile) -> Result<IdentitySettings> {
    let default_role = match f.default_role.as_deref() {
        None => Role::Guest,
        Some(r) => match Role::parse(r) {
            Some(r) => r,
            None => bail!(
                "identity.default_role: `{r}` is not a role (admin, researcher, internal-guest, guest)"
            ),
        },
    };
    let on_deprovision = match f.on_deprovision.as_deref() {
        None | Some("finish") => RunningWork::Finish,
        Some("cancel") => RunningWork::Cancel,
        Some(o) => bail!("identity.on_deprovision: `{o}` is neither `finish` nor `cancel`"),
    };
    for (user, unix) in &f.unix_accounts {
        if unix.is_empty()
            || unix.len() > 32
            || !unix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            bail!("identity.unix_accounts.{user}: `{unix}` is not a Unix account name");
        }
    }
    let mapping = MappingRules {
        default_role,
        rules: f.rules,
        unix_accounts: f.unix_accounts,
    };
    if let Err(e) = mapping.validate(None) {
        let field = e
            .field
            .unwrap_or_default()
            .replacen("mapping.", "identity.", 1);
        bail!("{field}: {}", e.message);
    }
    Ok(IdentitySettings {
        mapping,
        on_deprovision,
        // Set from `[ldap]` by the caller.
        ldap: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<IdentitySettings> {
        #[derive(Deserialize)]
        struct F {
            identity: IdentityFile,
        }
        let f: F = toml::from_str(text)?;
        build(f.identity)
    }

    #[test]
    fn rules_and_their_errors() {
        let s = parse(
            "[identity]\ndefault_role = \"internal-guest\"\n[[identity.rules]]\ngroup = \"hpc\"\nrole = \"researcher\"\nprojects = { genomics = \"manager\" }\n",
        )
        .unwrap();
        assert_eq!(s.mapping.default_role, Role::InternalGuest);
        assert_eq!(s.mapping.rules[0].role, Some(Role::Researcher));
        let e = parse("[identity]\n[[identity.rules]]\ngroup = \"hpc\"\n").unwrap_err();
        assert!(e.to_string().starts_with("identity.rules[0]:"), "{e}");
        let e = parse("[identity]\ndefault_role = \"boss\"\n").unwrap_err();
        assert!(e.to_string().contains("identity.default_role"), "{e}");
        assert!(parse("[identity]\n[[identity.rules]]\ngroup = \"x\"\nrole = \"king\"\n").is_err());
    }
}
