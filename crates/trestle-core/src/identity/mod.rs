//! Identity: the kinds of credential, roles (with the one authorization
//! decision in [`authz`]) and the validation of names and passwords users
//! choose; how the API shows them is in [`crate::api::identity`].

pub mod authz;
pub mod authz_cost;
pub mod authz_study;
pub mod authz_workspace;
pub mod external;
pub mod oidc;
pub mod unix;

use crate::error::{Result, ValidationError};
use crate::identity::authz::{MemberRole, Role};
use serde::{Deserialize, Serialize};

/// The prefix of every Trestle API token (`trs_` and 48 hex digits), so
/// that log masking and the workspace proxy recognise one.
pub const TOKEN_PREFIX: &str = "trs_";

/// Checks a user, project, index or organisation name: 1-64 lower-case
/// letters, digits, `-`, `_` or `.`, starting with a letter or digit.
pub fn validate_name(field: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        });
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "invalid-name",
            field,
            format!(
                "`{}` must be 1-64 lower-case letters, digits, `-`, `_` or `.`, starting with a letter or digit",
                s.escape_debug()
            ),
        ))
    }
}

/// Parses a role name, naming the field when it is wrong.
pub fn parse_role(field: &str, s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| {
        ValidationError::new(
            "invalid-role",
            field,
            format!("`{s}` is not a role (admin, researcher, internal-guest, guest)"),
        )
    })
}

/// Parses a project member role, naming the field when it is wrong.
pub fn parse_member_role(field: &str, s: &str) -> Result<MemberRole> {
    MemberRole::parse(s).ok_or_else(|| {
        ValidationError::new(
            "invalid-role",
            field,
            format!("`{s}` is not a project role (viewer, member, manager)"),
        )
    })
}

/// Checks a password for a local account.
pub fn validate_password(field: &str, p: &str) -> Result<()> {
    if p.chars().count() < 10 || p.len() > 1024 {
        return Err(ValidationError::new(
            "weak-password",
            field,
            "a password needs 10 to 1024 characters",
        ));
    }
    Ok(())
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Acts as its user.
    User,
    /// A worker credential: lease, report, stage, upload outputs.
    Worker,
}

impl TokenKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::User => "user",
            TokenKind::Worker => "worker",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "user" => Some(TokenKind::User),
            "worker" => Some(TokenKind::Worker),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["alice", "a", "proj-1", "x.y_z", "0abc"] {
            validate_name("name", ok).unwrap();
        }
        for bad in ["", "Alice", "-a", "a b", "a,b", "é", &"a".repeat(65)] {
            let e = validate_name("name", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("name"), "{bad}");
        }
        assert_eq!(parse_role("role", "guest").unwrap(), Role::Guest);
        assert_eq!(
            parse_role("role", "root").unwrap_err().field.as_deref(),
            Some("role")
        );
        assert!(validate_password("password", "short").is_err());
        validate_password("password", "long enough pass").unwrap();
    }
}
