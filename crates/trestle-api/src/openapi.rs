//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, built from
//! one table of operations so it stays next to the router it describes.

use serde_json::{Value, json};

/// (method, path, summary, request body schema, response schema).
pub const OPERATIONS: &[(&str, &str, &str, Option<&str>, &str)] = &[
    (
        "post",
        "/api/v1/jobs",
        "Submit a job (native or seed JSON)",
        Some("JobRequest"),
        "JobView",
    ),
    (
        "get",
        "/api/v1/jobs",
        "List jobs (state, queue, before, limit)",
        None,
        "JobList",
    ),
    (
        "post",
        "/api/v1/jobs/batch",
        "Submit many jobs atomically",
        Some("BatchSubmit"),
        "BatchSubmitted",
    ),
    (
        "get",
        "/api/v1/jobs/{id}",
        "Show a job with its attempts",
        None,
        "JobView",
    ),
    (
        "post",
        "/api/v1/jobs/{id}/cancel",
        "Cancel a job",
        None,
        "JobView",
    ),
    (
        "post",
        "/api/v1/jobs/{id}/resubmit",
        "Run a job's work again as a new job (an array task: a plain job running the same task)",
        None,
        "JobView",
    ),
    (
        "get",
        "/api/v1/admin/damaged-jobs",
        "Stored jobs that cannot be decoded and are skipped (admins)",
        None,
        "DamagedJobs",
    ),
    (
        "get",
        "/api/v1/jobs/{id}/log",
        "Read a slice of an attempt's output",
        None,
        "LogSlice",
    ),
    (
        "get",
        "/api/v1/jobs/{id}/outputs",
        "List an attempt's output files",
        None,
        "FileList",
    ),
    (
        "get",
        "/api/v1/jobs/{id}/outputs/{path}",
        "Download an output file",
        None,
        "binary",
    ),
    (
        "get",
        "/api/v1/jobs/{id}/inputs",
        "List a job's input files",
        None,
        "FileList",
    ),
    (
        "get",
        "/api/v1/jobs/{id}/inputs/{path}",
        "Download an input file",
        None,
        "binary",
    ),
    (
        "put",
        "/api/v1/jobs/{id}/attempts/{attempt}/outputs/{path}",
        "Upload an output file (lease holder)",
        Some("binary"),
        "none",
    ),
    (
        "post",
        "/api/v1/uploads",
        "Create an upload for an input folder",
        None,
        "UploadCreated",
    ),
    (
        "put",
        "/api/v1/uploads/{id}/files/{path}",
        "Upload one file of a folder",
        Some("binary"),
        "none",
    ),
    (
        "get",
        "/api/v1/uploads/{id}/files",
        "List an upload's files",
        None,
        "FileList",
    ),
    (
        "get",
        "/api/v1/workers",
        "List workers",
        None,
        "WorkerView[]",
    ),
    (
        "post",
        "/api/v1/workers",
        "Register a worker",
        Some("WorkerRegistration"),
        "WorkerView",
    ),
    (
        "delete",
        "/api/v1/workers/{id}",
        "Deregister a worker, handing back its jobs",
        None,
        "none",
    ),
    (
        "post",
        "/api/v1/workers/{id}/lease",
        "Lease jobs that fit (long-poll)",
        Some("LeaseRequest"),
        "LeaseResponse",
    ),
    (
        "post",
        "/api/v1/workers/{id}/updates",
        "Heartbeats and attempt reports",
        Some("UpdatesRequest"),
        "UpdatesResponse",
    ),
    ("get", "/healthz", "Liveness", None, "text"),
    (
        "get",
        "/readyz",
        "Readiness (database reachable)",
        None,
        "text",
    ),
    ("get", "/metrics", "Prometheus metrics", None, "text"),
];

fn schema_ref(name: &str) -> Value {
    match name {
        "binary" => json!({"type": "string", "format": "binary"}),
        "text" => json!({"type": "string"}),
        n if n.ends_with("[]") => {
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{}", &n[..n.len() - 2])}})
        }
        n => json!({"$ref": format!("#/components/schemas/{n}")}),
    }
}

/// Builds the document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, req, resp) in OPERATIONS
        .iter()
        .chain(crate::openapi_identity::OPERATIONS)
        .chain(crate::openapi_workflows::OPERATIONS)
        .chain(crate::openapi_compute::OPERATIONS)
    {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                "2XX": if *resp == "none" { json!({"description": "done"}) } else {
                    json!({"description": "success", "content": {"application/json": {"schema": schema_ref(resp)}}})
                },
                "4XX": {"description": "bad input", "content": {"application/json": {"schema": schema_ref("ErrorBody")}}}
            }
        });
        if let Some(r) = req {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema_ref(r)}}});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    let obj = |props: &[&str]| {
        let p: serde_json::Map<String, Value> =
            props.iter().map(|k| (k.to_string(), json!({}))).collect();
        json!({"type": "object", "properties": p})
    };
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "Trestle API", "version": trestle_core::VERSION},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ErrorBody": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}},
                "JobRequest": obj(&["name", "queue", "key", "command", "env", "cpus", "memory", "gpus", "timeout", "attempts", "success_string", "retry_exit_codes", "inputs", "workdir", "priority", "tags", "array", "after", "slurm", "job_id", "retry", "job_success_string", "ssm_document", "commands"]),
                "JobView": obj(&["id", "name", "queue", "state", "reason", "attempts_used", "max_attempts", "exit_code", "worker", "submitted_at", "started_at", "finished_at", "spec", "attempts", "kind", "parent", "array_index", "children", "dependencies", "steps"]),
                "JobList": obj(&["jobs", "next_before"]),
                "DamagedJobs": obj(&["jobs", "skipped"]),
                "BatchSubmit": obj(&["jobs"]),
                "BatchSubmitted": obj(&["ids"]),
                "LogSlice": obj(&["attempt", "data", "next", "state"]),
                "FileList": obj(&["files", "attempt"]),
                "UploadCreated": obj(&["id"]),
                "WorkerRegistration": obj(&["host", "pid", "capacity", "compute_env", "version"]),
                "WorkerView": obj(&["id", "host", "pid", "capacity", "compute_env", "running_jobs", "started_at", "last_heartbeat"]),
                "LeaseRequest": obj(&["free", "max_jobs", "wait_ms", "prefetch"]),
                "LeaseResponse": obj(&["leases", "lease_ms"]),
                "UpdatesRequest": obj(&["heartbeat", "updates"]),
                "UpdatesResponse": obj(&["stale", "cancel"])
            }
        }
    });
    for (name, props) in crate::openapi_identity::SCHEMAS
        .iter()
        .chain(crate::openapi_workflows::SCHEMAS)
        .chain(crate::openapi_compute::SCHEMAS)
    {
        doc["components"]["schemas"][*name] = obj(props);
    }
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_referenced_schema_exists() {
        let doc = super::document();
        let text = doc.to_string();
        for cap in text.split("#/components/schemas/").skip(1) {
            let name: String = cap.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"].get(&name).is_some(),
                "schema {name} missing"
            );
        }
        assert!(doc["paths"]["/api/v1/jobs"]["post"].is_object());
        assert!(doc["paths"]["/api/v1/tokens/{id}"]["delete"].is_object());
    }
}
