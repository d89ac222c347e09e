//! Sign-in: password logins that open a browser session (with a CSRF
//! token) or issue an API token, throttled per user and source address;
//! sign-out; and issuing tokens.

use crate::audit::AuditSlot;
use crate::error::{ErrorKind, ServiceError, ServiceResult};
use crate::principal::{Principal, hash_token, new_token, token_id};
use crate::security::{random_hex, verify_password};
use crate::state::Service;
use std::net::IpAddr;
use std::time::Duration;
use trestle_core::api::identity::{LoginRequest, NewToken, TokenCreated, UserView, WhoAmI};
use trestle_core::identity::authz::Scope;
use trestle_core::identity::{TokenKind, validate_name};
use trestle_core::parse::parse_duration;
use trestle_store::{NewTokenRecord, SessionRecord};

const DAY_SECS: u64 = 86_400;
/// Default lifetime of a user token.
const USER_TTL: u64 = 90 * DAY_SECS;
/// Longest lifetime of a user token.
const USER_MAX_TTL: u64 = 366 * DAY_SECS;
/// Default lifetime of a worker credential.
const WORKER_TTL: u64 = 3600;
/// Longest lifetime of a worker credential.
const WORKER_MAX_TTL: u64 = 30 * DAY_SECS;

/// Validates a token request and stores the token; returns the secret.
pub async fn issue(
    app: &Service,
    user: &str,
    kind: TokenKind,
    req: NewToken,
    now: i64,
) -> ServiceResult<TokenCreated> {
    let name = req.name.unwrap_or_else(|| match kind {
        TokenKind::User => "token".to_string(),
        TokenKind::Worker => "worker".to_string(),
    });
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(ServiceError::bad(
            "invalid-name",
            "name",
            "a token name is 1-200 printable characters",
        ));
    }
    let scope = match req.scope.as_deref() {
        None => Scope::Full,
        Some(s) => Scope::parse(s).ok_or_else(|| {
            ServiceError::bad(
                "invalid-scope",
                "scope",
                format!("`{s}` is not a scope (full, read-only)"),
            )
        })?,
    };
    if kind == TokenKind::Worker && scope == Scope::ReadOnly {
        return Err(ServiceError::bad(
            "invalid-scope",
            "scope",
            "worker credentials are always scoped to leasing and reporting",
        ));
    }
    let (default, max) = match kind {
        TokenKind::User => (USER_TTL, USER_MAX_TTL),
        TokenKind::Worker => (WORKER_TTL, WORKER_MAX_TTL),
    };
    let ttl = match req.ttl.as_deref() {
        None => default,
        Some(t) => parse_duration("ttl", t, false)?,
    };
    if ttl == 0 || ttl > max {
        return Err(ServiceError::bad(
            "invalid-ttl",
            "ttl",
            format!(
                "a {} token lives between 1 second and {} days",
                kind.as_str(),
                max / DAY_SECS
            ),
        ));
    }
    let secret = new_token();
    let rec = NewTokenRecord {
        id: token_id(&secret),
        name,
        hash: hash_token(&secret),
        user: (kind == TokenKind::User).then(|| user.to_string()),
        kind,
        scope,
        expires_at: Some(now + (ttl as i64) * 1000),
    };
    app.store.create_token(&rec, now).await?;
    let info = app
        .store
        .token(&rec.id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("token `{}`", rec.id)))?;
    Ok(TokenCreated {
        token: secret,
        info,
    })
}

/// The `Set-Cookie` value of a new session: `Secure` when the request
/// came over HTTPS (see [`crate::security::SecurityConfig::over_https`]),
/// so that the portal also works at a plain `http://` address.
pub fn session_cookie(secret: &str, ttl: std::time::Duration, secure: bool) -> String {
    format!(
        "{}={secret}; Path=/; Max-Age={}; HttpOnly;{} SameSite=Strict",
        crate::principal::SESSION_COOKIE,
        ttl.as_secs(),
        if secure { " Secure;" } else { "" }
    )
}

/// The `Set-Cookie` value that ends a session.
pub fn end_session_cookie(secure: bool) -> &'static str {
    if secure {
        "trestle_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
    } else {
        "trestle_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
    }
}

/// The refusal of a throttled key.
fn too_many(app: &Service, user: &str, ip: IpAddr) -> ServiceError {
    ServiceError::new(
        ErrorKind::TooMany,
        "too-many-attempts",
        format!(
            "too many failed logins for `{user}` from {ip}; try again in {} minutes",
            app.security.login_window.as_secs().div_ceil(60)
        ),
    )
}

/// Checks `password` of `user` (whose stored hash is `hash`; `None`: an
/// unknown user or one without a password, who fails alike), throttled per
/// user and source address: an attempt is reserved in the store before
/// the password is checked, atomically on every server, and beyond
/// `login_max_failures` attempts in the window the answer is `TooMany`
/// without checking. A right password forgets the key's attempts. Logins
/// and the current password of a password change both come here.
pub async fn check_password(
    app: &Service,
    user: &str,
    ip: IpAddr,
    password: String,
    hash: Option<String>,
) -> ServiceResult<bool> {
    let key = reserve_attempt(app, user, ip).await?;
    let ok = verify_password(password, hash).await;
    if ok {
        app.store.clear_login_attempts(&key).await?;
    }
    Ok(ok)
}

/// Reserves a login attempt of `user` from `ip` (the throttle of
/// [`check_password`], which directory sign-ins share); returns the key
/// whose attempts a right password forgets.
pub(crate) async fn reserve_attempt(
    app: &Service,
    user: &str,
    ip: IpAddr,
) -> ServiceResult<String> {
    let key = format!("{user}|{ip}");
    let window = app.security.login_window.as_millis() as i64;
    let n = app
        .store
        .reserve_login_attempt(&key, crate::now_ms(), window)
        .await?;
    if n > app.security.login_max_failures {
        return Err(too_many(app, user, ip));
    }
    Ok(key)
}

/// The answer to a wrong user name or password, whichever was wrong.
pub(crate) fn invalid_credentials() -> ServiceError {
    ServiceError::new(
        ErrorKind::Unauthenticated,
        "invalid-credentials",
        "wrong user name or password",
    )
}

/// What a successful login gives.
#[derive(Debug)]
pub enum LoginOutcome {
    /// A token was asked for and issued (CLI logins).
    Token {
        /// The user.
        user: UserView,
        /// The token (its secret shown once).
        created: TokenCreated,
    },
    /// A browser session was opened.
    Session {
        /// The user.
        user: UserView,
        /// The session secret (the cookie's value).
        secret: String,
        /// The session's CSRF token.
        csrf: String,
        /// How long the session lasts.
        ttl: Duration,
    },
}

/// A password login from `ip`; `slot` learns who logged in. Too many
/// recent attempts for the user from that address are `TooMany` (retry
/// after the configured window; see [`check_password`]); a wrong user or
/// password is `Unauthenticated` with code `invalid-credentials`. With
/// `[ldap]`, names that are not local accounts sign in against the
/// directory ([`crate::ldap::login`], same throttle, same answers).
pub async fn login(
    app: &Service,
    req: LoginRequest,
    ip: IpAddr,
    slot: &AuditSlot,
) -> ServiceResult<LoginOutcome> {
    validate_name("user", &req.user)?;
    // The account a sign-in is for is its resource, so that failed sign-ins
    // can be counted per user as well as per address.
    slot.set_operation("login".into(), Some(format!("user:{}", req.user)));
    // [ldap]: names Trestle does not hold as local accounts sign in
    // against the directory.
    if let Some(dir) = crate::ldap::directory_for(app, &req.user).await? {
        return crate::ldap::login(app, &dir, req, ip, slot).await;
    }
    let now = crate::now_ms();
    let user = app
        .store
        .user(&req.user)
        .await?
        .filter(|u| u.disabled_at.is_none());
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let ok = check_password(app, &req.user, ip, req.password, hash).await?;
    let Some(user) = user.filter(|_| ok) else {
        return Err(invalid_credentials());
    };
    grant(app, user, req.token, ip, slot, now).await
}

/// What a sign-in gives `user`, once they proved who they are (a password,
/// an identity provider): the token asked for, or a browser session.
pub async fn grant(
    app: &Service,
    user: trestle_store::identity::UserRecord,
    token: Option<NewToken>,
    ip: IpAddr,
    slot: &AuditSlot,
    now: i64,
) -> ServiceResult<LoginOutcome> {
    if let Some(t) = token {
        if t.worker || t.user.as_deref().is_some_and(|u| u != user.name) {
            return Err(ServiceError::bad(
                "invalid-token-request",
                "token",
                "a login issues a token for the user who logs in",
            ));
        }
        let created = issue(app, &user.name, TokenKind::User, t, now).await?;
        slot.set(Some(&user.name), &created.info.id);
        return Ok(LoginOutcome::Token {
            user: user.view(),
            created,
        });
    }
    let secret = random_hex(32);
    let csrf = random_hex(16);
    let ttl = app.security.session_ttl;
    app.store
        .create_session(
            &hash_token(&secret),
            &SessionRecord {
                user: user.name.clone(),
                csrf: csrf.clone(),
                expires_at: now + ttl.as_millis() as i64,
            },
            &ip.to_string(),
            now,
        )
        .await?;
    slot.set(Some(&user.name), "session");
    Ok(LoginOutcome::Session {
        user: user.view(),
        secret,
        csrf,
        ttl,
    })
}

/// Ends a browser session (if `secret` names one).
pub async fn logout(app: &Service, secret: Option<&str>) -> ServiceResult<()> {
    if let Some(secret) = secret {
        app.store.delete_session(&hash_token(secret)).await?;
        app.tokens.clear();
    }
    Ok(())
}

/// Who the caller is: the user, the credential, its scope and projects.
pub async fn whoami(app: &Service, p: &Principal) -> ServiceResult<WhoAmI> {
    let (user, kind, scope, projects) = match p.user() {
        Some(u) => (
            app.store.user(&u.name).await?.map(|r| r.view()),
            TokenKind::User,
            u.scope,
            u.memberships.clone(),
        ),
        None => (None, TokenKind::Worker, Scope::Full, Vec::new()),
    };
    Ok(WhoAmI {
        user,
        token_id: p.token_id.clone(),
        kind,
        scope,
        projects,
    })
}
