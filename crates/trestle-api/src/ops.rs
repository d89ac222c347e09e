//! What an operation of the API is ([`Op`]) and the macro that declares
//! the table of them once ([`crate::table`]), so that the router, the
//! OpenAPI document and the audit record read the same rows.

use trestle_core::identity::authz::Action;

/// Who may call an operation (checked where the request is routed; what
/// they may do to which resource is decided by the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials (`/api/v1/login`, the OpenAPI document).
    Public,
    /// Any authenticated caller: users and worker credentials.
    Any,
    /// Users only: worker credentials are refused.
    User,
    /// Health, readiness and metrics at the root, outside `/api/v1`, not
    /// audited.
    Probe,
}

/// One operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// `get`, `post`, `put`, `patch`, `delete`.
    pub method: &'static str,
    /// The route, relative to `/api/v1` (probes: absolute); `{*path}` for
    /// a trailing file path.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The action the service decides for it, if any.
    pub action: Option<Action>,
    /// The audit trail's action name.
    pub audit: &'static str,
    /// The audit resource kind: `job` makes `job:{first path parameter}`.
    pub resource: Option<&'static str>,
    /// The OpenAPI summary.
    pub summary: &'static str,
    /// The request body's schema (`binary` for raw bytes).
    pub request: Option<&'static str>,
    /// The answer's schema (`none`, `text`, `binary`, `Name[]`).
    pub response: &'static str,
}

impl Op {
    /// The full path as clients see it (`/api/v1/jobs/{id}`).
    pub fn full_path(&self) -> String {
        if self.access == Access::Probe {
            self.path.to_string()
        } else {
            format!("/api/v1{}", self.path)
        }
    }

    /// The path as OpenAPI writes it (`{path}`, not `{*path}`).
    pub fn openapi_path(&self) -> String {
        self.full_path().replace("{*", "{")
    }
}

/// The largest request body an operation reads, checked while the body
/// arrives (a larger `Content-Length` is refused before any of it is read):
/// a login or a form needs a few KB, a job a little more; only file
/// uploads and batches are large.
pub fn body_limit(method: &str, path: &str) -> usize {
    const KIB: usize = 1024;
    match (method, path) {
        ("post", "/login") => 16 * KIB,
        ("put", p) if p.ends_with("/{*path}") => 64 * KIB * KIB,
        ("put", "/studies/{name}/objects/{sha}")
        | ("put", "/studies/{name}/parts/{sha}/{n}")
        | ("put", "/jobs/{id}/attempts/{n}/studies/{name}/objects/{sha}") => 64 * KIB * KIB,
        ("post", "/studies/{name}/versions")
        | ("post", "/jobs/{id}/attempts/{n}/studies/{name}/versions") => 32 * KIB * KIB,
        ("post", "/jobs/batch") => 32 * KIB * KIB,
        ("post", "/workers/{id}/updates") => 32 * KIB * KIB,
        ("post", "/jobs") | ("post", "/pipelines") => 4 * KIB * KIB,
        _ => 256 * KIB,
    }
}

/// The largest body any operation reads (the server's outer limit).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// Declares the table: `OPS` and the routers built from it.
macro_rules! operations {
    ($( $method:ident $path:literal => $handler:path, $access:ident, $action:expr, $audit:literal,
        $resource:expr, $summary:literal, $request:expr, $response:literal; )*) => {
        /// Every operation of the API.
        pub const OPS: &[Op] = &[$(Op {
            method: stringify!($method),
            path: $path,
            access: Access::$access,
            action: $action,
            audit: $audit,
            resource: $resource,
            summary: $summary,
            request: $request,
            response: $response,
        }),*];

        /// The routers of the table, one per [`Access`] class, in the order
        /// public, any, user, probe.
        pub fn routes() -> [axum::Router<trestle_service::Service>; 4] {
            let mut r: [axum::Router<trestle_service::Service>; 4] = Default::default();
            $(
                let i = Access::$access as usize;
                let limit = $crate::ops::body_limit(stringify!($method), $path);
                r[i] = std::mem::take(&mut r[i]).route(
                    $path,
                    axum::routing::$method($handler)
                        .layer(axum::extract::DefaultBodyLimit::max(limit)),
                );
            )*
            r
        }
    };
}
pub(crate) use operations;

/// The audit action and resource of a request that matched `op`, with the
/// path it was sent to (the resource is the first path parameter).
pub fn audit_of(op: &Op, path: &str) -> (String, Option<String>) {
    let resource = op.resource.and_then(|kind| {
        let template = op.full_path();
        template
            .split('/')
            .zip(path.split('/'))
            .find(|(t, _)| t.starts_with('{'))
            .map(|(_, v)| format!("{kind}:{v}"))
    });
    (op.audit.to_string(), resource)
}
