//! Job requests as users write them (native JSON, the seed's job JSON, CLI
//! flags) and their validation into a [`JobSpec`].

use crate::batch::array::ArraySpec;
use crate::batch::deps::{Dependency, check_count};
use crate::batch::job::{
    Command, DEFAULT_ATTEMPTS, DEFAULT_MEM_MIB, JobSpec, MAX_ATTEMPTS, Resources,
};
use crate::batch::workflow::{Flow, SlurmSpec};
use crate::error::{Result, ValidationError};
use crate::parse::{parse_duration, parse_memory_mib, validate_env_name};
use crate::paths::normalize_relative;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The default queue name.
pub const DEFAULT_QUEUE: &str = "default";

/// A number or a string with a unit (`"2G"`, `"10m"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Quantity {
    /// A plain number (MiB for memory, seconds for durations).
    Number(u64),
    /// A string with a unit.
    Text(String),
}

/// A command as written: an argv list or a shell script string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandRequest {
    /// `["prog", "arg"]`.
    Argv(Vec<String>),
    /// `"echo hi && ./run.sh"`, run by `/bin/sh -c`.
    Script(String),
}

/// The native job request (`trestle submit --file`, `POST /api/v1/jobs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Display name (default: the program name).
    #[serde(default)]
    pub name: Option<String>,
    /// Queue (default `default`).
    #[serde(default)]
    pub queue: Option<String>,
    /// Unique caller-chosen key.
    #[serde(default)]
    pub key: Option<String>,
    /// The command.
    #[serde(default)]
    pub command: Option<CommandRequest>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// CPU cores (default 1).
    #[serde(default)]
    pub cpus: Option<u32>,
    /// Memory: MiB as a number or a size string (default 256M).
    #[serde(default)]
    pub memory: Option<Quantity>,
    /// GPUs (default 0).
    #[serde(default)]
    pub gpus: Option<u32>,
    /// Timeout per attempt: seconds or a duration string.
    #[serde(default)]
    pub timeout: Option<Quantity>,
    /// Attempts (default 1).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// Success string.
    #[serde(default)]
    pub success_string: Option<String>,
    /// Exit codes that retry (default: all non-zero).
    #[serde(default)]
    pub retry_exit_codes: Vec<i32>,
    /// Upload id to stage as inputs.
    #[serde(default)]
    pub inputs: Option<String>,
    /// Working directory relative to the scratch directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Priority within the queue.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Project to charge (default: the submitter's default project).
    #[serde(default)]
    pub project: Option<String>,
    /// An array: `0-999`, `0-15:4`, `1,3,5-7`, optionally `%N` (at most N
    /// children at once).
    #[serde(default)]
    pub array: Option<String>,
    /// With `array`: once this many children failed, cancel the rest.
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// Jobs to wait for: `[{"kind": "after-ok", "job": 12}]`.
    #[serde(default)]
    pub after: Vec<Dependency>,
    /// Details of a job submitted with `trestle sbatch`.
    #[serde(default)]
    pub slurm: Option<SlurmSpec>,
    /// Studies to attach (`{"study": NAME, "mode": "ro"|"rw", "subdir",
    /// "path"}`).
    #[serde(default)]
    pub studies: Vec<crate::study::attach::StudyAttach>,
}

/// The seed scheduler's job JSON, accepted verbatim.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedJob {
    /// Unique job id (becomes the job's key and name).
    pub job_id: String,
    /// Retries after the first attempt (a number or a numeric string).
    #[serde(default)]
    pub retry: Option<Quantity>,
    /// Success string; blank means "not checked".
    #[serde(default)]
    pub job_success_string: Option<String>,
    /// The SSM document; only `AWS-RunShellScript` can run here.
    #[serde(default)]
    pub ssm_document: Option<String>,
    /// Commands, run in order as one shell script.
    pub commands: Vec<String>,
}

fn check_name(field: &str, s: &str, max: usize) -> Result<()> {
    if s.trim().is_empty() || s.len() > max || s.chars().any(|c| c.is_control()) {
        return Err(ValidationError::new(
            "invalid-name",
            field,
            format!(
                "`{}` must be 1-{max} printable characters",
                s.escape_debug()
            ),
        ));
    }
    Ok(())
}

fn check_queue(q: &str) -> Result<()> {
    let ok = !q.is_empty()
        && q.len() <= 64
        && q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "invalid-queue",
            "queue",
            format!("queue name `{q}` must be 1-64 letters, digits, `-` or `_`"),
        ))
    }
}

/// Checks an upload id (as returned by `POST /api/v1/uploads`).
pub fn validate_upload_id(field: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "invalid-upload",
            field,
            format!("`{id}` is not an upload id"),
        ))
    }
}

impl JobRequest {
    /// Validates the request into a [`JobSpec`]; every problem names its field.
    pub fn validate(self) -> Result<JobSpec> {
        let command = match self.command {
            None => {
                return Err(ValidationError::new(
                    "missing-command",
                    "command",
                    "a job needs a command",
                ));
            }
            Some(CommandRequest::Argv(v)) => {
                if v.is_empty() || v[0].trim().is_empty() {
                    return Err(ValidationError::new(
                        "missing-command",
                        "command",
                        "the command list is empty",
                    ));
                }
                crate::batch::limits::check_argv("command", &v)?;
                if v.iter().any(|a| a.contains('\0')) {
                    return Err(ValidationError::new(
                        "invalid-command",
                        "command",
                        "arguments must not contain NUL bytes",
                    ));
                }
                Command::Argv(v)
            }
            Some(CommandRequest::Script(s)) => {
                if s.trim().is_empty() {
                    return Err(ValidationError::new(
                        "missing-command",
                        "command",
                        "the command script is empty",
                    ));
                }
                crate::batch::limits::check_script("command", &s)?;
                if s.contains('\0') {
                    return Err(ValidationError::new(
                        "invalid-command",
                        "command",
                        "the script must not contain NUL bytes",
                    ));
                }
                Command::Shell(s)
            }
        };
        let name = match self.name {
            Some(n) => {
                check_name("name", &n, 200)?;
                n
            }
            None => default_name(&command),
        };
        let queue = self.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_string());
        check_queue(&queue)?;
        if let Some(k) = &self.key {
            check_name("key", k, 1024)?;
        }
        crate::batch::limits::check_env("env", &self.env)?;
        for (k, v) in &self.env {
            validate_env_name("env", k)?;
            if v.contains('\0') {
                return Err(ValidationError::new(
                    "invalid-env",
                    "env",
                    format!("value of `{k}` contains a NUL byte"),
                ));
            }
        }
        let cpus = self.cpus.unwrap_or(1);
        if cpus == 0 || cpus > 4096 {
            return Err(ValidationError::new(
                "invalid-cpus",
                "cpus",
                format!("cpus must be between 1 and 4096, got {cpus}"),
            ));
        }
        let mem_mib = match self.memory {
            None => DEFAULT_MEM_MIB,
            Some(Quantity::Number(n)) => n,
            Some(Quantity::Text(t)) => parse_memory_mib("memory", &t)?,
        };
        if mem_mib == 0 || mem_mib > 64 * 1024 * 1024 {
            return Err(ValidationError::new(
                "invalid-memory",
                "memory",
                format!("memory must be between 1 MiB and 64 TiB, got {mem_mib} MiB"),
            ));
        }
        let gpus = self.gpus.unwrap_or(0);
        if gpus > 64 {
            return Err(ValidationError::new(
                "invalid-gpus",
                "gpus",
                format!("gpus must be at most 64, got {gpus}"),
            ));
        }
        let timeout_secs = match self.timeout {
            None => 0,
            Some(Quantity::Number(n)) => n,
            Some(Quantity::Text(t)) => parse_duration("timeout", &t, false)?,
        };
        let max_attempts = self.attempts.unwrap_or(DEFAULT_ATTEMPTS);
        if max_attempts == 0 || max_attempts > MAX_ATTEMPTS {
            return Err(ValidationError::new(
                "invalid-attempts",
                "attempts",
                format!("attempts must be between 1 and {MAX_ATTEMPTS}, got {max_attempts}"),
            ));
        }
        let success_string = self.success_string.filter(|s| !s.trim().is_empty());
        let inputs = match self.inputs {
            Some(i) => {
                validate_upload_id("inputs", &i)?;
                Some(i)
            }
            None => None,
        };
        let workdir = match self.workdir {
            Some(w) => Some(normalize_relative("workdir", &w)?),
            None => None,
        };
        let project = match self.project {
            Some(p) => {
                crate::identity::validate_name("project", &p)?;
                Some(p)
            }
            None => None,
        };
        crate::batch::limits::check_tags("tags", &self.tags)?;
        crate::batch::limits::check_outcome_rules(
            success_string.as_deref(),
            &self.retry_exit_codes,
        )?;
        for (k, v) in &self.tags {
            check_name("tags", k, 128)?;
            if v.len() > 1024 {
                return Err(ValidationError::new(
                    "invalid-tag",
                    "tags",
                    format!("tag `{k}` is longer than 1024 bytes"),
                ));
            }
        }
        let mut array = match &self.array {
            Some(a) => Some(ArraySpec::parse("array", a)?),
            None => None,
        };
        match (self.max_failures, array.as_mut()) {
            (None, _) => {}
            (Some(0), _) => {
                return Err(ValidationError::new(
                    "invalid-max-failures",
                    "max_failures",
                    "max_failures must be at least 1 (the number of failed children that stops the array)",
                ));
            }
            (Some(n), Some(a)) => a.max_failures = Some(n),
            (Some(_), None) => {
                return Err(ValidationError::new(
                    "invalid-max-failures",
                    "max_failures",
                    "max_failures applies to arrays only: add `array` (e.g. 0-99)",
                ));
            }
        }
        check_count("after", &self.after)?;
        if let Some(d) = self.after.iter().find(|d| d.job <= 0) {
            return Err(ValidationError::new(
                "invalid-dependency",
                "after",
                format!("`{}` is not a job id", d.job),
            ));
        }
        if let Some(p) = self.priority {
            crate::batch::limits::check_priority_range(p)?;
        }
        let mut after = self.after;
        after.sort();
        after.dedup();
        if let Some(s) = &self.slurm {
            check_slurm(s)?;
        }
        Ok(JobSpec {
            name,
            queue,
            key: self.key,
            command,
            env: self.env,
            resources: Resources {
                cpus,
                mem_mib,
                gpus,
            },
            timeout_secs,
            max_attempts,
            success_string,
            retry_exit_codes: self.retry_exit_codes,
            inputs,
            workdir,
            priority: self.priority.unwrap_or(0),
            tags: self.tags,
            project,
            owner: None,
            flow: Flow {
                array,
                array_task: None,
                after,
                slurm: self.slurm,
            },
            task: crate::task::TaskKind::Batch,
            session: None,
            studies: crate::study::attach::check("studies", self.studies)?,
        })
    }
}

fn check_slurm(s: &SlurmSpec) -> Result<()> {
    if let Some(script) = &s.script {
        let bad_name = script.name.is_empty()
            || script.name.len() > 255
            || script.name.contains('/')
            || script.name == "."
            || script.name == ".."
            || script.name.chars().any(|c| c.is_control());
        if bad_name {
            return Err(ValidationError::new(
                "invalid-slurm",
                "slurm.script.name",
                format!("`{}` is not a file name", script.name.escape_debug()),
            ));
        }
        if script.text.len() > crate::batch::workflow::INLINE_SCRIPT_MAX {
            return Err(ValidationError::new(
                "invalid-slurm",
                "slurm.script.text",
                format!(
                    "an inline batch script is at most {} bytes; upload a larger one as the job's inputs",
                    crate::batch::workflow::INLINE_SCRIPT_MAX
                ),
            ));
        }
    }
    for (field, v) in [
        ("slurm.output", &s.output),
        ("slurm.error", &s.error),
        ("slurm.submit_dir", &s.submit_dir),
        ("slurm.submit_host", &s.submit_host),
        ("slurm.user", &s.user),
    ] {
        if let Some(v) = v
            && (v.is_empty() || v.len() > 4096 || v.chars().any(|c| c.is_control()))
        {
            return Err(ValidationError::new(
                "invalid-slurm",
                field,
                format!("`{}` must be 1-4096 printable characters", v.escape_debug()),
            ));
        }
    }
    Ok(())
}

fn default_name(c: &Command) -> String {
    let first = match c {
        Command::Argv(v) => v[0].as_str(),
        Command::Shell(s) => s.split_whitespace().next().unwrap_or("script"),
    };
    let base = first.rsplit('/').next().unwrap_or(first);
    base.chars().take(64).collect()
}

impl SeedJob {
    /// Converts the seed's job into a native request: `retry: N` means N+1
    /// attempts, the commands become one POSIX shell script, and a blank
    /// success string means "not checked".
    pub fn into_request(self) -> Result<JobRequest> {
        let doc = self.ssm_document.as_deref().unwrap_or("AWS-RunShellScript");
        if doc != "AWS-RunShellScript" {
            return Err(ValidationError::new(
                "unsupported-document",
                "ssm_document",
                format!(
                    "document `{doc}` cannot run here; only `AWS-RunShellScript` (a POSIX shell) is supported"
                ),
            ));
        }
        let retry = match self.retry {
            None => 0,
            Some(Quantity::Number(n)) => n,
            Some(Quantity::Text(t)) => t.trim().parse::<u64>().map_err(|_| {
                ValidationError::new(
                    "invalid-retry",
                    "retry",
                    format!("retry must be a whole number, got `{t}`"),
                )
            })?,
        };
        if retry >= u64::from(MAX_ATTEMPTS) {
            return Err(ValidationError::new(
                "invalid-retry",
                "retry",
                format!("retry must be below {MAX_ATTEMPTS}, got {retry}"),
            ));
        }
        if self.commands.is_empty() {
            return Err(ValidationError::new(
                "missing-command",
                "commands",
                "commands must list at least one command",
            ));
        }
        check_name("job_id", &self.job_id, 1024)?;
        Ok(JobRequest {
            name: Some(self.job_id.chars().take(200).collect()),
            key: Some(self.job_id),
            command: Some(CommandRequest::Script(self.commands.join("\n"))),
            attempts: Some(retry as u32 + 1),
            success_string: self.job_success_string,
            ..JobRequest::default()
        })
    }
}

/// Parses a job file or request body: the native format, or the seed's job
/// JSON (recognised by its `job_id` / `commands` fields). Trailing commas, as
/// in the seed's own example, are tolerated.
pub fn parse_job_json(text: &str) -> Result<JobSpec> {
    let cleaned = strip_trailing_commas(text);
    let value: serde_json::Value = serde_json::from_str(&cleaned).map_err(|e| {
        ValidationError::new(
            "invalid-json",
            "",
            format!("the job is not valid JSON: {e}"),
        )
    })?;
    request_from_value(value)?.validate()
}

/// Turns a JSON value (native or seed format) into a native request.
pub fn request_from_value(value: serde_json::Value) -> Result<JobRequest> {
    let Some(obj) = value.as_object() else {
        return Err(ValidationError::new(
            "invalid-json",
            "",
            "a job must be a JSON object",
        ));
    };
    let is_seed = obj.contains_key("job_id") || obj.contains_key("commands");
    if is_seed {
        let seed: SeedJob = from_value_with_path(value)?;
        seed.into_request()
    } else {
        from_value_with_path(value)
    }
}

/// Deserialises a JSON value; an error names the path of the bad field
/// (`cpus`, `env.HOME`) or, for an unknown field, the field itself.
pub fn from_value_with_path<T: serde::de::DeserializeOwned>(
    mut value: serde_json::Value,
) -> Result<T> {
    crate::parse::integral_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let msg = e.inner().to_string();
        let mut field = e.path().to_string();
        if field == "." {
            field.clear();
        }
        ValidationError::new("invalid-field", &field, format!("invalid job: {msg}"))
    })
}

/// Removes commas that directly precede `}` or `]` outside of strings.
pub fn strip_trailing_commas(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut escaped = false;
    for (i, &c) in chars.iter().enumerate() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        if c == '"' {
            in_str = true;
        } else if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_written_with_a_fraction_are_whole_numbers() {
        let r = request_from_value(serde_json::json!({"command": "x", "gpus": 2.0, "cpus": 4e0}))
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!((r.resources.gpus, r.resources.cpus), (2, 4));
        let e = request_from_value(serde_json::json!({"command": "x", "gpus": 2.5})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("gpus"));
    }

    #[test]
    fn native_defaults() {
        let s = parse_job_json(r#"{"command": ["echo", "hi"]}"#).unwrap();
        assert_eq!(s.name, "echo");
        assert_eq!(s.queue, "default");
        assert_eq!(s.max_attempts, 1);
        assert_eq!(s.resources, Resources::default());
        assert_eq!(s.command, Command::Argv(vec!["echo".into(), "hi".into()]));
    }

    #[test]
    fn native_full() {
        let s = parse_job_json(
            r#"{"name":"n","queue":"q1","command":"echo hi","cpus":2,"memory":"2G",
                "timeout":"10m","attempts":3,"success_string":"hi","env":{"A":"b"}}"#,
        )
        .unwrap();
        assert_eq!(s.resources.mem_mib, 2048);
        assert_eq!(s.timeout_secs, 600);
        assert_eq!(s.command, Command::Shell("echo hi".into()));
        assert_eq!(s.success_string.as_deref(), Some("hi"));
    }

    #[test]
    fn seed_verbatim() {
        let text = r#"{
            "job_id": "jobId_0",
            "retry": "3",
            "job_success_string": " ",
            "ssm_document": "AWS-RunShellScript",
            "commands": ["echo Hello World", "echo done"],
        }"#;
        let s = parse_job_json(text).unwrap();
        assert_eq!(s.max_attempts, 4);
        assert_eq!(s.key.as_deref(), Some("jobId_0"));
        assert_eq!(s.success_string, None);
        assert_eq!(
            s.command,
            Command::Shell("echo Hello World\necho done".into())
        );
    }

    #[test]
    fn seed_rejects_powershell() {
        let e = parse_job_json(
            r#"{"job_id":"a","ssm_document":"AWS-RunPowerShellScript","commands":["dir"]}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, "unsupported-document");
        assert_eq!(e.field.as_deref(), Some("ssm_document"));
    }

    #[test]
    fn errors_name_fields() {
        let cases = [
            (r#"{"command":[]}"#, "command"),
            (r#"{"command":["x"],"cpus":0}"#, "cpus"),
            (r#"{"command":["x"],"memory":"lots"}"#, "memory"),
            (r#"{"command":["x"],"timeout":"soon"}"#, "timeout"),
            (r#"{"command":["x"],"attempts":0}"#, "attempts"),
            (r#"{"command":["x"],"queue":"a b"}"#, "queue"),
            (r#"{"command":["x"],"env":{"1X":"y"}}"#, "env"),
            (r#"{"command":["x"],"bogus":1}"#, "bogus"),
            (r#"{"command":["x"],"workdir":"../up"}"#, "workdir"),
            (r#"{"job_id":"a","commands":["x"],"retry":"many"}"#, "retry"),
        ];
        for (text, field) in cases {
            let e = parse_job_json(text).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{text}: {e:?}");
        }
        assert_eq!(parse_job_json("{").unwrap_err().code, "invalid-json");
        assert_eq!(parse_job_json("[]").unwrap_err().code, "invalid-json");
    }

    #[test]
    fn trailing_commas() {
        assert_eq!(strip_trailing_commas(r#"{"a":[1,2,],}"#), r#"{"a":[1,2]}"#);
        assert_eq!(strip_trailing_commas(r#"{"a":",}"}"#), r#"{"a":",}"}"#);
    }
}
