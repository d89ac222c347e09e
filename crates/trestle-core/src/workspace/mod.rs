//! Interactive workspaces: the pure half. A workspace **type version**
//! ([`kind`]) says how to start an app and how to tell it is ready and
//! busy; a **configuration** ([`config`]) is an admin's preset of a type
//! version (shape, queue, parameters, who may launch it, idle timeout,
//! lifetime); a **workspace** ([`state`]) is one user's launch of a
//! configuration, with its lifecycle. [`params`] checks typed parameters
//! and renders the start command; [`idle`] decides when a workspace is
//! idle or past its lifetime. Nothing here does IO.

pub mod config;
pub mod idle;
pub mod kind;
pub mod origin;
pub mod params;
pub mod session;
pub mod state;

pub use config::WorkspaceConfig;
pub use kind::{Approval, WorkspaceType};
pub use state::WorkspaceState;

use crate::error::{Result, ValidationError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a workspace was launched from, kept with it: later edits of the
/// configuration or new type versions do not change a workspace that
/// exists (a revoked version is shown as revoked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    /// The configuration as it was at launch.
    pub config: WorkspaceConfig,
    /// The type version.
    #[serde(rename = "type")]
    pub kind: WorkspaceType,
    /// The parameter values (type defaults, then the configuration's,
    /// then the user's).
    pub params: BTreeMap<String, String>,
}

/// The longest name of a type, configuration or workspace.
pub const MAX_NAME: usize = 64;

/// Checks a name: 1 to [`MAX_NAME`] characters of letters, digits, `-`,
/// `_` and `.`, starting with a letter or digit (names appear in URLs,
/// object keys and tables).
pub fn check_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(ValidationError::new(
            "invalid-name",
            field,
            "a name cannot be empty",
        ));
    }
    if name.chars().count() > MAX_NAME {
        return Err(ValidationError::new(
            "invalid-name",
            field,
            format!(
                "a name is at most {MAX_NAME} characters, got {}",
                name.chars().count()
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "invalid-name",
            field,
            "a name cannot contain control characters",
        ));
    }
    let ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(ValidationError::new(
            "invalid-name",
            field,
            format!(
                "`{name}` is not a valid name: use letters, digits, `-`, `_` and `.`, starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("name", "lab-1.x_y").is_ok());
        for bad in ["", "-x", "a b", "a/b", "a\u{7}b", &"x".repeat(65)] {
            let e = check_name("name", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("name"), "{bad:?}");
        }
    }
}
