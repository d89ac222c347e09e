//! What each kind of target is sent for a message of one or more events
//! (a digest when more): Slack Block Kit with a text fallback, a Teams
//! Adaptive Card (1.5) attachment, a Standard Webhooks JSON body, and
//! email with a plain-text and an HTML part. Text lines may follow an
//! admin's template ([`check_template`]).

use super::event::{Event, EventType};
use crate::error::ValidationError;
use serde_json::{Value, json};

/// Longest template (bytes).
pub const MAX_TEMPLATE: usize = 2000;
/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 8] = [
    "type", "subject", "title", "owner", "project", "detail", "link", "time",
];

/// Checks a template: at most [`MAX_TEMPLATE`] bytes, only known
/// `{placeholders}`, braces balanced.
pub fn check_template(t: &str, field: &str) -> Result<(), ValidationError> {
    if t.len() > MAX_TEMPLATE {
        return Err(ValidationError::new(
            "template-too-large",
            field,
            format!(
                "a template is at most {MAX_TEMPLATE} bytes, this one is {}",
                t.len()
            ),
        ));
    }
    crate::template::check(
        field,
        t,
        |n| PLACEHOLDERS.contains(&n),
        &PLACEHOLDERS.join(", "),
    )
}

/// A message to render: its stable id, its events (all of one type) and
/// where the portal is.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The delivery id (`msg_...`).
    pub id: &'a str,
    /// The event type of every event.
    pub kind: EventType,
    /// The events, in order (one, or a digest's).
    pub events: &'a [Event],
    /// The portal's base URL (`https://trestle.example.org`), for links.
    pub base_url: Option<&'a str>,
    /// The target's template for each event's line.
    pub template: Option<&'a str>,
}

/// Formats ms since the epoch as RFC 3339 UTC (`2026-12-01T15:04:05Z`).
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Message<'_> {
    /// The absolute link of an event, if it has one.
    pub fn link(&self, e: &Event) -> Option<String> {
        let path = e.event.link.as_deref()?;
        Some(match self.base_url {
            Some(b) => format!("{}{}", b.trim_end_matches('/'), path),
            None => path.to_string(),
        })
    }

    /// What the subject is called: its title, else the subject.
    fn name(e: &Event) -> &str {
        if e.event.title.is_empty() {
            &e.event.subject
        } else {
            &e.event.title
        }
    }

    /// One event's line of text (the template's, or the default).
    pub fn line(&self, e: &Event) -> String {
        let link = self.link(e).unwrap_or_default();
        match self.template {
            Some(t) => crate::template::render(t, |name| match name {
                "type" => e.event.kind.as_str().to_string(),
                "subject" => e.event.subject.clone(),
                "title" => Self::name(e).to_string(),
                "owner" => e.event.owner.clone().unwrap_or_default(),
                "project" => e.event.project.clone().unwrap_or_default(),
                "detail" => e.event.detail.clone().unwrap_or_default(),
                "link" => link.clone(),
                "time" => rfc3339(e.event.time),
                _ => String::new(),
            })
            .unwrap_or_else(|_| t.to_string()),
            None => {
                let mut s = format!("{} {}", Self::name(e), e.event.kind.verb());
                if let Some(d) = &e.event.detail {
                    s.push_str(": ");
                    s.push_str(d);
                }
                s
            }
        }
    }

    /// The message's title (`Job 42 failed`, `12 × job.failed`).
    pub fn title(&self) -> String {
        match self.events {
            [one] => format!("{} {}", Self::name(one), one.event.kind.verb()),
            many => format!("{} events: {}", many.len(), self.kind.as_str()),
        }
    }

    /// The plain text of the whole message (Slack's fallback, email's
    /// text part).
    pub fn text(&self) -> String {
        let mut s = self.title();
        s.push('\n');
        for e in self.events {
            s.push_str("- ");
            s.push_str(&self.line(e));
            if let Some(l) = self.link(e) {
                s.push_str(" <");
                s.push_str(&l);
                s.push('>');
            }
            s.push('\n');
        }
        s
    }
}

/// Slack's limits (docs.slack.dev, Block Kit reference): blocks per
/// message, header text, section text, fallback text.
pub mod slack_limits {
    /// Blocks in one message.
    pub const BLOCKS: usize = 50;
    /// A header block's plain text.
    pub const HEADER: usize = 150;
    /// A section block's text.
    pub const SECTION: usize = 3000;
    /// A context block's elements.
    pub const CONTEXT_ELEMENTS: usize = 10;
    /// The top-level `text` (Slack truncates past it).
    pub const TEXT: usize = 40_000;
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes Slack mrkdwn control characters.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Slack incoming-webhook payload: a header, a section per event
/// (up to 45; a context block says how many more), and the text fallback.
pub fn slack(m: &Message<'_>) -> Value {
    use slack_limits as L;
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&m.title(), L::HEADER), "emoji": false}
    })];
    let room = L::BLOCKS - 3;
    for e in m.events.iter().take(room) {
        let mut t = slack_escape(&m.line(e));
        if let Some(l) = m.link(e) {
            t = format!("{t}\n<{}|Open in Trestle>", slack_escape(&l));
        }
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&t, L::SECTION)}}),
        );
    }
    let mut ctx = vec![
        json!({"type": "mrkdwn", "text": format!("`{}` · {}", m.kind.as_str(), rfc3339(m.events.last().map(|e| e.event.time).unwrap_or(0)))}),
    ];
    if m.events.len() > room {
        ctx.push(json!({"type": "mrkdwn", "text": format!("and {} more", m.events.len() - room)}));
    }
    blocks.push(json!({"type": "context", "elements": ctx}));
    json!({"text": cut(&m.text(), L::TEXT), "blocks": blocks})
}

/// Checks a Slack payload against [`slack_limits`]; the first breach.
pub fn check_slack(payload: &Value) -> Result<(), String> {
    use slack_limits as L;
    let text = payload["text"].as_str().ok_or("no fallback text")?;
    if text.is_empty() || text.chars().count() > L::TEXT {
        return Err(format!(
            "fallback text of {} characters",
            text.chars().count()
        ));
    }
    let blocks = payload["blocks"].as_array().ok_or("no blocks")?;
    if blocks.is_empty() || blocks.len() > L::BLOCKS {
        return Err(format!("{} blocks", blocks.len()));
    }
    for b in blocks {
        let len = |v: &Value| v.as_str().map(|s| s.chars().count()).unwrap_or(0);
        match b["type"].as_str() {
            Some("header") => {
                if b["text"]["type"] != "plain_text" || len(&b["text"]["text"]) > L::HEADER {
                    return Err("header text".into());
                }
            }
            Some("section") => {
                let n = len(&b["text"]["text"]);
                if n == 0 || n > L::SECTION {
                    return Err(format!("section text of {n} characters"));
                }
            }
            Some("context") => {
                let n = b["elements"].as_array().map(|a| a.len()).unwrap_or(0);
                if n == 0 || n > L::CONTEXT_ELEMENTS {
                    return Err(format!("context with {n} elements"));
                }
            }
            other => return Err(format!("unexpected block {other:?}")),
        }
    }
    Ok(())
}

/// The Teams Workflows payload: a message with one Adaptive Card
/// attachment (title, a line per event up to 50, facts, a link). The card
/// uses only Adaptive Card 1.0 elements and declares 1.0, which every
/// Teams client renders; enum values are lowercase as the 1.0 schema
/// spells them (later versions take any case).
pub fn teams(m: &Message<'_>) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": m.title(),
        "weight": "bolder",
        "size": "medium",
        "wrap": true,
        "color": if m.kind.is_bad() { "attention" } else { "default" }
    })];
    for e in m.events.iter().take(50) {
        body.push(json!({"type": "TextBlock", "text": m.line(e), "wrap": true}));
    }
    if m.events.len() > 50 {
        body.push(json!({"type": "TextBlock", "text": format!("and {} more", m.events.len() - 50), "isSubtle": true}));
    }
    let first = &m.events[0];
    let mut facts = vec![json!({"title": "Event", "value": m.kind.as_str()})];
    if let Some(p) = &first.event.project {
        facts.push(json!({"title": "Project", "value": p}));
    }
    if let Some(o) = &first.event.owner {
        facts.push(json!({"title": "Owner", "value": o}));
    }
    facts.push(json!({"title": "Time", "value": rfc3339(first.event.time)}));
    body.push(json!({"type": "FactSet", "facts": facts}));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.0",
        "body": body,
    });
    if let Some(l) = m.link(first).filter(|l| l.starts_with("http")) {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in Trestle", "url": l}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card
        }]
    })
}

/// One event as webhook JSON.
fn event_json(m: &Message<'_>, e: &Event) -> Value {
    json!({
        "key": e.key,
        "type": e.event.kind.as_str(),
        "subject": e.event.subject,
        "title": e.event.title,
        "owner": e.event.owner,
        "project": e.event.project,
        "detail": e.event.detail,
        "link": m.link(e),
        "time": rfc3339(e.event.time),
        "time_ms": e.event.time,
    })
}

/// The generic webhook body (Standard Webhooks' `type`, `timestamp`,
/// `data`): `data.events` lists every event, one or a digest's.
pub fn webhook(m: &Message<'_>) -> Value {
    json!({
        "type": m.kind.as_str(),
        "timestamp": rfc3339(m.events.last().map(|e| e.event.time).unwrap_or(0)),
        "data": {
            "id": m.id,
            "digest": m.events.len() > 1,
            "count": m.events.len(),
            "text": m.text(),
            "events": m.events.iter().map(|e| event_json(m, e)).collect::<Vec<_>>(),
        }
    })
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An email: subject, plain-text part, HTML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Subject line (one line, at most 200 characters).
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

/// The email for a message.
pub fn email(m: &Message<'_>) -> Email {
    let subject = cut(
        &format!("[Trestle] {}", m.title()).replace(['\r', '\n'], " "),
        200,
    );
    let mut text = m.text();
    text.push_str("\n-- \nTrestle notifications: manage them under Settings > Notifications.\n");
    let mut html = format!(
        "<!doctype html><html><body><h2>{}</h2><ul>",
        html_escape(&m.title())
    );
    for e in m.events {
        html.push_str("<li>");
        html.push_str(&html_escape(&m.line(e)));
        if let Some(l) = m.link(e) {
            html.push_str(&format!(" <a href=\"{}\">open</a>", html_escape(&l)));
        }
        html.push_str("</li>");
    }
    html.push_str("</ul><p style=\"color:#666\">Trestle notifications: manage them under Settings &gt; Notifications.</p></body></html>");
    Email {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::event::NewEvent;

    fn ev(i: i64, kind: EventType) -> Event {
        Event {
            key: format!("job:{i}"),
            event: NewEvent {
                kind,
                subject: format!("job:{i}"),
                title: format!("Job {i} <b>"),
                owner: Some("ada".into()),
                project: Some("x".into()),
                link: Some(format!("/ui/jobs/{i}")),
                detail: Some("exit code 1".into()),
                time: 1_764_601_445_000,
            },
            parent: None,
        }
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_601_445_000), "2025-12-01T15:04:05Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn templates_are_checked_and_applied() {
        assert!(check_template("{title} ({type}) {link}", "template").is_ok());
        let e = check_template("{nope}", "template").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("template"));
        assert!(check_template("{title", "t").is_err());
        assert!(check_template("title}", "t").is_err());
        assert_eq!(
            check_template(&"a".repeat(MAX_TEMPLATE + 1), "t")
                .unwrap_err()
                .code,
            "template-too-large"
        );
        let events = [ev(1, EventType::JobFailed)];
        let m = Message {
            id: "msg_1",
            kind: EventType::JobFailed,
            events: &events,
            base_url: Some("https://t.example/"),
            template: Some("{type}: {title} by {owner} at {link}"),
        };
        assert_eq!(
            m.line(&events[0]),
            "job.failed: Job 1 <b> by ada at https://t.example/ui/jobs/1"
        );
    }

    #[test]
    fn slack_payloads_keep_to_the_limits_even_for_huge_digests() {
        let events: Vec<Event> = (0..1000)
            .map(|i| {
                let mut e = ev(i, EventType::JobFailed);
                e.event.detail = Some("x".repeat(5000));
                e
            })
            .collect();
        for n in [1, 2, 1000] {
            let m = Message {
                id: "msg_1",
                kind: EventType::JobFailed,
                events: &events[..n],
                base_url: None,
                template: None,
            };
            let p = slack(&m);
            check_slack(&p).unwrap();
            assert!(p["text"].as_str().unwrap().contains("Job 0 <b> failed"));
        }
        assert!(check_slack(&json!({"text": "", "blocks": []})).is_err());
    }

    #[test]
    fn email_and_webhook_bodies_carry_every_event() {
        let events = [ev(1, EventType::JobFailed), ev(2, EventType::JobFailed)];
        let m = Message {
            id: "msg_9",
            kind: EventType::JobFailed,
            events: &events,
            base_url: Some("https://t.example"),
            template: None,
        };
        let mail = email(&m);
        assert_eq!(mail.subject, "[Trestle] 2 events: job.failed");
        assert!(
            mail.text
                .contains("Job 2 <b> failed: exit code 1 <https://t.example/ui/jobs/2>")
        );
        assert!(mail.html.contains("Job 1 &lt;b&gt; failed"));
        let w = webhook(&m);
        assert_eq!(w["data"]["events"].as_array().unwrap().len(), 2);
        assert_eq!(w["data"]["id"], "msg_9");
        let t = teams(&m);
        assert_eq!(t["attachments"][0]["content"]["version"], "1.0");
    }
}
