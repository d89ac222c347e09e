//! Break-glass recovery: when no admin can sign in (every admin token
//! revoked, the last admin disabled or demoted), someone with access to the
//! server host and its database makes a fresh admin credential. This works
//! on the store directly, without a running server, and is audited as a
//! recovery (`admin.recover`).

use crate::audit::internal_record;
use crate::error::{ServiceError, ServiceResult};
use crate::principal::{hash_token, new_token, token_id};
use trestle_core::identity::TokenKind;
use trestle_core::identity::authz::{Role, Scope};
use trestle_store::Store;
use trestle_store::identity::{NewTokenRecord, UserChanges, UserRecord};

/// How long a recovery token lives: long enough to make proper
/// credentials, short enough not to linger.
pub const RECOVERY_TOKEN_SECS: i64 = 24 * 3600;

/// What a recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The admin recovered.
    pub user: String,
    /// The user did not exist and was created.
    pub created: bool,
    /// The user was disabled and is enabled again.
    pub enabled: bool,
    /// The user was not an admin and is one again.
    pub promoted: bool,
    /// A new admin token (shown once), valid for [`RECOVERY_TOKEN_SECS`].
    pub token: String,
}

/// Recovers `user` (default: `admin`, or else the first admin there is) as
/// an enabled admin with a fresh token, and records it in the audit trail.
pub async fn recover(store: &dyn Store, user: Option<&str>, now: i64) -> ServiceResult<Recovered> {
    let name = match user {
        Some(u) => {
            trestle_core::identity::validate_name("user", u)?;
            u.to_string()
        }
        None => {
            let users = store.list_users().await?;
            if users.iter().any(|u| u.name == "admin") {
                "admin".to_string()
            } else {
                users
                    .iter()
                    .find(|u| u.role == Role::Admin)
                    .map_or_else(|| "admin".to_string(), |u| u.name.clone())
            }
        }
    };
    let mut out = Recovered {
        user: name.clone(),
        created: false,
        enabled: false,
        promoted: false,
        token: String::new(),
    };
    match store.user(&name).await? {
        None => {
            store
                .create_user(&UserRecord {
                    name: name.clone(),
                    role: Role::Admin,
                    org: None,
                    default_project: None,
                    password_hash: None,
                    disabled_at: None,
                    created_at: now,
                    last_seen_at: None,
                })
                .await?;
            out.created = true;
        }
        Some(u) => {
            let changes = UserChanges {
                role: (u.role != Role::Admin).then_some(Role::Admin),
                disabled: u.disabled_at.is_some().then_some(false),
                ..UserChanges::default()
            };
            out.promoted = changes.role.is_some();
            out.enabled = changes.disabled.is_some();
            if (out.promoted || out.enabled) && !store.update_user(&name, &changes, now).await? {
                return Err(ServiceError::not_found(format!("user `{name}`")));
            }
        }
    }
    let token = new_token();
    store
        .create_token(
            &NewTokenRecord {
                id: token_id(&token),
                name: "recovery".into(),
                hash: hash_token(&token),
                user: Some(name.clone()),
                kind: TokenKind::User,
                scope: Scope::Full,
                expires_at: Some(now + RECOVERY_TOKEN_SECS * 1000),
            },
            now,
        )
        .await?;
    let mut record = internal_record(None, "admin.recover", &format!("user:{name}"));
    record.user = Some(name.clone());
    record.token = Some(format!("recovery:{}", token_id(&token)));
    record.at = now;
    store.append_audit(&[record]).await?;
    out.token = token;
    Ok(out)
}
