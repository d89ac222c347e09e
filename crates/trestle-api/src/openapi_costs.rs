//! The costs part of the OpenAPI document: cost reports, the cost of a
//! job or a workspace, budgets (merged by [`crate::openapi::document`]).

/// Schemas and their properties.
pub const SCHEMAS: &[(&str, &[&str])] = &[
    (
        "CostRow",
        &["key", "day", "charge", "hours", "core_hours", "records"],
    ),
    (
        "CostReport",
        &[
            "unit",
            "by",
            "from",
            "to",
            "rows",
            "total",
            "yesterday",
            "running",
        ],
    ),
    (
        "UsageView",
        &[
            "kind",
            "job_id",
            "attempt",
            "compute_env",
            "started_at",
            "ended_at",
            "rate_per_hour",
            "charge",
        ],
    ),
    ("CostOf", &["unit", "charge", "records", "usage"]),
    (
        "BudgetRequest",
        &[
            "amount",
            "period",
            "start",
            "end",
            "thresholds",
            "enforcement",
            "grace",
        ],
    ),
    (
        "BudgetView",
        &[
            "scope_kind",
            "scope",
            "spec",
            "unit",
            "period",
            "spend",
            "percent",
            "forecast",
            "crossed",
            "blocked",
            "updated_by",
        ],
    ),
    ("BudgetOverride", &["job_id", "overridden", "new"]),
];
