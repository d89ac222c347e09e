//! How the items waiting for one target become messages: for each user
//! (or none, for rule targets), every run of items of the same event
//! type becomes one message, a digest when it holds more than one, so a
//! burst is summarised instead of dropped and each subject's events stay
//! in order. A target gets new messages only when nothing of it is
//! waiting to be retried and its rate limit allows ([`may_form`]).

use super::event::EventType;
use std::collections::BTreeMap;

/// An item waiting for a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its id (the order items arrived in).
    pub id: i64,
    /// The user it is for.
    pub user: Option<String>,
    /// Its event type.
    pub kind: EventType,
}

/// One message to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The user it is for.
    pub user: Option<String>,
    /// The event type of its items.
    pub kind: EventType,
    /// Its items, in order.
    pub items: Vec<i64>,
}

impl Planned {
    /// Whether it summarises several events.
    pub fn is_digest(&self) -> bool {
        self.items.len() > 1
    }
}

/// Most events in one message (a digest lists at most this many).
pub const MAX_PER_MESSAGE: usize = 100;

/// Messages for `items` (in id order), ordered by their first item.
pub fn plan(items: &[Item], max_per_message: usize) -> Vec<Planned> {
    let max = max_per_message.max(1);
    let mut per_user: BTreeMap<Option<&str>, Vec<Planned>> = BTreeMap::new();
    for it in items {
        let list = per_user.entry(it.user.as_deref()).or_default();
        match list.last_mut() {
            Some(last) if last.kind == it.kind && last.items.len() < max => last.items.push(it.id),
            _ => list.push(Planned {
                user: it.user.clone(),
                kind: it.kind,
                items: vec![it.id],
            }),
        }
    }
    let mut out: Vec<Planned> = per_user.into_values().flatten().collect();
    out.sort_by_key(|p| p.items[0]);
    out
}

/// Whether new messages may be made for a target now: nothing of it is
/// waiting (a retry keeps later messages behind it, so order holds), and
/// `interval_ms` has passed since its last message was made.
pub fn may_form(now: i64, last_formed: Option<i64>, interval_ms: i64, has_waiting: bool) -> bool {
    !has_waiting && last_formed.is_none_or(|t| now - t >= interval_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(id: i64, user: Option<&str>, kind: EventType) -> Item {
        Item {
            id,
            user: user.map(String::from),
            kind,
        }
    }

    #[test]
    fn runs_of_one_type_become_digests_per_user() {
        use EventType::*;
        let items = vec![
            it(1, None, JobFailed),
            it(2, None, JobFailed),
            it(3, Some("ada"), WorkspaceReady),
            it(4, None, JobFailed),
            it(5, None, WorkspaceLaunched),
            it(6, None, JobFailed),
        ];
        let p = plan(&items, 100);
        let got: Vec<(Option<&str>, Vec<i64>)> = p
            .iter()
            .map(|p| (p.user.as_deref(), p.items.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (None, vec![1, 2, 4]),
                (Some("ada"), vec![3]),
                (None, vec![5]),
                (None, vec![6]),
            ]
        );
        assert!(p[0].is_digest() && !p[1].is_digest());
        let many: Vec<Item> = (1..=1000).map(|i| it(i, None, JobFailed)).collect();
        let p = plan(&many, 100);
        assert_eq!(p.len(), 10);
        assert!(p.iter().all(|m| m.items.len() == 100));
    }

    #[test]
    fn rate_limits_and_waiting_retries_hold_new_messages() {
        assert!(may_form(10_000, None, 1000, false));
        assert!(!may_form(10_000, Some(9_500), 1000, false));
        assert!(may_form(10_000, Some(9_000), 1000, false));
        assert!(!may_form(10_000, Some(0), 1000, true));
    }
}
