//! Notifications, the operations: the state the delivery loop and the
//! handlers share ([`NotifyState`]: the keyring, the sender, settings),
//! recording an event ([`record`]), and targets: create, change, delete,
//! list, test, with their secrets sealed under the keyring and never
//! shown (only masked). Rules, subscriptions and addresses are in
//! [`crate::notify_subs`], the outbox loop and deliveries in
//! [`crate::notify_outbox`].

use crate::access;
use crate::error::{ErrorKind, Parsed, ServiceError, ServiceResult};
use crate::principal::Principal;
use crate::state::Service;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;
use trestle_core::api::notify::{MASK, RotateResult, TargetCreated, TargetView, TestResult};
use trestle_core::identity::authz::{Action, Resource};
use trestle_core::notify::backoff::Backoff;
use trestle_core::notify::event::{Event, EventType, NewEvent};
use trestle_core::notify::render::Message;
use trestle_core::notify::sign;
use trestle_core::notify::target::{TargetKind, TargetSecrets, TargetSpec};
use trestle_notify::{Keyring, Outgoing, Sender};
use trestle_store::notify::{NewTarget, TargetRecord};

/// Notification settings (`[notify]` in `trestle.toml`).
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// The portal's public URL, for links in messages.
    pub base_url: Option<String>,
    /// The email target that carries every user's personal email.
    pub personal_email_target: String,
    /// How often the outbox looks for new events.
    pub tick: Duration,
    /// The retry schedule.
    pub backoff: Backoff,
    /// Most events in one message.
    pub max_per_message: usize,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            base_url: None,
            personal_email_target: "email".into(),
            tick: Duration::from_millis(200),
            backoff: Backoff::default(),
            max_per_message: trestle_core::notify::batch::MAX_PER_MESSAGE,
        }
    }
}

/// The keyring, re-read from its file when a key is added.
pub struct Keys {
    path: Option<PathBuf>,
    ring: RwLock<Arc<Keyring>>,
}

impl Keys {
    /// A keyring read from `path` (re-read on rotation and when a sealed
    /// secret names a key it lacks).
    pub fn from_file(path: PathBuf) -> Result<Keys, trestle_notify::SecretError> {
        let ring = Keyring::load(&path)?;
        Ok(Keys {
            path: Some(path),
            ring: RwLock::new(Arc::new(ring)),
        })
    }

    /// A fixed keyring (from the environment).
    pub fn fixed(ring: Keyring) -> Keys {
        Keys {
            path: None,
            ring: RwLock::new(Arc::new(ring)),
        }
    }

    /// The keyring now.
    pub fn ring(&self) -> Arc<Keyring> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn reload(&self) -> Result<(), trestle_notify::SecretError> {
        if let Some(p) = &self.path {
            let ring = Keyring::load(p)?;
            *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
        }
        Ok(())
    }
}

/// What the notification operations and the outbox loop share.
pub struct NotifyState {
    /// The keyring (none: targets with secrets cannot be made).
    pub keys: Option<Keys>,
    /// The senders.
    pub sender: Sender,
    /// Settings.
    pub settings: NotifySettings,
    /// Wakes the outbox loop.
    pub wake: Arc<Notify>,
}

impl NotifyState {
    /// State with these parts.
    pub fn new(keys: Option<Keys>, sender: Sender, settings: NotifySettings) -> NotifyState {
        NotifyState {
            keys,
            sender,
            settings,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Notifications without a keyring or senders' settings: events are
    /// routed and delivered to targets without secrets only.
    pub fn disabled() -> NotifyState {
        NotifyState::new(
            None,
            Sender::new(Default::default()),
            NotifySettings::default(),
        )
    }

    fn keys(&self) -> ServiceResult<&Keys> {
        self.keys.as_ref().ok_or_else(|| {
            ServiceError::new(
                ErrorKind::Unavailable,
                "no-keyring",
                "this server has no secrets keyring (`[notify] keyring` or TRESTLE_NOTIFY_KEYRING)",
            )
        })
    }

    /// Seals a target's secrets; returns (key id, sealed).
    pub fn seal(&self, s: &TargetSecrets) -> ServiceResult<(String, String)> {
        let ring = self.keys()?.ring();
        let json = serde_json::to_vec(s).map_err(|e| ServiceError::internal(e.to_string()))?;
        let sealed = ring
            .seal(&json)
            .map_err(|e| ServiceError::internal(e.to_string()))?;
        Ok((ring.current_id().to_string(), sealed))
    }

    /// Opens a target's secrets (re-reading the keyring file once if the
    /// key is not known yet: another server may have rotated).
    pub fn open(&self, t: &TargetRecord) -> ServiceResult<TargetSecrets> {
        if t.secret.is_empty() {
            return Ok(TargetSecrets::default());
        }
        let keys = self.keys()?;
        let fail = |e: trestle_notify::SecretError| {
            ServiceError::internal(format!("target `{}`: {e}", t.name))
        };
        let plain = match keys.ring().open(&t.secret) {
            Err(trestle_notify::SecretError::UnknownKey(_)) => {
                keys.reload().map_err(fail)?;
                keys.ring().open(&t.secret).map_err(fail)?
            }
            r => r.map_err(fail)?,
        };
        serde_json::from_slice(&plain)
            .map_err(|e| ServiceError::internal(format!("target `{}`: {e}", t.name)))
    }
}

/// Records an event of a domain beyond jobs (for callers without a store
/// transaction of their own; inside one, the store's
/// `sql::notify::record`), and wakes the outbox.
pub async fn record(app: &Service, e: &NewEvent) -> ServiceResult<i64> {
    let id = app.store.record_event(e).await?;
    app.notify.wake.notify_one();
    Ok(id)
}

/// A target as shown: secrets masked.
pub fn view(t: &TargetRecord, s: Option<&TargetSecrets>) -> TargetView {
    let c = &t.config;
    let smtp = c.smtp.as_ref();
    let has = |f: fn(&TargetSecrets) -> bool| s.is_none_or(f).then(|| MASK.to_string());
    TargetView {
        name: t.name.clone(),
        kind: t.kind.as_str().into(),
        owner: t.owner.clone(),
        url: c.url_masked.clone(),
        signing_secret: if t.kind == TargetKind::Webhook {
            has(|s| s.signing_secret.is_some())
        } else {
            None
        },
        smtp_host: smtp.map(|m| m.host.clone()),
        smtp_port: smtp.map(|m| m.port),
        smtp_tls: smtp.map(|m| m.tls),
        smtp_username: smtp.and_then(|m| m.username.clone()),
        smtp_password: if smtp.is_some_and(|m| m.username.is_some()) {
            has(|s| s.smtp_password.is_some())
        } else {
            None
        },
        from: smtp.map(|m| m.from.clone()),
        smtp_ca: smtp.is_some_and(|m| m.ca.is_some()),
        to: c.to.clone(),
        min_interval_ms: c.min_interval_ms,
        template: c.template.clone(),
        allow_loopback: c.policy.allow_loopback,
        allow_private: c.policy.allow_private,
        allow_link_local: c.policy.allow_link_local,
        key_id: t.key_id.clone(),
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}

/// The target `name` if `p` may do `action` on it; others look missing.
pub async fn target(
    app: &Service,
    p: &Principal,
    name: &str,
    action: Action,
) -> ServiceResult<TargetRecord> {
    let what = format!("notification target `{name}`");
    let t = app
        .store
        .targets()
        .await?
        .into_iter()
        .find(|t| t.name == name);
    let owner = t.as_ref().and_then(|t| t.owner.clone());
    access::check(
        p,
        action,
        Resource::NotifyTarget {
            owner: owner.as_deref(),
        },
        &what,
    )?;
    t.ok_or_else(|| ServiceError::not_found(what))
}

fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    sign::make_secret(&b)
}

/// Who a new target belongs to (admins: shared) and whether `p` may make
/// it as asked.
fn check_new(p: &Principal, spec: &TargetSpec) -> ServiceResult<Option<String>> {
    let owner = if p.is_admin() {
        None
    } else {
        p.user_name().map(String::from)
    };
    access::check(
        p,
        Action::NotifyTargetManage,
        Resource::NotifyTarget {
            owner: owner.as_deref(),
        },
        "notification targets",
    )?;
    if spec.allow_loopback || spec.allow_private || spec.allow_link_local {
        access::check(p, Action::NotifyAdmin, Resource::None, "")
            .map_err(|e| e.with_field_of(spec))?;
    }
    Ok(owner)
}

trait FieldOf {
    fn with_field_of(self, spec: &TargetSpec) -> ServiceError;
}

impl FieldOf for ServiceError {
    fn with_field_of(mut self, spec: &TargetSpec) -> ServiceError {
        self.field = Some(
            if spec.allow_link_local {
                "allow_link_local"
            } else if spec.allow_private {
                "allow_private"
            } else {
                "allow_loopback"
            }
            .into(),
        );
        self
    }
}

/// `POST /api/v1/notify/targets`: a shared target (admins) or the
/// caller's own. A webhook sent without a signing secret gets one, shown
/// in this answer only.
pub async fn create_target(
    app: &Service,
    p: &Principal,
    spec: Parsed<TargetSpec>,
) -> ServiceResult<TargetCreated> {
    access::check(
        p,
        Action::NotifyTargetManage,
        Resource::NotifyTarget {
            owner: if p.is_admin() { None } else { p.user_name() },
        },
        "notification targets",
    )?;
    let spec = spec?;
    let owner = check_new(p, &spec)?;
    let (config, mut secrets) = spec.validate()?;
    let mut made = None;
    if config.kind == TargetKind::Webhook && secrets.signing_secret.is_none() {
        let s = random_secret();
        secrets.signing_secret = Some(s.clone());
        made = Some(s);
    }
    let (key_id, secret) = app.notify.seal(&secrets)?;
    let rec = app
        .store
        .create_target(
            &NewTarget {
                name: spec.name.clone(),
                owner,
                config,
                key_id,
                secret,
            },
            crate::now_ms(),
        )
        .await?;
    Ok(TargetCreated {
        target: view(&rec, Some(&secrets)),
        signing_secret: made,
    })
}

/// `PUT /api/v1/notify/targets/{name}`: replaces a target; secrets left
/// out keep their stored values (so they need not be sent again).
pub async fn update_target(
    app: &Service,
    p: &Principal,
    name: &str,
    spec: Parsed<TargetSpec>,
) -> ServiceResult<TargetView> {
    let old = target(app, p, name, Action::NotifyTargetManage).await?;
    let mut spec = spec?;
    if spec.name != name {
        return Err(ServiceError::bad(
            "name-mismatch",
            "name",
            format!("the body names `{}`, the path `{name}`", spec.name),
        ));
    }
    check_new(p, &spec)?;
    let kept = app.notify.open(&old)?;
    if spec.kind == old.kind.as_str() {
        spec.url = spec.url.or(kept.url);
        spec.signing_secret = spec.signing_secret.or(kept.signing_secret);
        spec.smtp_password = spec.smtp_password.or(kept.smtp_password);
    }
    let (config, mut secrets) = spec.validate()?;
    if config.kind == TargetKind::Webhook && secrets.signing_secret.is_none() {
        secrets.signing_secret = Some(random_secret());
    }
    let (key_id, secret) = app.notify.seal(&secrets)?;
    let new = NewTarget {
        name: name.to_string(),
        owner: old.owner.clone(),
        config,
        key_id,
        secret,
    };
    let now = crate::now_ms();
    if !app.store.update_target(old.id, &new, now).await? {
        return Err(ServiceError::not_found(format!(
            "notification target `{name}`"
        )));
    }
    let rec = TargetRecord {
        kind: new.config.kind,
        config: new.config,
        key_id: new.key_id,
        secret: new.secret,
        updated_at: now,
        ..old
    };
    Ok(view(&rec, Some(&secrets)))
}

/// `DELETE /api/v1/notify/targets/{name}`.
pub async fn delete_target(app: &Service, p: &Principal, name: &str) -> ServiceResult<()> {
    let t = target(app, p, name, Action::NotifyTargetManage).await?;
    app.store.delete_target(t.id).await?;
    Ok(())
}

/// `GET /api/v1/notify/targets`: admins see every target, others their own.
pub async fn list_targets(app: &Service, p: &Principal) -> ServiceResult<Vec<TargetView>> {
    let me = p.user_name();
    Ok(app
        .store
        .targets()
        .await?
        .iter()
        .filter(|t| {
            access::check(
                p,
                Action::NotifyTargetRead,
                Resource::NotifyTarget {
                    owner: t.owner.as_deref(),
                },
                "",
            )
            .is_ok()
                && (p.is_admin() || t.owner.as_deref() == me)
        })
        .map(|t| view(t, None))
        .collect())
}

/// `GET /api/v1/notify/targets/{name}`.
pub async fn show_target(app: &Service, p: &Principal, name: &str) -> ServiceResult<TargetView> {
    let t = target(app, p, name, Action::NotifyTargetRead).await?;
    Ok(view(&t, None))
}

/// The address notifications for `user` go to, and where it comes from:
/// one an admin set, else the identity provider's.
pub async fn address_of(app: &Service, user: &str) -> ServiceResult<Option<(String, String)>> {
    if let Some(a) = app.store.notify_address(user).await? {
        return Ok(Some((a, "admin".into())));
    }
    Ok(app
        .store
        .user_attributes(user)
        .await?
        .and_then(|a| a.email.map(|e| (e, a.source))))
}

/// Sends one message now (tests and the loop): the target's recipients,
/// else `user`'s address.
pub async fn send_now(
    app: &Service,
    t: &TargetRecord,
    user: Option<&str>,
    id: &str,
    events: &[Event],
) -> Result<(), trestle_notify::SendError> {
    let cfg = &app.notify.settings;
    let secrets = app
        .notify
        .open(t)
        .map_err(|e| trestle_notify::SendError::Config(e.message))?;
    let mut to = t.config.to.clone();
    if t.kind == TargetKind::Email && to.is_empty() {
        let Some(u) = user else {
            return Err(trestle_notify::SendError::Config(
                "an email target without recipients carries personal email only".into(),
            ));
        };
        match address_of(app, u).await {
            Ok(Some((a, _))) => to.push(a),
            Ok(None) => {
                return Err(trestle_notify::SendError::Config(format!(
                    "user `{u}` has no notification address"
                )));
            }
            Err(e) => return Err(trestle_notify::SendError::Connect(e.message)),
        }
    }
    let kind = events
        .first()
        .map(|e| e.event.kind)
        .unwrap_or(EventType::NotifyTest);
    app.notify
        .sender
        .send(&Outgoing {
            config: &t.config,
            secrets: &secrets,
            message: Message {
                id,
                kind,
                events,
                base_url: cfg.base_url.as_deref(),
                template: t.config.template.as_deref(),
            },
            to: &to,
            now_s: crate::now_ms() / 1000,
        })
        .await
}

/// A new delivery id: `msg_` and 26 random base32 characters.
pub fn delivery_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut b = [0u8; 26];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    let s: String = b
        .iter()
        .map(|x| ALPHABET[(*x as usize) % 32] as char)
        .collect();
    format!("msg_{s}")
}

/// `POST /api/v1/notify/targets/{name}/test`: sends a test message at
/// once (for email without fixed recipients, to the caller) and says
/// whether it was accepted.
pub async fn test_target(app: &Service, p: &Principal, name: &str) -> ServiceResult<TestResult> {
    let t = target(app, p, name, Action::NotifyTargetManage).await?;
    let now = crate::now_ms();
    let id = delivery_id();
    let e = Event {
        key: format!("test:{id}"),
        event: NewEvent {
            kind: EventType::NotifyTest,
            subject: format!("target:{name}"),
            title: format!("Trestle notification target `{name}`"),
            owner: p.user_name().map(String::from),
            project: None,
            link: Some("/ui/settings/notifications".into()),
            detail: Some(format!("sent by {}", p.user_name().unwrap_or("?"))),
            time: now,
        },
        parent: None,
    };
    let r = send_now(app, &t, p.user_name(), &id, &[e]).await;
    Ok(TestResult {
        id,
        delivered: r.is_ok(),
        error: r.err().map(|e| e.to_string()),
    })
}

/// `POST /api/v1/notify/secrets/rotate` (`trestle secrets rotate-key`):
/// with `add_key`, adds a new current key to the keyring file; then
/// re-seals every target's secrets under the current key.
pub async fn rotate(app: &Service, p: &Principal, add_key: bool) -> ServiceResult<RotateResult> {
    access::check(p, Action::NotifyAdmin, Resource::None, "")?;
    let keys = app.notify.keys()?;
    if add_key {
        let Some(path) = &keys.path else {
            return Err(ServiceError::bad(
                "fixed-keyring",
                "add_key",
                "this server's keyring comes from the environment: add the new key last there, \
                 restart the servers, then rotate without adding a key",
            ));
        };
        let ring = Keyring::add_key(path, crate::now_ms())
            .map_err(|e| ServiceError::internal(e.to_string()))?;
        *keys.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
    } else {
        keys.reload()
            .map_err(|e| ServiceError::internal(e.to_string()))?;
    }
    let ring = keys.ring();
    let current = ring.current_id().to_string();
    let (mut resealed, mut already) = (0, 0);
    for t in app.store.targets().await? {
        if t.key_id == current {
            already += 1;
            continue;
        }
        let secrets = app.notify.open(&t)?;
        let (key_id, sealed) = app.notify.seal(&secrets)?;
        if app
            .store
            .reseal_target(t.id, &t.key_id, &key_id, &sealed)
            .await?
        {
            resealed += 1;
        }
    }
    tracing::info!(key = %current, resealed, "notification secrets re-sealed");
    Ok(RotateResult {
        key_id: current,
        resealed,
        current: already,
    })
}
