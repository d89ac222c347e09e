//! The workflow part of the OpenAPI document: pipelines, events and
//! upstream outputs (merged by [`crate::openapi::document`]).

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
