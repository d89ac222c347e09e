//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, built from
//! the table of operations ([`crate::table`]) that the router reads too.

use crate::ops::{Access, Op};
use serde_json::{Value, json};

fn schema_ref(name: &str) -> Value {
    match name {
        "binary" => json!({"type": "string", "format": "binary"}),
        "text" => json!({"type": "string"}),
        "object" => json!({"type": "object"}),
        n if n.ends_with("[]") => {
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{}", &n[..n.len() - 2])}})
        }
        n => json!({"$ref": format!("#/components/schemas/{n}")}),
    }
}

/// Builds the document.
pub fn document(ops: &[Op]) -> Value {
    let mut paths = serde_json::Map::new();
    for o in ops {
        let (method, summary, req, resp) = (&o.method, o.summary, &o.request, &o.response);
        let path = o.openapi_path();
        let mut params: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": crate::openapi_schemas::path_param(p, &path)}))
            .collect();
        params.extend(crate::openapi_schemas::query_params(method, &path));
        let mut op = json!({
            "summary": summary,
            "parameters": params,
            "responses": {
                "2XX": if *resp == "none" { json!({"description": "done"}) } else if *resp == "text" {
                    json!({"description": "success", "content": {"text/plain": {"schema": schema_ref(resp)}}})
                } else {
                    json!({"description": "success", "content": {"application/json": {"schema": schema_ref(resp)}}})
                },
                "4XX": {"description": "bad input", "content": {"application/json": {"schema": schema_ref("ErrorBody")}}}
            }
        });
        // An upgrade (`Upgrade: trestle-tunnel`, `trestle-shell`, ...)
        // answers 101 and then carries raw bytes.
        if *resp == "upgrade" {
            op["responses"]["101"] =
                json!({"description": "switching protocols; raw bytes follow"});
            if let Some(r) = op["responses"].as_object_mut() {
                r.remove("2XX");
            }
            if let Some(ps) = op["parameters"].as_array_mut() {
                ps.push(json!({"name": "Upgrade", "in": "header", "required": true, "schema": {"type": "string", "minLength": 1}}));
            }
        }
        op["x-audit-action"] = json!(o.audit);
        if o.path.ends_with("/attempts/{attempt}/outputs/{*path}")
            && let Some(ps) = op["parameters"].as_array_mut()
        {
            ps.push(json!({"name": "trestle-lease-token", "in": "header", "required": true, "schema": {"type": "string", "minLength": 1}}));
        }
        if matches!(o.access, Access::Public | Access::Probe) {
            op["security"] = json!([]);
        }
        if let Some(r) = req {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema_ref(r)}}});
        }
        let entry = paths.entry(path.clone()).or_insert_with(|| json!({}));
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
                "JobView": obj(&["id", "name", "queue", "state", "reason", "attempts_used", "max_attempts", "exit_code", "worker", "submitted_at", "started_at", "finished_at", "spec", "attempts", "kind", "parent", "array_index", "children", "dependencies", "steps", "abridged", "env_hidden", "alarms"]),
                "JobList": obj(&["jobs", "next_before"]),
                "DamagedJobs": obj(&["jobs", "skipped"]),
                "BatchSubmit": obj(&["jobs"]),
                "BatchSubmitted": obj(&["ids"]),
                "LogSlice": obj(&["attempt", "data", "next", "state"]),
                "FileList": obj(&["files", "attempt"]),
                "UploadCreated": obj(&["id"]),
                "WorkerRegistration": obj(&["host", "pid", "capacity", "compute_env", "version"]),
                "WorkerView": obj(&["id", "host", "pid", "capacity", "compute_env", "running_jobs", "started_at", "last_heartbeat", "tunnel"]),
                "LeaseRequest": obj(&["free", "max_jobs", "wait_ms", "prefetch"]),
                "LeaseResponse": obj(&["leases", "lease_ms"]),
                "UpdatesRequest": obj(&["heartbeat", "updates", "samples"]),
                "UpdatesResponse": obj(&["stale", "cancel"])
            }
        }
    });
    for (name, props) in crate::openapi_identity::SCHEMAS
        .iter()
        .chain(crate::openapi_workflows::SCHEMAS)
        .chain(crate::openapi_compute::SCHEMAS)
        .chain(crate::openapi_costs::SCHEMAS)
        .chain(crate::openapi_oidc::SCHEMAS)
        .chain(crate::openapi_notify::SCHEMAS)
        .chain(crate::openapi_workspaces::SCHEMAS)
        .chain(crate::openapi_studies::SCHEMAS)
        .chain(crate::openapi_samples::SCHEMAS)
    {
        doc["components"]["schemas"][*name] = obj(props);
    }
    for (name, schema) in crate::openapi_schemas::schemas() {
        doc["components"]["schemas"][name] = schema;
    }
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_referenced_schema_exists() {
        let doc = super::document(crate::table::OPS);
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
