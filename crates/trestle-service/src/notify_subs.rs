//! Notification rules (admins: an event pattern to a set of targets),
//! personal subscriptions (a user's own events, per type, to their email
//! or a target of their own; one job's events; mutes), the addresses
//! admins set, and whether anything can reach a user.

use crate::access;
use crate::error::{Parsed, ServiceError, ServiceResult};
use crate::notify::{address_of, target};
use crate::principal::Principal;
use crate::state::Service;
use trestle_core::api::notify::{
    AddressRequest, RuleView, SubscriptionView, SubscriptionsView, UnsubscribeRequest,
};
use trestle_core::identity::authz::{Action, Resource};
use trestle_core::notify::event::EventType;
use trestle_core::notify::route::{SubscriptionMode, personal_by_default};
use trestle_core::notify::rule::{EventPattern, RuleSpec, SubscriptionSpec};
use trestle_core::notify::target::{TargetKind, check_email};
use trestle_store::notify::{NewSubscription, RuleRecord, SubscriptionRecord};

fn rule_view(r: &RuleRecord) -> RuleView {
    RuleView {
        name: r.rule.name.clone(),
        events: r.rule.events.iter().map(|e| e.to_string()).collect(),
        project: r.rule.project.clone(),
        targets: r.rule.targets.clone(),
        created_at: r.created_at,
    }
}

fn sub_view(s: &SubscriptionRecord) -> SubscriptionView {
    SubscriptionView {
        id: s.id,
        user: s.sub.user.clone(),
        events: s.sub.events.iter().map(|e| e.to_string()).collect(),
        target: s.sub.target.clone(),
        job: s.sub.job,
        mode: match s.sub.mode {
            SubscriptionMode::On => "on",
            SubscriptionMode::Muted => "muted",
        }
        .into(),
        created_at: s.created_at,
    }
}

/// `POST /api/v1/notify/rules` (admins): every target it names must exist.
pub async fn create_rule(
    app: &Service,
    p: &Principal,
    spec: Parsed<RuleSpec>,
) -> ServiceResult<RuleView> {
    access::check(p, Action::NotifyRuleManage, Resource::None, "")?;
    let rule = spec?.validate()?;
    let targets = app.store.targets().await?;
    for name in &rule.targets {
        if !targets.iter().any(|t| &t.name == name) {
            return Err(ServiceError::bad(
                "unknown-target",
                "targets",
                format!("there is no notification target `{name}`"),
            ));
        }
    }
    if let Some(project) = &rule.project
        && app.store.project(project).await?.is_none()
    {
        return Err(ServiceError::bad(
            "unknown-project",
            "project",
            format!("there is no project `{project}`"),
        ));
    }
    Ok(rule_view(
        &app.store.create_rule(&rule, crate::now_ms()).await?,
    ))
}

/// `GET /api/v1/notify/rules` (admins).
pub async fn list_rules(app: &Service, p: &Principal) -> ServiceResult<Vec<RuleView>> {
    access::check(p, Action::NotifyRuleRead, Resource::None, "")?;
    Ok(app.store.rules().await?.iter().map(rule_view).collect())
}

/// `DELETE /api/v1/notify/rules/{name}` (admins).
pub async fn delete_rule(app: &Service, p: &Principal, name: &str) -> ServiceResult<()> {
    access::check(p, Action::NotifyRuleManage, Resource::None, "")?;
    if !app.store.delete_rule(name).await? {
        return Err(ServiceError::not_found(format!(
            "notification rule `{name}`"
        )));
    }
    Ok(())
}

/// Whose subscriptions a request is about: the caller's, or (admins)
/// the user named.
fn whose<'a>(p: &'a Principal, user: Option<&'a str>) -> ServiceResult<&'a str> {
    let me = p.user_name().unwrap_or("");
    let name = user.unwrap_or(me);
    access::check(
        p,
        Action::NotifySubscribe,
        Resource::User { name },
        &format!("user `{name}`"),
    )?;
    Ok(name)
}

/// `GET /api/v1/notify/subscriptions[?user=]`: a user's address, whether
/// anything can reach them, the types their email gets by default, and
/// their subscriptions and mutes.
pub async fn subscriptions(
    app: &Service,
    p: &Principal,
    user: Option<&str>,
) -> ServiceResult<SubscriptionsView> {
    let name = whose(p, user)?;
    if app.store.user_attributes(name).await?.is_none() && user.is_some() {
        return Err(ServiceError::not_found(format!("user `{name}`")));
    }
    let subs = app.store.subscriptions(Some(name)).await?;
    let address = address_of(app, name).await?;
    let targets = app.store.targets().await?;
    let email_target = targets.iter().any(|t| {
        t.name == app.notify.settings.personal_email_target && t.kind == TargetKind::Email
    });
    let own_target = subs
        .iter()
        .any(|s| s.sub.mode == SubscriptionMode::On && s.sub.target.is_some());
    let reachable = (address.is_some() && email_target) || own_target;
    let warning = (!reachable).then(|| {
        if address.is_none() {
            "nothing can reach you: you have no email address (your identity provider gives none \
             and no admin set one) and no target of your own"
                .to_string()
        } else {
            format!(
                "nothing can reach you: this server has no email target `{}` and you have no \
                 target of your own",
                app.notify.settings.personal_email_target
            )
        }
    });
    let muted: Vec<&SubscriptionRecord> = subs
        .iter()
        .filter(|s| s.sub.mode == SubscriptionMode::Muted && s.sub.job.is_none())
        .collect();
    let defaults = EventType::ALL
        .into_iter()
        .filter(|t| personal_by_default(*t))
        .filter(|t| !muted.iter().any(|s| EventPattern::any(&s.sub.events, *t)))
        .map(|t| t.as_str().to_string())
        .collect();
    let (email, email_source) = match address {
        Some((a, s)) => (Some(a), Some(s)),
        None => (None, None),
    };
    Ok(SubscriptionsView {
        user: name.to_string(),
        email,
        email_source,
        reachable,
        warning,
        defaults,
        subscriptions: subs.iter().map(sub_view).collect(),
    })
}

/// `POST /api/v1/notify/subscriptions[?user=]`: the user's own events of
/// these types to their email or a target they own (or, with `job`, that
/// job's events, which they must be able to read).
pub async fn subscribe(
    app: &Service,
    p: &Principal,
    user: Option<&str>,
    spec: Parsed<SubscriptionSpec>,
) -> ServiceResult<SubscriptionView> {
    let name = whose(p, user)?.to_string();
    let spec = spec?;
    let events = spec.validate()?;
    if let Some(t) = &spec.target {
        let rec = target(app, p, t, Action::NotifyTargetRead)
            .await
            .map_err(|e| e.in_field("target"))?;
        if rec.owner.as_deref() != Some(name.as_str()) && !p.is_admin() {
            return Err(ServiceError::not_found(format!(
                "notification target `{t}`"
            )));
        }
    }
    if let Some(j) = spec.job {
        let job = access::job(app, p, j, Action::JobRead)
            .await
            .map_err(|e| e.in_field("job"))?;
        let _ = job;
    }
    let rec = app
        .store
        .add_subscription(
            &NewSubscription {
                user: name,
                events,
                target: spec.target.clone(),
                job: spec.job,
                mode: SubscriptionMode::On,
            },
            crate::now_ms(),
        )
        .await?;
    Ok(sub_view(&rec))
}

/// `POST /api/v1/notify/unsubscribe`: deletes subscription `id`, or
/// mutes event types in the personal email.
pub async fn unsubscribe(
    app: &Service,
    p: &Principal,
    req: Parsed<UnsubscribeRequest>,
) -> ServiceResult<Option<SubscriptionView>> {
    let req = req?;
    let name = whose(p, req.user.as_deref())?.to_string();
    match (req.id, req.events.is_empty()) {
        (Some(id), true) => {
            if !app.store.delete_subscription(id, Some(&name)).await? {
                return Err(ServiceError::not_found(format!("subscription {id}")));
            }
            Ok(None)
        }
        (None, false) => {
            let events = SubscriptionSpec {
                events: req.events.clone(),
                ..Default::default()
            }
            .validate()?;
            let rec = app
                .store
                .add_subscription(
                    &NewSubscription {
                        user: name,
                        events,
                        target: None,
                        job: None,
                        mode: SubscriptionMode::Muted,
                    },
                    crate::now_ms(),
                )
                .await?;
            Ok(Some(sub_view(&rec)))
        }
        _ => Err(ServiceError::bad(
            "invalid-unsubscribe",
            "events",
            "name the event types to mute, or the `id` of a subscription to delete (not both)",
        )),
    }
}

/// `PUT /api/v1/notify/addresses/{user}` (admins): the address a user's
/// notifications go to, over their identity provider's (none: use that).
pub async fn set_address(
    app: &Service,
    p: &Principal,
    user: &str,
    req: Parsed<AddressRequest>,
) -> ServiceResult<SubscriptionsView> {
    access::check(p, Action::NotifyAdmin, Resource::None, "")?;
    let req = req?;
    if app.store.user_attributes(user).await?.is_none() {
        return Err(ServiceError::not_found(format!("user `{user}`")));
    }
    if let Some(e) = &req.email {
        check_email(e, "email")?;
    }
    app.store
        .set_notify_address(
            user,
            req.email.as_deref(),
            p.user_name().unwrap_or("admin"),
            crate::now_ms(),
        )
        .await?;
    subscriptions(app, p, Some(user)).await
}
