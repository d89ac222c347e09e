//! `[queues.NAME]` tables of `trestle.toml`: whether a queue takes jobs,
//! and the drop folder it watches (priorities and compute environments:
//! `settings/compute.rs`).
//!
//! ```toml
//! [queues.default]
//! drop_folder = "/data/drop"   # sub-folders with a `.sh` file become jobs
//! trigger_suffix = ".sh"       # the default
//! drop_owner = "alice"         # jobs are alice's (default: admin)
//! drop_project = "genomics"    # charged here (default: the owner's default)
//!
//! max_user_priority = 0        # users may only lower priorities (default)
//! log_limit = "16M"            # newest 16 MiB of each attempt's log kept
//! full_log = true              # and all of it as output `trestle-full.log`
//! max_run_time = "12h"         # what escrow budgets assume for jobs without a time limit
//! alarms.cpu_idle.duration = "4h"  # its own resource alarm rules
//!
//! [queues.gpu]
//! enabled = false              # jobs wait (PENDING) until re-enabled
//! ```

use anyhow::{Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use trestle_service::workflows::{DEFAULT_DROP_OWNER, DEFAULT_TRIGGER_SUFFIX, QueueConfig};

/// One `[queues.NAME]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFile {
    /// Take new work (default true); when false, its jobs wait.
    pub enabled: Option<bool>,
    /// A folder to watch for job sub-folders (relative: to the config file).
    pub drop_folder: Option<PathBuf>,
    /// Files with this suffix trigger a job (default `.sh`).
    pub trigger_suffix: Option<String>,
    /// The user the folder's jobs are submitted as (default `admin`).
    pub drop_owner: Option<String>,
    /// The project they are charged to (default: the owner's default).
    pub drop_project: Option<String>,
    /// Highest job priority users without the admin role may set (default 0:
    /// users may only lower their own jobs' priority).
    pub max_user_priority: Option<i32>,
    /// How much of each attempt's log is kept: bytes or a size (`"16M"`,
    /// the default).
    pub log_limit: Option<trestle_core::batch::spec::Quantity>,
    /// Keep each attempt's whole output as the output file
    /// `trestle-full.log` too (default false).
    pub full_log: Option<bool>,
    /// The longest a job without a time limit is assumed to run, for
    /// escrow reservations (default: `[costs] default_max_run_time`).
    pub max_run_time: Option<String>,
    /// Higher-priority queues are served first (default 0).
    pub priority: Option<i64>,
    /// Compute environments that run its jobs, in order of preference
    /// (default: every one).
    pub compute_environments: Option<Vec<String>>,
    /// Its own resource alarm rules (`[queues.NAME.alarms.cpu_idle]`; see
    /// `settings/alarms.rs`).
    pub alarms: Option<super::alarms::RulesFile>,
}

/// Validates the queue tables; relative folders are taken relative to
/// `base` (the config file's directory).
pub fn build(tables: &BTreeMap<String, QueueFile>, base: &Path) -> Result<Vec<QueueConfig>> {
    let mut out = Vec::new();
    let mut folders: Vec<PathBuf> = Vec::new();
    for (name, q) in tables {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            bail!("queues.{name}: a queue name is 1-64 letters, digits, `-` or `_`");
        }
        let suffix = q
            .trigger_suffix
            .clone()
            .unwrap_or_else(|| DEFAULT_TRIGGER_SUFFIX.to_string());
        if suffix.is_empty() || suffix.contains('/') || suffix.len() > 32 {
            bail!("queues.{name}.trigger_suffix: `{suffix}` must be 1-32 characters without `/`");
        }
        for (field, v) in [
            ("drop_owner", &q.drop_owner),
            ("drop_project", &q.drop_project),
        ] {
            if let Some(v) = v
                && let Err(e) = trestle_core::identity::validate_name(field, v)
            {
                bail!("queues.{name}.{field}: {}", e.message);
            }
        }
        let drop_folder = q.drop_folder.as_ref().map(|d| {
            if d.is_absolute() {
                d.clone()
            } else {
                base.join(d)
            }
        });
        if let Some(d) = &drop_folder {
            if folders.iter().any(|f| f.starts_with(d) || d.starts_with(f)) {
                bail!(
                    "queues.{name}.drop_folder: {} overlaps another queue's drop folder",
                    d.display()
                );
            }
            folders.push(d.clone());
        }
        let max_user_priority = q
            .max_user_priority
            .unwrap_or(trestle_core::batch::limits::DEFAULT_MAX_USER_PRIORITY);
        if let Err(e) = trestle_core::batch::limits::check_priority_range(max_user_priority) {
            bail!("queues.{name}.max_user_priority: {}", e.message);
        }
        let log_limit = match &q.log_limit {
            None => None,
            Some(trestle_core::batch::spec::Quantity::Number(n)) => Some(*n),
            Some(trestle_core::batch::spec::Quantity::Text(t)) => Some(
                trestle_core::parse::parse_memory_mib("log_limit", t)
                    .map_err(|e| anyhow::anyhow!("queues.{name}.log_limit: {}", e.message))?
                    * 1024
                    * 1024,
            ),
        };
        if let Some(n) = log_limit
            && n < trestle_core::batch::logs::MIN_LOG_LIMIT_BYTES
        {
            bail!("queues.{name}.log_limit: must be at least 64 KiB, got {n} bytes");
        }
        let max_run_secs = match &q.max_run_time {
            None => None,
            Some(t) => {
                let secs = trestle_core::parse::parse_duration("max_run_time", t, false)
                    .map_err(|e| anyhow::anyhow!("queues.{name}.max_run_time: {}", e.message))?;
                if secs == 0 {
                    bail!("queues.{name}.max_run_time: must be above 0");
                }
                Some(secs)
            }
        };
        out.push(QueueConfig {
            max_run_secs,
            max_user_priority,
            log_limit,
            full_log: q.full_log.unwrap_or(false),
            name: name.clone(),
            enabled: q.enabled.unwrap_or(true),
            drop_folder,
            trigger_suffix: suffix,
            drop_owner: q
                .drop_owner
                .clone()
                .unwrap_or_else(|| DEFAULT_DROP_OWNER.to_string()),
            drop_project: q.drop_project.clone(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<QueueConfig>> {
        #[derive(Deserialize)]
        struct F {
            queues: BTreeMap<String, QueueFile>,
        }
        let f: F = toml::from_str(text)?;
        build(&f.queues, Path::new("/etc/trestle"))
    }

    #[test]
    fn queue_tables() {
        let q = parse(
            "[queues.default]\ndrop_folder = \"drop\"\n[queues.gpu]\nenabled = false\ntrigger_suffix = \".job\"\n",
        )
        .unwrap();
        assert_eq!(q[0].name, "default");
        assert_eq!(
            q[0].drop_folder.as_deref(),
            Some(Path::new("/etc/trestle/drop"))
        );
        assert_eq!(q[0].trigger_suffix, ".sh");
        assert!(!q[1].enabled);
        assert_eq!(q[1].trigger_suffix, ".job");
        assert_eq!(q[0].drop_owner, "admin");
        let q = parse("[queues.d]\ndrop_owner = \"alice\"\ndrop_project = \"bio\"\n").unwrap();
        assert_eq!(
            (q[0].drop_owner.as_str(), q[0].drop_project.as_deref()),
            ("alice", Some("bio"))
        );
        for bad in [
            "[queues.\"a b\"]\n",
            "[queues.a]\ntrigger_suffix = \"\"\n",
            "[queues.a]\nbogus = 1\n",
            "[queues.a]\ndrop_owner = \"Not A Name\"\n",
            "[queues.a]\ndrop_folder = \"/d\"\n[queues.b]\ndrop_folder = \"/d/x\"\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
