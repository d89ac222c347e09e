//! The scale-out part of the OpenAPI document: compute environments,
//! queues and leader leases (merged by [`crate::openapi::document`]).

/// Schemas and their properties.
pub const SCHEMAS: &[(&str, &[&str])] = &[
    (
        "ComputeEnvRequest",
        &[
            "name",
            "provider",
            "capacity_type",
            "shapes",
            "min_vcpus",
            "max_vcpus",
            "allocation_strategy",
            "idle_timeout",
            "enabled",
            "prefetch",
            "work_dir",
            "program",
            "slurm",
        ],
    ),
    (
        "ComputeEnvView",
        &[
            "name",
            "provider",
            "capacity_type",
            "shapes",
            "min_vcpus",
            "max_vcpus",
            "allocation_strategy",
            "idle_timeout_secs",
            "enabled",
            "prefetch",
            "slurm",
            "source",
            "status",
            "status_reason",
            "status_at",
            "updated_at",
            "workers",
            "vcpus",
            "events",
        ],
    ),
    (
        "QueueRequest",
        &["name", "priority", "compute_environments"],
    ),
    (
        "QueueView",
        &[
            "name",
            "priority",
            "compute_environments",
            "source",
            "updated_at",
        ],
    ),
    (
        "LeaderView",
        &["name", "holder", "acquired_at", "expires_at", "live"],
    ),
];
