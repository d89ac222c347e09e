//! The audit trail's pure parts: what a request is (action and resource,
//! from its method and path), where it came from (honouring
//! `X-Forwarded-For` only from trusted proxies), the filters of a query,
//! and the named queries that ship with Trestle.

use crate::error::{Result, ValidationError};
use crate::parse::parse_duration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One recorded API request (or, for the workers' hot path, a group of
/// identical successful requests; see `count`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Record id (increasing).
    pub id: i64,
    /// When the request arrived (ms); for aggregated rows, the first one.
    pub at: i64,
    /// The user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The credential (token id, `session`, `internal`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Source address.
    pub source_ip: String,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// What was done (`job.cancel`, `login`, ...).
    pub action: String,
    /// What it was done to (`job:12`, `user:alice`), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Response status.
    pub status: u16,
    /// Time to answer, in microseconds (for aggregated rows: the slowest).
    pub latency_us: i64,
    /// User agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// How many identical requests this row stands for (1 unless aggregated).
    pub count: u32,
}

/// How to group query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupBy {
    /// By user (or credential when there is no user).
    Principal,
    /// By source address.
    SourceIp,
    /// By action.
    Action,
    /// By resource.
    Resource,
}

impl GroupBy {
    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "principal" | "user" => Some(GroupBy::Principal),
            "source-ip" | "ip" => Some(GroupBy::SourceIp),
            "action" => Some(GroupBy::Action),
            "resource" => Some(GroupBy::Resource),
            _ => None,
        }
    }
}

/// A validated audit query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// User name or token id.
    pub principal: Option<String>,
    /// Action, or an action prefix ending in `.` or `*` (`job.`, `token*`).
    pub action: Option<String>,
    /// Exact resource (`job:12`).
    pub resource: Option<String>,
    /// Source address.
    pub source_ip: Option<String>,
    /// HTTP method.
    pub method: Option<String>,
    /// Only records at or after this time (ms).
    pub since: Option<i64>,
    /// Only records before this time (ms).
    pub until: Option<i64>,
    /// Lowest status.
    pub status_min: Option<u16>,
    /// Highest status.
    pub status_max: Option<u16>,
    /// Only requests that may change something (not GET/HEAD).
    pub changes_only: bool,
    /// Leave out workers' own traffic (`worker.*`: leases, updates,
    /// heartbeats), so that people's changes stand out.
    pub people_only: bool,
    /// Group instead of listing.
    pub group_by: Option<GroupBy>,
    /// At most this many records or groups.
    pub limit: u32,
}

/// One group of a grouped query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditGroup {
    /// The grouping value.
    pub key: String,
    /// Requests in the group.
    pub count: u64,
    /// First request.
    pub first: i64,
    /// Last request.
    pub last: i64,
}

/// The answer to an audit query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnswer {
    /// Records, newest first (ungrouped queries).
    #[serde(default)]
    pub records: Vec<AuditRecord>,
    /// Groups, largest first (grouped queries).
    #[serde(default)]
    pub groups: Vec<AuditGroup>,
    /// Tokens (the `unused-tokens` query).
    #[serde(default)]
    pub tokens: Vec<crate::api::identity::TokenView>,
}

/// The filter keys an ad-hoc query or a named query may use.
pub const FILTER_KEYS: &[&str] = &[
    "principal",
    "action",
    "resource",
    "ip",
    "method",
    "since",
    "until",
    "status",
    "changes",
    "workers",
    "group-by",
    "limit",
];

/// A time: milliseconds since the epoch, or a duration before `now`
/// (`7d`, `12h`).
pub fn parse_time(field: &str, s: &str, now: i64) -> Result<i64> {
    if let Ok(ms) = s.trim().parse::<i64>()
        && ms > 1_000_000_000_000
    {
        return Ok(ms);
    }
    let secs = parse_duration(field, s, false).map_err(|_| {
        ValidationError::new(
            "invalid-time",
            field,
            format!("`{s}` is neither a time in ms nor a duration ago such as `7d` or `12h`"),
        )
    })?;
    Ok(now - (secs as i64).saturating_mul(1000))
}

fn parse_status(s: &str) -> Result<(u16, u16)> {
    let bad = || {
        ValidationError::new(
            "invalid-status",
            "status",
            format!("`{s}` is not a status, a class (`4xx`) or a range (`400-499`)"),
        )
    };
    let s = s.trim();
    let num = |t: &str| t.parse::<u16>().ok().filter(|n| (100..=599).contains(n));
    if let Some(class) = s.strip_suffix("xx") {
        let c = class.parse::<u16>().ok().filter(|c| (1..=5).contains(c));
        return c.map(|c| (c * 100, c * 100 + 99)).ok_or_else(bad);
    }
    if let Some((a, b)) = s.split_once('-') {
        return match (num(a), num(b)) {
            (Some(a), Some(b)) if a <= b => Ok((a, b)),
            _ => Err(bad()),
        };
    }
    num(s).map(|n| (n, n)).ok_or_else(bad)
}

impl AuditFilter {
    /// Builds a filter from `key=value` parameters (see [`FILTER_KEYS`]);
    /// every problem names its key. Without `since`, the last 7 days.
    pub fn from_params(params: &BTreeMap<String, String>, now: i64) -> Result<AuditFilter> {
        let mut f = AuditFilter {
            limit: 100,
            since: Some(now - 7 * 86_400_000),
            ..AuditFilter::default()
        };
        for (k, v) in params {
            let v = v.trim();
            let text = || (!v.is_empty()).then(|| v.to_string());
            match k.as_str() {
                "principal" => f.principal = text(),
                "action" => f.action = text(),
                "resource" => f.resource = text(),
                "ip" => f.source_ip = text(),
                "method" => f.method = text().map(|m| m.to_ascii_uppercase()),
                "since" => {
                    f.since = match v {
                        "" | "all" => None,
                        v => Some(parse_time("since", v, now)?),
                    }
                }
                "until" => f.until = Some(parse_time("until", v, now)?),
                "status" => {
                    let (a, b) = parse_status(v)?;
                    f.status_min = Some(a);
                    f.status_max = Some(b);
                }
                "changes" => {
                    f.changes_only = match v {
                        "true" | "yes" | "1" => true,
                        "false" | "no" | "0" => false,
                        _ => {
                            return Err(ValidationError::new(
                                "invalid-flag",
                                "changes",
                                format!("`{v}` is not true or false"),
                            ));
                        }
                    }
                }
                "workers" => {
                    f.people_only = match v {
                        "true" | "yes" | "1" | "" => false,
                        "false" | "no" | "0" => true,
                        _ => {
                            return Err(ValidationError::new(
                                "invalid-flag",
                                "workers",
                                format!("`{v}` is not true or false"),
                            ));
                        }
                    }
                }
                "group-by" => {
                    f.group_by = Some(GroupBy::parse(v).ok_or_else(|| {
                        ValidationError::new(
                            "invalid-group",
                            "group-by",
                            format!("`{v}` is not principal, source-ip, action or resource"),
                        )
                    })?)
                }
                "limit" => {
                    f.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=10_000).contains(n))
                        .ok_or_else(|| {
                            ValidationError::new(
                                "invalid-limit",
                                "limit",
                                format!("limit must be 1-10000, got `{v}`"),
                            )
                        })?
                }
                other => {
                    return Err(ValidationError::new(
                        "unknown-parameter",
                        other,
                        format!(
                            "unknown audit filter `{other}` (use {})",
                            FILTER_KEYS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// A saved, parameterised query: filter values may contain `{param}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedQuery {
    /// Name (`trestle audit query NAME`).
    pub name: String,
    /// What it answers.
    pub description: String,
    /// Parameters and their defaults (`None`: required).
    #[serde(default)]
    pub params: BTreeMap<String, Option<String>>,
    /// Filter keys and value templates.
    #[serde(default)]
    pub filter: BTreeMap<String, String>,
}

/// `GET /api/v1/audit/unused?period=60d` (and the answer to disabling
/// them): credentials not used for a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnusedReport {
    /// The period in seconds.
    pub period_secs: u64,
    /// Unused, still valid tokens.
    pub tokens: Vec<crate::api::identity::TokenView>,
    /// Unused, enabled users (admins are listed but never disabled).
    pub users: Vec<crate::api::identity::UserView>,
    /// True when they were revoked and disabled by this request.
    pub disabled: bool,
}

/// `POST /api/v1/audit/unused`: revoke and disable what is unused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableUnused {
    /// The period: `60d`, `12h` (default `60d`).
    #[serde(default)]
    pub period: Option<String>,
}

/// Parses an unused-credential period (`60d`; a plain number is days).
pub fn parse_period(field: &str, s: &str) -> Result<u64> {
    let t = s.trim();
    let secs = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u64>().ok().map(|d| d.saturating_mul(86_400))
    } else {
        parse_duration(field, t, false).ok()
    };
    secs.filter(|s| *s > 0 && *s <= 100 * 365 * 86_400)
        .ok_or_else(|| {
            ValidationError::new(
                "invalid-period",
                field,
                format!("`{s}` is not a period such as `60d` or `12h` (a plain number is days)"),
            )
        })
}

/// The name of the built-in query "who read study X, and when"
/// (downloads are audited as `study.read.download`, attaches as
/// `study.read.attach`, one record per attach).
pub const STUDY_READERS_QUERY: &str = "study-readers";

/// The name of the built-in query over tokens rather than requests.
pub const UNUSED_TOKENS_QUERY: &str = "unused-tokens";

fn query(
    name: &str,
    description: &str,
    params: &[(&str, Option<&str>)],
    filter: &[(&str, &str)],
) -> NamedQuery {
    NamedQuery {
        name: name.into(),
        description: description.into(),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect(),
        filter: filter
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// The queries every installation has.
pub fn builtin_queries() -> Vec<NamedQuery> {
    vec![
        query(
            "changes",
            "who changed what: every successful request that may change something, newest first (workers' own traffic with workers=true)",
            &[
                ("since", Some("7d")),
                ("principal", Some("")),
                ("workers", Some("false")),
            ],
            &[
                ("changes", "true"),
                ("workers", "{workers}"),
                ("status", "200-399"),
                ("since", "{since}"),
                ("principal", "{principal}"),
                ("limit", "1000"),
            ],
        ),
        query(
            "failed-logins",
            "failed and throttled logins, counted by source address",
            &[("since", Some("7d"))],
            &[
                ("action", "login"),
                ("status", "400-499"),
                ("since", "{since}"),
                ("group-by", "source-ip"),
            ],
        ),
        query(
            "failed-logins-by-user",
            "failed and throttled logins, counted by the account they tried",
            &[("since", Some("7d"))],
            &[
                ("action", "login"),
                ("status", "400-499"),
                ("since", "{since}"),
                ("group-by", "resource"),
            ],
        ),
        query(
            "job",
            "every request about one job",
            &[("id", None), ("since", Some("all"))],
            &[
                ("resource", "job:{id}"),
                ("since", "{since}"),
                ("limit", "1000"),
            ],
        ),
        query(
            "denied",
            "refused requests (401, 403, 404), counted by principal",
            &[("since", Some("7d"))],
            &[
                ("status", "401-404"),
                ("since", "{since}"),
                ("group-by", "principal"),
            ],
        ),
        query(
            STUDY_READERS_QUERY,
            "who read study X, and when: every download of its files and every attach to a job or workspace",
            &[("study", None), ("since", Some("all"))],
            &[
                ("resource", "study:{study}"),
                ("action", "study.read."),
                ("status", "200-299"),
                ("since", "{since}"),
                ("limit", "1000"),
            ],
        ),
        query(
            UNUSED_TOKENS_QUERY,
            "API tokens not used for a number of days (never-used tokens count from their creation)",
            &[("days", Some("60"))],
            &[],
        ),
    ]
}

/// Fills a named query's templates with `params` (defaults for the ones
/// not given); unknown or missing parameters are errors that name them.
pub fn resolve(
    q: &NamedQuery,
    params: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    for k in params.keys() {
        if !q.params.contains_key(k) {
            let known: Vec<&str> = q.params.keys().map(String::as_str).collect();
            return Err(ValidationError::new(
                "unknown-parameter",
                k,
                format!(
                    "query `{}` has no parameter `{k}` (it takes: {})",
                    q.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    let mut values = BTreeMap::new();
    for (k, default) in &q.params {
        let v = params
            .get(k)
            .cloned()
            .or_else(|| default.clone())
            .ok_or_else(|| {
                ValidationError::new(
                    "missing-parameter",
                    k,
                    format!("query `{}` needs `--param {k}=...`", q.name),
                )
            })?;
        if v.contains('{') {
            return Err(ValidationError::new(
                "invalid-parameter",
                k,
                "parameter values cannot contain `{`",
            ));
        }
        values.insert(k.clone(), v);
    }
    let mut out = BTreeMap::new();
    for (k, template) in &q.filter {
        let mut v = template.clone();
        for (p, val) in &values {
            v = v.replace(&format!("{{{p}}}"), val);
        }
        if !v.is_empty() {
            out.insert(k.clone(), v);
        }
    }
    Ok(out)
}

/// The action name and resource id of a web portal request (`POST
/// /ui/jobs/12/cancel` -> `portal.job.cancel`, `job:12`).
fn classify_portal(method: &str, path: &str) -> (String, Option<String>) {
    let seg: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).skip(1).collect();
    let post = method.eq_ignore_ascii_case("POST");
    let job = seg.get(1).map(|v| format!("job:{v}"));
    let (action, resource) = match (seg.first().copied(), seg.len()) {
        (None, _) => ("portal.dashboard", None),
        // OpenID Connect sign-in (issue 11): to the provider, and back.
        (Some("login"), n) if n >= 3 && seg[1] == "oidc" => (
            if n >= 4 {
                "portal.login-oidc-callback"
            } else {
                "portal.login-oidc"
            },
            Some(format!("oidc:{}", seg[2])),
        ),
        (Some("login"), _) if post => ("portal.login", None),
        (Some("login"), _) => ("portal.login-form", None),
        (Some("logout"), _) => ("portal.logout", None),
        (Some("jobs"), 1) => ("portal.job.list", None),
        (Some("jobs"), 2) => ("portal.job.show", job),
        (Some("jobs"), _) if seg[2] == "cancel" => ("portal.job.cancel", job),
        (Some("jobs"), _) if seg[2] == "resubmit" => ("portal.job.resubmit", job),
        (Some("submit"), _) if post => ("portal.job.submit", None),
        (Some("submit"), _) => ("portal.submit-form", None),
        (Some("workers"), _) => ("portal.workers", None),
        (Some("audit"), _) => ("portal.audit", None),
        (Some("static"), _) => ("portal.static", None),
        _ => ("portal.other", None),
    };
    (action.to_string(), resource)
}

/// The action name and resource id of a request under `/api/v1`, from its
/// method and path (`POST /api/v1/jobs/12/cancel` -> `job.cancel`, `job:12`).
pub fn classify(method: &str, path: &str) -> (String, Option<String>) {
    if path == "/" || path == "/ui" || path.starts_with("/ui/") {
        return classify_portal(method, path);
    }
    let rest = path.strip_prefix("/api/v1").unwrap_or(path);
    let seg: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let m = method.to_ascii_uppercase();
    let get = m == "GET" || m == "HEAD";
    let id = |kind: &str, i: usize| seg.get(i).map(|v| format!("{kind}:{v}"));
    let (action, resource): (&str, Option<String>) = match (seg.first().copied(), seg.len()) {
        (Some("jobs"), 1) => (if get { "job.list" } else { "job.submit" }, None),
        (Some("jobs"), 2) if seg[1] == "batch" => ("job.submit-batch", None),
        (Some("jobs"), 2) => ("job.show", id("job", 1)),
        (Some("jobs"), _) => (
            match seg[2] {
                "cancel" => "job.cancel",
                "resubmit" => "job.resubmit",
                "log" => "job.log",
                "outputs" => "job.outputs",
                "inputs" => "job.inputs",
                "attempts" => "job.upload-output",
                _ => "job.other",
            },
            id("job", 1),
        ),
        (Some("admin"), _) => ("admin.damaged-jobs", None),
        (Some("uploads"), 1) => ("upload.create", None),
        (Some("uploads"), _) => (
            if get { "upload.read" } else { "upload.write" },
            id("upload", 1),
        ),
        (Some("workers"), 1) => (
            if get {
                "worker.list"
            } else {
                "worker.register"
            },
            None,
        ),
        (Some("workers"), 2) => ("worker.deregister", id("worker", 1)),
        (Some("workers"), _) => (
            match seg[2] {
                "lease" => "worker.lease",
                "updates" => "worker.updates",
                _ => "worker.other",
            },
            id("worker", 1),
        ),
        (Some("users"), 1) => (if get { "user.list" } else { "user.create" }, None),
        (Some("users"), _) => (if get { "user.show" } else { "user.update" }, id("user", 1)),
        (Some("tokens"), 1) => (if get { "token.list" } else { "token.create" }, None),
        (Some("tokens"), _) => (
            if get { "token.show" } else { "token.revoke" },
            id("token", 1),
        ),
        (Some("indexes"), 1) => (if get { "index.list" } else { "index.create" }, None),
        (Some("indexes"), _) => ("index.show", id("index", 1)),
        (Some("projects"), 1) => (
            if get {
                "project.list"
            } else {
                "project.create"
            },
            None,
        ),
        (Some("projects"), 2) => ("project.show", id("project", 1)),
        (Some("projects"), _) => (
            match m.as_str() {
                "DELETE" => "project.remove-member",
                _ => "project.add-member",
            },
            id("project", 1),
        ),
        (Some("audit"), _) => (
            match seg.get(1).copied() {
                Some("unused") if !get => "audit.disable-unused",
                Some("unused") => "audit.unused",
                Some("queries") => "audit.queries",
                _ => "audit.query",
            },
            None,
        ),
        (Some("login"), _) => ("login", None),
        (Some("logout"), _) => ("logout", None),
        (Some("whoami"), _) => ("whoami", None),
        (Some("openapi.json"), _) => ("openapi", None),
        (Some("events"), _) => ("events", None),
        _ => ("other", None),
    };
    (action.to_string(), resource)
}

/// A network: an address and a prefix length (`10.0.0.0/8`, `::1/128`,
/// or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR[/PREFIX]`.
    pub fn parse(field: &str, s: &str) -> Result<Cidr> {
        let bad = || {
            ValidationError::new(
                "invalid-network",
                field,
                format!("`{s}` is not an address or network such as 10.0.0.0/8"),
            )
        };
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    /// True when `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy, in
/// which case `X-Forwarded-For` is read from the right, skipping trusted
/// proxies; the first untrusted address is the client. A header from an
/// untrusted peer is ignored (anyone can send one).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for part in header.rsplit(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests;
