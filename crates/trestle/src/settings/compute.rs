//! Scale-out settings of `trestle.toml`: compute environments, queue
//! priorities and CE lists (on the `[queues.NAME]` tables), leader leases,
//! the URLs launched workers use, and S3 options.
//!
//! ```toml
//! leader_lease = "10s"
//! advertise_urls = ["http://trestle-1:8080", "http://trestle-2:8080"]
//!
//! [compute_environments.cluster]
//! provider = "slurm"
//! shapes = [{ name = "c4", vcpus = 4, memory = "16G", price_per_hour = 0.2 }]
//! max_vcpus = 256
//! idle_timeout = "2m"
//! slurm = { partition = "batch", account = "research", time_limit = "12h" }
//!
//! [queues.default]
//! priority = 10
//! compute_environments = ["cluster"]
//!
//! [s3]
//! endpoint = "https://s3.example.edu"
//! region = "us-east-1"
//! ```

use super::queues::QueueFile;
use anyhow::{Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use trestle_core::compute::{ComputeEnvRequest, ComputeEnvSpec, QueueRequest, QueueSpec};

/// `[s3]`: options for `s3://` object storage. A value the matching
/// `AWS_*` environment variable also sets is taken from the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3File {
    /// Endpoint URL of an S3-compatible service (`AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region (`AWS_REGION`).
    pub region: Option<String>,
    /// Access key id (`AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret access key (`AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
    /// Session token (`AWS_SESSION_TOKEN`).
    pub session_token: Option<String>,
    /// Allow `http://` endpoints (`AWS_ALLOW_HTTP`).
    pub allow_http: Option<bool>,
    /// Virtual-hosted-style requests (`AWS_VIRTUAL_HOSTED_STYLE_REQUEST`).
    pub virtual_hosted_style: Option<bool>,
}

impl S3File {
    /// `object_store` options from the file, skipping those the
    /// environment sets (environment variables win over the file).
    pub fn options(&self, env_set: impl Fn(&str) -> bool) -> Vec<(String, String)> {
        let b = |v: &Option<bool>| v.map(|x| x.to_string());
        let all = [
            (
                "aws_endpoint",
                &["AWS_ENDPOINT_URL", "AWS_ENDPOINT"][..],
                self.endpoint.clone(),
            ),
            (
                "aws_region",
                &["AWS_REGION", "AWS_DEFAULT_REGION"][..],
                self.region.clone(),
            ),
            (
                "aws_access_key_id",
                &["AWS_ACCESS_KEY_ID"][..],
                self.access_key_id.clone(),
            ),
            (
                "aws_secret_access_key",
                &["AWS_SECRET_ACCESS_KEY"][..],
                self.secret_access_key.clone(),
            ),
            (
                "aws_session_token",
                &["AWS_SESSION_TOKEN"][..],
                self.session_token.clone(),
            ),
            (
                "aws_allow_http",
                &["AWS_ALLOW_HTTP"][..],
                b(&self.allow_http),
            ),
            (
                "aws_virtual_hosted_style_request",
                &["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"][..],
                b(&self.virtual_hosted_style),
            ),
        ];
        all.into_iter()
            .filter_map(|(key, vars, v)| {
                let v = v?;
                (!vars.iter().any(|var| env_set(var))).then(|| (key.to_string(), v))
            })
            .collect()
    }
}

/// Validates the `[compute_environments.NAME]` tables.
pub fn envs(tables: &BTreeMap<String, ComputeEnvRequest>) -> Result<Vec<ComputeEnvSpec>> {
    let mut out = Vec::with_capacity(tables.len());
    for (name, req) in tables {
        let spec = req.clone().validate(name).map_err(|e| {
            anyhow::anyhow!(
                "compute_environments.{name}{}: {}",
                e.field.map(|f| format!(".{f}")).unwrap_or_default(),
                e.message
            )
        })?;
        out.push(spec);
    }
    Ok(out)
}

/// The queue priorities and CE lists of the `[queues.NAME]` tables; CEs
/// must be declared here or exist already (checked when the server starts).
pub fn queues(
    tables: &BTreeMap<String, QueueFile>,
    envs: &[ComputeEnvSpec],
    local: bool,
) -> Result<Vec<QueueSpec>> {
    let mut out = Vec::with_capacity(tables.len());
    for (name, q) in tables {
        let spec = QueueRequest {
            name: None,
            priority: q.priority,
            compute_environments: q.compute_environments.clone(),
        }
        .validate(name)
        .map_err(|e| {
            anyhow::anyhow!(
                "queues.{name}{}: {}",
                e.field.map(|f| format!(".{f}")).unwrap_or_default(),
                e.message
            )
        })?;
        for (i, e) in spec.compute_environments.iter().enumerate() {
            let declared = envs.iter().any(|d| &d.name == e) || (local && e == "local");
            if !declared {
                bail!(
                    "queues.{name}.compute_environments[{i}]: there is no compute environment `{e}` (declare [compute_environments.{e}])"
                );
            }
        }
        out.push(spec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct F {
        #[serde(default)]
        compute_environments: BTreeMap<String, ComputeEnvRequest>,
        #[serde(default)]
        queues: BTreeMap<String, QueueFile>,
        #[serde(default)]
        s3: S3File,
    }

    fn parse(text: &str) -> Result<(Vec<ComputeEnvSpec>, Vec<QueueSpec>)> {
        let f: F = toml::from_str(text)?;
        let e = envs(&f.compute_environments)?;
        let q = queues(&f.queues, &e, false)?;
        Ok((e, q))
    }

    #[test]
    fn declarations() {
        let (e, q) = parse(
            r#"
[compute_environments.hpc]
provider = "slurm"
shapes = [{ name = "c2", vcpus = 2, memory = "4G" }]
max_vcpus = 8
slurm = { partition = "debug", time_limit = "1h" }
[queues.default]
priority = 5
compute_environments = ["hpc"]
[queues.later]
"#,
        )
        .unwrap();
        assert_eq!(e[0].name, "hpc");
        assert_eq!(e[0].slurm.as_ref().unwrap().time_limit_secs, 3600);
        assert_eq!(q[0].priority, 5);
        assert!(q[1].compute_environments.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        let e = err(
            "[compute_environments.a]\nprovider = \"slurm\"\nshapes = [{ vcpus = 0, memory = 1 }]\nmax_vcpus = 1\n",
        );
        assert!(e.contains("compute_environments.a.shapes[0].vcpus"), "{e}");
        let e = err(
            "[compute_environments.a]\nprovider = \"local\"\nshapes = [{ vcpus = 1, memory = 1 }]\nmax_cpus = 1\n",
        );
        assert!(e.contains("max_cpus"), "{e}");
        let e = err("[queues.q]\ncompute_environments = [\"nope\"]\n");
        assert!(e.contains("queues.q.compute_environments[0]"), "{e}");
        let e = err("[queues.q]\npriority = -4\n");
        assert!(e.contains("queues.q.priority"), "{e}");
    }

    #[test]
    fn the_worked_example_of_the_operations_guide_is_valid() {
        let doc = include_str!("../../../../docs/operations.md");
        let start = doc.find("```toml\n").expect("a toml block") + 8;
        let text = &doc[start..start + doc[start..].find("```").unwrap()];
        let f: super::super::FileConfig = toml::from_str(text).unwrap();
        let e = envs(&f.compute_environments).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].slurm.as_ref().unwrap().time_limit_secs, 12 * 3600);
        let q = queues(&f.queues, &e, false).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(f.s3.options(|_| false).len(), 2);
    }

    #[test]
    fn s3_options_yield_to_the_environment() {
        let f: F = toml::from_str(
            "[s3]\nendpoint = \"http://127.0.0.1:9\"\naccess_key_id = \"k\"\nallow_http = true\n",
        )
        .unwrap();
        let all = f.s3.options(|_| false);
        assert!(all.contains(&("aws_endpoint".into(), "http://127.0.0.1:9".into())));
        assert!(all.contains(&("aws_allow_http".into(), "true".into())));
        let some = f.s3.options(|v| v == "AWS_ACCESS_KEY_ID");
        assert!(!some.iter().any(|(k, _)| k == "aws_access_key_id"));
        assert_eq!(some.len(), 2);
    }
}
