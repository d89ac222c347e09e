//! Admin rules (an event pattern sends to a set of targets) and personal
//! subscriptions (a user's own events to their email or a target of
//! their own, per event type, or one job's events), as sent and
//! validated.

use super::event::EventType;
use super::target::check_name;
use crate::error::ValidationError;
use serde::{Deserialize, Serialize};

/// A pattern over event types: `*`, a domain (`workspace.*`) or one type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum EventPattern {
    /// Every type.
    Any,
    /// Every type of a domain (`job`).
    Domain(String),
    /// One type.
    Exact(EventType),
}

impl EventPattern {
    /// Parses `*`, `domain.*` or a type; an unknown domain or type is an
    /// error naming `field`.
    pub fn parse(s: &str, field: &str) -> Result<EventPattern, ValidationError> {
        let s = s.trim();
        if s == "*" {
            return Ok(EventPattern::Any);
        }
        if let Some(d) = s.strip_suffix(".*") {
            if EventType::ALL.iter().any(|t| t.domain() == d) {
                return Ok(EventPattern::Domain(d.to_string()));
            }
        } else if let Some(t) = EventType::parse(s) {
            return Ok(EventPattern::Exact(t));
        }
        Err(ValidationError::new(
            "unknown-event-type",
            field,
            format!(
                "`{}` is not an event type or `domain.*`; known types: {}",
                s.chars().take(60).collect::<String>(),
                EventType::ALL.map(|t| t.as_str()).join(", ")
            ),
        ))
    }

    /// Whether `t` matches.
    pub fn matches(&self, t: EventType) -> bool {
        match self {
            EventPattern::Any => true,
            EventPattern::Domain(d) => t.domain() == d,
            EventPattern::Exact(e) => *e == t,
        }
    }

    /// Whether any of `patterns` matches `t`.
    pub fn any(patterns: &[EventPattern], t: EventType) -> bool {
        patterns.iter().any(|p| p.matches(t))
    }
}

impl std::fmt::Display for EventPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventPattern::Any => f.write_str("*"),
            EventPattern::Domain(d) => write!(f, "{d}.*"),
            EventPattern::Exact(t) => f.write_str(t.as_str()),
        }
    }
}

impl From<EventPattern> for String {
    fn from(p: EventPattern) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for EventPattern {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        EventPattern::parse(&s, "events")
    }
}

/// Most patterns in a rule or subscription, and targets in a rule.
pub const MAX_LIST: usize = 32;

fn patterns(list: &[String], field: &str) -> Result<Vec<EventPattern>, ValidationError> {
    if list.is_empty() {
        return Err(ValidationError::new(
            "missing-events",
            field,
            "name at least one event type (or `*`)",
        ));
    }
    if list.len() > MAX_LIST {
        return Err(ValidationError::new(
            "too-many-events",
            field,
            format!("at most {MAX_LIST} event patterns"),
        ));
    }
    list.iter().map(|s| EventPattern::parse(s, field)).collect()
}

/// An admin rule as sent (`POST /api/v1/notify/rules`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name.
    pub name: String,
    /// Event patterns (`workspace.*`, `job.failed`, `*`).
    pub events: Vec<String>,
    /// Only events of this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Target names.
    pub targets: Vec<String>,
}

/// A validated rule (targets still by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Name.
    pub name: String,
    /// Patterns.
    pub events: Vec<EventPattern>,
    /// Only this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Target names.
    pub targets: Vec<String>,
}

impl RuleSpec {
    /// Validates the rule; errors name their field.
    pub fn validate(&self) -> Result<Rule, ValidationError> {
        check_name(&self.name, "name")?;
        let events = patterns(&self.events, "events")?;
        if self.targets.is_empty() || self.targets.len() > MAX_LIST {
            return Err(ValidationError::new(
                "invalid-targets",
                "targets",
                format!("name 1 to {MAX_LIST} targets"),
            ));
        }
        for t in &self.targets {
            check_name(t, "targets")?;
        }
        if let Some(p) = &self.project {
            check_name(p, "project")?;
        }
        Ok(Rule {
            name: self.name.clone(),
            events,
            project: self.project.clone(),
            targets: self.targets.clone(),
        })
    }
}

/// A personal subscription as sent (`POST /api/v1/notify/subscriptions`):
/// the caller's own events of these types, to their email (no target)
/// or a target they own; or, with `job`, that job's events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// Event patterns.
    pub events: Vec<String>,
    /// A target the caller owns (or an admin's shared one); none: email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Only this job's events (and its children's, summarised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<i64>,
}

impl SubscriptionSpec {
    /// Validates the patterns and names.
    pub fn validate(&self) -> Result<Vec<EventPattern>, ValidationError> {
        if let Some(t) = &self.target {
            check_name(t, "target")?;
        }
        if let Some(j) = self.job
            && j <= 0
        {
            return Err(ValidationError::new(
                "invalid-job",
                "job",
                "a job id is positive",
            ));
        }
        patterns(&self.events, "events")
    }
}

/// Parses a comma-separated list of patterns (the CLI's `--events`).
pub fn parse_list(s: &str, field: &str) -> Result<Vec<String>, ValidationError> {
    let v: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    patterns(&v, field)?;
    Ok(v)
}

/// What `#SBATCH --mail-type=...` subscribes a job's owner to: the event
/// patterns, and warnings for the types that mean nothing here. Job
/// starts are not notified; array tasks are summarised in the array's
/// message.
pub fn slurm_mail_events(mail_type: &str) -> Result<(Vec<String>, Vec<String>), ValidationError> {
    let mut events: Vec<String> = Vec::new();
    let mut warnings = Vec::new();
    let mut add = |e: &str| {
        if !events.iter().any(|x| x == e) {
            events.push(e.to_string());
        }
    };
    for t in mail_type
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        match t.to_ascii_uppercase().as_str() {
            "NONE" => {}
            "END" => {
                add("job.finished");
                add("job.failed");
            }
            "FAIL" | "TIME_LIMIT" | "TIME_LIMIT_90" | "TIME_LIMIT_80" | "TIME_LIMIT_50" => {
                add("job.failed")
            }
            "ALL" => add("job.*"),
            "BEGIN" | "REQUEUE" | "INVALID_DEPEND" | "STAGE_OUT" => warnings.push(format!(
                "--mail-type={t}: Trestle notifies when jobs finish or fail, not of {t}"
            )),
            "ARRAY_TASKS" => warnings.push(
                "--mail-type=ARRAY_TASKS: an array's tasks are summarised in the array's message"
                    .to_string(),
            ),
            _ => {
                return Err(ValidationError::new(
                    "invalid-mail-type",
                    "--mail-type",
                    format!(
                        "`{t}` is not a mail type (NONE, BEGIN, END, FAIL, REQUEUE, ALL, \
                         TIME_LIMIT, ARRAY_TASKS, ...)"
                    ),
                ));
            }
        }
    }
    Ok((events, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_types_and_refuse_unknown_ones() {
        let p = EventPattern::parse("workspace.*", "events").unwrap();
        assert!(p.matches(EventType::WorkspaceReady));
        assert!(!p.matches(EventType::JobFailed));
        assert!(
            EventPattern::parse("*", "e")
                .unwrap()
                .matches(EventType::AlarmFired)
        );
        assert!(
            EventPattern::parse("job.failed", "e")
                .unwrap()
                .matches(EventType::JobFailed)
        );
        let e = EventPattern::parse("job.exploded", "events").unwrap_err();
        assert_eq!(e.code, "unknown-event-type");
        assert_eq!(e.field.as_deref(), Some("events"));
        assert!(EventPattern::parse("nope.*", "events").is_err());
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(j, "\"workspace.*\"");
        assert!(serde_json::from_str::<EventPattern>("\"x.y\"").is_err());
    }

    #[test]
    fn slurm_mail_types_become_subscriptions() {
        let (e, w) = slurm_mail_events("END").unwrap();
        assert_eq!(
            (e, w.len()),
            (vec!["job.finished".into(), "job.failed".into()], 0)
        );
        let (e, w) = slurm_mail_events("BEGIN,fail,ARRAY_TASKS").unwrap();
        assert_eq!(e, vec!["job.failed".to_string()]);
        assert_eq!(w.len(), 2);
        assert_eq!(
            slurm_mail_events("ALL").unwrap().0,
            vec!["job.*".to_string()]
        );
        assert!(slurm_mail_events("NONE").unwrap().0.is_empty());
        let err = slurm_mail_events("END,LOUD").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("--mail-type"));
    }

    #[test]
    fn rules_and_subscriptions_validate() {
        let r = RuleSpec {
            name: "ws-x".into(),
            events: vec!["workspace.*".into()],
            project: Some("x".into()),
            targets: vec!["teams-x".into()],
        };
        assert!(r.validate().is_ok());
        let bad = RuleSpec {
            events: vec!["workspace.exploded".into()],
            ..r.clone()
        };
        assert_eq!(bad.validate().unwrap_err().field.as_deref(), Some("events"));
        let bad = RuleSpec {
            targets: vec![],
            ..r.clone()
        };
        assert_eq!(
            bad.validate().unwrap_err().field.as_deref(),
            Some("targets")
        );
        let s = SubscriptionSpec {
            events: vec!["job.*".into()],
            job: Some(0),
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().field.as_deref(), Some("job"));
        assert_eq!(
            parse_list("job.failed, workspace.*", "events")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_list("", "events").is_err());
    }
}
