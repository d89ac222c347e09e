//! Studies: research data sets in three categories, with per-user
//! permissions, owned by a project (which is charged for their storage).
//! This folder holds the pure parts: categories and permissions as data
//! (the decision itself is [`crate::identity::authz_study`]), the
//! manifest and its versions ([`manifest`]), the merge rule for
//! concurrent writers ([`merge`]) and quota arithmetic ([`quota`]).

pub mod attach;
pub mod manifest;
pub mod merge;
pub mod quota;
pub mod retention;

use crate::error::{Result, ValidationError};
use serde::{Deserialize, Serialize};

/// Which of the three shelves a study is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// My Studies: personal; only its grants see it.
    Personal,
    /// Organization: readable by the members of its project.
    Organization,
    /// Open Data: readable by every user, writable only by its admins.
    Open,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 3] = [Category::Personal, Category::Organization, Category::Open];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Personal => "personal",
            Category::Organization => "organization",
            Category::Open => "open",
        }
    }

    /// The name people see (portal tabs, `trestle study list`).
    pub fn title(self) -> &'static str {
        match self {
            Category::Personal => "My Studies",
            Category::Organization => "Organization",
            Category::Open => "Open Data",
        }
    }

    /// Parses a wire name (also `my`, `org`, `open-data`).
    pub fn parse(s: &str) -> Option<Category> {
        match s.trim() {
            "personal" | "my" | "mine" | "my-studies" => Some(Category::Personal),
            "organization" | "organisation" | "org" => Some(Category::Organization),
            "open" | "open-data" => Some(Category::Open),
            _ => None,
        }
    }
}

/// A user's permission on one study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// A deposit box: adds files, never reads them.
    WriteOnly,
    /// Reads files and the manifest.
    ReadOnly,
    /// Reads and writes files.
    ReadWrite,
    /// Reads, writes, grants and revokes, deletes the study.
    Admin,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 4] = [
        Permission::Admin,
        Permission::ReadWrite,
        Permission::ReadOnly,
        Permission::WriteOnly,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Admin => "admin",
            Permission::ReadWrite => "read-write",
            Permission::ReadOnly => "read-only",
            Permission::WriteOnly => "write-only",
        }
    }

    /// Parses a wire name (also `rw`, `ro`, `wo`).
    pub fn parse(s: &str) -> Option<Permission> {
        match s.trim() {
            "admin" => Some(Permission::Admin),
            "read-write" | "rw" => Some(Permission::ReadWrite),
            "read-only" | "ro" | "read" => Some(Permission::ReadOnly),
            "write-only" | "wo" | "write" => Some(Permission::WriteOnly),
            _ => None,
        }
    }

    /// May read files and the manifest.
    pub fn can_read(self) -> bool {
        !matches!(self, Permission::WriteOnly)
    }

    /// May add files.
    pub fn can_write(self) -> bool {
        !matches!(self, Permission::ReadOnly)
    }

    /// May replace and delete files (a deposit box only adds).
    pub fn can_modify(self) -> bool {
        matches!(self, Permission::ReadWrite | Permission::Admin)
    }
}

/// Parses a category, naming the field when it is wrong.
pub fn parse_category(field: &str, s: &str) -> Result<Category> {
    Category::parse(s).ok_or_else(|| {
        ValidationError::new(
            "invalid-category",
            field,
            format!(
                "`{}` is not a study category (personal, organization, open)",
                s.escape_debug()
            ),
        )
    })
}

/// Parses a permission, naming the field when it is wrong.
pub fn parse_permission(field: &str, s: &str) -> Result<Permission> {
    Permission::parse(s).ok_or_else(|| {
        ValidationError::new(
            "invalid-permission",
            field,
            format!(
                "`{}` is not a study permission (admin, read-write, read-only, write-only)",
                s.escape_debug()
            ),
        )
    })
}

/// Checks a study name: the rules of user and project names (1-64
/// lower-case letters, digits, `-`, `_`, `.`).
pub fn check_name(field: &str, s: &str) -> Result<()> {
    crate::identity::validate_name(field, s)
}

/// The object-store prefix of a study's files (content-addressed objects
/// and multipart parts live under it; nothing of the study's is outside).
pub fn prefix(study_id: i64) -> String {
    format!("studies/{study_id}")
}

/// The key, relative to [`prefix`], of the object with SHA-256 `sha`.
pub fn object_key(sha: &str) -> String {
    format!("objects/{}/{sha}", &sha[..2.min(sha.len())])
}

/// Checks a SHA-256 given in hex (64 lower-case hex digits).
pub fn check_sha256(field: &str, s: &str) -> Result<()> {
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ValidationError::new(
            "invalid-sha256",
            field,
            format!(
                "`{}` is not a SHA-256 (64 lower-case hex digits)",
                s.escape_debug()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(
            parse_permission("permission", "owner")
                .unwrap_err()
                .field
                .as_deref(),
            Some("permission")
        );
        assert_eq!(
            parse_category("category", "x").unwrap_err().code,
            "invalid-category"
        );
        assert!(Permission::WriteOnly.can_write() && !Permission::WriteOnly.can_read());
        assert!(!Permission::WriteOnly.can_modify() && !Permission::ReadOnly.can_write());
        assert!(Permission::ReadWrite.can_modify());
    }

    #[test]
    fn keys_and_hashes() {
        let sha = "ab".repeat(32);
        check_sha256("sha256", &sha).unwrap();
        assert_eq!(object_key(&sha), format!("objects/ab/{sha}"));
        for bad in [
            "",
            "AB",
            &"g".repeat(64),
            &"a".repeat(63),
            "../../etc/passwd",
        ] {
            assert_eq!(
                check_sha256("sha256", bad).unwrap_err().code,
                "invalid-sha256"
            );
        }
        assert_eq!(prefix(7), "studies/7");
    }
}
