//! Users who sign in through the university's identity (an OpenID provider
//! or an LDAP directory): what the provider says of them, the rules that
//! turn their groups into a role and project memberships, and what a
//! sign-in or a directory sync changes. Pure decisions; the service applies
//! them.
//!
//! Rules are evaluated at every sign-in and at every sync: a user's role is
//! the highest role any of their groups' rules gives (the default role,
//! guest unless configured, when none matches), and their *managed*
//! memberships are exactly those the rules give. Memberships an admin or a
//! manager added by hand are never touched by the rules.

use crate::error::{Result, ValidationError};
use crate::identity::authz::{MemberRole, Role};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an identity provider says about a user at sign-in or sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIdentity {
    /// Where the user comes from: `oidc:NAME` or `ldap:NAME`.
    pub source: String,
    /// The provider's stable id of the user (OIDC `sub`, an LDAP DN).
    pub subject: String,
    /// The Trestle user name.
    pub username: String,
    /// A name to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Where notifications go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The Unix account tasks run as (task isolation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_name: Option<String>,
    /// Its uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Group names, as the provider gives them.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// The attributes Trestle keeps of a user, with where each came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAttributes {
    /// `local` for accounts made in Trestle, else the provider
    /// (`oidc:campus`, `ldap:campus`).
    pub source: String,
    /// The provider's id of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A name to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Unix account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_name: Option<String>,
    /// Unix uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Groups at the last sign-in or sync.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Attribute name -> where it came from (`oidc:campus claim email`,
    /// `ldap:campus uidNumber`, `mapping table`, `admin`).
    #[serde(default)]
    pub origins: BTreeMap<String, String>,
    /// When the provider last vouched for the user (sign-in or sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_at: Option<i64>,
}

impl UserAttributes {
    /// The attributes of an account made in Trestle.
    pub fn local() -> UserAttributes {
        UserAttributes {
            source: LOCAL.to_string(),
            ..UserAttributes::default()
        }
    }
}

/// The source of accounts made in Trestle.
pub const LOCAL: &str = "local";

/// One rule: members of `group` get `role` (if set) and the listed project
/// memberships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRule {
    /// The group name, exactly as the provider gives it (`*`: everyone the
    /// provider signs in).
    pub group: String,
    /// The role it gives.
    #[serde(default)]
    pub role: Option<Role>,
    /// Project name -> the member role it gives there.
    #[serde(default)]
    pub projects: BTreeMap<String, MemberRole>,
}

/// The rules of one installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingRules {
    /// The role of a user no rule gives one.
    pub default_role: Role,
    /// The rules, in any order (the highest role wins).
    pub rules: Vec<MappingRule>,
    /// User name -> Unix account, for users the provider gives none.
    #[serde(default)]
    pub unix_accounts: BTreeMap<String, String>,
}

impl Default for MappingRules {
    fn default() -> Self {
        MappingRules {
            default_role: Role::Guest,
            rules: Vec::new(),
            unix_accounts: BTreeMap::new(),
        }
    }
}

/// What the rules give a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// Their role.
    pub role: Role,
    /// Project -> member role, for the memberships the rules manage.
    pub memberships: BTreeMap<String, MemberRole>,
    /// The attributes to keep.
    pub attributes: UserAttributes,
}

fn rank(r: Role) -> u8 {
    match r {
        Role::Guest => 0,
        Role::InternalGuest => 1,
        Role::Researcher => 2,
        Role::Admin => 3,
    }
}

fn member_rank(r: MemberRole) -> u8 {
    match r {
        MemberRole::Viewer => 0,
        MemberRole::Member => 1,
        MemberRole::Manager => 2,
    }
}

impl MappingRules {
    /// Checks the rules; an error names the rule (`mapping.rules[2].group`).
    pub fn validate(&self, known_projects: Option<&[String]>) -> Result<()> {
        for (i, r) in self.rules.iter().enumerate() {
            let field = format!("mapping.rules[{i}]");
            if r.group.trim().is_empty() || r.group.len() > 1024 {
                return Err(ValidationError::new(
                    "invalid-mapping",
                    &format!("{field}.group"),
                    "a rule names a group of 1-1024 characters (`*` for everyone)",
                ));
            }
            if r.role.is_none() && r.projects.is_empty() {
                return Err(ValidationError::new(
                    "invalid-mapping",
                    &field,
                    format!(
                        "the rule for `{}` gives neither a role nor a project",
                        r.group
                    ),
                ));
            }
            for p in r.projects.keys() {
                crate::identity::validate_name(&format!("{field}.projects"), p)?;
                if let Some(known) = known_projects
                    && !known.contains(p)
                {
                    return Err(ValidationError::new(
                        "invalid-mapping",
                        &format!("{field}.projects"),
                        format!("there is no project `{p}`"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// What the rules give `who`, with the attributes to keep and where
    /// each came from. `now` is when the provider vouched for them.
    pub fn map(&self, who: &ExternalIdentity, now: i64) -> Mapped {
        let mut role: Option<Role> = None;
        let mut memberships: BTreeMap<String, MemberRole> = BTreeMap::new();
        for rule in &self.rules {
            if rule.group != "*" && !who.groups.iter().any(|g| g == &rule.group) {
                continue;
            }
            if let Some(r) = rule.role
                && role.is_none_or(|have| rank(r) > rank(have))
            {
                role = Some(r);
            }
            for (p, m) in &rule.projects {
                let e = memberships.entry(p.clone()).or_insert(*m);
                if member_rank(*m) > member_rank(*e) {
                    *e = *m;
                }
            }
        }
        let mut origins = BTreeMap::new();
        let from = |what: &str| format!("{} {what}", who.source);
        for (attr, present) in [
            ("display_name", who.display_name.is_some()),
            ("email", who.email.is_some()),
            ("uid", who.uid.is_some()),
            ("groups", true),
        ] {
            if present {
                origins.insert(attr.to_string(), from(attr));
            }
        }
        let unix_name = match &who.unix_name {
            Some(u) => {
                origins.insert("unix_name".into(), from("unix_name"));
                Some(u.clone())
            }
            None => self.unix_accounts.get(&who.username).map(|u| {
                origins.insert("unix_name".into(), "mapping table".into());
                u.clone()
            }),
        };
        let role = match role {
            Some(r) => {
                origins.insert("role".into(), "mapping rules".into());
                r
            }
            None => {
                origins.insert("role".into(), "default role".into());
                self.default_role
            }
        };
        Mapped {
            role,
            memberships,
            attributes: UserAttributes {
                source: who.source.clone(),
                subject: Some(who.subject.clone()),
                display_name: who.display_name.clone(),
                email: who.email.clone(),
                unix_name,
                uid: who.uid,
                groups: who.groups.clone(),
                origins,
                synced_at: Some(now),
            },
        }
    }
}

/// Whether an existing account may be signed into as `who`: only one
/// made by the same provider for the same subject. A local account (the
/// break-glass admin among them) is never taken over by a provider's user
/// of the same name.
pub fn may_sign_in_as(existing: &UserAttributes, who: &ExternalIdentity) -> bool {
    existing.source == who.source && existing.subject.as_deref() == Some(who.subject.as_str())
}

/// What a sync does to one user of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncAction {
    /// Still in the directory: map again.
    Remap(ExternalIdentity),
    /// Gone from the directory: disable, revoke their tokens.
    Deprovision(String),
}

/// Plans a sync of `source`: `known` are the users Trestle holds from it
/// (name, subject), `listed` what the directory lists now. Users listed
/// but not known are left for their first sign-in.
pub fn plan_sync(known: &[(String, String)], listed: &[ExternalIdentity]) -> Vec<SyncAction> {
    let mut out = Vec::new();
    for (name, subject) in known {
        match listed.iter().find(|l| &l.subject == subject) {
            Some(l) => out.push(SyncAction::Remap(l.clone())),
            None => out.push(SyncAction::Deprovision(name.clone())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(groups: &[&str]) -> ExternalIdentity {
        ExternalIdentity {
            source: "ldap:campus".into(),
            subject: "uid=ada,ou=people".into(),
            username: "ada".into(),
            email: Some("ada@uni.example".into()),
            uid: Some(12001),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..ExternalIdentity::default()
        }
    }

    fn rules() -> MappingRules {
        MappingRules {
            default_role: Role::Guest,
            rules: vec![
                MappingRule {
                    group: "hpc-users".into(),
                    role: Some(Role::Researcher),
                    projects: [("genomics".to_string(), MemberRole::Member)].into(),
                },
                MappingRule {
                    group: "genomics-pis".into(),
                    role: None,
                    projects: [("genomics".to_string(), MemberRole::Manager)].into(),
                },
                MappingRule {
                    group: "research-it".into(),
                    role: Some(Role::Admin),
                    projects: BTreeMap::new(),
                },
            ],
            unix_accounts: [("bob".to_string(), "bsmith".to_string())].into(),
        }
    }

    #[test]
    fn the_highest_role_and_membership_win() {
        let m = rules().map(&who(&["hpc-users", "genomics-pis"]), 5);
        assert_eq!(m.role, Role::Researcher);
        assert_eq!(m.memberships["genomics"], MemberRole::Manager);
        assert_eq!(m.attributes.email.as_deref(), Some("ada@uni.example"));
        assert_eq!(m.attributes.uid, Some(12001));
        assert_eq!(m.attributes.origins["role"], "mapping rules");
        assert_eq!(m.attributes.origins["email"], "ldap:campus email");
        assert_eq!(
            rules().map(&who(&["research-it", "hpc-users"]), 5).role,
            Role::Admin
        );
    }

    #[test]
    fn no_rule_means_the_default_role_and_nothing_more() {
        let m = rules().map(&who(&["chess-club"]), 5);
        assert_eq!(m.role, Role::Guest);
        assert!(m.memberships.is_empty());
        assert_eq!(m.attributes.origins["role"], "default role");
    }

    #[test]
    fn unix_accounts_come_from_the_provider_or_the_table() {
        let mut bob = who(&[]);
        bob.username = "bob".into();
        let m = rules().map(&bob, 5);
        assert_eq!(m.attributes.unix_name.as_deref(), Some("bsmith"));
        assert_eq!(m.attributes.origins["unix_name"], "mapping table");
        bob.unix_name = Some("bob2".into());
        assert_eq!(
            rules().map(&bob, 5).attributes.unix_name.as_deref(),
            Some("bob2")
        );
    }

    #[test]
    fn bad_rules_are_named() {
        let mut r = rules();
        r.rules[1].projects.clear();
        assert_eq!(
            r.validate(None).unwrap_err().field.as_deref(),
            Some("mapping.rules[1]")
        );
        let e = rules().validate(Some(&["other".to_string()])).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("mapping.rules[0].projects"));
    }

    #[test]
    fn local_accounts_are_never_taken_over() {
        let w = who(&[]);
        assert!(!may_sign_in_as(&UserAttributes::local(), &w));
        let mut same = UserAttributes::local();
        same.source = w.source.clone();
        same.subject = Some(w.subject.clone());
        assert!(may_sign_in_as(&same, &w));
        same.subject = Some("uid=eve".into());
        assert!(!may_sign_in_as(&same, &w));
    }

    #[test]
    fn syncs_remap_the_listed_and_deprovision_the_gone() {
        let known = vec![
            ("ada".to_string(), "uid=ada,ou=people".to_string()),
            ("old".to_string(), "uid=old,ou=people".to_string()),
        ];
        let plan = plan_sync(&known, &[who(&["hpc-users"])]);
        assert!(matches!(&plan[0], SyncAction::Remap(w) if w.username == "ada"));
        assert_eq!(plan[1], SyncAction::Deprovision("old".into()));
    }
}
