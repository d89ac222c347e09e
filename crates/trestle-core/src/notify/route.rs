//! Which targets an event goes to, and for whom: admin rules, the
//! personal email every user gets of their own events (job events are
//! opt-in), what they muted, and what they subscribed to.

use super::event::{Event, EventType};
use super::rule::EventPattern;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A rule with its targets resolved to ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedRule {
    /// Patterns.
    pub events: Vec<EventPattern>,
    /// Only this project.
    pub project: Option<String>,
    /// Target ids.
    pub targets: Vec<i64>,
}

/// What a stored subscription does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionMode {
    /// Send the matching events.
    On,
    /// Do not send the matching events to the personal email.
    Muted,
}

/// A subscription with its target resolved (`None`: the personal email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedSubscription {
    /// Whose.
    pub user: String,
    /// Patterns.
    pub events: Vec<EventPattern>,
    /// Target id, or the personal email.
    pub target: Option<i64>,
    /// Only this job's events.
    pub job: Option<i64>,
    /// On or muted.
    pub mode: SubscriptionMode,
}

/// Everything routing needs, loaded once per round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// Admin rules.
    pub rules: Vec<RoutedRule>,
    /// Every user's subscriptions.
    pub subscriptions: Vec<RoutedSubscription>,
    /// The target that carries personal email (none configured: no one
    /// gets email).
    pub personal_email: Option<i64>,
}

/// One message's destination: a target, and for personal deliveries the
/// user it is for (their address, their digest).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Destination {
    /// Target id.
    pub target: i64,
    /// The user it is for.
    pub user: Option<String>,
}

/// Whether an event of this type goes to its owner's email unless muted
/// (job events are opt-in; test messages go only where they are sent).
pub fn personal_by_default(t: EventType) -> bool {
    !matches!(
        t,
        EventType::JobFinished | EventType::JobFailed | EventType::NotifyTest
    )
}

fn job_of(e: &Event) -> Option<i64> {
    e.event
        .subject
        .strip_prefix("job:")
        .and_then(|s| s.parse().ok())
}

/// Where `e` goes, each destination once, in a fixed order. Events of
/// array and pipeline children are not sent on their own (their parent's
/// event summarises them) unless someone watches that very job.
pub fn route(e: &Event, r: &Routing) -> Vec<Destination> {
    let t = e.event.kind;
    let child = e.parent.is_some();
    let job = job_of(e);
    let mut out = BTreeSet::new();
    if !child {
        for rule in &r.rules {
            if EventPattern::any(&rule.events, t)
                && rule
                    .project
                    .as_ref()
                    .is_none_or(|p| e.event.project.as_ref() == Some(p))
            {
                for &target in &rule.targets {
                    out.insert(Destination { target, user: None });
                }
            }
        }
    }
    let owner = e.event.owner.as_deref();
    let mut muted = false;
    for s in &r.subscriptions {
        if Some(s.user.as_str()) != owner || !EventPattern::any(&s.events, t) {
            continue;
        }
        match (s.job, s.mode) {
            (Some(j), _) if Some(j) != job => continue,
            (None, _) if child => continue,
            (_, SubscriptionMode::Muted) => {
                muted |= s.target.is_none() && s.job.is_none();
                continue;
            }
            _ => {}
        }
        if let Some(target) = s.target.or(r.personal_email) {
            out.insert(Destination {
                target,
                user: Some(s.user.clone()),
            });
        }
    }
    if let (Some(user), Some(email)) = (owner, r.personal_email)
        && !child
        && !muted
        && personal_by_default(t)
    {
        out.insert(Destination {
            target: email,
            user: Some(user.to_string()),
        });
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::event::NewEvent;

    fn ev(kind: EventType, owner: &str, project: &str, subject: &str) -> Event {
        Event {
            key: "event:1".into(),
            event: NewEvent {
                kind,
                subject: subject.into(),
                title: String::new(),
                owner: Some(owner.into()),
                project: Some(project.into()),
                link: None,
                detail: None,
                time: 0,
            },
            parent: None,
        }
    }

    fn pats(s: &[&str]) -> Vec<EventPattern> {
        s.iter()
            .map(|p| EventPattern::parse(p, "e").unwrap())
            .collect()
    }

    fn sub(
        user: &str,
        events: &[&str],
        target: Option<i64>,
        job: Option<i64>,
        muted: bool,
    ) -> RoutedSubscription {
        RoutedSubscription {
            user: user.into(),
            events: pats(events),
            target,
            job,
            mode: if muted {
                SubscriptionMode::Muted
            } else {
                SubscriptionMode::On
            },
        }
    }

    fn d(target: i64, user: Option<&str>) -> Destination {
        Destination {
            target,
            user: user.map(String::from),
        }
    }

    #[test]
    fn rules_personal_email_and_mutes() {
        let r = Routing {
            rules: vec![RoutedRule {
                events: pats(&["workspace.*"]),
                project: Some("x".into()),
                targets: vec![7, 8],
            }],
            subscriptions: vec![sub("bob", &["workspace.ready"], None, None, true)],
            personal_email: Some(1),
        };
        let ada = ev(EventType::WorkspaceReady, "ada", "x", "workspace:3");
        assert_eq!(
            route(&ada, &r),
            vec![d(1, Some("ada")), d(7, None), d(8, None)]
        );
        let other = ev(EventType::WorkspaceReady, "ada", "y", "workspace:3");
        assert_eq!(route(&other, &r), vec![d(1, Some("ada"))]);
        let bob = ev(EventType::WorkspaceReady, "bob", "y", "workspace:4");
        assert_eq!(route(&bob, &r), vec![]);
        let bob2 = ev(EventType::WorkspaceStopped, "bob", "y", "workspace:4");
        assert_eq!(route(&bob2, &r), vec![d(1, Some("bob"))]);
        // Without an email target, personal defaults go nowhere.
        let r2 = Routing {
            personal_email: None,
            ..r.clone()
        };
        assert_eq!(route(&ada, &r2), vec![d(7, None), d(8, None)]);
    }

    #[test]
    fn job_events_are_opt_in_and_children_are_summarised() {
        let mut r = Routing {
            personal_email: Some(1),
            ..Default::default()
        };
        let failed = ev(EventType::JobFailed, "ada", "x", "job:42");
        assert_eq!(route(&failed, &r), vec![]);
        r.subscriptions
            .push(sub("ada", &["job.*"], None, Some(42), false));
        assert_eq!(route(&failed, &r), vec![d(1, Some("ada"))]);
        let other = ev(EventType::JobFailed, "ada", "x", "job:43");
        assert_eq!(route(&other, &r), vec![]);
        r.subscriptions
            .push(sub("ada", &["job.failed"], Some(9), None, false));
        assert_eq!(route(&other, &r), vec![d(9, Some("ada"))]);
        r.rules.push(RoutedRule {
            events: pats(&["job.failed"]),
            project: None,
            targets: vec![5],
        });
        let mut child = ev(EventType::JobFailed, "ada", "x", "job:44");
        child.parent = Some(43);
        assert_eq!(route(&child, &r), vec![]);
        assert_eq!(route(&other, &r), vec![d(5, None), d(9, Some("ada"))]);
    }
}
