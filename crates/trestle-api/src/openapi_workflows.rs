//! The workflow part of the OpenAPI document: pipelines, events and
//! upstream outputs (merged by [`crate::openapi::document`]).

/// (method, path, summary, request body schema, response schema).
pub const OPERATIONS: &[(&str, &str, &str, Option<&str>, &str)] = &[
    (
        "post",
        "/api/v1/pipelines",
        "Submit a pipeline: named steps that run after the steps they name",
        Some("PipelineRequest"),
        "JobView",
    ),
    (
        "get",
        "/api/v1/events",
        "Job state changes as server-sent events (text/event-stream; job, state, queue, after, follow; resume with Last-Event-ID)",
        None,
        "EventView",
    ),
    (
        "get",
        "/api/v1/jobs/{id}/upstream",
        "Output files of the jobs a job depends on (staged by its worker)",
        None,
        "UpstreamList",
    ),
    (
        "get",
        "/api/v1/jobs/{id}/upstream/{dep}/{attempt}/{path}",
        "One upstream output file (raw bytes)",
        None,
        "none",
    ),
];

/// Schemas and their properties.
pub const SCHEMAS: &[(&str, &[&str])] = &[
    ("PipelineRequest", &["name", "queue", "steps"]),
    (
        "EventView",
        &[
            "id",
            "job_id",
            "parent",
            "queue",
            "state",
            "reason",
            "exit_code",
            "time",
        ],
    ),
    ("UpstreamList", &["jobs"]),
];
