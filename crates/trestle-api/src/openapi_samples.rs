//! The resource samples part of the OpenAPI document (merged by
//! [`crate::openapi::document`]).

/// Schemas and their properties.
pub const SCHEMAS: &[(&str, &[&str])] = &[
    ("JobSamples", &["job_id", "samples", "alarms"]),
    (
        "SampleView",
        &[
            "attempt",
            "time",
            "cpu_pct",
            "rss_kib",
            "mem_pct",
            "disk_bytes",
            "disk_pct",
            "resolution_ms",
        ],
    ),
    (
        "AlarmView",
        &[
            "attempt",
            "rule",
            "state",
            "changed_at",
            "value",
            "condition",
        ],
    ),
];
