//! Workspace types: how to start an app, how to tell it is ready and busy,
//! its default resources and typed parameters. Types are versioned and
//! imported *not approved*; an admin approves or revokes each version.

use super::check_name;
use super::params::{ParamSpec, check_template};
use crate::error::{Result, ValidationError};
use crate::parse::{parse_duration, parse_memory_mib};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the app is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// Serves HTTP on its Unix socket; reached through the proxy.
    Http,
    /// No app: a shell reached with `trestle ws connect`.
    Terminal,
}

/// Where the app's own idea of being busy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ActivitySource {
    /// Only proxied traffic (other than the app's known polling), attached
    /// shells and port forwards.
    #[default]
    Traffic,
    /// Jupyter's kernels (`last_activity`, `execution_state`) and
    /// terminals, besides the above.
    Jupyter,
}

/// How the proxy hands the per-launch secret to the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretHeader {
    /// The header name (`Authorization`).
    pub name: String,
    /// Its value, a template (`token {secret}`).
    pub value: String,
}

/// Approval of one type version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Approval {
    /// Imported, not yet approved: cannot be launched.
    Pending,
    /// Approved by an admin.
    Approved,
    /// Revoked: cannot be launched; running workspaces show it.
    Revoked,
}

impl Approval {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Approval::Pending => "pending",
            Approval::Approved => "approved",
            Approval::Revoked => "revoked",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Approval> {
        [Approval::Pending, Approval::Approved, Approval::Revoked]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// One version of a workspace type, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceType {
    /// Name (`jupyterlab`).
    pub name: String,
    /// Version (free-form, unique per name: `4.2-1`).
    pub version: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// HTTP app or terminal.
    pub app: AppKind,
    /// The start command, each argument a template.
    #[serde(default)]
    pub command: Vec<String>,
    /// Extra environment, values are templates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The path (a template, usually under `{prefix}`) that answers 200
    /// once the app is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_path: Option<String>,
    /// How long the app may take to become ready (seconds).
    pub start_timeout_secs: u64,
    /// The header that carries the per-launch secret to the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_header: Option<SecretHeader>,
    /// Where activity comes from.
    #[serde(default)]
    pub activity: ActivitySource,
    /// Default CPUs.
    pub cpus: u32,
    /// Default memory (MiB).
    pub mem_mib: u64,
    /// Default GPUs.
    #[serde(default)]
    pub gpus: u32,
    /// Typed parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParamSpec>,
}

impl WorkspaceType {
    /// True when the app is told its URL prefix (`{prefix}` in its command
    /// or environment) and so serves under it; otherwise the proxy strips
    /// the prefix and the app sees paths from `/`.
    pub fn serves_prefix(&self) -> bool {
        self.command.iter().any(|a| a.contains("{prefix}"))
            || self.env.values().any(|v| v.contains("{prefix}"))
    }

    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// A type version as admins write it (TOML or JSON), before validation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceTypeRequest {
    /// Name.
    pub name: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// `http` (default) or `terminal`.
    pub app: Option<AppKind>,
    /// Start command.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Readiness path.
    pub ready_path: Option<String>,
    /// Start timeout (`2m`).
    pub start_timeout: Option<String>,
    /// Secret header.
    pub secret_header: Option<SecretHeader>,
    /// Activity source.
    pub activity: Option<ActivitySource>,
    /// CPUs.
    pub cpus: Option<u32>,
    /// Memory (`2G`).
    pub memory: Option<String>,
    /// GPUs.
    pub gpus: Option<u32>,
    /// Parameters.
    #[serde(default)]
    pub params: Vec<ParamSpec>,
}

/// The generic web app's default command: Python's file server on the
/// workspace's socket (`$1`), serving the home.
const DEFAULT_WEBAPP: &str = "exec python3 -c \"import http.server as h,socketserver as s,sys;H=type('H',(h.SimpleHTTPRequestHandler,),{'address_string':lambda self:'local'});S=type('S',(s.ThreadingMixIn,s.UnixStreamServer),{'daemon_threads':True});S(sys.argv[1],H).serve_forever()\" \"$1\"";

/// The default start timeout.
pub const DEFAULT_START_TIMEOUT_SECS: u64 = 120;

fn required<'a>(v: &'a Option<String>, field: &str) -> Result<&'a str> {
    v.as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ValidationError::new("missing-field", field, format!("`{field}` is required"))
        })
}

impl WorkspaceTypeRequest {
    /// Validates the request into a type version.
    pub fn validate(self) -> Result<WorkspaceType> {
        let name = required(&self.name, "name")?.to_string();
        check_name("name", &name)?;
        let version = required(&self.version, "version")?.to_string();
        check_name("version", &version)?;
        if self.description.chars().count() > 2000 {
            return Err(ValidationError::new(
                "invalid-description",
                "description",
                "a description is at most 2,000 characters",
            ));
        }
        let app = self.app.unwrap_or(AppKind::Http);
        for (i, p) in self.params.iter().enumerate() {
            p.check(&format!("params[{i}]"))?;
            if self.params[..i].iter().any(|q| q.name == p.name) {
                return Err(ValidationError::new(
                    "invalid-param",
                    &format!("params[{i}].name"),
                    format!("parameter `{}` is declared twice", p.name),
                ));
            }
        }
        if app == AppKind::Http {
            if self.command.is_empty() {
                return Err(ValidationError::new(
                    "missing-field",
                    "command",
                    "an HTTP workspace type needs a start command",
                ));
            }
            // A port on the host's loopback is shared with every task of
            // the host; apps listen on their own Unix socket (a port needs
            // the workspace's own network namespace, not built yet).
            if !self.command.iter().any(|a| a.contains("{socket}")) {
                return Err(ValidationError::new(
                    "invalid-template",
                    "command",
                    "the start command must say where the app listens: `{socket}` (a Unix socket path)",
                ));
            }
        }
        crate::batch::limits::check_argv("command", &self.command)?;
        for (i, a) in self.command.iter().enumerate() {
            check_template(&format!("command[{i}]"), a, &self.params)?;
        }
        for (k, v) in &self.env {
            crate::parse::validate_env_name(&format!("env.{k}"), k)?;
            check_template(&format!("env.{k}"), v, &self.params)?;
        }
        if let Some(p) = &self.ready_path {
            if !p.starts_with('/') && !p.starts_with("{prefix}") {
                return Err(ValidationError::new(
                    "invalid-ready-path",
                    "ready_path",
                    "the readiness path starts with `/` or `{prefix}`",
                ));
            }
            check_template("ready_path", p, &self.params)?;
        }
        if let Some(h) = &self.secret_header {
            let ok = !h.name.is_empty()
                && h.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(ValidationError::new(
                    "invalid-header",
                    "secret_header.name",
                    format!("`{}` is not a header name", h.name),
                ));
            }
            check_template("secret_header.value", &h.value, &self.params)?;
        }
        let start_timeout_secs = match &self.start_timeout {
            Some(t) => parse_duration("start_timeout", t, false)?,
            None => DEFAULT_START_TIMEOUT_SECS,
        };
        if start_timeout_secs == 0 || start_timeout_secs > 3600 {
            return Err(ValidationError::new(
                "invalid-duration",
                "start_timeout",
                "the start timeout is between 1 second and 1 hour",
            ));
        }
        let mem_mib = match &self.memory {
            Some(m) => parse_memory_mib("memory", m)?,
            None => 1024,
        };
        let cpus = self.cpus.unwrap_or(1);
        if cpus == 0 {
            return Err(ValidationError::new(
                "invalid-cpus",
                "cpus",
                "a workspace needs at least one CPU",
            ));
        }
        Ok(WorkspaceType {
            name,
            version,
            description: self.description,
            app,
            command: self.command,
            env: self.env,
            ready_path: self.ready_path,
            start_timeout_secs,
            secret_header: self.secret_header,
            activity: self.activity.unwrap_or_default(),
            cpus,
            mem_mib,
            gpus: self.gpus.unwrap_or(0),
            params: self.params,
        })
    }
}

/// The types Trestle ships (imported, not approved, by `trestle up` and
/// on first start): JupyterLab, a terminal and a generic web app.
pub fn shipped() -> Vec<WorkspaceTypeRequest> {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        WorkspaceTypeRequest {
            name: Some("jupyterlab".into()),
            version: Some("1".into()),
            description: "JupyterLab, served on a Unix socket under the workspace's prefix; its token is the per-launch secret".into(),
            app: Some(AppKind::Http),
            command: s(&[
                "jupyter",
                "lab",
                "--no-browser",
                "--ServerApp.sock={socket}",
                "--ServerApp.base_url={prefix}",
                "--ServerApp.root_dir={home}",
                "--ServerApp.allow_remote_access=True",
                "--ServerApp.disable_check_xsrf=False",
                // Workers that run as root run tasks as their owners'
                // accounts; only an unisolated worker started as root
                // (a test, a laptop) runs Jupyter as root.
                "--allow-root",
            ]),
            // The token reaches Jupyter in its environment, which only
            // its own user can read (not in its command line).
            env: [("JUPYTER_TOKEN".to_string(), "{secret}".to_string())].into(),
            ready_path: Some("{prefix}api/status".into()),
            start_timeout: Some("2m".into()),
            secret_header: Some(SecretHeader {
                name: "Authorization".into(),
                value: "token {secret}".into(),
            }),
            activity: Some(ActivitySource::Jupyter),
            cpus: Some(1),
            memory: Some("2G".into()),
            ..Default::default()
        },
        WorkspaceTypeRequest {
            name: Some("terminal".into()),
            version: Some("1".into()),
            description: "A shell in the workspace's home, reached with `trestle ws connect`".into(),
            app: Some(AppKind::Terminal),
            cpus: Some(1),
            memory: Some("512M".into()),
            ..Default::default()
        },
        WorkspaceTypeRequest {
            name: Some("webapp".into()),
            version: Some("1".into()),
            description: "Any command that serves HTTP on a Unix socket (the `command` parameter, with {socket} and {prefix} in it)".into(),
            app: Some(AppKind::Http),
            command: s(&["sh", "-c", "{param.command}", "{socket}", "{socket}"]),
            params: vec![ParamSpec {
                name: "command".into(),
                kind: super::params::ParamKind::String,
                default: DEFAULT_WEBAPP.into(),
                description: "the shell command that starts the app; it must listen on $TRESTLE_WS_SOCKET".into(),
            }],
            ready_path: Some("/".into()),
            start_timeout: Some("1m".into()),
            cpus: Some(1),
            memory: Some("1G".into()),
            ..Default::default()
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_types_validate() {
        for t in shipped() {
            let name = t.name.clone();
            t.validate().unwrap_or_else(|e| panic!("{name:?}: {e}"));
        }
    }

    #[test]
    fn bad_types_name_the_field() {
        let base = shipped().remove(0);
        let cases: Vec<(WorkspaceTypeRequest, &str)> = vec![
            (
                WorkspaceTypeRequest {
                    name: None,
                    ..base.clone()
                },
                "name",
            ),
            (
                WorkspaceTypeRequest {
                    version: Some("a b".into()),
                    ..base.clone()
                },
                "version",
            ),
            (
                WorkspaceTypeRequest {
                    command: vec!["x".into()],
                    ..base.clone()
                },
                "command",
            ),
            (
                WorkspaceTypeRequest {
                    command: vec!["{socket} {bad}".into()],
                    ..base.clone()
                },
                "command[0]",
            ),
            (
                WorkspaceTypeRequest {
                    ready_path: Some("api".into()),
                    ..base.clone()
                },
                "ready_path",
            ),
            (
                WorkspaceTypeRequest {
                    start_timeout: Some("5h".into()),
                    ..base.clone()
                },
                "start_timeout",
            ),
            (
                WorkspaceTypeRequest {
                    memory: Some("lots".into()),
                    ..base.clone()
                },
                "memory",
            ),
        ];
        for (req, field) in cases {
            let e = req.validate().unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
        }
    }
}
