//! `[alarms]` and `[queues.NAME.alarms]` in `trestle.toml`: the resource
//! alarm rules (defaults: `trestle_core::alarm::default_rules`).
//!
//! ```toml
//! [alarms]
//! max_duration = "5s"        # cut every rule's duration (tests, demos)
//! clear_interval = "2s"      # how often ended attempts' alarms clear
//! [alarms.cpu_high]
//! threshold = 90             # percent of the allocated CPUs
//! duration = "10m"
//! [alarms.disk_high]
//! disabled = true
//!
//! [queues.interactive.alarms.cpu_idle]
//! duration = "4h"            # this queue's own idle rule
//! ```

use super::secs;
use anyhow::{Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use trestle_core::alarm::{self, RuleOverride};
use trestle_service::alarms::AlarmSettings;

/// One rule's table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Threshold, percent.
    pub threshold: Option<f64>,
    /// How long the threshold must hold (`3m`).
    pub duration: Option<String>,
    /// Turn the rule off (or, in a queue, back on).
    pub disabled: Option<bool>,
}

/// The rules of `[alarms]` or `[queues.NAME.alarms]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// CPU above 95 % for 3 minutes.
    pub cpu_high: Option<RuleFile>,
    /// CPU below 5 % for an hour.
    pub cpu_idle: Option<RuleFile>,
    /// Memory above 85 % for 3 minutes.
    pub memory_high: Option<RuleFile>,
    /// Disk above 80 % for 3 minutes.
    pub disk_high: Option<RuleFile>,
}

/// `[alarms]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsFile {
    /// Every rule's duration is cut to this (`5s`).
    pub max_duration: Option<String>,
    /// How often the alarms of ended attempts are cleared (default `2s`).
    pub clear_interval: Option<String>,
    /// Server-wide changes to CPU above 95 % for 3 minutes.
    pub cpu_high: Option<RuleFile>,
    /// ... to CPU below 5 % for an hour.
    pub cpu_idle: Option<RuleFile>,
    /// ... to memory above 85 % for 3 minutes.
    pub memory_high: Option<RuleFile>,
    /// ... to disk above 80 % for 3 minutes.
    pub disk_high: Option<RuleFile>,
}

fn overrides(prefix: &str, f: &RulesFile) -> Result<Vec<(String, RuleOverride)>> {
    let mut out = Vec::new();
    for (name, r) in [
        (alarm::CPU_HIGH, &f.cpu_high),
        (alarm::CPU_IDLE, &f.cpu_idle),
        (alarm::MEMORY_HIGH, &f.memory_high),
        (alarm::DISK_HIGH, &f.disk_high),
    ] {
        let Some(r) = r else { continue };
        if let Some(t) = r.threshold
            && !(t.is_finite() && (0.0..=100_000.0).contains(&t))
        {
            bail!("{prefix}.{name}.threshold: must be a percentage from 0, got {t}");
        }
        let duration_ms = match &r.duration {
            Some(d) => Some(secs(&format!("{prefix}.{name}.duration"), d)?.as_millis() as i64),
            None => None,
        };
        out.push((
            name.to_string(),
            RuleOverride {
                threshold: r.threshold,
                duration_ms,
                disabled: r.disabled,
            },
        ));
    }
    Ok(out)
}

/// The alarm settings of `[alarms]` and the queues' `alarms` tables.
pub fn build(file: &AlarmsFile, queues: &BTreeMap<String, RulesFile>) -> Result<AlarmSettings> {
    let mut s = AlarmSettings::default();
    let max = match &file.max_duration {
        Some(d) => Some(secs("alarms.max_duration", d)?.as_millis() as i64),
        None => None,
    };
    if let Some(d) = &file.clear_interval {
        s.clear_every = secs("alarms.clear_interval", d)?.max(std::time::Duration::from_secs(1));
    }
    let server = overrides(
        "alarms",
        &RulesFile {
            cpu_high: file.cpu_high.clone(),
            cpu_idle: file.cpu_idle.clone(),
            memory_high: file.memory_high.clone(),
            disk_high: file.disk_high.clone(),
        },
    )?;
    let defaults = alarm::default_rules();
    s.rules = alarm::apply_overrides(&defaults, &server, max);
    for (q, rules) in queues {
        let mut all = server.clone();
        all.extend(overrides(&format!("queues.{q}.alarms"), rules)?);
        s.queues
            .insert(q.clone(), alarm::apply_overrides(&defaults, &all, max));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_override_the_defaults() {
        #[derive(Deserialize)]
        struct F {
            alarms: AlarmsFile,
        }
        let f: F = toml::from_str(
            "[alarms]\nmax_duration = \"4s\"\n[alarms.cpu_high]\nthreshold = 90\n[alarms.disk_high]\ndisabled = true\n",
        )
        .unwrap();
        let q: BTreeMap<String, RulesFile> = [(
            "gpu".to_string(),
            RulesFile {
                disk_high: Some(RuleFile {
                    disabled: Some(false),
                    ..RuleFile::default()
                }),
                ..RulesFile::default()
            },
        )]
        .into();
        let s = build(&f.alarms, &q).unwrap();
        assert_eq!(s.rules.len(), 3);
        assert_eq!(s.rules[0].threshold, 90.0);
        assert!(s.rules.iter().all(|r| r.duration_ms == 4000));
        assert_eq!(s.rules_for("gpu").len(), 4);
        assert_eq!(s.rules_for("other").len(), 3);
        let bad: F = toml::from_str("[alarms.cpu_high]\nthreshold = -1\n").unwrap();
        assert!(build(&bad.alarms, &BTreeMap::new()).is_err());
        assert!(toml::from_str::<F>("[alarms.cpu_hot]\nthreshold = 1\n").is_err());
    }
}
