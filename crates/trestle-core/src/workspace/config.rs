//! Workspace configurations: an admin's named preset of one type version,
//! with the shape and queue it runs on, parameter values, who may launch
//! it, its idle timeout, maximum lifetime and home size.

use super::check_name;
use super::kind::WorkspaceType;
use crate::error::{Result, ValidationError};
use crate::identity::authz::Role;
use crate::parse::{parse_duration, parse_memory_mib};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceConfig {
    /// Name (`lab-small`).
    pub name: String,
    /// What users read in the catalogue.
    #[serde(default)]
    pub description: String,
    /// The type's name.
    pub type_name: String,
    /// The type's version.
    pub type_version: String,
    /// The queue it is placed through.
    pub queue: String,
    /// CPUs.
    pub cpus: u32,
    /// Memory (MiB).
    pub mem_mib: u64,
    /// GPUs.
    #[serde(default)]
    pub gpus: u32,
    /// Parameter values (checked against the type).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Roles that may launch it (empty: nobody).
    #[serde(default)]
    pub allow_roles: Vec<Role>,
    /// Roles that may not (a deny wins).
    #[serde(default)]
    pub deny_roles: Vec<Role>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Estimated cost per hour, in the site's unit (from the shape's price).
    #[serde(default)]
    pub cost_per_hour: f64,
    /// Stopped after this long without activity (seconds; 0 = never).
    pub idle_timeout_secs: u64,
    /// Stopped after running this long (seconds).
    pub max_lifetime_secs: u64,
    /// How far a user may extend the lifetime in all (seconds).
    #[serde(default)]
    pub max_extension_secs: u64,
    /// The home's size limit (MiB).
    pub home_limit_mib: u64,
    /// Running workspaces of this configuration one user may have.
    pub max_per_user: u32,
}

/// A configuration as admins write it, before validation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfigRequest {
    /// Name.
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// `name@version` or the name (then `type_version` is required).
    #[serde(rename = "type")]
    pub type_ref: Option<String>,
    /// The type's version.
    pub type_version: Option<String>,
    /// Queue (default `default`).
    pub queue: Option<String>,
    /// CPUs (default: the type's).
    pub cpus: Option<u32>,
    /// Memory (`4G`; default: the type's).
    pub memory: Option<String>,
    /// GPUs.
    pub gpus: Option<u32>,
    /// Parameter values.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Roles that may launch it.
    #[serde(default)]
    pub allow_roles: Vec<String>,
    /// Roles that may not.
    #[serde(default)]
    pub deny_roles: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Estimated cost per hour.
    pub cost_per_hour: Option<f64>,
    /// Idle timeout (`1h`, `0` = never).
    pub idle_timeout: Option<String>,
    /// Maximum lifetime (`8h`).
    pub max_lifetime: Option<String>,
    /// Extension allowed in all (`8h`).
    pub max_extension: Option<String>,
    /// Home size limit (`10G`).
    pub home_limit: Option<String>,
    /// Running workspaces per user of this configuration (default 2).
    pub max_per_user: Option<u32>,
}

impl WorkspaceConfigRequest {
    /// The type reference as (name, version).
    pub fn type_key(&self) -> Result<(String, String)> {
        let r = self
            .type_ref
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ValidationError::new("missing-field", "type", "`type` (NAME@VERSION) is required")
            })?;
        match (r.split_once('@'), &self.type_version) {
            (Some((n, v)), _) => Ok((n.to_string(), v.to_string())),
            (None, Some(v)) => Ok((r.to_string(), v.clone())),
            (None, None) => Err(ValidationError::new(
                "missing-field",
                "type",
                "name the type's version: `type = \"NAME@VERSION\"`",
            )),
        }
    }

    /// Validates the request against the type version it names.
    pub fn validate(self, ty: &WorkspaceType) -> Result<WorkspaceConfig> {
        let name =
            self.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
                ValidationError::new("missing-field", "name", "`name` is required")
            })?;
        check_name("name", &name)?;
        let roles = |field: &str, v: &[String]| -> Result<Vec<Role>> {
            v.iter()
                .enumerate()
                .map(|(i, r)| {
                    Role::parse(r).ok_or_else(|| {
                        ValidationError::new(
                            "invalid-role",
                            &format!("{field}[{i}]"),
                            format!(
                                "`{r}` is not a role (admin, researcher, internal-guest, guest)"
                            ),
                        )
                    })
                })
                .collect()
        };
        let allow_roles = roles("allow_roles", &self.allow_roles)?;
        let deny_roles = roles("deny_roles", &self.deny_roles)?;
        // The type's defaults and the configuration's own values must all
        // be values of the declared parameters.
        super::params::resolve(&ty.params, &self.params, &BTreeMap::new(), "params")?;
        let dur = |field: &str, v: &Option<String>, default: u64| -> Result<u64> {
            v.as_deref()
                .map_or(Ok(default), |t| parse_duration(field, t, false))
        };
        let idle_timeout_secs = dur("idle_timeout", &self.idle_timeout, 3600)?;
        let max_lifetime_secs = dur("max_lifetime", &self.max_lifetime, 8 * 3600)?;
        if max_lifetime_secs == 0 {
            return Err(ValidationError::new(
                "invalid-duration",
                "max_lifetime",
                "a maximum lifetime of 0 would stop the workspace at once",
            ));
        }
        let max_extension_secs = dur("max_extension", &self.max_extension, max_lifetime_secs)?;
        let home_limit_mib = match &self.home_limit {
            Some(t) => parse_memory_mib("home_limit", t)?,
            None => 10 * 1024,
        };
        let cpus = self.cpus.unwrap_or(ty.cpus);
        if cpus == 0 {
            return Err(ValidationError::new(
                "invalid-cpus",
                "cpus",
                "a workspace needs at least one CPU",
            ));
        }
        let mem_mib = match &self.memory {
            Some(t) => parse_memory_mib("memory", t)?,
            None => ty.mem_mib,
        };
        let cost_per_hour = self.cost_per_hour.unwrap_or(0.0);
        if !cost_per_hour.is_finite() || cost_per_hour < 0.0 {
            return Err(ValidationError::new(
                "invalid-cost",
                "cost_per_hour",
                "a cost per hour is a number of 0 or more",
            ));
        }
        crate::batch::limits::check_tags("tags", &self.tags)?;
        if self.description.chars().count() > 2000 {
            return Err(ValidationError::new(
                "invalid-description",
                "description",
                "a description is at most 2,000 characters",
            ));
        }
        let queue = self.queue.clone().unwrap_or_else(|| "default".into());
        check_name("queue", &queue)?;
        Ok(WorkspaceConfig {
            name,
            description: self.description,
            type_name: ty.name.clone(),
            type_version: ty.version.clone(),
            queue,
            cpus,
            mem_mib,
            gpus: self.gpus.unwrap_or(ty.gpus),
            params: self.params,
            allow_roles,
            deny_roles,
            tags: self.tags,
            cost_per_hour,
            idle_timeout_secs,
            max_lifetime_secs,
            max_extension_secs,
            home_limit_mib,
            max_per_user: self.max_per_user.unwrap_or(2),
        })
    }
}

impl WorkspaceConfig {
    /// The longest a session of this configuration may run: its lifetime,
    /// every extension, and its type's start timeout.
    pub fn longest_session_secs(&self, start_timeout_secs: u64) -> u64 {
        self.max_lifetime_secs
            .saturating_add(self.max_extension_secs)
            .saturating_add(start_timeout_secs)
    }

    /// Checks that a session fits the time limit of every Slurm pilot
    /// that may host it (`pilots`: each compute environment's name and
    /// time limit): a pilot must not end under a running workspace.
    pub fn fits_pilots(&self, start_timeout_secs: u64, pilots: &[(String, u64)]) -> Result<()> {
        let need = self.longest_session_secs(start_timeout_secs);
        match pilots.iter().find(|(_, limit)| *limit < need) {
            Some((ce, limit)) => Err(ValidationError::new(
                "lifetime-exceeds-pilot",
                "max_lifetime",
                format!(
                    "a session may run {} (lifetime, extensions and start), longer than the {} time limit of compute environment `{ce}`'s Slurm pilots; shorten max_lifetime or max_extension, or raise the pilots' time_limit",
                    super::idle::human_secs(need),
                    super::idle::human_secs(*limit)
                ),
            )),
            None => Ok(()),
        }
    }

    /// True when `role` may launch this configuration: a deny wins, and an
    /// empty allow list allows nobody (as in Service Workbench).
    pub fn allows(&self, role: Role) -> bool {
        !self.deny_roles.contains(&role) && self.allow_roles.contains(&role)
    }

    /// `name@version` of its type.
    pub fn type_id(&self) -> String {
        format!("{}@{}", self.type_name, self.type_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::kind::shipped;

    fn lab() -> WorkspaceType {
        shipped().remove(0).validate().unwrap()
    }

    fn req() -> WorkspaceConfigRequest {
        WorkspaceConfigRequest {
            name: Some("lab-small".into()),
            type_ref: Some("jupyterlab@1".into()),
            allow_roles: vec!["researcher".into(), "guest".into()],
            deny_roles: vec!["guest".into()],
            ..Default::default()
        }
    }

    #[test]
    fn deny_wins_and_empty_allows_nobody() {
        let c = req().validate(&lab()).unwrap();
        assert!(c.allows(Role::Researcher));
        assert!(!c.allows(Role::Guest));
        assert!(!c.allows(Role::Admin));
        let none = WorkspaceConfigRequest {
            allow_roles: vec![],
            ..req()
        }
        .validate(&lab())
        .unwrap();
        assert!(Role::ALL.iter().all(|r| !none.allows(*r)));
    }

    #[test]
    fn defaults_come_from_the_type() {
        let c = req().validate(&lab()).unwrap();
        assert_eq!((c.cpus, c.mem_mib, c.queue.as_str()), (1, 2048, "default"));
        assert_eq!(req().type_key().unwrap(), ("jupyterlab".into(), "1".into()));
    }

    #[test]
    fn a_lifetime_must_fit_the_pilots() {
        let mut r = req();
        r.max_lifetime = Some("4h".into());
        r.max_extension = Some("2h".into());
        let c = r.validate(&lab()).unwrap();
        assert!(c.fits_pilots(120, &[("hpc".into(), 7 * 3600)]).is_ok());
        let e = c.fits_pilots(120, &[("hpc".into(), 6 * 3600)]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("max_lifetime"));
        assert!(e.message.contains("`hpc`"), "{e}");
    }

    #[test]
    fn bad_configs_name_the_field() {
        let mut p = BTreeMap::new();
        p.insert("nope".to_string(), "1".to_string());
        let cases: Vec<(WorkspaceConfigRequest, &str)> = vec![
            (
                WorkspaceConfigRequest {
                    allow_roles: vec!["boss".into()],
                    ..req()
                },
                "allow_roles[0]",
            ),
            (WorkspaceConfigRequest { params: p, ..req() }, "params.nope"),
            (
                WorkspaceConfigRequest {
                    max_lifetime: Some("0".into()),
                    ..req()
                },
                "max_lifetime",
            ),
            (
                WorkspaceConfigRequest {
                    name: Some("a\nb".into()),
                    ..req()
                },
                "name",
            ),
            (
                WorkspaceConfigRequest {
                    cost_per_hour: Some(-1.0),
                    ..req()
                },
                "cost_per_hour",
            ),
        ];
        for (r, field) in cases {
            assert_eq!(
                r.validate(&lab()).unwrap_err().field.as_deref(),
                Some(field)
            );
        }
    }
}
