//! The request schemas of the OpenAPI document, stating what validation
//! enforces (lengths, ranges, patterns, enums, required fields, unknown
//! fields refused), so that generated clients and fuzzers send what the
//! server accepts. The numbers come from the validators' own constants
//! where they have them; `tests` checks the others at their bounds.

use serde_json::{Value, json};
use trestle_core::batch::job::MAX_ATTEMPTS;

/// An identity name: user, project, index, organisation.
pub const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";
/// A queue name or an upload id.
pub const SLUG_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// An environment variable name.
pub const ENV_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// A job id in a path.
pub const ID_PATTERN: &str = "^[1-9][0-9]{0,17}$";

/// Printable text of 1 to `max` characters (no control characters).
fn printable(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*\\S[^\\u0000-\\u001f\\u007f-\\u009f]*$"})
}

/// A size (`512M`, `2G`, `1.5T`) or MiB as a number.
fn memory() -> Value {
    json!({"oneOf": [
        {"type": "integer", "minimum": 1, "maximum": 64u64 * 1024 * 1024},
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)? ?([KMGTkmgt]([iI]?[bB])?)?$"}
    ]})
}

/// A duration written as text only (`90d`, `12h`): token lifetimes and
/// audit periods.
fn duration_text() -> Value {
    json!({"type": "string", "pattern": "^([1-9][0-9]*|[0-9]+\\.[0-9]*[1-9][0-9]*) ?(s|m|h|d|w)?$"})
}

/// A duration (`90s`, `10m`, `2h`, `1d`) or seconds as a number.
fn duration() -> Value {
    json!({"oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)? ?(s|m|h|d|w)?$"}
    ]})
}

fn object(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": props})
}

fn job_request() -> Value {
    object(
        &["command"],
        json!({
            "name": printable(200),
            "queue": {"type": "string", "pattern": SLUG_PATTERN},
            "key": printable(1024),
            "command": {"oneOf": [
                {"type": "string", "minLength": 1, "description": "a shell script (no NUL bytes)"},
                {"type": "array", "minItems": 1, "items": {"type": "string"}, "description": "argv (no NUL bytes)"}
            ]},
            "env": {"type": "object", "propertyNames": {"pattern": ENV_PATTERN}, "additionalProperties": {"type": "string"}},
            "cpus": {"type": "integer", "minimum": 1, "maximum": 4096},
            "memory": memory(),
            "gpus": {"type": "integer", "minimum": 0, "maximum": 64},
            "timeout": duration(),
            "attempts": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS},
            "success_string": {"type": "string"},
            "retry_exit_codes": {"type": "array", "items": {"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX}},
            "inputs": {"type": "string", "pattern": SLUG_PATTERN},
            "workdir": {"type": "string", "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f\\\\]+$", "description": "relative, inside the scratch directory (no `..`)"},
            "priority": {"type": "integer", "minimum": trestle_core::batch::limits::MIN_PRIORITY, "maximum": trestle_core::batch::limits::MAX_PRIORITY},
            "tags": {"type": "object", "propertyNames": {"minLength": 1, "maxLength": 128}, "additionalProperties": {"type": "string", "maxLength": 1024}},
            "project": {"type": "string", "pattern": NAME_PATTERN},
            "array": {"type": "string", "pattern": "^[0-9]+(-[0-9]+(:[0-9]+)?)?(,[0-9]+(-[0-9]+(:[0-9]+)?)?)*(%[0-9]+)?$"},
            "after": {"type": "array", "items": {"type": "object", "required": ["kind", "job"], "additionalProperties": false, "properties": {
                "kind": {"enum": ["after", "after-ok", "after-not-ok", "after-any"]},
                "job": {"type": "integer", "minimum": 1}
            }}},
            "slurm": {"type": "object", "required": ["ntasks", "cpus_per_task"], "properties": {
                "output": {"type": "string"}, "error": {"type": "string"}, "submit_dir": {"type": "string"},
                "submit_host": {"type": "string"}, "user": {"type": "string"}, "chdir": {"type": "string"},
                "ntasks": {"type": "integer", "minimum": 1, "maximum": 4096},
                "cpus_per_task": {"type": "integer", "minimum": 1, "maximum": 4096}
            }}
        }),
    )
}

fn seed_job() -> Value {
    object(
        &["job_id", "commands"],
        json!({
            "job_id": printable(200),
            "retry": {"oneOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_ATTEMPTS - 1},
                {"type": "string", "pattern": "^[0-9]{1,2}$"}
            ]},
            "job_success_string": {"type": "string"},
            "ssm_document": {"enum": ["AWS-RunShellScript"]},
            "commands": {"type": "array", "minItems": 1, "items": {"type": "string"}}
        }),
    )
}

/// A compute environment as sent (`POST` names it in the body; `PUT` in
/// the path).
fn compute_env(named: bool) -> Value {
    let required: &[&str] = if named {
        &["name", "provider", "shapes"]
    } else {
        &["provider", "shapes"]
    };
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": {
        "name": {"type": "string", "pattern": SLUG_PATTERN},
        "provider": {"enum": ["local", "slurm"]},
        "capacity_type": {"enum": ["on-demand", "spot"]},
        "shapes": {"type": "array", "minItems": 1, "items": {"type": "object", "additionalProperties": false,
            "required": ["vcpus", "memory"], "properties": {
                "name": {"type": "string", "pattern": SLUG_PATTERN},
                "vcpus": {"type": "integer", "minimum": 1, "maximum": 4096},
                "memory": memory(),
                "gpus": {"type": "integer", "minimum": 0, "maximum": 64},
                "price_per_hour": {"type": "number", "minimum": 0}
            }}},
        "min_vcpus": {"type": "integer", "minimum": 0, "maximum": u32::MAX},
        "max_vcpus": {"type": "integer", "minimum": 0, "maximum": u32::MAX},
        "allocation_strategy": {"enum": ["best-fit", "best-fit-progressive", "spot-capacity-optimized"]},
        "idle_timeout": duration(),
        "enabled": {"type": "boolean"},
        "prefetch": {"type": "integer", "minimum": 0, "maximum": u32::MAX},
        "work_dir": {"type": "string"},
        "program": {"type": "string"},
        "slurm": {"type": "object"}
    }})
}

/// A queue as sent (`POST` names it in the body; `PUT` in the path).
fn queue(named: bool) -> Value {
    let required: &[&str] = if named { &["name"] } else { &[] };
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": {
        "name": {"type": "string", "pattern": SLUG_PATTERN},
        "priority": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
        "compute_environments": {"type": "array", "items": {"type": "string", "pattern": SLUG_PATTERN}}
    }})
}

/// The request schemas, by name (they replace the property lists).
pub fn schemas() -> Vec<(&'static str, Value)> {
    let job = json!({"oneOf": [job_request(), seed_job()],
        "description": "a native job request, or the seed scheduler's job JSON"});
    let password = json!({"type": "string", "minLength": 10, "maxLength": 1024});
    let role = json!({"enum": ["admin", "researcher", "internal-guest", "guest"]});
    let mut step = job_request();
    step["required"] = json!(["name", "command"]);
    step["properties"]["name"] = json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"});
    step["properties"]["after"] = json!({"type": "array", "items": {"type": "string"}, "description": "names of other steps"});
    let mut all = vec![
        ("JobRequest", job.clone()),
        (
            "BatchSubmit",
            object(
                &["jobs"],
                json!({"jobs": {"type": "array", "minItems": 1, "maxItems": 10_000, "items": job}}),
            ),
        ),
        (
            "PipelineRequest",
            object(
                &["steps"],
                json!({
                    "name": printable(200),
                    "queue": {"type": "string", "pattern": SLUG_PATTERN},
                    "steps": {"type": "array", "minItems": 1, "maxItems": trestle_core::batch::pipeline::MAX_STEPS, "items": step}
                }),
            ),
        ),
        (
            "LoginRequest",
            object(
                &["user", "password"],
                json!({
                    "user": {"type": "string", "pattern": NAME_PATTERN},
                    "password": {"type": "string"},
                    "token": {"$ref": "#/components/schemas/NewToken"}
                }),
            ),
        ),
        (
            "NewUser",
            object(
                &["name"],
                json!({
                    "name": {"type": "string", "pattern": NAME_PATTERN},
                    "role": role,
                    "org": {"type": "string", "pattern": NAME_PATTERN},
                    "default_project": {"type": "string", "pattern": NAME_PATTERN},
                    "password": password
                }),
            ),
        ),
        (
            "UserUpdate",
            object(
                &[],
                json!({
                    "role": role,
                    "disabled": {"type": "boolean"},
                    "org": {"type": "string", "pattern": NAME_PATTERN},
                    "default_project": {"type": "string", "pattern": NAME_PATTERN},
                    "password": password,
                    "current_password": {"type": "string", "description": "your current password: needed with `password` when you change your own (unless you have none yet); wrong ones count against the login throttle. Not needed when an admin sets someone else's"}
                }),
            ),
        ),
        (
            "NewToken",
            object(
                &[],
                json!({
                    "name": printable(200),
                    "scope": {"enum": ["full", "read-only", "readonly", "read"]},
                    "ttl": {"allOf": [duration_text()], "description": "user tokens: 1 s to 366 days (default 90 days); worker credentials: up to 30 days (default 1 hour)"},
                    "user": {"type": "string", "pattern": NAME_PATTERN},
                    "worker": {"type": "boolean"}
                }),
            ),
        ),
        (
            "NewIndex",
            object(
                &["name"],
                json!({
                    "name": {"type": "string", "pattern": NAME_PATTERN},
                    "description": {"type": "string"}
                }),
            ),
        ),
        (
            "NewProject",
            object(
                &["name", "index"],
                json!({
                    "name": {"type": "string", "pattern": NAME_PATTERN},
                    "index": {"type": "string", "pattern": NAME_PATTERN},
                    "org": {"type": "string", "pattern": NAME_PATTERN},
                    "description": {"type": "string"}
                }),
            ),
        ),
        (
            "MemberRequest",
            object(
                &["user"],
                json!({
                    "user": {"type": "string", "pattern": NAME_PATTERN},
                    "role": {"enum": ["member", "manager", "viewer"]}
                }),
            ),
        ),
        (
            "DisableUnused",
            object(&[], json!({"period": duration_text()})),
        ),
        (
            "WorkerRegistration",
            json!({"type": "object", "required": ["host", "pid", "capacity", "version"], "properties": {
                "host": {"type": "string"},
                "pid": {"type": "integer", "minimum": 0, "maximum": u32::MAX},
                "capacity": {"type": "object", "required": ["cpus", "mem_mib", "gpus"], "properties": {
                    "cpus": {"type": "integer", "minimum": 1, "maximum": u32::MAX},
                    "mem_mib": {"type": "integer", "minimum": 0},
                    "gpus": {"type": "integer", "minimum": 0, "maximum": u32::MAX}}},
                "compute_env": {"type": "string"},
                "instance": {"type": "string"},
                "isolation": {"type": "object", "required": ["mode", "limits"], "properties": {
                    "mode": {"type": "string"}, "limits": {"type": "string"}}},
                "version": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+(\\.[0-9]+)?([-+].*)?$"}
            }}),
        ),
        ("ComputeEnvCreate", compute_env(true)),
        ("ComputeEnvRequest", compute_env(false)),
        ("QueueCreate", queue(true)),
        ("QueueRequest", queue(false)),
        (
            "LeaseRequest",
            json!({"type": "object", "required": ["free", "max_jobs"], "properties": {
                "free": {"type": "object", "required": ["cpus", "mem_mib"], "properties": {
                    "cpus": {"type": "integer", "minimum": 0}, "mem_mib": {"type": "integer", "minimum": 0}, "gpus": {"type": "integer", "minimum": 0}}},
                "max_jobs": {"type": "integer", "minimum": 0},
                "wait_ms": {"type": "integer", "minimum": 0, "description": "capped at 30 s"},
                "prefetch": {"type": "integer", "minimum": 0},
                "kinds": {"type": "array", "items": {"enum": ["batch", "session"]}}
            }}),
        ),
    ];
    all.extend(crate::openapi_oidc::request_schemas());
    all
}

/// Path parameters' schemas by name (`{id}` of a job is a positive number).
pub fn path_param(name: &str, path: &str) -> Value {
    match name {
        "id" if path.starts_with("/api/v1/jobs/") => {
            json!({"type": "string", "pattern": ID_PATTERN})
        }
        "attempt" => json!({"type": "string", "pattern": "^[1-9][0-9]{0,8}$"}),
        "dep" => json!({"type": "string", "pattern": ID_PATTERN}),
        "path" => {
            json!({"type": "string", "minLength": 1, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f\\\\]+$",
            "description": "a relative path inside the folder (no `..`, no control characters or backslashes)"})
        }
        "id" if path.starts_with("/api/v1/uploads/") => {
            json!({"type": "string", "pattern": SLUG_PATTERN})
        }
        "name" if path.contains("/projects/") || path.contains("/users/") => {
            json!({"type": "string", "pattern": NAME_PATTERN})
        }
        "name" if path.contains("/queues/") || path.contains("/compute-environments/") => {
            json!({"type": "string", "pattern": SLUG_PATTERN})
        }
        _ => json!({"type": "string", "minLength": 1}),
    }
}

/// Query parameters of the operations that take them.
pub fn query_params(method: &str, path: &str) -> Vec<Value> {
    let q = |name: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "schema": schema});
    let states = "^(SUBMITTED|PENDING|RUNNABLE|STARTING|RUNNING|SUCCEEDED|FAILED|CANCELLED)(,(SUBMITTED|PENDING|RUNNABLE|STARTING|RUNNING|SUCCEEDED|FAILED|CANCELLED))*$";
    match (method, path) {
        ("get", "/api/v1/jobs") => vec![
            q("state", json!({"type": "string", "pattern": states})),
            q("queue", json!({"type": "string"})),
            q("project", json!({"type": "string"})),
            q("owner", json!({"type": "string"})),
            q("name", json!({"type": "string"})),
            q("parent", json!({"type": "string", "pattern": ID_PATTERN})),
            q(
                "index",
                json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
            ),
            q("before", json!({"type": "string", "pattern": ID_PATTERN})),
            q(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            ),
        ],
        ("post", "/api/v1/jobs/{id}/resubmit") => vec![q("failed", json!({"type": "boolean"}))],
        ("get", "/api/v1/jobs/{id}/log") => vec![
            q(
                "attempt",
                json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
            ),
            q(
                "after",
                json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
            ),
        ],
        ("get", "/api/v1/jobs/{id}/samples") => vec![
            q("since", json!({"type": "integer", "minimum": 0})),
            q(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 5000}),
            ),
        ],
        ("get", "/api/v1/audit/unused") => vec![
            q("period", duration()),
            q(
                "days",
                json!({"type": "integer", "minimum": 1, "maximum": 36_500}),
            ),
        ],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trestle_core::batch::spec::request_from_value;

    fn accepts(v: Value) -> bool {
        request_from_value(v).and_then(|r| r.validate()).is_ok()
    }

    /// The bounds the schema states are the validator's: accepted at the
    /// bound, refused just past it.
    #[test]
    fn job_request_bounds_are_the_validators() {
        let s = job_request();
        let p = &s["properties"];
        let max_name = p["name"]["maxLength"].as_u64().unwrap() as usize;
        assert!(accepts(
            json!({"command": "x", "name": "n".repeat(max_name)})
        ));
        assert!(!accepts(
            json!({"command": "x", "name": "n".repeat(max_name + 1)})
        ));
        for (field, lo, hi) in [
            ("cpus", 1, 4096),
            ("gpus", 0, 64),
            ("attempts", 1, MAX_ATTEMPTS as i64),
        ] {
            assert_eq!(p[field]["minimum"], lo, "{field}");
            assert_eq!(p[field]["maximum"], hi, "{field}");
            assert!(
                accepts(json!({"command": "x", field: hi})),
                "{field} at its maximum"
            );
            assert!(
                !accepts(json!({"command": "x", field: hi + 1})),
                "{field} past its maximum"
            );
            if lo > 0 {
                assert!(
                    !accepts(json!({"command": "x", field: lo - 1})),
                    "{field} below its minimum"
                );
            }
        }
        assert!(
            !accepts(json!({"command": "x", "bogus": 1})),
            "unknown fields are refused"
        );
        assert!(
            !accepts(json!({"name": "no command"})),
            "command is required"
        );
        let queue = regex_like(SLUG_PATTERN);
        assert!(queue("gpu-1") && accepts(json!({"command": "x", "queue": "gpu-1"})));
        assert!(!queue("a b") && !accepts(json!({"command": "x", "queue": "a b"})));
        assert!(accepts(json!({"command": "x", "queue": "q".repeat(64)})));
        assert!(!accepts(json!({"command": "x", "queue": "q".repeat(65)})));
        assert!(!accepts(json!({"command": "x", "env": {"1BAD": "v"}})));
        assert!(accepts(json!({"command": "x", "env": {"_OK1": "v"}})));
        assert!(!accepts(
            json!({"command": "x", "tags": {"k": "v".repeat(1025)}})
        ));
        assert!(accepts(
            json!({"command": "x", "tags": {"k": "v".repeat(1024)}})
        ));
        assert!(accepts(json!({"command": "x", "array": "0-15:4%2"})));
        assert!(accepts(
            json!({"command": "x", "after": [{"kind": "after-ok", "job": 3}]})
        ));
        assert!(!accepts(
            json!({"command": "x", "after": [{"kind": "after-ok", "job": 0}]})
        ));
    }

    /// A tiny matcher for the two character-class patterns above (the
    /// test needs no regex engine).
    fn regex_like(pattern: &'static str) -> impl Fn(&str) -> bool {
        assert_eq!(pattern, SLUG_PATTERN);
        |s: &str| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }
    }

    #[test]
    fn identity_names_and_passwords_match_their_validators() {
        use trestle_core::identity::{validate_name, validate_password};
        assert!(validate_name("n", "alice.b-1_x").is_ok());
        assert!(validate_name("n", &"a".repeat(64)).is_ok());
        assert!(validate_name("n", &"a".repeat(65)).is_err());
        assert!(validate_name("n", "Alice").is_err());
        assert!(validate_name("n", "-x").is_err());
        assert!(validate_password("p", &"x".repeat(10)).is_ok());
        assert!(validate_password("p", &"x".repeat(9)).is_err());
        assert!(validate_password("p", &"x".repeat(1024)).is_ok());
        assert!(validate_password("p", &"x".repeat(1025)).is_err());
    }

    #[test]
    fn every_request_schema_refuses_unknown_fields_where_the_server_does() {
        for (name, s) in schemas() {
            if name == "LeaseRequest" || name == "WorkerRegistration" {
                continue; // workers of other versions may send more
            }
            let all = |v: &Value| v["additionalProperties"] == json!(false);
            let ok = all(&s)
                || s["oneOf"].as_array().is_some_and(|o| o.iter().all(all))
                || all(&s["properties"]["jobs"]["items"]["oneOf"][0]);
            assert!(ok, "{name}");
        }
    }
}
