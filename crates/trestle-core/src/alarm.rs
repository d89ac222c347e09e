//! Resource alarms: rules over a task's samples (CPU, memory, disk, each
//! as a percentage of what the task was given), and the pure evaluator
//! that moves each rule between `OK` and `ALARM`. A threshold held for a
//! rule's duration raises `ALARM`; the first sample back on the good side
//! returns it to `OK`. Every change is reported, so the caller can record
//! it and emit its event.
//!
//! The state of a rule carries the time its condition began to hold, so
//! the evaluator needs only the samples that arrived since the last
//! evaluation, not the whole history.

use serde::{Deserialize, Serialize};

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// CPU use, percent of the task's allocated CPUs.
    Cpu,
    /// Resident memory, percent of the task's requested memory.
    Memory,
    /// Bytes under the scratch directory, percent of its filesystem (or of
    /// a limit).
    Disk,
}

/// Which side of the threshold is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Above the threshold.
    Above,
    /// Below the threshold.
    Below,
}

/// One alarm rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmRule {
    /// Its name (`cpu_high`, `cpu_idle`, `memory_high`, `disk_high`).
    pub name: String,
    /// What it watches.
    pub metric: Metric,
    /// Which side is bad.
    pub direction: Direction,
    /// The threshold, in percent.
    pub threshold: f64,
    /// How long the bad side must hold before the alarm is raised (ms).
    pub duration_ms: i64,
}

/// The rule names of the defaults.
pub const CPU_HIGH: &str = "cpu_high";
/// See [`CPU_HIGH`].
pub const CPU_IDLE: &str = "cpu_idle";
/// See [`CPU_HIGH`].
pub const MEMORY_HIGH: &str = "memory_high";
/// See [`CPU_HIGH`].
pub const DISK_HIGH: &str = "disk_high";

/// The default rules, from the seed's CloudWatch alarms: CPU above 95 %
/// for 3 minutes, CPU below 5 % for an hour (idle), memory above 85 % for
/// 3 minutes, disk above 80 % for 3 minutes.
pub fn default_rules() -> Vec<AlarmRule> {
    let rule = |name: &str, metric, direction, threshold, mins: i64| AlarmRule {
        name: name.to_string(),
        metric,
        direction,
        threshold,
        duration_ms: mins * 60_000,
    };
    vec![
        rule(CPU_HIGH, Metric::Cpu, Direction::Above, 95.0, 3),
        rule(CPU_IDLE, Metric::Cpu, Direction::Below, 5.0, 60),
        rule(MEMORY_HIGH, Metric::Memory, Direction::Above, 85.0, 3),
        rule(DISK_HIGH, Metric::Disk, Direction::Above, 80.0, 3),
    ]
}

/// A change to one rule of [`default_rules`] (a queue's or the server's
/// `[alarms.NAME]`): unset fields keep what they override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleOverride {
    /// New threshold (percent).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// New duration (ms).
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// Turn the rule off (`Some(true)`) or back on (`Some(false)`).
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// `rules` with `overrides` applied (by rule name; an override naming no
/// rule is ignored), and every duration cut to `max_duration_ms` when set
/// (a server setting, so that tests need seconds, not hours).
pub fn apply_overrides(
    rules: &[AlarmRule],
    overrides: &[(String, RuleOverride)],
    max_duration_ms: Option<i64>,
) -> Vec<AlarmRule> {
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        let mut r = r.clone();
        let mut off = false;
        for (_, o) in overrides.iter().filter(|(n, _)| *n == r.name) {
            if let Some(t) = o.threshold {
                r.threshold = t;
            }
            if let Some(d) = o.duration_ms {
                r.duration_ms = d.max(0);
            }
            off = o.disabled.unwrap_or(off);
        }
        if let Some(max) = max_duration_ms {
            r.duration_ms = r.duration_ms.min(max.max(0));
        }
        if !off {
            out.push(r);
        }
    }
    out
}

/// A rule's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmState {
    /// Not firing.
    #[serde(rename = "OK")]
    Ok,
    /// Firing.
    #[serde(rename = "ALARM")]
    Alarm,
}

impl AlarmState {
    /// `OK` or `ALARM`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
        }
    }

    /// Parses [`AlarmState::as_str`].
    pub fn parse(s: &str) -> Option<AlarmState> {
        match s {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            _ => None,
        }
    }
}

/// One rule's state for one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// The rule's name.
    pub rule: String,
    /// OK or ALARM.
    pub state: AlarmState,
    /// Since when the bad side has held without a break (ms), if it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breach_since: Option<i64>,
    /// When the state last changed (ms; the first sample for a new rule).
    pub changed_at: i64,
    /// The value (percent) that caused the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// One sample, as the evaluator sees it: percentages of what the task was
/// given (`None`: not measured in this sample).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    /// When (ms).
    pub time: i64,
    /// CPU percent of the allocated CPUs.
    pub cpu: Option<f64>,
    /// Memory percent of the requested memory.
    pub memory: Option<f64>,
    /// Disk percent.
    pub disk: Option<f64>,
}

impl Point {
    fn value(&self, m: Metric) -> Option<f64> {
        match m {
            Metric::Cpu => self.cpu,
            Metric::Memory => self.memory,
            Metric::Disk => self.disk,
        }
    }
}

/// A state change found by [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The rule.
    pub rule: AlarmRule,
    /// The new state.
    pub to: AlarmState,
    /// When (the sample's time).
    pub time: i64,
    /// The value that caused it.
    pub value: f64,
}

/// What [`evaluate`] decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Evaluation {
    /// The state of every rule after the samples (one per rule, in rule
    /// order); unchanged states are included.
    pub states: Vec<RuleState>,
    /// The changes, in time order.
    pub changes: Vec<Change>,
}

/// Evaluates `rules` over `points` (any order; taken in time order),
/// starting from `prev` (states of rules that `prev` lacks start `OK`).
pub fn evaluate(rules: &[AlarmRule], prev: &[RuleState], points: &[Point]) -> Evaluation {
    let mut points: Vec<&Point> = points.iter().collect();
    points.sort_by_key(|p| p.time);
    let first = points.first().map_or(0, |p| p.time);
    let mut out = Evaluation::default();
    for rule in rules {
        let mut st = prev
            .iter()
            .find(|s| s.rule == rule.name)
            .cloned()
            .unwrap_or(RuleState {
                rule: rule.name.clone(),
                state: AlarmState::Ok,
                breach_since: None,
                changed_at: first,
                value: None,
            });
        for p in &points {
            let Some(v) = p.value(rule.metric) else {
                continue;
            };
            let bad = match rule.direction {
                Direction::Above => v > rule.threshold,
                Direction::Below => v < rule.threshold,
            };
            if bad {
                let since = *st.breach_since.get_or_insert(p.time);
                if st.state == AlarmState::Ok && p.time - since >= rule.duration_ms {
                    st.state = AlarmState::Alarm;
                    st.changed_at = p.time;
                    st.value = Some(v);
                    out.changes.push(Change {
                        rule: rule.clone(),
                        to: AlarmState::Alarm,
                        time: p.time,
                        value: v,
                    });
                }
            } else {
                st.breach_since = None;
                if st.state == AlarmState::Alarm {
                    st.state = AlarmState::Ok;
                    st.changed_at = p.time;
                    st.value = Some(v);
                    out.changes.push(Change {
                        rule: rule.clone(),
                        to: AlarmState::Ok,
                        time: p.time,
                        value: v,
                    });
                }
            }
        }
        out.states.push(st);
    }
    out.changes.sort_by_key(|c| c.time);
    out
}

/// A rule's condition in words (`CPU above 95% for 3m`).
pub fn describe(rule: &AlarmRule) -> String {
    let what = match rule.metric {
        Metric::Cpu => "CPU",
        Metric::Memory => "memory",
        Metric::Disk => "disk",
    };
    let side = match rule.direction {
        Direction::Above => "above",
        Direction::Below => "below",
    };
    format!(
        "{what} {side} {}% for {}",
        rule.threshold,
        crate::workspace::idle::human_secs((rule.duration_ms.max(0) / 1000) as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(time: i64, v: f64) -> Point {
        Point {
            time,
            cpu: Some(v),
            ..Point::default()
        }
    }

    fn high() -> Vec<AlarmRule> {
        vec![AlarmRule {
            name: CPU_HIGH.into(),
            metric: Metric::Cpu,
            direction: Direction::Above,
            threshold: 95.0,
            duration_ms: 3000,
        }]
    }

    #[test]
    fn a_threshold_held_for_the_duration_raises_and_a_return_clears() {
        let r = high();
        let e = evaluate(&r, &[], &[cpu(0, 99.0), cpu(1000, 99.0), cpu(2000, 99.0)]);
        assert!(e.changes.is_empty());
        assert_eq!(e.states[0].breach_since, Some(0));
        assert_eq!(e.states[0].state, AlarmState::Ok);
        // Carried over: the next batch completes the duration.
        let e = evaluate(&r, &e.states, &[cpu(3000, 97.0)]);
        assert_eq!(e.changes.len(), 1);
        assert_eq!(e.changes[0].to, AlarmState::Alarm);
        assert_eq!(e.changes[0].time, 3000);
        assert_eq!(e.states[0].state, AlarmState::Alarm);
        // Staying high changes nothing more.
        let e = evaluate(&r, &e.states, &[cpu(4000, 99.0)]);
        assert!(e.changes.is_empty());
        let e = evaluate(&r, &e.states, &[cpu(5000, 10.0)]);
        assert_eq!(e.changes[0].to, AlarmState::Ok);
        assert_eq!(e.states[0].breach_since, None);
    }

    #[test]
    fn a_dip_restarts_the_duration() {
        let r = high();
        let e = evaluate(
            &r,
            &[],
            &[
                cpu(0, 99.0),
                cpu(2000, 50.0),
                cpu(3000, 99.0),
                cpu(5000, 99.0),
            ],
        );
        assert!(e.changes.is_empty());
        assert_eq!(e.states[0].breach_since, Some(3000));
        let e = evaluate(&r, &e.states, &[cpu(6000, 99.0)]);
        assert_eq!(e.changes.len(), 1);
    }

    #[test]
    fn samples_out_of_order_are_sorted_and_missing_values_skipped() {
        let r = high();
        let mut no_cpu = cpu(1500, 0.0);
        no_cpu.cpu = None;
        let e = evaluate(&r, &[], &[cpu(3000, 99.0), no_cpu, cpu(0, 99.0)]);
        assert_eq!(e.changes.len(), 1);
        assert_eq!(e.changes[0].time, 3000);
    }

    #[test]
    fn idle_is_below_and_every_default_rule_is_evaluated() {
        let rules = apply_overrides(&default_rules(), &[], Some(2000));
        assert!(rules.iter().all(|r| r.duration_ms == 2000));
        let p = |t| Point {
            time: t,
            cpu: Some(0.5),
            memory: Some(90.0),
            disk: Some(10.0),
        };
        let e = evaluate(&rules, &[], &[p(0), p(2500)]);
        let fired: Vec<&str> = e.changes.iter().map(|c| c.rule.name.as_str()).collect();
        assert_eq!(fired, [CPU_IDLE, MEMORY_HIGH]);
        assert_eq!(e.states.len(), 4);
    }

    #[test]
    fn overrides_change_or_drop_rules() {
        let o = vec![
            (
                CPU_HIGH.to_string(),
                RuleOverride {
                    threshold: Some(50.0),
                    duration_ms: Some(10),
                    disabled: None,
                },
            ),
            (
                CPU_IDLE.to_string(),
                RuleOverride {
                    disabled: Some(true),
                    ..RuleOverride::default()
                },
            ),
        ];
        let r = apply_overrides(&default_rules(), &o, None);
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].threshold, r[0].duration_ms), (50.0, 10));
        assert_eq!(r[1].name, MEMORY_HIGH);
        assert_eq!(describe(&r[1]), "memory above 85% for 3m");
    }
}
